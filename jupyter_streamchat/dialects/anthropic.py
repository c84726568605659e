"""Anthropic Messages API streaming (also llama.cpp's ``/v1/messages``).

Events: ``message_start`` (input token counts), ``content_block_start``,
``content_block_delta`` (``text_delta`` carries text), ``content_block_stop``,
``message_delta`` (``stop_reason``, cumulative ``output_tokens``),
``message_stop`` (the end), ``ping``, and ``error``.  The type is read from
the JSON (it repeats the ``event:`` name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..decode.emitter import Emitter
from .base import ChatMessage, Dialect, Request, emit_ms_of
from .generic import as_int, as_str, error_message, load_object, passthrough, split_system

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicMessages"]

DEFAULT_MAX_TOKENS: Final = 1024
"""Anthropic requires ``max_tokens``; sent when the request gives none."""

_FIXED = ("model", "messages", "system", "stream", "max_tokens", "stop_sequences")
_RETRYABLE: Final = frozenset({"overloaded_error", "rate_limit_error", "api_error"})


class AnthropicMessages(Dialect):
    """``POST {base}/v1/messages`` with ``stream: true``, SSE reply.

    System messages move to the top-level ``system`` field; ``stop`` becomes
    ``stop_sequences``; ``seed`` has no equivalent and is not sent.
    """

    name = "anthropic-messages"
    framing = "sse"

    def __init__(self) -> None:
        self._prompt_tokens: int | None = None

    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        options: Mapping[str, Any],
    ) -> Request:
        system, rest = split_system(messages)
        body: dict[str, Any] = passthrough(options, exclude=_FIXED)
        if model is not None:
            body["model"] = model
        if system:
            body["system"] = "\n\n".join(system)
        body["messages"] = rest
        max_tokens = options.get("max_tokens")
        body["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        for key in ("temperature", "top_p"):
            if options.get(key) is not None:
                body[key] = options[key]
        stop = options.get("stop_sequences", options.get("stop"))
        if stop is not None:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        body["stream"] = True
        return Request("/v1/messages", body)

    def on_message(self, data: str, event: str | None, out: Emitter) -> None:
        obj = load_object(data, self.name)
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = event
        emit_ms = emit_ms_of(obj)
        if kind == "content_block_delta":
            delta = obj.get("delta")
            # Any non-empty text is real output, even a lone "\r".
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str):
                    out.token(text, emit_ms=emit_ms)
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self._prompt_tokens = _prompt_tokens(message.get("usage"))
                out.start(emit_ms=emit_ms, model=as_str(message.get("model")))
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                out.finish_reason(as_str(delta.get("stop_reason")))
            usage = obj.get("usage")
            if isinstance(usage, dict):
                prompt = _prompt_tokens(usage)
                out.usage(
                    prompt_tokens=self._prompt_tokens if prompt is None else prompt,
                    completion_tokens=as_int(usage.get("output_tokens")),
                    emit_ms=emit_ms,
                )
        elif kind == "message_stop":
            out.done(emit_ms=emit_ms)
        elif kind == "error":
            detail = obj.get("error")
            message = error_message(detail) or error_message(obj) or "error event"
            kind_of_error = detail.get("type") if isinstance(detail, dict) else None
            out.error(
                "upstream_error", message, retryable=kind_of_error in _RETRYABLE, emit_ms=emit_ms
            )
        # ping, content_block_start/stop and event types added later carry no text


def _prompt_tokens(usage: Any) -> int | None:
    """All input tokens: Anthropic counts cache reads and writes apart from ``input_tokens``."""
    if not isinstance(usage, dict):
        return None
    counts = [
        as_int(usage.get(key))
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    present = [c for c in counts if c is not None]
    return sum(present) if present else None
