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

__all__ = [
    "coalesce",
    "sse_comment",
    "sse_event",
    "sse_events",
    "wire_dict",
    "wire_json",
    "wire_jsons",
]

_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# A JSON string literal, escapes and all (json's own C encoder, ensure_ascii=False).
_json_str: Final = json.encoder.encode_basestring


def wire_dict(event: Event, send_ms: float, stream_id: str | None = None) -> dict[str, Any]:
    """The event as sent to the browser."""
    out = event_to_dict(event)
    out["send_ms"] = send_ms
    if stream_id is not None and isinstance(event, Start):
        out["stream_id"] = stream_id
    return out


def wire_json(event: Event, send_ms: float, stream_id: str | None = None) -> str:
    """The event's wire JSON."""
    return wire_jsons((event,), send_ms, stream_id)[0]


def wire_jsons(events: Sequence[Event], send_ms: float, stream_id: str | None = None) -> list[str]:
    """The wire JSON of events written together (the bridge's hot path).

    Tokens are formatted directly, and the float stamps they share (the send
    time; the receive time of one read) are formatted once.
    """
    send = repr(send_ms)
    recv_ms = -1.0
    recv = ""
    out: list[str] = []
    for event in events:
        if type(event) is Token:
            if event.recv_ms != recv_ms:
                recv_ms = event.recv_ms
                recv = repr(recv_ms)
            emit = "" if event.emit_ms is None else f',"emit_ms":{event.emit_ms!r}'
            out.append(
                f'{{"type":"token","seq":{event.seq},"recv_ms":{recv},"text":'
                f'{_json_str(event.text)}{emit},"chunks":{event.chunks},"send_ms":{send}}}'
            )
        else:
            out.append(_dumps(wire_dict(event, send_ms, stream_id)))
    return out


def sse_events(events: Sequence[Event], send_ms: float, stream_id: str | None = None) -> bytes:
    """Events written together, as SSE, each terminated by its blank line."""
    datas = wire_jsons(events, send_ms, stream_id)
    return "".join(
        [f"id: {e.seq}\nevent: {e.type}\ndata: {d}\n\n" for e, d in zip(events, datas, strict=True)]
    ).encode()


def sse_event(event: Event, send_ms: float, stream_id: str | None = None) -> bytes:
    """One SSE event, terminated by its blank line."""
    return sse_events((event,), send_ms, stream_id)


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
