"""The Ollama-compatible door: ``POST /api/chat``, ``POST /api/generate`` (NDJSON
or one JSON), ``GET /api/tags``.

One JSON object per line, each written and flushed at once::

    {"model":"slow","created_at":"2025-01-01T00:00:00.000000Z",
     "message":{"role":"assistant","content":"Alice"},"done":false,"emit_ms":…}
    {"model":"slow","created_at":"…","message":{"role":"assistant","content":""},
     "done":true,"done_reason":"stop","total_duration":…,"load_duration":0,
     "prompt_eval_count":…,"prompt_eval_duration":0,"eval_count":…,
     "eval_duration":…,"emit_ms":…}

``/api/generate`` has ``"response": tok`` instead of ``message``.  As in
Ollama, ``stream`` defaults to true and the length is ``options.num_predict``
(``options.seed`` seeds the text).  Errors are ``{"error": "message"}`` with
status 400, 429 (+ ``Retry-After``) or 500.  Faults: ``drop`` closes the socket
inside the chunked body; ``malformed`` sends the line ``{"model":"…","message":{``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, ClassVar, Final

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

__all__ = ["MALFORMED_NDJSON", "ollama_door"]

MALFORMED_NDJSON: Final = b'{"model":"demo","message":{\n'


def _created_at() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _OllamaHandler(DemoHandler):
    door = "ollama"
    endpoint: ClassVar[str]

    def reject(self, rejection: Rejection) -> None:
        self.send_json(
            rejection.status, {"error": rejection.message}, self.rejection_headers(rejection)
        )

    def messages(self, body: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        raise NotImplementedError

    def piece(self, text: str) -> dict[str, Any]:
        """The field carrying the text: ``message`` or ``response``."""
        raise NotImplementedError

    def demo_request(self, body: dict[str, Any]) -> DemoRequest:
        model = body.get("model", "")
        if not isinstance(model, str):
            raise Rejection.bad_request(f"'model' must be a string, got {model!r}")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise Rejection.bad_request("'options' must be an object")
        num_predict = optional_int(options, "num_predict", where="options.")
        return DemoRequest(
            model=model,
            messages=self.messages(body),
            max_tokens=num_predict if num_predict is None or num_predict > 0 else None,
            seed=optional_int(options, "seed", where="options."),
        )

    async def post(self) -> None:
        try:
            body = self.json_body()
            request = self.demo_request(body)
            stream = body.get("stream", True)
            if not isinstance(stream, bool):
                raise Rejection.bad_request(f"'stream' must be true or false, got {stream!r}")
            reply = self.model.admit(self.door, request)
        except Rejection as rejection:
            self.reject(rejection)
            return
        with self.open_generation(self.model.open(self.door, reply)) as generation:
            if stream:
                await self._stream(generation)
            else:
                await self._whole(generation)

    def _line(self, reply: Reply, text: str, done: bool, **extra: Any) -> dict[str, Any]:
        return {
            "model": reply.request.model,
            "created_at": _created_at(),
            **self.piece(text),
            "done": done,
            **extra,
        }

    def _final(self, generation: Generation, text: str) -> bytes:
        reply = generation.reply
        elapsed_ns = int((now_ms() - self.t0_ms) * 1e6)
        obj = self._line(
            reply,
            text,
            True,
            done_reason=reply.finish_reason,
            total_duration=elapsed_ns,
            load_duration=0,
            prompt_eval_count=reply.prompt_tokens,
            prompt_eval_duration=0,
            eval_count=generation.generated,
            eval_duration=elapsed_ns,
        )
        obj["emit_ms"] = now_ms()
        return dumps(obj) + b"\n"

    async def _stream(self, generation: Generation) -> None:
        reply = generation.reply
        self.t0_ms = now_ms()
        self.start_stream("application/x-ndjson")

        def frame(text: str) -> bytes:
            return dumps(self._line(reply, text, False, emit_ms=now_ms())) + b"\n"

        if not await self.stream_tokens(generation, frame, MALFORMED_NDJSON):
            return
        if await self.send(self._final(generation, "")):
            generation.complete()
            self.finish()

    async def _whole(self, generation: Generation) -> None:
        self.t0_ms = now_ms()
        text = await self.collect_tokens(generation, MALFORMED_NDJSON.rstrip())
        if text is None:
            return
        self.finish(self._final(generation, text).rstrip())
        generation.complete()


class ChatHandler(_OllamaHandler):
    def messages(self, body: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        return messages_from_json(body.get("messages"))

    def piece(self, text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}}


class GenerateHandler(_OllamaHandler):
    def messages(self, body: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        # The same conversation as /api/chat with these messages: same text.
        prompt, system = body.get("prompt", ""), body.get("system")
        if not isinstance(prompt, str):
            raise Rejection.bad_request(f"'prompt' must be a string, got {prompt!r}")
        if system is not None and not isinstance(system, str):
            raise Rejection.bad_request(f"'system' must be a string, got {system!r}")
        return (*((("system", system),) if system else ()), ("user", prompt))

    def piece(self, text: str) -> dict[str, Any]:
        return {"response": text}


class TagsHandler(DemoHandler):
    door = "ollama"

    def get(self) -> None:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "1970-01-01T00:00:00Z",
                "size": 0,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {
                    "format": "demo",
                    "family": "demo",
                    "parameter_size": "0",
                    "quantization_level": "none",
                },
            }
            for name in PROFILES
        ]
        self.send_json(200, {"models": models})


def ollama_door(model: DemoModel) -> HTTPDoor:
    """The tornado app of the Ollama door (its base URL is ``http://host:port``)."""
    kwargs = {"model": model}
    return HTTPDoor(
        [
            (r"/api/chat", ChatHandler, kwargs),
            (r"/api/generate", GenerateHandler, kwargs),
            (r"/api/tags", TagsHandler, kwargs),
            (r"/stats", StatsHandler, kwargs),
        ],
        model,
    )
