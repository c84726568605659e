"""The event vocabulary: everything that flows from a backend to a reader.

Every stream is ``Start``, then any number of ``Token`` / ``Usage`` /
``Heartbeat``, then exactly one terminal event, ``Done`` or ``Error``.  An
``Error`` may also come without a ``Start`` (the backend was never reached).

Each event carries

* ``seq``      a per-stream sequence number, 0 for the first event, +1 for each
               event after it (a ``Heartbeat`` repeats the last number: it is
               not part of the stream and is never replayed);
* ``recv_ms``  when this process received it (see :func:`now_ms`);
* ``emit_ms``  when the backend emitted it, if the backend says so.

The JSON form (:func:`to_json` / :func:`from_json`) is the wire format shared
with the TypeScript side (``js/src/events.ts``): an object with ``type`` plus
the fields below, ``None`` fields left out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final, Literal, TypeAlias

__all__ = [
    "ERROR_CODES",
    "Done",
    "Error",
    "ErrorCode",
    "Event",
    "Heartbeat",
    "Start",
    "Token",
    "Usage",
    "event_from_dict",
    "event_to_dict",
    "from_json",
    "is_terminal",
    "now_ms",
    "to_json",
]

# A monotonic clock expressed as Unix epoch milliseconds: it never goes
# backwards within a process (monotonic), yet stamps from two processes on one
# machine are comparable (anchored to the wall clock once, at import).
_ANCHOR_MS: Final = time.time() * 1000.0 - time.perf_counter() * 1000.0


def now_ms() -> float:
    """Milliseconds since the Unix epoch, from a monotonic clock."""
    return time.perf_counter() * 1000.0 + _ANCHOR_MS


ErrorCode: TypeAlias = Literal[
    "connect_failed",
    "timeout",
    "http_status",
    "protocol_error",
    "upstream_error",
    "upstream_closed",
    "cancelled",
    "limit_exceeded",
    "internal",
]
"""Stable error codes.

``connect_failed``  the backend could not be reached (DNS, refused, TLS)
``timeout``         connect, idle (no data for too long) or total time ran out
``http_status``     the backend answered with a non-2xx status (``status`` set)
``protocol_error``  the backend sent something that is not its protocol
``upstream_error``  the backend reported an error inside the stream
``upstream_closed`` the backend ended the stream before its final event
``cancelled``       the reader cancelled the stream
``limit_exceeded``  a configured limit was hit (the message names it)
``internal``        a bug in this package
"""

ERROR_CODES: Final[frozenset[str]] = frozenset(ErrorCode.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Start:
    """The backend accepted the request; tokens may follow."""

    type: ClassVar[Literal["start"]] = "start"
    seq: int
    recv_ms: float
    emit_ms: float | None = None
    model: str | None = None
    backend: str | None = None
    protocol: str | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """Generated text.  ``chunks`` counts the backend frames merged into it."""

    type: ClassVar[Literal["token"]] = "token"
    seq: int
    recv_ms: float
    text: str
    emit_ms: float | None = None
    chunks: int = 1


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as reported by the backend."""

    type: ClassVar[Literal["usage"]] = "usage"
    seq: int
    recv_ms: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    emit_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The stream ended normally."""

    type: ClassVar[Literal["done"]] = "done"
    seq: int
    recv_ms: float
    finish_reason: str | None = None
    emit_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """The stream ended abnormally.

    ``partial`` is true when text had already arrived: the reader keeps it.
    ``retryable`` says whether sending the same request again may succeed.
    """

    type: ClassVar[Literal["error"]] = "error"
    seq: int
    recv_ms: float
    code: ErrorCode
    message: str
    retryable: bool = False
    partial: bool = False
    status: int | None = None
    retry_after: float | None = None
    emit_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Keep-alive; carries the ``seq`` of the last event before it."""

    type: ClassVar[Literal["heartbeat"]] = "heartbeat"
    seq: int
    recv_ms: float
    emit_ms: float | None = None


Event: TypeAlias = Start | Token | Usage | Done | Error | Heartbeat

_BY_TYPE: Final[dict[str, type[Event]]] = {
    cls.type: cls for cls in (Start, Token, Usage, Done, Error, Heartbeat)
}
_FIELDS: Final[dict[type[Event], tuple[str, ...]]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in _BY_TYPE.values()
}


def is_terminal(event: Event) -> bool:
    """True for ``Done`` and ``Error``: nothing follows them."""
    return isinstance(event, (Done, Error))


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready form: ``type`` first, ``None`` fields left out."""
    out: dict[str, Any] = {"type": event.type}
    for name in _FIELDS[type(event)]:
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    return out


def to_json(event: Event) -> str:
    """Compact JSON, safe to embed in one SSE ``data:`` line (no raw newlines)."""
    return json.dumps(event_to_dict(event), ensure_ascii=False, separators=(",", ":"))


class EventFormatError(ValueError):
    """A dict or JSON text is not an event."""


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of :func:`event_to_dict`; raises :class:`EventFormatError`."""
    kind = data.get("type")
    cls = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventFormatError(f"unknown event type {kind!r}; expected one of {sorted(_BY_TYPE)}")
    names = _FIELDS[cls]
    unknown = set(data) - set(names) - {"type"}
    if unknown:
        raise EventFormatError(f"{kind} event has unknown fields {sorted(unknown)}")
    if cls is Error and data.get("code") not in ERROR_CODES:
        raise EventFormatError(f"error event has unknown code {data.get('code')!r}")
    try:
        return cls(**{k: v for k, v in data.items() if k != "type"})
    except TypeError as exc:
        raise EventFormatError(f"{kind} event: {exc}") from None


def from_json(text: str | bytes) -> Event:
    """Parse one event from its JSON text."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EventFormatError(f"event is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventFormatError(f"event must be a JSON object, got {type(data).__name__}")
    return event_from_dict(data)
