"""Encoding events for the browser leg (pure functions, the bridge's hot path).

Every event becomes its JSON (see ``docs/protocol.md``) plus the bridge's
``send_ms`` (and ``stream_id`` on ``start``).  As SSE::

    id: <seq>
    event: <type>
    data: <json>

JSON never contains a raw CR or LF, so a value cannot inject SSE fields.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from ..events import Event, Start, Token, event_to_dict

__all__ = ["coalesce", "sse_comment", "sse_event", "wire_dict", "wire_json"]

_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dump_str: Final = json.JSONEncoder(ensure_ascii=False).encode


def wire_dict(event: Event, send_ms: float, stream_id: str | None = None) -> dict[str, Any]:
    """The event as sent to the browser."""
    out = event_to_dict(event)
    out["send_ms"] = send_ms
    if stream_id is not None and isinstance(event, Start):
        out["stream_id"] = stream_id
    return out


def wire_json(event: Event, send_ms: float, stream_id: str | None = None) -> str:
    """The event's wire JSON; tokens take a fast path (they are nearly all of the traffic)."""
    if type(event) is Token:
        emit = "" if event.emit_ms is None else f',"emit_ms":{event.emit_ms!r}'
        return (
            f'{{"type":"token","seq":{event.seq},"recv_ms":{event.recv_ms!r},'
            f'"text":{_dump_str(event.text)}{emit},"chunks":{event.chunks},"send_ms":{send_ms!r}}}'
        )
    return _dumps(wire_dict(event, send_ms, stream_id))


def sse_event(event: Event, send_ms: float, stream_id: str | None = None) -> bytes:
    """One SSE event, terminated by its blank line."""
    return (
        f"id: {event.seq}\nevent: {event.type}\ndata: {wire_json(event, send_ms, stream_id)}\n\n"
    ).encode()


def sse_comment(text: str) -> bytes:
    """An SSE comment line (heartbeats); CR/LF in ``text`` are replaced."""
    return (": " + text.replace("\r", " ").replace("\n", " ") + "\n\n").encode()


def coalesce(tokens: Sequence[Token]) -> Token:
    """Merge consecutive tokens into one write (the reader fell behind).

    The result has the last token's ``seq`` (so a resume continues after it),
    the first token's stamps (so latency figures stay honest about the first
    byte of text), and the sum of their ``chunks``.
    """
    if len(tokens) == 1:
        return tokens[0]
    first = tokens[0]
    return Token(
        seq=tokens[-1].seq,
        recv_ms=first.recv_ms,
        text="".join(t.text for t in tokens),
        emit_ms=first.emit_ms,
        chunks=sum(t.chunks for t in tokens),
    )
