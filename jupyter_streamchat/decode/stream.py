"""One upstream reply, bytes or messages in, events out (sans-I/O).

:class:`StreamDecoder` joins a framing decoder (SSE or NDJSON) to a dialect
and an :class:`~jupyter_streamchat.decode.emitter.Emitter`.  Adapters feed it
what they read with the time they read it, and forward what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dialects.base import Dialect, Framing
from ..errors import LimitExceeded, StreamError
from ..events import Event
from .emitter import Emitter
from .ndjson import NDJSONDecoder
from .sse import SSEDecoder

__all__ = ["DecoderLimits", "StreamDecoder"]


@dataclass(frozen=True, slots=True)
class DecoderLimits:
    """Security limits of one decoded stream, in bytes."""

    max_line_bytes: int = 1 << 20
    max_event_bytes: int = 4 << 20
    max_message_bytes: int = 4 << 20


class StreamDecoder:
    """Decode one reply; returns events, never raises :class:`StreamError`."""

    __slots__ = ("_dialect", "_framing", "_limits", "_ndjson", "_sse", "emitter")

    def __init__(
        self,
        dialect: Dialect,
        emitter: Emitter,
        *,
        framing: Framing | None = None,
        limits: DecoderLimits | None = None,
    ) -> None:
        self._dialect = dialect
        self.emitter = emitter
        self._framing: Framing = framing or dialect.framing
        self._limits = limits or DecoderLimits()
        self._sse: SSEDecoder | None = None
        self._ndjson: NDJSONDecoder | None = None
        if self._framing == "sse":
            self._sse = SSEDecoder(
                max_line_bytes=self._limits.max_line_bytes,
                max_event_bytes=self._limits.max_event_bytes,
            )
        elif self._framing == "ndjson":
            self._ndjson = NDJSONDecoder(max_line_bytes=self._limits.max_line_bytes)

    @property
    def finished(self) -> bool:
        return self.emitter.finished

    def feed(self, data: bytes, now: float) -> list[Event]:
        """Bytes of an SSE or NDJSON body."""
        out = self.emitter
        out.now = now
        if out.finished:
            return out.drain()
        dialect = self._dialect
        try:
            if self._sse is not None:
                for message in self._sse.feed(data):
                    dialect.on_message(message.data, message.event, out)
                    if out.finished:
                        break
            elif self._ndjson is not None:
                for line in self._ndjson.feed(data):
                    dialect.on_message(line, None, out)
                    if out.finished:
                        break
            else:
                raise TypeError("feed() is for sse and ndjson framing; use feed_message()")
        except StreamError as exc:
            out.fail(exc)
        return out.drain()

    def feed_message(self, message: str | bytes, now: float) -> list[Event]:
        """One whole message (WebSocket framing)."""
        out = self.emitter
        out.now = now
        if out.finished:
            return out.drain()
        try:
            limit = self._limits.max_message_bytes
            size = len(message)
            if isinstance(message, str) and size * 4 > limit:
                size = len(
                    message.encode("utf-8", "surrogatepass")
                )  # exact bytes only when it matters
            if size > limit:
                raise LimitExceeded(
                    "message", size, "max_message_bytes", self._limits.max_message_bytes
                )
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            self._dialect.on_message(text, None, out)
        except StreamError as exc:
            out.fail(exc)
        return out.drain()

    def eof(self, now: float) -> list[Event]:
        """The backend closed the stream (cleanly)."""
        out = self.emitter
        out.now = now
        if not out.finished:
            try:
                if self._sse is not None:
                    for message in self._sse.eof():
                        self._dialect.on_message(message.data, message.event, out)
                elif self._ndjson is not None:
                    for line in self._ndjson.eof():
                        self._dialect.on_message(line, None, out)
                self._dialect.on_eof(out)
            except StreamError as exc:
                out.fail(exc)
        return out.drain()

    def fail(self, exc: StreamError, now: float) -> list[Event]:
        """End the stream with an error found outside the decoder (I/O, timeout)."""
        out = self.emitter
        out.now = now
        out.fail(exc)
        return out.drain()
