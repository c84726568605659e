"""The Python API (``stream()`` / ``stream_sync()``) against the demo doors directly, no
Jupyter server: every adapter streams the right text, ``aclose()`` really closes the
upstream, retries honour ``Retry-After``, and each fault ends in its typed ``Error`` with
the partial text kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from bridge_clients import PROMPT, expected_text, median_gap, wait_until
from helpers import assert_grammar

from jupyter_streamchat import stream, stream_sync, upstream
from jupyter_streamchat.demo.servers import DemoServers
from jupyter_streamchat.demo.stats import Door
from jupyter_streamchat.errors import (
    HTTPStatus,
    ProtocolError,
    StreamError,
    Timeout,
    UpstreamClosed,
    UpstreamError,
)
from jupyter_streamchat.events import Error, Event, Start, Token

DOORS: dict[str, Door] = {
    "demo-sse": "openai",
    "demo-ndjson": "ollama",
    "demo-ws": "websocket",
    "demo-grpc": "grpc",
}
NAMES = list(DOORS)
# Plain-http backends normally take the small built-in HTTP/1.1 client; https and proxied
# URLs take httpx.  "+httpx" runs the same demo door through the httpx adapter.
ADAPTERS = [*NAMES, "demo-sse+httpx", "demo-ndjson+httpx"]


def via(adapter: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The backend name of ``adapter``, with the HTTP client it names selected."""
    name, _, client = adapter.partition("+")
    if client == "httpx":
        monkeypatch.setattr(upstream, "use_fast_path", lambda url: False)
    return name


def config(demo: DemoServers, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, **demo.backend_configs()[name], **extra}


async def collect(name: str, demo: DemoServers, model: str, **kwargs: Any) -> list[Event]:
    backend = kwargs.pop("backend", None) or config(demo, name)
    async with stream(backend, PROMPT, model=model, **kwargs) as events:
        return [event async for event in events]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Token))


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_every_adapter_streams_the_reply(
    adapter: str, demo: DemoServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = via(adapter, monkeypatch)
    events = await collect(name, demo, "instant", max_tokens=10)
    assert_grammar(events)
    assert isinstance(events[0], Start)
    assert events[0].backend == name
    assert events[-1].type == "done"
    assert text_of(events) == expected_text(10)
    assert all(e.emit_ms is not None for e in events if isinstance(e, Token))


@pytest.mark.parametrize("name", NAMES)
async def test_aclose_closes_the_upstream_within_100ms(name: str, demo: DemoServers) -> None:
    door = demo.counters[DOORS[name]]
    cancelled, lost = door.cancelled, door.tokens_after_cancel
    upstream = stream(config(demo, name), PROMPT, model="steady", max_tokens=2000)
    seen = 0
    async for event in upstream:
        seen += isinstance(event, Token)
        if seen == 2:
            break
    assert door.open_streams == 1
    t0 = time.perf_counter()
    await upstream.aclose()
    await wait_until(lambda: door.open_streams == 0, 5.0)
    assert time.perf_counter() - t0 < 0.1
    assert door.cancelled == cancelled + 1
    assert door.tokens_after_cancel - lost <= 1


async def test_retry_honours_retry_after(demo: DemoServers) -> None:
    """``http429@1``: the first attempt is rate limited with ``Retry-After: 1``; the retry,
    a second later, streams the reply — on every door at once."""

    async def one(name: str) -> tuple[list[Event], float]:
        t0 = time.perf_counter()
        events = await collect(name, demo, "instant:http429@1", max_tokens=6)
        return events, time.perf_counter() - t0

    results = await asyncio.gather(*(one(name) for name in NAMES))
    for name, (events, took) in zip(NAMES, results, strict=True):
        assert events[-1].type == "done", (name, events[-1])
        assert_grammar(events)
        assert text_of(events) == expected_text(6)
        assert 0.9 <= took <= 3.0, (name, took)
        stats = demo.counters[DOORS[name]]
        assert stats.faults == {"http429": 1}
        assert stats.requests == 2


async def test_retry_without_retry_after_backs_off_briefly(demo: DemoServers) -> None:
    t0 = time.perf_counter()
    events = await collect("demo-sse", demo, "instant:http500@1", max_tokens=4)
    assert events[-1].type == "done"
    assert time.perf_counter() - t0 < 0.9
    assert demo.counters["openai"].requests == 2


async def test_no_retry_after_the_first_token(demo: DemoServers) -> None:
    """A stream that fails mid-reply is not retried: the partial text is the user's."""
    events = await collect("demo-sse", demo, "instant:drop@3", max_tokens=8)
    assert demo.counters["openai"].requests == 1
    assert isinstance(events[-1], Error)
    assert events[-1].partial is True


STREAM_FAULTS: list[tuple[str, str, type[StreamError]]] = [
    ("drop@3", "upstream_closed", UpstreamClosed),
    ("malformed@3", "protocol_error", ProtocolError),
    ("stall@3", "timeout", Timeout),
]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("fault", "code", "exception"), STREAM_FAULTS)
async def test_stream_fault_gives_typed_error_keeping_partial_text(
    adapter: str,
    fault: str,
    code: str,
    exception: type[StreamError],
    demo: DemoServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = via(adapter, monkeypatch)
    backend = config(demo, name, idle_timeout=0.3, retries=0)
    events = await collect(name, demo, f"instant:{fault}", max_tokens=10, backend=backend)
    assert_grammar(events)
    error = events[-1]
    assert isinstance(error, Error)
    assert error.code == code, error
    assert error.partial is True
    assert text_of(events) == expected_text(3)
    with pytest.raises(exception):
        await stream(backend, PROMPT, model=f"instant:{fault}", max_tokens=10).text()
    await wait_until(lambda: demo.counters[DOORS[name]].open_streams == 0, 1.0)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("fault", "status"), [("http500", 500), ("http429", 429)])
