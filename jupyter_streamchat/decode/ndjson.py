"""Newline-delimited JSON framing, bytes in, lines out (sans-I/O).

One JSON text per line (Ollama's streaming format).  Lines end with LF; a CR
before it is dropped; blank lines are skipped.  The text is UTF-8 with errors
replaced: LF never occurs inside a multi-byte sequence, so lines are split as
bytes and decoded one by one.  The JSON itself is the dialect's business.
"""

from __future__ import annotations

from ..errors import ConfigError, LimitExceeded
from .lines import LineBuffer

__all__ = ["NDJSONDecoder"]


class NDJSONDecoder:
    """Incremental line splitter: :meth:`feed` bytes as they arrive, then :meth:`eof`.

    A line longer than ``max_line_bytes`` raises :class:`LimitExceeded` as soon
    as that many bytes of it have arrived, newline or not; every later call
    raises it again.
    """

    __slots__ = ("_fault", "_lines")

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ConfigError(f"NDJSON max_line_bytes must be >= 1, got {max_line_bytes}")
        self._lines = LineBuffer(max_line_bytes, "NDJSON line")
        self._fault: LimitExceeded | None = None  # raised by the next call, see feed()

    def feed(self, data: bytes) -> list[str]:
        """Split a chunk; return the complete, non-blank lines it finished.

        Lines finished before an over-long one are returned first; the
        :class:`LimitExceeded` is then raised by the next call.
        """
        if self._fault is not None:
            raise self._fault
        lines, fault = self._lines.split(data)
        out = [t for t in map(_text, lines) if t is not None]
        if fault is not None:
            if not out:
                raise fault
            self._fault = fault
        return out

    def eof(self) -> list[str]:
        """The stream ended: a last line without a newline still counts."""
        if self._fault is not None:
            raise self._fault
        text = _text(self._lines.rest())
        return [] if text is None else [text]


def _text(line: bytes) -> str | None:
    """The decoded line without its CR, or ``None`` if it is blank."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line or line.isspace():
        return None
    return line.decode("utf-8", "replace")
