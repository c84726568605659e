"""Ollama's native streaming API: ``/api/chat`` and ``/api/generate``, NDJSON replies.

Each line is an object: text in ``message.content`` (chat) or ``response``
(generate); the last line has ``done: true``, ``done_reason`` and the counts
``prompt_eval_count`` / ``eval_count``.  Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..decode.emitter import Emitter
from .base import ChatMessage, Dialect, Request, emit_ms_of
from .generic import (
    as_int,
    as_str,
    chat_messages,
    error_message,
    load_object,
    passthrough,
    split_system,
    text_of,
)

__all__ = ["OllamaChat", "OllamaGenerate"]

_TOP_LEVEL: Final = (
    "format",
    "keep_alive",
    "think",
    "raw",
    "suffix",
    "template",
    "images",
    "tools",
)
"""Ollama request fields that are not model ``options``."""
_FIXED: Final = ("model", "messages", "prompt", "system", "stream", "options")


def _options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the request options into Ollama's top-level fields and its ``options`` object."""
    top: dict[str, Any] = {}
    model_options: dict[str, Any] = {}
    for key, value in passthrough(options, exclude=_FIXED).items():
        (top if key in _TOP_LEVEL else model_options)[key] = value
    nested = options.get("options")
    if isinstance(nested, Mapping):  # Ollama's own form, taken as given
        model_options.update(nested)
    for ours, theirs in (
        ("max_tokens", "num_predict"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("stop", "stop"),
    ):
        value = options.get(ours)
        if value is not None:
            model_options[theirs] = [value] if ours == "stop" and isinstance(value, str) else value
    return top, model_options


class _Ollama(Dialect):
    """The frame handling both endpoints share; :meth:`_text` says where the text is."""

    framing = "ndjson"

    def on_message(self, data: str, event: str | None, out: Emitter) -> None:
        obj = load_object(data, self.name)
        emit_ms = emit_ms_of(obj)
        message = error_message(obj.get("error"))
        if message is not None:
            out.error("upstream_error", message, emit_ms=emit_ms)
            return
        if not out.started:
            out.start(emit_ms=emit_ms, model=as_str(obj.get("model")))
        text = self._text(obj)
        if text:
            out.token(text, emit_ms=emit_ms)
        if obj.get("done") is True:
            prompt = as_int(obj.get("prompt_eval_count"))
            completion = as_int(obj.get("eval_count"))
            if prompt is not None or completion is not None:
                out.usage(prompt_tokens=prompt, completion_tokens=completion, emit_ms=emit_ms)
            out.done(finish_reason=as_str(obj.get("done_reason")), emit_ms=emit_ms)

    @abstractmethod
    def _text(self, obj: dict[str, Any]) -> str | None:
        """The text of one line, if it has any."""


class OllamaChat(_Ollama):
    """``POST {base}/api/chat`` with ``stream: true``."""

    name = "ollama-chat"

    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        options: Mapping[str, Any],
    ) -> Request:
        top, model_options = _options(options)
        body: dict[str, Any] = {**top, "messages": chat_messages(messages), "stream": True}
        if model is not None:
            body["model"] = model
        if model_options:
            body["options"] = model_options
        return Request("/api/chat", body)

    def _text(self, obj: dict[str, Any]) -> str | None:
        message = obj.get("message")
        return as_str(message.get("content")) if isinstance(message, dict) else None


class OllamaGenerate(_Ollama):
    """``POST {base}/api/generate`` with ``stream: true``.

    The messages become one prompt: system texts go to ``system``, the other
    messages' texts are joined by blank lines.
    """

    name = "ollama-generate"

    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        options: Mapping[str, Any],
    ) -> Request:
        system, rest = split_system(messages)
        top, model_options = _options(options)
        prompt = "\n\n".join(text_of(m.get("content")) for m in rest)
        body: dict[str, Any] = {**top, "prompt": prompt, "stream": True}
        if model is not None:
            body["model"] = model
        if system:
            body["system"] = "\n\n".join(system)
        if model_options:
            body["options"] = model_options
        return Request("/api/generate", body)

    def _text(self, obj: dict[str, Any]) -> str | None:
        return as_str(obj.get("response"))
