"""OpenAI chat completions streaming (also vLLM, llama.cpp, LM Studio, TGI, ...).

Each SSE event's data is a ``chat.completion.chunk``: text in
``choices[0].delta.content`` (``null`` or absent in the first, role-only
delta), ``finish_reason`` in the last delta, then with ``include_usage`` a
chunk with empty ``choices`` and a ``usage`` object, then ``data: [DONE]``.
Errors arrive as ``{"error": {...}}`` (vLLM's older ``{"object": "error"}`` too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..decode.emitter import Emitter
from .base import ChatMessage, Dialect, Request, emit_ms_of
from .generic import as_int, as_str, chat_messages, error_message, load_object, passthrough

__all__ = ["OpenAIChat"]

_FIXED = ("model", "messages", "stream", "stream_options")


class OpenAIChat(Dialect):
    """``POST {base}/chat/completions`` with ``stream: true``, SSE reply."""

    name = "openai-chat"
    framing = "sse"

    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        options: Mapping[str, Any],
    ) -> Request:
        body: dict[str, Any] = passthrough(options, exclude=_FIXED)
        for key in ("max_tokens", "temperature", "top_p", "stop", "seed"):
            if options.get(key) is not None:
                body[key] = options[key]
        if model is not None:
            body["model"] = model
        body["messages"] = chat_messages(messages)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return Request("/chat/completions", body)

    def on_message(self, data: str, event: str | None, out: Emitter) -> None:
        if data == "[DONE]":
            out.done()
            return
        obj = load_object(data, self.name)
        emit_ms = emit_ms_of(obj)
        message = error_message(obj.get("error"))
        if message is None and obj.get("object") == "error":
            message = error_message(obj)
        if message is not None:
            out.error("upstream_error", message, emit_ms=emit_ms)
            return
        if not out.started:
            out.start(emit_ms=emit_ms, model=as_str(obj.get("model")))
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                # n > 1 interleaves choices; the reader follows the first.
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    text = delta.get("content")
                    if isinstance(text, str):
                        out.token(text, emit_ms=emit_ms)
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    out.finish_reason(reason)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            out.usage(
                prompt_tokens=as_int(usage.get("prompt_tokens")),
                completion_tokens=as_int(usage.get("completion_tokens")),
                total_tokens=as_int(usage.get("total_tokens")),
                emit_ms=emit_ms,
            )
