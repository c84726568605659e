"""The JSON WebSocket door (``ws://host:port/``, any path; permessage-deflate on).

Client → server, one JSON text message each::

    {"model": "steady", "messages": [{"role": "user", "content": "hi"}],
     "max_tokens": 32, "seed": 7}          (max_tokens and seed optional)
    {"cancel": true}                        (stops the current reply)

Server → client::

    {"token": "Alice", "index": 0, "emit_ms": …}
    …
    {"done": true, "finish_reason": "stop", "usage": {"prompt_tokens": …,
     "completion_tokens": …, "total_tokens": …}, "emit_ms": …}

``finish_reason`` is ``stop``, ``length`` or ``cancelled`` (after a cancel).
Errors: ``{"error": {"code", "message", "status", "retry_after"?}, "emit_ms": …}``
with code ``bad_request`` (connection stays open), ``rate_limited`` (with
``retry_after``; stays open), ``server_error`` (then close 1011) or ``busy``
(a request arrived while one is streaming).  Requests may follow one another
on one connection.  Faults: ``drop`` aborts the TCP connection without a close
frame; ``malformed`` sends a text message that is not JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any, Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ..events import now_ms
from .model import (
    DemoModel,
    DemoRequest,
    Generation,
    Rejection,
    Reply,
    messages_from_json,
    optional_int,
)

__all__ = ["MALFORMED_WS", "WebSocketDoor"]

MALFORMED_WS: Final = 'this is not JSON {"token": '
_TASK_EXIT_TIMEOUT_S: Final = 5.0


def _text(obj: dict[str, Any]) -> str:
    obj["emit_ms"] = now_ms()
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _error(code: str, message: str, status: int, retry_after: float | None = None) -> str:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if retry_after is not None:
        error["retry_after"] = retry_after
    return _text({"error": error})


def _request(obj: dict[str, Any]) -> DemoRequest:
    model = obj.get("model", "")
    if not isinstance(model, str):
        raise Rejection.bad_request(f"'model' must be a string, got {model!r}")
    return DemoRequest(
        model=model,
        messages=messages_from_json(obj.get("messages")),
        max_tokens=optional_int(obj, "max_tokens"),
        seed=optional_int(obj, "seed"),
    )


class _Connection:
    """One client connection: reads requests and cancels, streams one reply at a time."""

    def __init__(self, model: DemoModel, ws: ServerConnection) -> None:
        self.model = model
        self.ws = ws
        self.generation: Generation | None = None
        self.cancel_requested = False
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            while True:  # one message per turn; ends when the connection closes
                message = await self.ws.recv()
                await self._on_message(message)
        except ConnectionClosed:
            pass
        finally:
            if self.generation is not None:
                self.generation.cancel("client")
            if self.task is not None:
                await self._wait_task(self.task)

    @staticmethod
    async def _wait_task(task: asyncio.Task[None]) -> None:
        done, _ = await asyncio.wait({task}, timeout=_TASK_EXIT_TIMEOUT_S)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _on_message(self, message: str | bytes) -> None:
        try:
            obj = json.loads(message)
        except ValueError as exc:
            await self.ws.send(_error("bad_request", f"message is not JSON: {exc}", 400))
            return
        if not isinstance(obj, dict):
            await self.ws.send(_error("bad_request", "message must be a JSON object", 400))
            return
        busy = self.task is not None and not self.task.done()
        if obj.get("cancel") is True:
            if busy and self.generation is not None:
                self.cancel_requested = True
                self.generation.cancel("client")
            return
        if busy:
            text = 'a reply is still streaming on this connection; send {"cancel": true} first'
            await self.ws.send(_error("busy", text, 409))
            return
        try:
            reply = self.model.admit("websocket", _request(obj))
        except Rejection as r:
            await self.ws.send(_error(r.code, r.message, r.status, r.retry_after))
            if r.status >= 500:
                await self.ws.close(1011, "internal error (fault injection)")
            return
        self.cancel_requested = False
        self.generation = self.model.open("websocket", reply)
        self.task = asyncio.create_task(self._stream(self.generation))

    async def _stream(self, generation: Generation) -> None:
        with generation:
            try:
                await self._send_reply(generation)
            except ConnectionClosed:
                generation.cancel("client")

    async def _send_reply(self, generation: Generation) -> None:
        reply = generation.reply
        while (token := await generation.next_token()) is not None:
            try:
                await self.ws.send(_text({"token": token[1], "index": token[0]}))
            except ConnectionClosed:
                generation.lost_token()
                return
        fault = reply.stream_fault
        if generation.gone is None and fault is not None:
            generation.fault(fault)
            if fault == "drop":
                self.ws.transport.abort()
                return
            if fault == "malformed":
                await self.ws.send(MALFORMED_WS)
                return
            if not await generation.wait_gone():  # stall: until the client leaves or cancels
                self.ws.transport.abort()  # the stall timed out
                return
        if generation.gone == "client" and self.cancel_requested:
            await self.ws.send(self._done(reply, generation, "cancelled"))
        elif generation.gone is None:
            await self.ws.send(self._done(reply, generation, reply.finish_reason))
            generation.complete()
        # gone == "shutdown": the server's close (1001 going away) ends the connection

    @staticmethod
    def _done(reply: Reply, generation: Generation, finish_reason: str) -> str:
        return _text(
            {
                "done": True,
                "finish_reason": finish_reason,
                "usage": reply.usage(generation.generated),
            }
        )


class WebSocketDoor:
    """The ``websockets`` asyncio server of this door."""

    def __init__(self, model: DemoModel) -> None:
        self.model = model
        self._server: Server | None = None
        self.port = 0

    async def _handle(self, ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await _Connection(self.model, ws).run()

    async def listen(self, host: str, port: int) -> int:
        self._server = await serve(
            self._handle,
            host,
            port,
            compression="deflate",
            max_size=self.model.config.max_request_bytes,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
