"""Clients of the bridge's browser leg that record what a user would see.

:func:`chat_sse` posts to ``api/chat`` and parses the ``text/event-stream``
with its own small parser (not the package's decoder, so a bug there cannot
hide one here), stamping each event with its arrival time.  :func:`ws_events`
reads events from a WebSocket the same way.  :func:`expected_text` is the
demo model's reply computed offline, so a bridged reply can be compared with
the truth.  :func:`wait_until` is the one bounded polling loop every test uses.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from jupyter_streamchat.demo.stats import DemoStats, Door
from jupyter_streamchat.demo.text import generate, request_seed

PROMPT = "Tell me about the White Rabbit."
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": PROMPT}]
BACKENDS: tuple[str, ...] = ("demo-sse", "demo-ndjson", "demo-ws", "demo-grpc")
DOOR_OF: dict[str, Door] = {
    "demo-sse": "openai",
    "demo-ndjson": "ollama",
    "demo-ws": "websocket",
    "demo-grpc": "grpc",
}
TERMINAL = frozenset({"done", "error"})


def clock_ms() -> float:
    return time.perf_counter() * 1000.0


def expected_text(max_tokens: int, messages: Sequence[Mapping[str, str]] = MESSAGES) -> str:
    """The demo model's reply to ``messages`` cut at ``max_tokens`` (deterministic)."""
    pairs = [(m["role"], m["content"]) for m in messages]
    return "".join(generate(request_seed(pairs), max_tokens, complete=False))


def chat_body(
    backend: str = "demo-sse", model: str = "instant", max_tokens: int = 8, **extra: Any
) -> dict[str, Any]:
    return {
        "backend": backend,
        "model": model,
        "messages": MESSAGES,
        "options": {"max_tokens": max_tokens},
        **extra,
    }


@dataclass
class Event:
    """One SSE event (or WebSocket message) as the client saw it."""

    type: str
    data: dict[str, Any]
    id: str | None = None
    at_ms: float = 0.0
    """Arrival time (perf_counter ms)."""


@dataclass
class Reply:
    """Everything a client saw of one response."""

    status: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    body: bytes = b""
    """The decoded body when the response was not a stream (or the raw SSE text)."""
    wire_bytes: int = 0
    closed_early: bool = False
    sent_ms: float = 0.0
    _parser: SSEParser = field(default_factory=lambda: SSEParser(), repr=False)
    _chunks: AsyncIterator[bytes] | None = field(default=None, repr=False)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def tokens(self) -> list[Event]:
        return [e for e in self.events if e.type == "token"]

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.tokens)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def terminal(self) -> Event | None:
        last = self.events[-1] if self.events else None
        return last if last is not None and last.type in TERMINAL else None

    @property
    def stream_id(self) -> str:
        return self.headers["x-streamchat-stream-id"]

    @property
    def last_seq(self) -> int:
        return int(self.events[-1].data["seq"])


class SSEParser:
    """Incremental ``text/event-stream`` parser (LF-terminated lines, as the bridge sends)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._fields: dict[str, str] = {}
        self.comments: list[str] = []

    def feed(self, data: bytes, at_ms: float) -> list[Event]:
        self._buffer += self._decoder.decode(data)
        out: list[Event] = []
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line == "":
                if "data" in self._fields:
                    data = json.loads(self._fields["data"])
                    kind = self._fields.get("event", "message")
                    out.append(Event(kind, data, self._fields.get("id"), at_ms))
                self._fields = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                self._fields[name] = value.removeprefix(" ")
        return out


async def read_sse(
    response: httpx.Response,
    reply: Reply,
    stop: Callable[[Event], bool] | None = None,
    *,
    pause_s: float = 0.0,
    chunk_size: int | None = None,
) -> None:
    """Parse ``response`` into ``reply`` until it ends or ``stop`` says to leave.

    Can be called again on the same response to read on (after a ``stop``).
    """
    if reply._chunks is None:
        reply._chunks = response.aiter_bytes(chunk_size)
    reply.closed_early = False
    async for chunk in reply._chunks:
        reply.body += chunk
        now = clock_ms()
        for event in reply._parser.feed(chunk, now):
            reply.events.append(event)
            if stop is not None and stop(event):
                reply.closed_early = True
        reply.comments = reply._parser.comments
        reply.wire_bytes = response.num_bytes_downloaded
        if reply.closed_early:
            return
        if pause_s:
            await asyncio.sleep(pause_s)


async def chat_sse(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    stop: Callable[[Event], bool] | None = None,
    pause_s: float = 0.0,
    chunk_size: int | None = None,
) -> Reply:
    """One request; an event stream is parsed, any other body kept as is.

    With ``stop``, the client closes the response as soon as ``stop(event)``
    is true (the user closed the tab).
    """
    kwargs: dict[str, Any] = {"headers": dict(headers or {})}
    if isinstance(body, (bytes, str)):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    sent = clock_ms()
    async with client.stream(method, url, **kwargs) as response:
        reply = Reply(response.status_code, response.headers, sent_ms=sent)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            await read_sse(response, reply, stop, pause_s=pause_s, chunk_size=chunk_size)
        else:
            reply.body = await response.aread()
    return reply


async def ws_dicts(ws: ClientConnection) -> AsyncIterator[dict[str, Any]]:
    """The bridge's WebSocket messages as events, one by one (a message may hold an array)."""
    while True:
        data = json.loads(await ws.recv())
        for item in data if isinstance(data, list) else [data]:
            yield item


async def ws_events(
    ws: ClientConnection, stop: Callable[[Event], bool] | None = None, timeout: float = 20.0
) -> list[Event]:
    """Messages from the bridge's WebSocket until a terminal event, a request error, or ``stop``."""
    out: list[Event] = []
    messages = ws_dicts(ws)
    async with asyncio.timeout(timeout):
        while True:
            data = await anext(messages)
            event = Event(data["type"], data, None, clock_ms())
            out.append(event)
            if event.type in TERMINAL or event.type == "request_error":
                return out
            if stop is not None and stop(event):
                return out


def seq_after(n: int) -> Callable[[Event], bool]:
    """``stop`` predicate: leave once the event with seq ``n`` (or later) arrived."""
    return lambda e: e.type != "heartbeat" and int(e.data.get("seq", -1)) >= n


def check_continuity(events: Iterable[Event], after: int = -1) -> None:
    """Seqs follow on without gap or repeat, a coalesced token standing for ``chunks`` events."""
    prev = after
    for event in events:
        if event.type == "heartbeat":
            continue
        seq = int(event.data["seq"])
        span = int(event.data.get("chunks", 1)) if event.type == "token" else 1
        assert seq - span == prev, f"seq {seq} (chunks {span}) does not follow seq {prev}"
        prev = seq


def median_gap(times: Sequence[float]) -> float:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return statistics.median(gaps)


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float, interval: float = 0.002
) -> float:
    """Poll ``predicate`` until true; the seconds it took.  Fails after ``timeout``."""
    start = time.perf_counter()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def door_idle_after(counters: DemoStats, door: Door, timeout: float = 5.0) -> float:
    """Seconds until ``door`` has no open stream (polled, bounded by ``timeout``)."""
    return await wait_until(lambda: counters[door].open_streams == 0, timeout)
