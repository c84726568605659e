"""Dialects: each provider's request body and stream frames, by name (sans-I/O).

:func:`get_dialect` makes a fresh instance per stream (dialects keep state);
:func:`default_dialect_for` names the dialect a backend protocol speaks unless
its config says otherwise.
"""

from __future__ import annotations

import inspect
from typing import Any, Final

from ..errors import ConfigError
from .anthropic import AnthropicMessages
from .base import ChatMessage, Dialect, Framing, Request, emit_ms_of
from .generic import GenericDialect
from .ollama import OllamaChat, OllamaGenerate
from .openai_chat import OpenAIChat
from .openai_responses import OpenAIResponses

__all__ = [
    "DIALECTS",
    "AnthropicMessages",
    "ChatMessage",
    "Dialect",
    "Framing",
    "GenericDialect",
    "OllamaChat",
    "OllamaGenerate",
    "OpenAIChat",
    "OpenAIResponses",
    "Request",
    "default_dialect_for",
    "emit_ms_of",
    "get_dialect",
]

_REGISTRY: Final[dict[str, type[Dialect]]] = {
    cls.name: cls
    for cls in (
        AnthropicMessages, GenericDialect, OllamaChat, OllamaGenerate, OpenAIChat, OpenAIResponses,
    )
}  # fmt: skip

DIALECTS: Final[tuple[str, ...]] = tuple(sorted(_REGISTRY))
"""Every dialect name :func:`get_dialect` knows."""

_DEFAULTS: Final[dict[str, str]] = {
    "openai": "openai-chat",
    "responses": "openai-responses",
    "anthropic": "anthropic-messages",
    "ollama": "ollama-chat",
    "websocket": "generic",
    "http": "generic",
    # gRPC frames are typed and mapped by the adapter itself; the name only keeps
    # every backend's ``dialect`` valid.
    "grpc": "generic",
}
_FRAMINGS: Final = ("sse", "ndjson", "message")


def default_dialect_for(protocol: str) -> str:
    """The dialect a backend protocol speaks by default."""
    try:
        return _DEFAULTS[protocol]
    except KeyError:
        raise ConfigError(
            f"no default dialect for protocol {protocol!r}; known protocols: "
            + ", ".join(sorted(_DEFAULTS))
        ) from None


def get_dialect(name: str, **config: Any) -> Dialect:
    """A new dialect instance for one stream.

    ``config`` is the backend's ``mapping`` (field paths etc., ``generic`` only)
    and may name the ``framing`` for any dialect, e.g. OpenAI chunks sent as
    WebSocket messages.  Unknown names and keys raise :class:`ConfigError`.
    """
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"unknown dialect {name!r}; valid names: {', '.join(DIALECTS)}")
    framing = config.pop("framing", None)
    if framing is not None and framing not in _FRAMINGS:
        raise ConfigError(
            f"dialect {name!r}: framing must be one of {', '.join(_FRAMINGS)}, got {framing!r}"
        )
    accepted = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "framing"
    ]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        valid = ", ".join(["framing", *accepted])
        raise ConfigError(f"dialect {name!r} has no option {', '.join(unknown)}; valid: {valid}")
    dialect = cls(**config)
    if framing is not None:
        # An instance attribute shadows the class's framing for this stream only.
        dialect.framing = framing  # type: ignore[misc]
    return dialect
