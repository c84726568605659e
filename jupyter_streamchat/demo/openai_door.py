"""The OpenAI-compatible door: ``POST /v1/chat/completions`` (SSE or one JSON),
``GET /v1/models``, ``GET /stats``.

A streamed reply, one SSE event per frame, each written and flushed at once::

    data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":1735000000,
           "model":"steady","choices":[{"index":0,"delta":{"role":"assistant","content":""},
           "finish_reason":null}],"emit_ms":1735000000123.4}
    data: {… "choices":[{"index":0,"delta":{"content":"Alice"},"finish_reason":null}], …}
    data: {… "choices":[{"index":0,"delta":{},"finish_reason":"stop"}], …}
    data: {… "choices":[],"usage":{"prompt_tokens":…}, …}     (with stream_options.include_usage)
    data: [DONE]

With ``include_usage`` every other chunk carries ``"usage": null``, as OpenAI's do.
Errors are ``{"error": {"message", "type", "param", "code"}}`` with status 400,
429 (+ ``Retry-After``) or 500.  Faults: ``drop`` closes the socket inside the
chunked body; ``malformed`` sends ``data: {"choices": [`` then ends the body.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

from ..events import now_ms
from .http_door import DemoHandler, HTTPDoor, StatsHandler, dumps
from .model import (
    DemoModel,
    DemoRequest,
    Generation,
    Rejection,
    Reply,
    messages_from_json,
    optional_int,
)
from .profiles import PROFILES

__all__ = ["MALFORMED_JSON", "MALFORMED_SSE", "openai_door"]

MALFORMED_SSE: Final = b'data: {"choices": [\n\n'
MALFORMED_JSON: Final = b'{"id": "chatcmpl-malformed", "choices": ['
_ERROR_TYPES: Final = {
    400: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}


def _request(body: dict[str, Any]) -> DemoRequest:
    model = body.get("model", "")
    if not isinstance(model, str):
        raise Rejection.bad_request(f"'model' must be a string, got {model!r}")
    max_tokens = optional_int(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = optional_int(body, "max_tokens")
    return DemoRequest(
        model=model,
        messages=messages_from_json(body.get("messages")),
        max_tokens=max_tokens,
        seed=optional_int(body, "seed"),
    )


class ChatCompletionsHandler(DemoHandler):
    door = "openai"

    def reject(self, rejection: Rejection) -> None:
        kind, code = _ERROR_TYPES.get(rejection.status, ("server_error", None))
        self.send_json(
            rejection.status,
            {"error": {"message": rejection.message, "type": kind, "param": None, "code": code}},
            self.rejection_headers(rejection),
        )

    async def post(self) -> None:
        try:
            body = self.json_body()
            request = _request(body)
            stream = body.get("stream", False)
            if not isinstance(stream, bool):
                raise Rejection.bad_request(f"'stream' must be true or false, got {stream!r}")
            options = body.get("stream_options") or {}
            if not isinstance(options, dict):
                raise Rejection.bad_request("'stream_options' must be an object")
            include_usage = options.get("include_usage") is True
            reply = self.model.admit(self.door, request)
        except Rejection as rejection:
            self.reject(rejection)
            return
        with self.open_generation(self.model.open(self.door, reply)) as generation:
            if stream:
                await self._stream(generation, include_usage)
            else:
                await self._whole(generation)

    def _chunk(self, reply: Reply, choices: list[Any], null_usage: bool, **extra: Any) -> bytes:
        obj: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": reply.request.model,
            "choices": choices,
        }
        if null_usage:  # OpenAI's chunks carry "usage": null when usage was asked for
            obj["usage"] = None
        obj.update(extra)
        obj["emit_ms"] = now_ms()
        return b"data: " + dumps(obj) + b"\n\n"

    async def _stream(self, generation: Generation, include_usage: bool) -> None:
        reply = generation.reply
        self.completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.start_stream("text/event-stream; charset=utf-8")
        role = {"role": "assistant", "content": ""}
        first = [{"index": 0, "delta": role, "finish_reason": None}]
        if not await self.send(self._chunk(reply, first, include_usage)):
            return

        def frame(text: str) -> bytes:
            delta = [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
            return self._chunk(reply, delta, include_usage)

        if not await self.stream_tokens(generation, frame, MALFORMED_SSE):
            return
        last = [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]
        if not await self.send(self._chunk(reply, last, include_usage)):
            return
        if include_usage:
            usage = reply.usage(generation.generated)
            if not await self.send(self._chunk(reply, [], False, usage=usage)):
                return
        if await self.send(b"data: [DONE]\n\n"):
            generation.complete()
            self.finish()

    async def _whole(self, generation: Generation) -> None:
        reply = generation.reply
        text = await self.collect_tokens(generation, MALFORMED_JSON)
        if text is None:
            return
        self.send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reply.request.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": reply.usage(generation.generated),
                "emit_ms": now_ms(),
            },
        )
        generation.complete()


class ModelsHandler(DemoHandler):
    door = "openai"

    def get(self) -> None:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "jupyter_streamchat-demo"}
            for name in PROFILES
        ]
        self.send_json(200, {"object": "list", "data": data})


def openai_door(model: DemoModel) -> HTTPDoor:
    """The tornado app of the OpenAI door (its base URL is ``http://host:port/v1``)."""
    kwargs = {"model": model}
    return HTTPDoor(
        [
            (r"/v1/chat/completions", ChatCompletionsHandler, kwargs),
            (r"/v1/models", ModelsHandler, kwargs),
            (r"/stats", StatsHandler, kwargs),
        ],
        model,
    )
