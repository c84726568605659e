"""What the two HTTP doors (OpenAI SSE, Ollama NDJSON) share: a tornado handler
base that reads a JSON body, writes frame by frame, and notices a vanished
client at once; plus the ``/stats`` handler and the app/server plumbing."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import Any, ClassVar

from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from .faults import Fault
from .model import DemoModel, Generation, Rejection
from .stats import Door

__all__ = ["DemoHandler", "HTTPDoor", "StatsHandler", "dumps"]

log = logging.getLogger("jupyter_streamchat.demo")


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, one line (no raw newlines can appear in it)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class DemoHandler(RequestHandler):
    """Base of the demo's HTTP handlers."""

    door: ClassVar[Door]

    def initialize(self, model: DemoModel) -> None:
        self.model = model
        self.generation: Generation | None = None
        self.client_gone = False

    def check_xsrf_cookie(self) -> None:
        """A model server takes API calls, not form posts: no XSRF cookie."""

    def compute_etag(self) -> str | None:
        return None

    def on_connection_close(self) -> None:
        # Tornado watches an idle connection for EOF, so this runs as soon as
        # the client closes, even while the generation sleeps.
        self.client_gone = True
        if self.generation is not None:
            self.generation.cancel("client")

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise Rejection.bad_request(f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Rejection.bad_request(
                f"request body must be a JSON object, got {type(body).__name__}"
            )
        return body

    def open_generation(self, generation: Generation) -> Generation:
        """Remember the generation so a disconnect can cancel it."""
        self.generation = generation
        if self.client_gone:
            generation.cancel("client")
        return generation

    def start_stream(self, content_type: str) -> None:
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        stream = self.request.connection.stream  # type: ignore[union-attr]
        if not stream.closed():
            stream.set_nodelay(True)

    async def send(self, data: bytes) -> bool:
        """Write and flush one frame; ``False`` if the client is gone."""
        if self.client_gone:
            return False
        self.write(data)
        try:
            await self.flush()
        except StreamClosedError:
            self.on_connection_close()
            return False
        return True

    def drop_connection(self) -> None:
        """Cut the connection mid-body: no terminating chunk, no final frame."""
        self.detach().close()  # detach: tornado must not write the terminating chunk

    async def inject_fault(self, generation: Generation, fault: Fault, malformed: bytes) -> None:
        """The stream fault of the reply, after its tokens; ``malformed`` is this
        door's invalid frame."""
        generation.fault(fault)
        if fault == "stall":
            await generation.wait_gone()
            if generation.gone != "client":  # stall timeout, or the server is stopping
                self.drop_connection()
        elif fault == "drop":
            self.drop_connection()
        elif await self.send(malformed):
            self.finish()

    async def stream_tokens(
        self, generation: Generation, frame: Callable[[str], bytes], malformed: bytes
    ) -> bool:
        """Send each token as ``frame(text)``, then play the reply's stream fault.

        True when the reply may end normally (the door sends its final frames).
        """
        while (token := await generation.next_token()) is not None:
            if not await self.send(frame(token[1])):
                generation.lost_token()
                return False
        return await self._ended_well(generation, malformed)

    async def collect_tokens(self, generation: Generation, malformed: bytes) -> str | None:
        """The whole reply's text (``stream: false``), or ``None`` if it ended otherwise."""
        pieces = []
        while (token := await generation.next_token()) is not None:
            pieces.append(token[1])
        self.set_header("Content-Type", "application/json")
        return "".join(pieces) if await self._ended_well(generation, malformed) else None

    async def _ended_well(self, generation: Generation, malformed: bytes) -> bool:
        if generation.gone is not None:
            self.end_early(generation)
            return False
        fault = generation.reply.stream_fault
        if fault is not None:
            await self.inject_fault(generation, fault, malformed)
            return False
        return True

    def end_early(self, generation: Generation) -> None:
        """The generation stopped before its end: client gone, or shutdown."""
        if generation.gone == "shutdown":
            self.drop_connection()

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(dumps(obj))

    def rejection_headers(self, rejection: Rejection) -> dict[str, str]:
        if rejection.retry_after is None:
            return {}
        return {"Retry-After": f"{rejection.retry_after:g}"}


class StatsHandler(RequestHandler):
    """``GET /stats``: the live counters of all doors."""

    def initialize(self, model: DemoModel) -> None:
        self.model = model

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        self.finish(dumps(self.model.stats.as_dict()))


def _log_request(handler: RequestHandler) -> None:
    log.debug(
        "%s %s %s %.1f ms",
        handler.get_status(),
        handler.request.method,
        handler.request.uri,
        1000.0 * handler.request.request_time(),
    )


class HTTPDoor:
    """A tornado app on its own listening socket."""

    def __init__(self, routes: list[Any], model: DemoModel) -> None:
        app = Application(routes, log_function=_log_request)
        self._server = HTTPServer(
            app,
            max_body_size=model.config.max_request_bytes,
            idle_connection_timeout=3600,
        )
        self.port = 0

    def listen(self, host: str, port: int) -> int:
        sockets = bind_sockets(port, address=host, family=socket.AF_UNSPEC)
        self._server.add_sockets(sockets)
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        self._server.stop()
        await self._server.close_all_connections()
