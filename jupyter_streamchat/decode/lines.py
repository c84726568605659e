"""Cutting a byte stream into LF-terminated lines, bounded (sans-I/O).

Shared by the SSE and NDJSON decoders: split each chunk with one
``bytes.split``, keep the unterminated rest for the next chunk, and refuse a
line as soon as it grows past the limit, newline or not, so memory stays
bounded whatever the peer sends.
"""

from __future__ import annotations

from ..errors import LimitExceeded

__all__ = ["LineBuffer"]


class LineBuffer:
    """Complete lines out of chunks; ``what`` names the line in limit errors."""

    __slots__ = ("_max_line", "_pending", "_pending_size", "_what")

    def __init__(self, max_line_bytes: int, what: str) -> None:
        self._max_line = max_line_bytes
        self._what = what
        self._pending: list[bytes] = []  # the current unterminated line, in pieces
        self._pending_size = 0

    def split(self, data: bytes) -> tuple[list[bytes], LimitExceeded | None]:
        """The lines ``data`` completes (without their LF), and a fault if one is too long.

        With a fault, the lines before the over-long one are still returned, so
        the caller can deliver them before it gives up on the stream.
        """
        lines = data.split(b"\n")
        tail = lines.pop()
        if not lines:  # no line ended in this chunk
            return [], self._grow(tail) if tail else None
        size = len(data)
        if self._pending:
            size += self._pending_size
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
        max_line = self._max_line
        if size > max_line:  # then some line may be too long
            for i, line in enumerate(lines):
                if len(line) > max_line:
                    return lines[:i], LimitExceeded(
                        self._what, len(line), "max_line_bytes", max_line
                    )
        return lines, self._grow(tail) if tail else None

    def rest(self) -> bytes:
        """The unterminated last line, and forget it (end of stream)."""
        data = b"".join(self._pending)
        self.clear()
        return data

    def clear(self) -> None:
        self._pending = []
        self._pending_size = 0

    def _grow(self, piece: bytes) -> LimitExceeded | None:
        size = self._pending_size + len(piece)
        if size > self._max_line:
            return LimitExceeded(self._what, size, "max_line_bytes", self._max_line)
        self._pending.append(piece)
        self._pending_size = size
        return None