async def test_refusal_gives_typed_error_with_status(
    adapter: str, fault: str, status: int, demo: DemoServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = via(adapter, monkeypatch)
    backend = config(demo, name, retries=0)
    events = await collect(name, demo, f"instant:{fault}", max_tokens=5, backend=backend)
    assert_grammar(events)
    error = events[-1]
    assert isinstance(error, Error)
    assert error.status == status, error
    assert error.partial is False
    # gRPC retries only RESOURCE_EXHAUSTED (429) here; INTERNAL (500) is final by convention.
    assert error.retryable is (status == 429 or name != "demo-grpc")
    if fault == "http429":
        assert error.retry_after == 1.0
    # HTTP doors answer with a status line; WebSocket and gRPC report it in-band.
    expected = HTTPStatus if name in ("demo-sse", "demo-ndjson") else UpstreamError
    assert error.code == expected.code
    with pytest.raises(expected):
        await stream(backend, PROMPT, model=f"instant:{fault}", max_tokens=5).text()


async def test_stream_sync_from_a_thread(demo: DemoServers) -> None:
    """The blocking API, as plain code (or a kernel) uses it, while the doors run here."""
    backend = config(demo, "demo-grpc")

    def run() -> list[Event]:
        return list(stream_sync(backend, PROMPT, model="instant", max_tokens=7))

    events = await asyncio.to_thread(run)
    assert_grammar(events)
    assert text_of(events) == expected_text(7)


@pytest.mark.parametrize("name", ["demo-sse", "demo-ws"])
async def test_stream_sync_close_closes_the_upstream(name: str, demo: DemoServers) -> None:
    door = demo.counters[DOORS[name]]
    backend = config(demo, name)

    def run() -> float:
        sync = stream_sync(backend, PROMPT, model="steady", max_tokens=2000)
        seen = 0
        for event in sync:
            seen += isinstance(event, Token)
            if seen == 2:
                break
        t0 = time.perf_counter()
        sync.close()
        return t0

    t0 = await asyncio.to_thread(run)
    await wait_until(lambda: door.open_streams == 0, 5.0)
    assert time.perf_counter() - t0 < 0.1


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_max_seconds_ends_the_stream_naming_the_limit(
    adapter: str, demo: DemoServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = via(adapter, monkeypatch)
    backend = config(demo, name, max_seconds=0.4, retries=0)
    events = await collect(name, demo, "fast", max_tokens=2000, backend=backend)  # ~10 s
    assert_grammar(events)
    error = events[-1]
    assert isinstance(error, Error)
    assert error.code == "timeout", error
    assert "max_seconds=0.4" in error.message
    assert error.partial is True
    # The text so far is kept, and the limit, not the end of the reply, stopped it.
    kept, whole = text_of(events), expected_text(2000)
    assert kept
    assert whole.startswith(kept)
    assert len(kept) < len(whole)
    await wait_until(lambda: demo.counters[DOORS[name]].open_streams == 0, 1.0)


@pytest.mark.parametrize("name", NAMES)
async def test_tokens_arrive_paced_not_in_one_burst(name: str, demo: DemoServers) -> None:
    events = await collect(name, demo, "steady", max_tokens=16)
    arrivals = [e.recv_ms for e in events if isinstance(e, Token)]
    assert len(arrivals) == 16
    # steady is ~50 tok/s: the client sees tokens ~20 ms apart, as the backend sends them.
    assert 12 <= median_gap(arrivals) <= 40
    assert arrivals[-1] - arrivals[0] >= 0.5 * 15 * 20
    assert len(set(arrivals)) == 16


async def test_grpc_bidirectional_chat_streams_and_cancels(demo: DemoServers) -> None:
    backend = config(demo, "demo-grpc", grpc_method="chat")
    events = await collect("demo-grpc", demo, "instant", backend=backend, max_tokens=8)
    assert events[-1].type == "done"
    assert text_of(events) == expected_text(8)
    door = demo.counters["grpc"]
    cancelled = door.cancelled
    upstream = stream(backend, PROMPT, model="steady", max_tokens=2000)
    async for event in upstream:
        if isinstance(event, Token):
            break
    t0 = time.perf_counter()
    await upstream.aclose()  # sends a Cancel message on the call, then ends it
    await wait_until(lambda: door.open_streams == 0, 5.0)
    assert time.perf_counter() - t0 < 0.1
    assert door.cancelled == cancelled + 1
