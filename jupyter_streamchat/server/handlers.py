"""Thin, authenticated handlers: parse, hand to the bridge, write.

Routes (under ``{base_url}streamchat/``):

=========================  ====================================================
``GET  api/backends``      configured and discovered backends, with health
``GET  api/clock``         the server clock, for aligning browser timestamps
``POST api/chat``          a chat reply as ``text/event-stream``
``GET  api/chat/{id}``     resume a stream (``Last-Event-ID``)
``DELETE api/chat/{id}``   cancel a stream
``GET  api/chat/ws``       WebSocket: chat / cancel / resume
``GET  api/streams``       live and recent streams with their timings
``GET  api/streams/{id}``  one stream, with every token's bridge receive and send time
=========================  ====================================================
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketHandler

from ..bridge.manager import Bridge
from ..bridge.requests import RequestError, parse_chat_request, parse_json_body
from ..bridge.session import Gone, Session
from ..events import now_ms
from .sinks import SSESink, WebSocketSink, negotiate_encoding, set_nodelay

__all__ = ["AUTH_RESOURCE", "HANDLERS"]

AUTH_RESOURCE = "streamchat"
STREAM_ID_PATTERN = r"(?P<stream_id>[A-Za-z0-9_-]{8,64})"


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, bridge: Bridge, compression: str = "off") -> None:
        self.bridge = bridge
        self.compression = compression

    def refuse(self, error: RequestError) -> None:
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error.body()))

    def session_or_404(self, stream_id: str) -> Session | None:
        """The live or recently ended stream, or ``None`` after answering 404."""
        session = self.bridge.find(stream_id)
        if session is None:
            message = f"stream {stream_id!r} is unknown or its resume window has passed"
            self.refuse(RequestError(404, "unknown_stream", message))
        return session

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Never echo exception text to the browser: it could carry upstream details.
        self.set_header("Content-Type", "application/json")
        reason = self._reason if status_code < 500 else "internal error"
        self.finish(json.dumps({"error": {"code": "http_error", "message": reason}}))


class ClockHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish({"now_ms": now_ms()})


class BackendsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.bridge.ready()
        backends = self.bridge.backends
        health = await self.bridge.health(
            list(backends), force=self.get_argument("probe", "") == "1"
        )
        listing = []
        for name, backend in sorted(backends.items()):
            entry = backend.public()
            state = health.get(name)
            entry["health"] = state.public() if state else None
            if state is not None and state.models and not entry["models"]:
                entry["models"] = list(state.models)
            listing.append(entry)
        self.set_header("Cache-Control", "no-store")
        self.finish({"default": self.bridge.default_backend, "backends": listing})


class StreamsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        live = [s.timing() for s in self.bridge.sessions.values()]
        self.finish({"live": live, "recent": list(self.bridge.recent)})


class StreamHandler(_Base):
    """One live or recently ended stream, with each token's bridge receive/send times."""

    @web.authenticated
    @authorized
    async def get(self, stream_id: str) -> None:
        session = self.session_or_404(stream_id)
        if session is None:
            return
        self.finish(session.timing(detail=True))


class _SSEStreaming(_Base):
    """Shared by chat and resume: stream a session as SSE until it ends or the client leaves."""

    sink: SSESink | None = None

    async def stream(self, session: Session, after_seq: int | None) -> None:
        coding = negotiate_encoding(
            self.compression, self.request.headers.get("Accept-Encoding", "")
        )
        self.set_status(200)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-transform")
        self.set_header("X-Accel-Buffering", "no")
        self.set_header("X-StreamChat-Stream-Id", session.id)
        if coding:
            self.set_header("Content-Encoding", coding)
            self.set_header("Vary", "Accept-Encoding")
        set_nodelay(self)
        sink = self.sink = SSESink(self, session.id, coding)
        sink.open(f"stream {session.id}")
        try:
            session.attach(sink, after_seq)
            await sink.done
        finally:
            session.detach(sink)
            if not self._finished:
                self.finish()

    def on_connection_close(self) -> None:
        if self.sink is not None:
            self.sink.gone()


class _LimitedBody(_Base):
    """Reads the request body itself, refusing it (413) as soon as it passes the limit."""

    _body: bytearray

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()  # authentication, XSRF
        self._body = bytearray()
        length = self.request.headers.get("Content-Length", "")
        limit = self.bridge.limits.max_request_bytes
        if length.isdigit() and int(length) > limit:
            self._too_large(int(length))

    def _too_large(self, size: int) -> None:
        limit = self.bridge.limits.max_request_bytes
        self.refuse(
            RequestError(
                413, "too_large", f"request body of {size} bytes exceeds max_request_bytes={limit}"
            )
        )

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._body += chunk
        if len(self._body) > self.bridge.limits.max_request_bytes:
            self._too_large(len(self._body))

    def json_body(self) -> dict[str, Any]:
        return parse_json_body(bytes(self._body), self.bridge.limits.max_request_bytes)


