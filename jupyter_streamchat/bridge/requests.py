"""Parsing and checking the browser's chat requests (pure).

Every rejection is a :class:`RequestError` with the HTTP status and a stable
``code`` the handlers send back as ``{"error": {"code", "message"}}``; the
message names the field, the limit and the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ChatRequest", "RequestError", "parse_chat_request", "parse_json_body"]

STREAM_ID: Final = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_MESSAGES: Final = 10_000
_ROLES: Final = frozenset({"system", "user", "assistant", "tool", "developer"})
_OPTION_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "max_tokens": (int,),
    "temperature": (int, float),
    "top_p": (int, float),
    "seed": (int,),
    "stop": (str, list),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
}


class RequestError(Exception):
    """A request the bridge refuses, with the status and code to answer."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A checked chat request."""

    backend: str
    messages: tuple[Mapping[str, Any], ...]
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    stream_id: str | None = None
    resumable: bool = False


def parse_json_body(body: bytes, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or 413 / 400 naming the problem."""
    if len(body) > max_bytes:
        raise RequestError(
            413, "too_large",
            f"request body of {len(body)} bytes exceeds max_request_bytes={max_bytes}",
        )  # fmt: skip
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RequestError(400, "bad_request", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(
            400, "bad_request", f"request body must be a JSON object, got {type(data).__name__}"
        )
    return data


def _bad(message: str) -> RequestError:
    return RequestError(400, "bad_request", message)


def parse_messages(raw: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(raw, list) or not raw:
        raise _bad("'messages' must be a non-empty list of {role, content} objects")
    if len(raw) > MAX_MESSAGES:
        raise _bad(f"'messages' has {len(raw)} items; the limit is {MAX_MESSAGES}")
    out = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _bad(f"messages[{i}] must be an object, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise _bad(f"messages[{i}].role must be one of {sorted(_ROLES)}, got {role!r}")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            texts = [
                p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"
            ]
            if not all(isinstance(t, str) for t in texts):
                raise _bad(f"messages[{i}].content parts must have string 'text'")
            content = "".join(texts)  # type: ignore[arg-type]
        if not isinstance(content, str):
            raise _bad(f"messages[{i}].content must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    return tuple(out)


def parse_options(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad(f"'options' must be an object, got {type(raw).__name__}")
    options: dict[str, Any] = {}
    for key, value in raw.items():
        types = _OPTION_TYPES.get(key)
        if types is None:
            raise _bad(f"unknown option {key!r}; known options: {sorted(_OPTION_TYPES)}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise _bad(f"option {key!r} has the wrong type: {type(value).__name__}")
        if key == "max_tokens" and isinstance(value, int) and value < 1:
            raise _bad(f"option 'max_tokens' must be >= 1, got {value}")
        options[key] = value
    return options


def parse_chat_request(data: Mapping[str, Any]) -> ChatRequest:
    """Check a decoded ``api/chat`` body (or a WebSocket ``chat`` message)."""
    backend = data.get("backend")
    if not isinstance(backend, str) or not backend:
        raise _bad("'backend' must name a configured backend (GET api/backends lists them)")
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > 256):
        raise _bad("'model' must be a string of at most 256 characters")
    stream_id = data.get("stream_id")
    if stream_id is not None and (not isinstance(stream_id, str) or not STREAM_ID.match(stream_id)):
        raise _bad("'stream_id' must be 8-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    resumable = data.get("resumable", False)
    if not isinstance(resumable, bool):
        raise _bad("'resumable' must be true or false")
    for key in ("url", "base_url", "endpoint", "headers", "api_key"):
        if key in data:
            raise _bad(
                f"'{key}' is not accepted: the browser names a configured backend, never a URL"
                " or credentials"
            )
    return ChatRequest(
        backend=backend,
        messages=parse_messages(data.get("messages")),
        model=model or None,
        options=parse_options(data.get("options")),
        stream_id=stream_id,
        resumable=resumable,
    )
