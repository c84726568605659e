"""Shared test helpers: feed bytes however they happen to be split, compare meaning.

Tests assert on what a stream means, not on how its bytes were chunked (the
h11 habit): :func:`feed_all` runs a framing decoder over chunks,
:func:`decode_stream` a whole dialect, and :func:`normalise` drops the receive
times that legitimately differ between runs.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from jupyter_streamchat.decode.emitter import Emitter
from jupyter_streamchat.decode.stream import DecoderLimits, StreamDecoder
from jupyter_streamchat.dialects import get_dialect
from jupyter_streamchat.dialects.base import Dialect, Framing
from jupyter_streamchat.events import Error, Event, Start, event_to_dict, is_terminal

FRAMES = Path(__file__).parent / "frames"

T = TypeVar("T")


class FramingDecoder(Protocol[T]):
    """What :class:`SSEDecoder` and :class:`NDJSONDecoder` have in common."""

    def feed(self, data: bytes) -> list[T]: ...
    def eof(self) -> list[T]: ...


def feed_all(decoder: FramingDecoder[T], chunks: Iterable[bytes]) -> list[T]:
    """Everything a framing decoder returns for these chunks, then end of stream."""
    out: list[T] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.eof())
    return out


def one_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    """``data`` cut at these offsets (any order, repeats and out-of-range ones allowed)."""
    cuts = sorted({min(max(p, 0), len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(cuts)] or [b""]


def random_chunks(data: bytes, seed: int, max_size: int = 17) -> list[bytes]:
    rng = random.Random(seed)
    chunks: list[bytes] = []
    i = 0
    while i < len(data):
        n = rng.randint(1, max_size)
        chunks.append(data[i : i + n])
        i += n
    return chunks


def decode_stream(
    dialect: str | Dialect,
    chunks: Iterable[bytes],
    *,
    framing: Framing | None = None,
    limits: DecoderLimits | None = None,
    eof: bool = True,
    **config: Any,
) -> list[Event]:
    """The events one dialect makes of a reply fed in these chunks (SSE or NDJSON)."""
    if isinstance(dialect, str):
        dialect = get_dialect(dialect, **config)
    decoder = StreamDecoder(dialect, Emitter(), framing=framing, limits=limits)
    events: list[Event] = []
    now = 0.0
    for chunk in chunks:
        now += 1.0
        events.extend(decoder.feed(chunk, now))
    if eof:
        events.extend(decoder.eof(now + 1.0))
    return events


def decode_messages(
    dialect: str | Dialect,
    messages: Iterable[str | bytes],
    *,
    limits: DecoderLimits | None = None,
    eof: bool = True,
    **config: Any,
) -> list[Event]:
    """The events one dialect makes of whole messages (WebSocket framing)."""
    if isinstance(dialect, str):
        dialect = get_dialect(dialect, **config)
    decoder = StreamDecoder(dialect, Emitter(), framing="message", limits=limits)
    events: list[Event] = []
    now = 0.0
    for message in messages:
        now += 1.0
        events.extend(decoder.feed_message(message, now))
    if eof:
        events.extend(decoder.eof(now + 1.0))
    return events


def normalise(events: Iterable[Event]) -> list[dict[str, Any]]:
    """Events as dicts without ``recv_ms``, for comparing runs split differently."""
    out = []
    for event in events:
        data = event_to_dict(event)
        data.pop("recv_ms", None)
        out.append(data)
    return out


def texts(events: Iterable[Event]) -> list[str]:
    return [e.text for e in events if e.type == "token"]


def sse(*datas: str | Mapping[str, Any], event: str | None = None) -> bytes:
    """SSE events, one per argument; dicts are sent as compact JSON."""
    out = []
    for data in datas:
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {event}\n" if event else ""
        out.append(f"{head}data: {text}\n\n")
    return "".join(out).encode()


def ndjson(*objs: Mapping[str, Any]) -> bytes:
    """One JSON line per object."""
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def assert_grammar(events: Sequence[Event]) -> None:
    """The stream's grammar: Start first (unless it failed first), seq 0, 1, 2...,
    exactly one terminal event, and nothing after it."""
    assert events, "a finished stream has at least its terminal event"
    assert [e.seq for e in events] == list(range(len(events))), [e.seq for e in events]
    first = events[0]
    assert isinstance(first, Start) or (isinstance(first, Error) and len(events) == 1)
    assert sum(isinstance(e, Start) for e in events) <= 1
    terminals = [i for i, e in enumerate(events) if is_terminal(e)]
    assert terminals == [len(events) - 1], f"terminal events at {terminals} of {len(events)}"
    last = events[-1]
    if isinstance(last, Error):
        assert last.partial == any(e.type == "token" for e in events)