@web.stream_request_body
class ChatHandler(_LimitedBody, _SSEStreaming):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        await self.bridge.ready()
        try:
            session = self.bridge.open(parse_chat_request(self.json_body()), leg="sse")
        except RequestError as error:
            self.refuse(error)
            return
        await self.stream(session, None)


class ResumeHandler(_SSEStreaming):
    @web.authenticated
    @authorized
    async def get(self, stream_id: str) -> None:
        session = self.session_or_404(stream_id)
        if session is None:
            return
        raw = self.request.headers.get("Last-Event-ID") or self.get_argument("last_event_id", "")
        after: int | None = None
        if raw:
            try:
                after = int(raw)
            except ValueError:
                self.refuse(
                    RequestError(400, "bad_request", f"Last-Event-ID must be a number, got {raw!r}")
                )
                return
        try:
            session.check_resume(after)
        except Gone as exc:
            self.refuse(RequestError(410, "gone", str(exc)))
            return
        await self.stream(session, after)

    @web.authenticated
    @authorized
    async def delete(self, stream_id: str) -> None:
        session = self.session_or_404(stream_id)
        if session is None:
            return
        session.cancel("client_cancelled")
        await session.wait_closed()
        self.set_status(204)
        self.finish()


class ChatWebSocket(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """One socket, one stream at a time: ``chat``, ``cancel``, ``resume``."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, bridge: Bridge, compression: bool = False) -> None:
        self.bridge = bridge
        self._compression = compression
        self.session: Session | None = None
        self.sink: WebSocketSink | None = None

    def set_default_headers(self) -> None:
        """No JupyterHandler default headers on a WebSocket upgrade."""

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self._compression else None

    async def pre_get(self) -> None:
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "execute", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.set_nodelay(True)

    def _request_error(self, error: RequestError) -> None:
        self.write_message(
            json.dumps({"type": "request_error", "status": error.status, **error.body()["error"]})
        )

    async def on_message(self, message: str | bytes) -> None:
        try:
            data = parse_json_body(
                message.encode() if isinstance(message, str) else message,
                self.bridge.limits.max_request_bytes,
            )
            kind = data.get("type")
            if kind == "chat":
                await self.bridge.ready()
                running = self.session is not None and self.session.terminal is None
                if running and self.sink is not None and not self.sink.done.done():
                    raise RequestError(
                        409, "busy", "a stream is already running on this socket; send cancel first"
                    )
                self._attach(self.bridge.open(parse_chat_request(data), leg="ws"), None)
            elif kind == "cancel":
                if self.session is not None:
                    self.session.cancel("client_cancelled")
            elif kind == "resume":
                stream_id, last_seq = data.get("stream_id"), data.get("last_seq")
                session = self.bridge.find(stream_id) if isinstance(stream_id, str) else None
                if session is None:
                    raise RequestError(
                        404,
                        "unknown_stream",
                        f"stream {stream_id!r} is unknown or its resume window has passed",
                    )
                if last_seq is not None and (
                    isinstance(last_seq, bool) or not isinstance(last_seq, int)
                ):
                    raise RequestError(400, "bad_request", "'last_seq' must be an integer")
                try:
                    self._attach(session, last_seq)
                except Gone as exc:
                    raise RequestError(410, "gone", str(exc)) from None
            else:
                raise RequestError(
                    400,
                    "bad_request",
                    f"unknown message type {kind!r}; expected chat, cancel or resume",
                )
        except RequestError as error:
            self._request_error(error)

    def _attach(self, session: Session, after_seq: int | None) -> None:
        self._detach()
        self.session = session
        self.sink = WebSocketSink(self, session.id)
        session.attach(self.sink, after_seq)

    def _detach(self) -> None:
        if self.session is not None and self.sink is not None:
            self.sink.gone()
            self.session.detach(self.sink)
        self.session = None
        self.sink = None

    def on_close(self) -> None:
        self._detach()


HANDLERS: list[tuple[str, type[Any]]] = [
    (r"/streamchat/api/clock", ClockHandler),
    (r"/streamchat/api/backends", BackendsHandler),
    (r"/streamchat/api/streams", StreamsHandler),
    (rf"/streamchat/api/streams/{STREAM_ID_PATTERN}", StreamHandler),
    (r"/streamchat/api/chat", ChatHandler),
    (r"/streamchat/api/chat/ws", ChatWebSocket),
    (rf"/streamchat/api/chat/{STREAM_ID_PATTERN}", ResumeHandler),
]
