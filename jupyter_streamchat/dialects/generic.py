"""A configurable JSON mapping for custom servers, and the helpers every dialect shares.

The ``generic`` dialect reads each frame through dotted field paths (dict keys
and list indexes: ``"choices.0.delta.content"``).  Its defaults decode the
demo WebSocket door::

    {"token": "Hel", "emit_ms": 1795448266123.4}
    {"done": true, "finish_reason": "stop", "usage": {"prompt_tokens": 9, ...}, "emit_ms": ...}
    {"error": {"code": "overloaded", "message": "..."}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

from ..decode.emitter import Emitter
from ..errors import ConfigError, ProtocolError
from .base import ChatMessage, Dialect, Framing, Request, emit_ms_of

__all__ = [
    "COMMON_OPTIONS",
    "FieldPath",
    "GenericDialect",
    "as_int",
    "as_str",
    "chat_messages",
    "error_message",
    "load_object",
    "passthrough",
    "preview",
    "split_system",
    "text_of",
]

COMMON_OPTIONS: Final = ("max_tokens", "temperature", "top_p", "stop", "seed")
"""Options every dialect understands; each maps them to its provider's names
and drops those it cannot express, so one request fits every backend.  Other
option keys are passed to the provider unchanged."""

_JSON_KIND: Final[dict[type, str]] = {
    dict: "an object", list: "an array", str: "a string", int: "a number",
    float: "a number", bool: "a boolean", type(None): "null",
}  # fmt: skip


# --- helpers shared by the dialects ----------------------------------------------------------


def preview(data: str, limit: int = 80) -> str:
    """The start of a frame for an error message, marked when cut."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}… ({len(data)} chars)"


_std_decode = json.JSONDecoder().decode  # json.loads without its per-call type checks
_fast_decode: Callable[[str], Any] | None
try:  # orjson parses a typical frame ~3x faster; the standard library stays the judge
    from orjson import loads as _fast_decode
except ImportError:  # pragma: no cover - orjson is a dependency, but optional at run time
    _fast_decode = None


def _decode(data: str) -> Any:
    """``json.loads``, fast.

    orjson decodes; whatever it refuses (NaN, lone surrogates, invalid JSON)
    is decided and worded by the standard library.  The one difference left:
    an integer beyond 64 bits comes out as a float (no stream frame carries
    one; where the dialects read integers, such a value is ignored).
    """
    if _fast_decode is not None:
        try:
            return _fast_decode(data)
        except ValueError:
            pass
    return _std_decode(data)


def load_object(data: str, dialect: str) -> dict[str, Any]:
    """Parse one frame that must be a JSON object; :class:`ProtocolError` otherwise."""
    try:
        obj = _decode(data)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        raise ProtocolError(f"{dialect} frame is not JSON ({reason}): {preview(data)}") from None
    except RecursionError:
        raise ProtocolError(f"{dialect} frame is nested too deeply: {preview(data)}") from None
    if not isinstance(obj, dict):
        kind = _JSON_KIND.get(type(obj), type(obj).__name__)
        raise ProtocolError(f"{dialect} frame is {kind}, expected an object: {preview(data)}")
    return obj


def as_int(value: Any) -> int | None:
    """``value`` if it is a JSON integer (not a boolean), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def as_seconds(value: Any) -> float | None:
    """A non-negative number of seconds (``retry_after``), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return None
    return float(value)


def as_str(value: Any) -> str | None:
    """``value`` if it is a string, else ``None``."""
    return value if isinstance(value, str) else None


def error_message(value: Any) -> str | None:
    """The text of an in-band error: a string, or an object with ``message`` (and a code).

    ``None`` when there is no error (``null``, ``false``, empty).
    """
    if not value:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        message = value.get("message")
        code = value.get("code") or value.get("type")
        text = message if isinstance(message, str) and message else json.dumps(value)[:300]
        return f"{code}: {text}" if isinstance(code, (str, int)) and code != "" else text
    return json.dumps(value)[:300]


def text_of(content: Any) -> str:
    """The text of a message's ``content``: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = (
            p if isinstance(p, str) else p.get("text") if isinstance(p, Mapping) else None
            for p in content
        )
        return "".join(p for p in parts if isinstance(p, str))
    return "" if content is None else str(content)


def chat_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Plain JSON-ready copies of the messages."""
    return [dict(m) for m in messages]


def split_system(messages: Sequence[ChatMessage]) -> tuple[list[str], list[dict[str, Any]]]:
    """The system messages' texts, and the other messages (copied)."""
    system: list[str] = []
    rest: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") == "system":
            system.append(text_of(message.get("content")))
        else:
            rest.append(dict(message))
    return system, rest


