"""OpenAI Responses API streaming (also llama.cpp, ``transformers serve``, vLLM).

Every SSE event's data is an object whose ``type`` names it; some servers send
no ``event:`` lines at all, so the type is always read from the JSON.  Text
comes in ``response.output_text.delta``; the stream ends with
``response.completed`` (usage inside ``response``), ``response.incomplete``
(``incomplete_details.reason``), ``response.failed`` or ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..decode.emitter import Emitter
from .base import ChatMessage, Dialect, Request, emit_ms_of
from .generic import as_int, as_str, chat_messages, error_message, load_object, passthrough

__all__ = ["OpenAIResponses"]

_FIXED = ("model", "input", "stream", "max_output_tokens")


class OpenAIResponses(Dialect):
    """``POST {base}/responses`` with ``stream: true``, SSE reply.

    ``stop`` and ``seed`` have no Responses equivalent and are not sent.
    """

    name = "openai-responses"
    framing = "sse"

    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        options: Mapping[str, Any],
    ) -> Request:
        body: dict[str, Any] = passthrough(options, exclude=_FIXED)
        for key in ("temperature", "top_p"):
            if options.get(key) is not None:
                body[key] = options[key]
        max_tokens = options.get("max_output_tokens", options.get("max_tokens"))
        if max_tokens is not None:
            body["max_output_tokens"] = max_tokens
        if model is not None:
            body["model"] = model
        body["input"] = chat_messages(messages)
        body["stream"] = True
        return Request("/responses", body)

    def on_message(self, data: str, event: str | None, out: Emitter) -> None:
        if data == "[DONE]":
            out.done()
            return
        obj = load_object(data, self.name)
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = event if event not in (None, "message") else None
        emit_ms = emit_ms_of(obj)
        if kind == "response.output_text.delta":
            delta = obj.get("delta")
            if isinstance(delta, str):
                out.token(delta, emit_ms=emit_ms)
            return
        response = obj.get("response")
        if not isinstance(response, dict):
            response = {}
        if kind in ("response.created", "response.in_progress"):
            out.start(emit_ms=emit_ms, model=as_str(response.get("model")))
        elif kind == "response.completed":
            self._usage(response, emit_ms, out)
            out.done(finish_reason="stop", emit_ms=emit_ms)
        elif kind == "response.incomplete":
            self._usage(response, emit_ms, out)
            details = response.get("incomplete_details")
            reason = as_str(details.get("reason")) if isinstance(details, dict) else None
            out.done(finish_reason=reason or "incomplete", emit_ms=emit_ms)
        elif kind == "response.failed":
            message = error_message(response.get("error")) or "response failed"
            out.error("upstream_error", message, emit_ms=emit_ms)
        elif kind == "error" or (kind is None and "error" in obj):
            detail = obj.get("error", obj)
            message = error_message(detail) or error_message(obj) or "error event"
            out.error("upstream_error", message, emit_ms=emit_ms)
        # every other event (output_item.added, content_part.done, ...) carries no new text

    @staticmethod
    def _usage(response: dict[str, Any], emit_ms: float | None, out: Emitter) -> None:
        usage = response.get("usage")
        if isinstance(usage, dict):
            out.usage(
                prompt_tokens=as_int(usage.get("input_tokens")),
                completion_tokens=as_int(usage.get("output_tokens")),
                total_tokens=as_int(usage.get("total_tokens")),
                emit_ms=emit_ms,
            )
