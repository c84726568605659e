"""Newline-delimited JSON framing, bytes in, lines out (sans-I/O).

One JSON text per line (Ollama's streaming format).  Lines end with LF; a CR
before it is dropped; blank lines are skipped.  The text is UTF-8 with errors
replaced: LF never occurs inside a multi-byte sequence, so lines are split as
bytes and decoded one by one.  The JSON itself is the dialect's business.
"""

from __future__ import annotations

from ..errors import ConfigError, LimitExceeded

__all__ = ["NDJSONDecoder"]


class NDJSONDecoder:
    """Incremental line splitter: :meth:`feed` bytes as they arrive, then :meth:`eof`.

    A line longer than ``max_line_bytes`` raises :class:`LimitExceeded` as soon
    as that many bytes of it have arrived, newline or not; every later call
    raises it again.
    """

    __slots__ = ("_fault", "_max_line", "_pending", "_pending_size")

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ConfigError(f"NDJSON max_line_bytes must be >= 1, got {max_line_bytes}")
        self._max_line = max_line_bytes
        self._pending: list[bytes] = []  # the current unterminated line, in pieces
        self._pending_size = 0
        self._fault: LimitExceeded | None = None  # raised by the next call, see feed()

    def feed(self, data: bytes) -> list[str]:
        """Split a chunk; return the complete, non-blank lines it finished.

        Lines finished before an over-long one are returned first; the
        :class:`LimitExceeded` is then raised by the next call.
        """
        if self._fault is not None:
            raise self._fault
        lines = data.split(b"\n")
        tail = lines.pop()
        if not lines:  # no line ended in this chunk
            if tail:
                self._grow_pending(tail)
            return []
        size = len(data)
        if self._pending:
            size += self._pending_size
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
        out: list[str] = []
        try:
            max_line = self._max_line
            if size > max_line:  # then some line may be too long
                for i, line in enumerate(lines):
                    if len(line) > max_line:
                        out.extend(t for t in map(_text, lines[:i]) if t is not None)
                        raise LimitExceeded("NDJSON line", len(line), "max_line_bytes", max_line)
            out.extend(t for t in map(_text, lines) if t is not None)
            if tail:
                self._grow_pending(tail)
        except LimitExceeded as exc:
            if not out:
                raise
            self._fault = exc
        return out

    def eof(self) -> list[str]:
        """The stream ended: a last line without a newline still counts."""
        if self._fault is not None:
            raise self._fault
        data = b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        text = _text(data)
        return [] if text is None else [text]

    def _grow_pending(self, piece: bytes) -> None:
        size = self._pending_size + len(piece)
        if size > self._max_line:
            raise LimitExceeded("NDJSON line", size, "max_line_bytes", self._max_line)
        self._pending.append(piece)
        self._pending_size = size


def _text(line: bytes) -> str | None:
    """The decoded line without its CR, or ``None`` if it is blank."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line or line.isspace():
        return None
    return line.decode("utf-8", "replace")