def passthrough(options: Mapping[str, Any], *, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Options that are set, without the common ones and ``exclude``."""
    skip = set(COMMON_OPTIONS).union(exclude)
    return {k: v for k, v in options.items() if v is not None and k not in skip}


# --- the generic dialect -------------------------------------------------------------------


class FieldPath:
    """A dotted path into a JSON value; digits index lists (and are keys in objects)."""

    __slots__ = ("_steps", "text")

    def __init__(self, text: str) -> None:
        if not text or any(not step for step in text.split(".")):
            raise ConfigError(f"field path {text!r} is empty or has an empty step")
        self.text = text
        self._steps = tuple(
            (step, int(step) if step.isdigit() else None) for step in text.split(".")
        )

    def get(self, obj: Any) -> Any:
        """The value at the path, or ``None`` when any step is missing."""
        for key, index in self._steps:
            if isinstance(obj, dict):
                obj = obj.get(key)
            elif index is not None and isinstance(obj, list) and index < len(obj):
                obj = obj[index]
            else:
                return None
        return obj

    def __repr__(self) -> str:
        return f"FieldPath({self.text!r})"


_RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_PLACEHOLDER: Final = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_DROP: Final = object()


class GenericDialect(Dialect):
    """A custom server described by field paths (``None`` or ``""`` leaves a field unmapped).

    ``request_template`` is a JSON-like body in which a string ``"$name"`` is
    replaced by ``model``, ``messages``, ``prompt`` (the non-system messages'
    texts joined by blank lines), ``system``, ``options`` (the dict) or an
    option's value (``"$max_tokens"``); a key whose placeholder has no value is
    left out.  Without a template the body is ``{model, messages, **options}``.
    """

    name = "generic"
    framing: ClassVar[Framing] = "message"

    def __init__(
        self,
        *,
        token: str | None = "token",
        done: str | None = "done",
        error: str | None = "error",
        finish_reason: str | None = "finish_reason",
        usage: str | None = "usage",
        emit_ms: str | None = "emit_ms",
        request_template: Mapping[str, Any] | None = None,
        path: str = "",
        framing: Framing = "message",
    ) -> None:
        if framing not in ("sse", "ndjson", "message"):
            raise ConfigError(
                f"generic framing must be 'sse', 'ndjson' or 'message', got {framing!r}"
            )
        if request_template is not None and not isinstance(request_template, Mapping):
            raise ConfigError(
                f"generic request_template must be a dict, got {type(request_template).__name__}"
            )
        if not isinstance(path, str):
            raise ConfigError(f"generic path must be a string, got {type(path).__name__}")
        # Configurable here, unlike the providers' dialects: an instance attribute
        # shadows the class's framing (the base declares it a ClassVar).
        self.framing = framing  # type: ignore[misc]
        self.path = path
        self.request_template = request_template
        self._token = _path("token", token)
        self._done = _path("done", done)
        self._error = _path("error", error)
        self._finish_reason = _path("finish_reason", finish_reason)
        self._usage = _path("usage", usage)
        self._emit_key: str | None = None
        self._emit_path: FieldPath | None = None
        emit_path = _path("emit_ms", emit_ms)
        if emit_path is not None and "." not in emit_path.text:
            self._emit_key = emit_path.text  # the usual top-level stamp
        else:
            self._emit_path = emit_path

    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        options: Mapping[str, Any],
    ) -> Request:
        """The template filled in, or ``{model, messages, **options}``."""
        if self.request_template is None:
            body = {k: v for k, v in options.items() if v is not None}
            body["messages"] = chat_messages(messages)
            if model is not None:
                body["model"] = model
            return Request(self.path, body)
        system, rest = split_system(messages)
        variables: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        variables.update(
            model=model,
            messages=chat_messages(messages),
            prompt="\n\n".join(text_of(m.get("content")) for m in rest),
            system="\n\n".join(system) if system else None,
            options=dict(options),
        )
        body = _fill(self.request_template, variables)
        return Request(self.path, body if isinstance(body, dict) else {})

    def on_message(self, data: str, event: str | None, out: Emitter) -> None:
        if data == "[DONE]":  # OpenAI-style end marker, for SSE servers mapped by hand
            out.done()
            return
        obj = load_object(data, self.name)
        if self._emit_key is not None:
            emit_ms = emit_ms_of(obj, self._emit_key)
        elif self._emit_path is not None:
            emit_ms = emit_ms_of({"emit_ms": self._emit_path.get(obj)})
        else:
            emit_ms = None
        if self._error is not None:
            detail = self._error.get(obj)
            message = error_message(detail)
            if message is not None:
                # An HTTP-like status in the error object (the demo door sends one)
                # says whether the same request may succeed later.
                status = as_int(detail.get("status")) if isinstance(detail, dict) else None
                wait = detail.get("retry_after") if isinstance(detail, dict) else None
                out.error(
                    "upstream_error",
                    message,
                    retryable=status in _RETRYABLE_STATUS,
                    status=status,
                    retry_after=as_seconds(wait),
                    emit_ms=emit_ms,
                )
                return
        if self._token is not None:
            text = self._token.get(obj)
            if isinstance(text, str):
                out.token(text, emit_ms=emit_ms)
        if self._finish_reason is not None:
            reason = self._finish_reason.get(obj)
            if isinstance(reason, str):
                out.finish_reason(reason)
        if self._usage is not None:
            counts = self._usage.get(obj)
            if isinstance(counts, dict) and counts:
                out.usage(
                    prompt_tokens=as_int(counts.get("prompt_tokens", counts.get("input_tokens"))),
                    completion_tokens=as_int(
                        counts.get("completion_tokens", counts.get("output_tokens"))
                    ),
                    total_tokens=as_int(counts.get("total_tokens")),
                    emit_ms=emit_ms,
                )
        if self._done is not None and self._done.get(obj):
            out.done(emit_ms=emit_ms)


def _path(field: str, text: str | None) -> FieldPath | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ConfigError(f"generic {field} must be a dotted field path, got {text!r}")
    try:
        return FieldPath(text)
    except ConfigError as exc:
        raise ConfigError(f"generic {field}: {exc}") from None


def _fill(template: Any, variables: Mapping[str, Any]) -> Any:
    """A deep copy of ``template`` with ``"$name"`` strings replaced (``_DROP`` if unset)."""
    if isinstance(template, str):
        match = _PLACEHOLDER.match(template)
        if match is None:
            return template
        value = variables.get(match.group(1))
        return _DROP if value is None else value
    if isinstance(template, Mapping):
        filled = {key: _fill(value, variables) for key, value in template.items()}
        return {key: value for key, value in filled.items() if value is not _DROP}
    if isinstance(template, list):
        return [None if (item := _fill(value, variables)) is _DROP else item for value in template]
    return template
