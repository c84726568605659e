"""An HTTP/1.1 response parser for streamed bodies (sans-I/O, RFC 9112).

Bytes in, pieces out: :class:`ResponseHead` once, then body bytes as they
arrive, then :data:`END`.  Bodies may be chunked (RFC 9112 §7.1: chunk
extensions and trailers are read and ignored), sized by ``Content-Length``,
or delimited by the connection closing.  Interim ``1xx`` responses are
skipped.  Every buffer is bounded; violations raise
:class:`~jupyter_streamchat.errors.ProtocolError` or
:class:`~jupyter_streamchat.errors.LimitExceeded` with the numbers.

Used by the fast HTTP upstream (:mod:`jupyter_streamchat.upstream.h1`), whose
whole I/O is ``data_received`` → :meth:`ResponseParser.feed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import LimitExceeded, ProtocolError

__all__ = ["END", "ResponseHead", "ResponseParser"]

MAX_HEAD_BYTES: Final = 64 << 10
MAX_CHUNK_LINE: Final = 4 << 10


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """Status line and headers (names lower-cased, in order, repeats kept)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The last value of header ``name`` (lower case)."""
        value = default
        for key, found in self.headers:
            if key == name:
                value = found
        return value


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END: Final = _End()
"""The body is complete."""

Piece = ResponseHead | bytes | _End

# Parser states
_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _SIZED, _UNTIL_CLOSE, _DONE = range(8)


class ResponseParser:
    """Parse one HTTP/1.1 response to a request (the request method is not HEAD)."""

    __slots__ = ("_buf", "_left", "_max_head", "_state", "head", "keep_alive")

    def __init__(self, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self._buf = b""
        self._state = _HEAD
        self._left = 0
        self._max_head = max_head_bytes
        self.head: ResponseHead | None = None
        self.keep_alive = False

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> list[Piece]:
        """Bytes from the connection; returns the pieces they complete."""
        out: list[Piece] = []
        state = self._state
        if state == _UNTIL_CLOSE:  # hot path: close-delimited body
            if data:
                out.append(data)
            return out
        if state == _SIZED and not self._buf:  # hot path: sized body
            take = data[: self._left]
            self._left -= len(take)
            if take:
                out.append(take)
            if self._left == 0:
                self._state = _DONE
                out.append(END)
                if len(data) > len(take):
                    raise ProtocolError(f"{len(data) - len(take)} bytes after the response body")
            return out
        self._buf += data
        while True:
            buf = self._buf
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > self._max_head:
                        raise LimitExceeded(
                            "response head", len(buf), "max_head_bytes", self._max_head
                        )
                    return out
                if end > self._max_head:
                    raise LimitExceeded("response head", end, "max_head_bytes", self._max_head)
                head = self._parse_head(buf[:end])
                self._buf = buf[end + 4 :]
                if 100 <= head.status < 200:
                    continue  # interim response (100 Continue, 103 Early Hints)
                self.head = head
                out.append(head)
                self._begin_body(head)
                if self._state == _DONE:
                    out.append(END)
            elif state == _CHUNK_SIZE:
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise LimitExceeded(
                            "chunk size line", len(buf), "max_chunk_line", MAX_CHUNK_LINE
                        )
                    return out
                size_text = buf[:line_end].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
                if size < 0:
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
                self._buf = buf[line_end + 2 :]
                if size == 0:
                    self._state = _TRAILERS
                else:
                    self._left = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if not buf:
                    return out
                take = buf[: self._left]
                self._left -= len(take)
                self._buf = buf[len(take) :]
                out.append(take)
                if self._left == 0:
                    self._state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buf) < 2:
                    return out
                if buf[:2] != b"\r\n":
                    raise ProtocolError(f"chunk not followed by CRLF: {buf[:8]!r}")
                self._buf = buf[2:]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    if len(buf) > self._max_head:
                        raise LimitExceeded("trailers", len(buf), "max_head_bytes", self._max_head)
                    return out
                self._buf = buf[line_end + 2 :]
                if line_end == 0:
                    self._state = _DONE
                    out.append(END)
                    if self._buf:
                        raise ProtocolError(f"{len(self._buf)} bytes after the response body")
                    return out
            elif state == _SIZED:
                take = buf[: self._left]
                self._left -= len(take)
                self._buf = buf[len(take) :]
                if take:
                    out.append(take)
                if self._left == 0:
                    self._state = _DONE
                    out.append(END)
                    if self._buf:
                        raise ProtocolError(f"{len(self._buf)} bytes after the response body")
                return out
            elif state == _UNTIL_CLOSE:
                self._buf = b""
                if buf:
                    out.append(buf)
                return out
            else:  # _DONE
                if buf:
                    raise ProtocolError(f"{len(buf)} bytes after the response body")
                return out

    def eof(self) -> list[Piece]:
        """The connection closed; raises if that cut the response short."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            return [END]
        if self._state == _DONE:
            return []
        where = "head" if self._state == _HEAD else "body"
        raise ProtocolError(f"connection closed in the middle of the response {where}")

    def _parse_head(self, raw: bytes) -> ResponseHead:
        lines = raw.split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        version = parts[0]
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("obsolete header line folding is not accepted")
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"bad header line {line[:60]!r}")
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        head = ResponseHead(status, parts[2] if len(parts) > 2 else "", tuple(headers))
        connection = (head.get("connection") or "").lower()
        self.keep_alive = (
            version == "HTTP/1.1" and "close" not in connection
        ) or "keep-alive" in connection
        return head

    def _begin_body(self, head: ResponseHead) -> None:
        if head.status in (204, 304):
            self._state = _DONE
            return
        encoding = (head.get("transfer-encoding") or "").lower()
        if encoding:
            if encoding.replace(" ", "").split(",")[-1] != "chunked":
                raise ProtocolError(f"unsupported transfer-encoding {encoding!r}")
            self._state = _CHUNK_SIZE
            return
        lengths = {v for k, v in head.headers if k == "content-length"}
        if len(lengths) > 1:
            raise ProtocolError(f"conflicting content-length headers {sorted(lengths)}")
        if lengths:
            (length,) = lengths
            if not length.isdigit():
                raise ProtocolError(f"bad content-length {length[:20]!r}")
            self._left = int(length)
            self._state = _SIZED if self._left else _DONE
            return
        self.keep_alive = False
        self._state = _UNTIL_CLOSE
