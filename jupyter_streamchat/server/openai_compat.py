"""OpenAI-compatible routes: any OpenAI client streams from any configured backend.

``model`` names the backend, optionally with its model: ``demo-ws`` or
``demo-ws/steady``.  Streams go through the same sessions (limits,
cancellation, logging) as ``api/chat``; only the encoding differs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..bridge.requests import (
    ChatRequest,
    RequestError,
    parse_messages,
    parse_options,
)
from ..events import Done, Error, Event, Start, Token, Usage, is_terminal
from .handlers import _Base, _LimitedBody
from .sinks import _consume, set_nodelay

__all__ = ["OPENAI_HANDLERS"]

_STATUS_FOR_CODE = {"timeout": 504, "cancelled": 499, "limit_exceeded": 502}
_OPTION_KEYS = ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty")


def _openai_error(error: RequestError) -> dict[str, Any]:
    code = "model_not_found" if error.code == "unknown_backend" else error.code
    kind = "invalid_request_error" if error.status < 500 else "server_error"
    return {"error": {"message": error.message, "type": kind, "param": None, "code": code}}


def parse_openai_request(data: dict[str, Any]) -> tuple[ChatRequest, bool, bool, str]:
    """(request, stream?, include_usage?, model string) from an OpenAI request body."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "bad_request", "'model' must be '<backend>' or '<backend>/<model>'")
    backend, _, backend_model = model.partition("/")
    if data.get("n", 1) != 1:
        raise RequestError(400, "bad_request", "only n=1 is supported")
    options = {k: data[k] for k in _OPTION_KEYS if data.get(k) is not None}
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "bad_request", "'stream' must be true or false")
    stream_options = data.get("stream_options") or {}
    include_usage = bool(isinstance(stream_options, dict) and stream_options.get("include_usage"))
    request = ChatRequest(
        backend=backend,
        messages=parse_messages(data.get("messages")),
        model=backend_model or None,
        options=parse_options(options),
    )
    return request, stream, include_usage, model


class _OpenAISink:
    """Writes a session's events as ``chat.completion.chunk`` SSE frames."""

    def __init__(
        self, handler: ChatCompletionsHandler, cid: str, model: str, include_usage: bool
    ) -> None:
        self._handler = handler
        self._base = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._include_usage = include_usage
        self._usage: Usage | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return "data: " + json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n\n"

    def write(self, events: Sequence[Event]) -> Any:
        if self.done.done():
            return None
        out: list[str] = []
        for event in events:
            if isinstance(event, Start):
                out.append(self._chunk({"role": "assistant", "content": ""}))
            elif isinstance(event, Token):
                out.append(self._chunk({"content": event.text}))
            elif isinstance(event, Usage):
                self._usage = event  # OpenAI sends usage after the finish chunk
            elif isinstance(event, Done):
                finish = (
                    event.finish_reason if event.finish_reason in ("stop", "length") else "stop"
                )
                out.append(self._chunk({}, finish))
                if self._include_usage:
                    usage = self._usage
                    counts = {
                        "prompt_tokens": (usage.prompt_tokens or 0) if usage else 0,
                        "completion_tokens": (usage.completion_tokens or 0) if usage else 0,
                        "total_tokens": (usage.total_tokens or 0) if usage else 0,
                    }
                    body = {**self._base, "choices": [], "usage": counts}
                    out.append("data: " + json.dumps(body, separators=(",", ":")) + "\n\n")
                out.append("data: [DONE]\n\n")
            elif isinstance(event, Error):
                err = {"message": event.message, "type": event.code, "code": event.code}
                out.append("data: " + json.dumps({"error": err}, separators=(",", ":")) + "\n\n")
        handler = self._handler
        handler.write("".join(out).encode())
        flushed = handler.flush()
        flushed.add_done_callback(_consume)
        if events and is_terminal(events[-1]):
            handler.finish()
            self.done.set_result(None)
        return flushed

    def heartbeat(self, seq: int) -> None:
        if not self.done.done():
            self._handler.write(b": hb\n\n")
            self._handler.flush().add_done_callback(_consume)

    def gone(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def superseded(self) -> None:
        self.gone()


class _Collector:
    """Collects a whole reply for ``stream: false``."""

    def __init__(self, handler: ChatCompletionsHandler) -> None:
        self.events: list[Event] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write(self, events: Sequence[Event]) -> None:
        self.events.extend(events)
        if events and is_terminal(events[-1]) and not self.done.done():
            self.done.set_result(None)

    def heartbeat(self, seq: int) -> None:
        pass

    def gone(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def superseded(self) -> None:
        self.gone()


@web.stream_request_body
class ChatCompletionsHandler(_LimitedBody):
    sink: _OpenAISink | _Collector | None = None

    def refuse(self, error: RequestError) -> None:
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_openai_error(error)))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        await self.bridge.ready()
        try:
            request, stream, include_usage, model = parse_openai_request(self.json_body())
            session = self.bridge.open(request, leg="openai")
        except RequestError as error:
            self.refuse(error)
            return
        cid = f"chatcmpl-{session.id}"
        if stream:
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("Cache-Control", "no-cache, no-transform")
            self.set_header("X-Accel-Buffering", "no")
            set_nodelay(self)
            sink: _OpenAISink | _Collector = _OpenAISink(self, cid, model, include_usage)
        else:
            sink = _Collector(self)
        self.sink = sink
        try:
            session.attach(sink)
            await sink.done
        finally:
            session.detach(sink)
        if isinstance(sink, _Collector) and not self._finished:
            self._finish_collected(sink.events, cid, model)

    def _finish_collected(self, events: list[Event], cid: str, model: str) -> None:
        text = "".join(e.text for e in events if isinstance(e, Token))
        error = next((e for e in events if isinstance(e, Error)), None)
        if error is not None and not text:
            status = error.status if error.code == "http_status" and error.status else 502
            status = _STATUS_FOR_CODE.get(error.code, status)
            self.refuse(RequestError(status, error.code, error.message))
            return
        usage = next((e for e in events if isinstance(e, Usage)), None)
        done = next((e for e in events if isinstance(e, Done)), None)
        finish = (done.finish_reason if done else None) or ("stop" if error is None else "error")
        self.finish(
            {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": (usage.prompt_tokens or 0) if usage else 0,
                    "completion_tokens": (usage.completion_tokens or 0) if usage else 0,
                    "total_tokens": (usage.total_tokens or 0) if usage else 0,
                },
            }
        )

    def on_connection_close(self) -> None:
        if self.sink is not None:
            self.sink.gone()


class ModelsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.bridge.ready()
        backends = self.bridge.backends
        # The same models as api/backends: configured ones, else those the backend lists.
        health = await self.bridge.health(list(backends))
        data = []
        for name, backend in sorted(backends.items()):
            data.append({"id": name, "object": "model", "created": 0, "owned_by": backend.source})
            state = health.get(name)
            for model in backend.models or (state.models if state else ()):
                data.append(
                    {
                        "id": f"{name}/{model}",
                        "object": "model",
                        "created": 0,
                        "owned_by": backend.source,
                    }
                )
        self.finish({"object": "list", "data": data})


OPENAI_HANDLERS: list[tuple[str, type[Any]]] = [
    (r"/streamchat/v1/chat/completions", ChatCompletionsHandler),
    (r"/streamchat/v1/models", ModelsHandler),
]
