"""The browser leg: a session's events written to an SSE response or a WebSocket.

Each write goes to the socket at once (TCP_NODELAY is on while streaming) and
returns tornado's flush future, which tells the session whether the client
keeps up.  Compressed SSE is flushed per write (``Z_SYNC_FLUSH`` / brotli
flush), so compression never holds an event back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from collections.abc import Sequence
from typing import Any, Final, Protocol

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..bridge.encode import sse_comment, sse_events, wire_jsons
from ..events import Event, Heartbeat, is_terminal, now_ms

__all__ = ["SSESink", "WebSocketSink", "negotiate_encoding", "set_nodelay"]

try:  # brotli is optional: without it, "br" falls back to gzip
    import brotli as _brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

ENCODINGS: Final = ("br", "gzip") if _brotli is not None else ("gzip",)


class _Compressor(Protocol):
    def __call__(self, data: bytes) -> bytes: ...


def negotiate_encoding(policy: str, accept_encoding: str) -> str | None:
    """The content coding to use: ``policy`` is off / gzip / br / auto."""
    if policy == "off":
        return None
    offered = {
        part.split(";")[0].strip().lower()
        for part in accept_encoding.split(",")
        if part.strip() and not part.strip().endswith(";q=0")
    }
    wanted = ENCODINGS if policy == "auto" else (policy,)
    for coding in wanted:
        if coding in offered and coding in ENCODINGS:
            return coding
    if policy == "br" and "gzip" in offered:
        return "gzip"
    return None


def _compressor(coding: str) -> _Compressor:
    if coding == "br":
        assert _brotli is not None
        brotli = _brotli.Compressor(mode=_brotli.MODE_TEXT, quality=5, lgwin=18)
        return lambda data: bytes(brotli.process(data) + brotli.flush())
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
    return lambda data: gzip.compress(data) + gzip.flush(zlib.Z_SYNC_FLUSH)


def set_nodelay(handler: RequestHandler) -> None:
    """TCP_NODELAY on the handler's connection while streaming (tornado sets it only at finish)."""
    stream = getattr(handler.request.connection, "stream", None)
    if stream is not None:
        stream.set_nodelay(True)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a flush future's error (the client went away) so it is not logged."""
    if not future.cancelled():
        future.exception()


class SSESink:
    """Writes events to one ``text/event-stream`` response."""

    def __init__(self, handler: RequestHandler, stream_id: str, coding: str | None) -> None:
        self._handler = handler
        self._stream_id = stream_id
        self._compress = _compressor(coding) if coding else None
        self.bytes_raw = 0
        self.bytes_sent = 0
        self._headers_sent = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _send(self, data: bytes) -> asyncio.Future[Any] | None:
        if self.done.done():
            return None
        self.bytes_raw += len(data)
        if self._compress is not None:
            data = self._compress(data)
        self.bytes_sent += len(data)
        handler = self._handler
        try:
            connection = handler.request.connection
            if self._headers_sent and connection is not None:
                # Straight to the connection (chunk framing only): RequestHandler.write +
                # flush would copy into and join a buffer for every event.
                flushed = connection.write(data)
            else:
                handler.write(data)
                flushed = handler.flush()
                self._headers_sent = True
        except StreamClosedError:
            self.gone()
            return None
        flushed.add_done_callback(_consume)
        return flushed

    def open(self, comment: str) -> None:
        """Send the headers and a first comment right away."""
        self._send(sse_comment(comment))

    def write(self, events: Sequence[Event]) -> asyncio.Future[Any] | None:
        send_ms = now_ms()
        sid = self._stream_id
        data = sse_events(events, send_ms, sid)
        flushed = self._send(data)
        if events and is_terminal(events[-1]) and not self.done.done():
            self._handler.finish()
            self.done.set_result(None)
        return flushed

    def heartbeat(self, seq: int) -> None:
        self._send(sse_comment(f"hb {now_ms():.1f}"))

    def gone(self) -> None:
        """The client closed the response."""
        if not self.done.done():
            self.done.set_result(None)

    def superseded(self) -> None:
        """Another client resumed this stream: say so, and end this response."""
        self._send(sse_comment("superseded: another client resumed this stream"))
        self.gone()


class WebSocketSink:
    """Writes events as JSON text messages to one WebSocket.

    The events of one write (decoded from one upstream read, or waiting for a
    client that fell behind) go as one message holding a JSON array: one frame
    and one browser task, not one per token.
    """

    def __init__(self, handler: WebSocketHandler, stream_id: str) -> None:
        self._handler = handler
        self._stream_id = stream_id
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write(self, events: Sequence[Event]) -> asyncio.Future[Any] | None:
        if self.done.done():
            return None
        send_ms = now_ms()
        sid = self._stream_id
        datas = wire_jsons(events, send_ms, sid)
        message = datas[0] if len(datas) == 1 else "[" + ",".join(datas) + "]"
        try:
            flushed = self._handler.write_message(message)
            flushed.add_done_callback(_consume)
        except WebSocketClosedError:
            self.gone()
            return None
        if events and is_terminal(events[-1]):
            self.done.set_result(None)
        # write_message's future is a task that resolves a loop turn later even when the
        # socket took every byte: only bytes still queued mean the client is behind.
        connection = self._handler.ws_connection
        if connection is None or connection.stream is None or not connection.stream.writing():
            return None
        return flushed

    def heartbeat(self, seq: int) -> None:
        self.write((Heartbeat(seq=seq, recv_ms=now_ms()),))

    def gone(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def superseded(self) -> None:
        """Another client resumed this stream; the socket stays open for the next chat."""
        if self.done.done():
            return
        self.gone()
        message = {
            "type": "request_error", "status": 409, "code": "superseded",
            "message": f"another client resumed stream {self._stream_id!r}",
        }  # fmt: skip
        with contextlib.suppress(WebSocketClosedError):
            self._handler.write_message(json.dumps(message))
