"""What a dialect is: one provider's request body and stream frames.

A dialect is sans-I/O.  Its whole job is two pure functions of the wire:

* :meth:`Dialect.request` — the HTTP path and JSON body (or WebSocket
  message) that asks the backend for a streamed reply;
* :meth:`Dialect.on_message` — one framed message of the reply (an SSE
  event's data and name, one NDJSON line, one WebSocket text message) turned
  into :class:`~jupyter_streamchat.decode.emitter.Emitter` calls.

A new instance is made for every stream, so a dialect may keep state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from ..decode.emitter import Emitter
from ..errors import UpstreamClosed

__all__ = ["ChatMessage", "Dialect", "Framing", "Request", "emit_ms_of"]

Framing: TypeAlias = Literal["sse", "ndjson", "message"]
"""How messages are cut out of the byte stream ("message": one per WebSocket message)."""

ChatMessage: TypeAlias = Mapping[str, Any]
"""``{"role": "user" | "assistant" | "system", "content": str}``."""


@dataclass(frozen=True, slots=True)
class Request:
    """What to send: ``path`` is joined to the backend URL (HTTP only)."""

    path: str
    body: dict[str, Any]


def emit_ms_of(obj: Any, key: str = "emit_ms") -> float | None:
    """The backend's emit timestamp in a frame, if it carries one (demo doors do)."""
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


class Dialect(ABC):
    """Maps a provider's JSON to events and builds its requests."""

    name: ClassVar[str]
    framing: ClassVar[Framing]

    @abstractmethod
    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None,
        options: Mapping[str, Any],
    ) -> Request:
        """The streamed-reply request for these messages."""

    @abstractmethod
    def on_message(self, data: str, event: str | None, out: Emitter) -> None:
        """Handle one framed message.

        ``event`` is the SSE event type (``"message"`` when the frame had no
        ``event:`` line, per the spec) and ``None`` for NDJSON and WebSocket.
        Raise :class:`~jupyter_streamchat.errors.ProtocolError` for frames that
        are not this dialect; report in-band errors with
        :meth:`Emitter.error`.
        """

    def on_eof(self, out: Emitter) -> None:
        """The backend closed the stream.

        Unless the dialect's final frame came (or a finish reason did, which
        some servers send instead of a final frame), that is an early close.
        """
        if out.finished:
            return
        if out.saw_finish_reason:
            out.done()
            return
        out.fail(
            UpstreamClosed(
                f"{self.name} stream ended before its final frame"
                + (" (partial text kept)" if out.text_seen else "")
            )
        )
