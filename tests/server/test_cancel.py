"""Cancellation closes the upstream within 100 ms, whoever ends the stream.

The client closing the SSE response, a WebSocket ``cancel`` or close, ``DELETE
api/chat/{id}``, and server shutdown are each checked against the demo doors'
own counters: ``open_streams`` back to 0 within 100 ms, ``tokens_after_cancel``
small, and the door saw a client that went away (``cancelled``), not a failure.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bridge_clients import (
    BACKENDS,
    DOOR_OF,
    Event,
    Reply,
    chat_body,
    chat_sse,
    door_idle_after,
    read_sse,
    wait_until,
    ws_dicts,
)
from websockets.asyncio.client import connect

from jupyter_streamchat.demo.stats import DemoStats
from jupyter_streamchat.server.app import StreamChatApp

CANCEL_WITHIN_S = 0.1
PROFILE = "steady"  # 250 ms to the first token, then one every 20 ms: tokens are in flight
LONG = 2000  # tokens: a reply that would run for ~40 s


def after_tokens(n: int) -> Callable[[Event], bool]:
    seen = 0

    def stop(event: Event) -> bool:
        nonlocal seen
        seen += event.type == "token"
        return seen >= n

    return stop


class Snapshot:
    """A door's counters before the test, to check what changed."""

    def __init__(self, counters: DemoStats, backend: str) -> None:
        self.stats = counters[DOOR_OF[backend]]
        self.cancelled = self.stats.cancelled
        self.failed = self.stats.failed
        self.after_cancel = self.stats.tokens_after_cancel

    def check_client_went_away(self) -> None:
        assert self.stats.open_streams == 0
        assert self.stats.cancelled == self.cancelled + 1, "the door saw its client leave"
        assert self.stats.failed == self.failed
        assert self.stats.tokens_after_cancel - self.after_cancel <= 1


async def idle_within(counters: DemoStats, backend: str, t0: float) -> float:
    """Seconds from ``t0`` until the backend's door has no open stream."""
    await door_idle_after(counters, DOOR_OF[backend])
    return time.perf_counter() - t0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_closing_the_response_closes_the_upstream(
    backend: str,
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    counters: DemoStats,
    app: StreamChatApp,
    demo_stats: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    door = Snapshot(counters, backend)
    body = chat_body(backend, PROFILE, LONG)
    async with client.stream("POST", base + "api/chat", json=body, headers=auth) as response:
        reply = Reply(response.status_code, response.headers)
        await read_sse(response, reply, after_tokens(2))
        assert door.stats.open_streams == 1
        t0 = time.perf_counter()
    assert await idle_within(counters, backend, t0) < CANCEL_WITHIN_S
    door.check_client_went_away()
    # The doors' own /stats page says the same.
    page = (await demo_stats())[DOOR_OF[backend]]
    assert page["open_streams"] == 0
    assert page["cancelled"] == door.stats.cancelled
    await wait_until(lambda: not app.bridge.sessions, 5.0)
    streams = (await client.get(base + "api/streams", headers=auth)).json()
    (recent,) = streams["recent"]
    assert recent["id"] == reply.stream_id
    assert recent["reason"] == "client_gone"
    assert recent["tokens"] >= 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_websocket_cancel_closes_the_upstream(
    backend: str, ws_url: str, auth: dict[str, str], counters: DemoStats
) -> None:
    door = Snapshot(counters, backend)
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **chat_body(backend, PROFILE, LONG)}))
        events = ws_dicts(ws)
        seen = 0
        while seen < 2:
            seen += (await anext(events))["type"] == "token"
        t0 = time.perf_counter()
        await ws.send(json.dumps({"type": "cancel"}))
        assert await idle_within(counters, backend, t0) < CANCEL_WITHIN_S
        while (event := await anext(events))["type"] == "token":
            pass
        assert event["type"] == "error"
        assert event["code"] == "cancelled"
        assert event["partial"] is True
        # The socket stays usable: the next chat runs to its end.
        await ws.send(json.dumps({"type": "chat", **chat_body(backend)}))
        while (event := await anext(events))["type"] not in ("done", "error"):
            pass
        assert event["type"] == "done"
    door.check_client_went_away()


@pytest.mark.parametrize("backend", ["demo-sse", "demo-grpc"])
async def test_closing_the_websocket_closes_the_upstream(
    backend: str, ws_url: str, auth: dict[str, str], counters: DemoStats
) -> None:
    door = Snapshot(counters, backend)
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **chat_body(backend, PROFILE, LONG)}))
        events = ws_dicts(ws)
        seen = 0
        while seen < 2:
            seen += (await anext(events))["type"] == "token"
        t0 = time.perf_counter()
    assert await idle_within(counters, backend, t0) < CANCEL_WITHIN_S
    door.check_client_went_away()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_delete_cancels_the_stream(
    backend: str, client: httpx.AsyncClient, base: str, auth: dict[str, str], counters: DemoStats
) -> None:
    door = Snapshot(counters, backend)
    body = chat_body(backend, PROFILE, LONG)
    async with client.stream("POST", base + "api/chat", json=body, headers=auth) as response:
        reply = Reply(response.status_code, response.headers)
        await read_sse(response, reply, after_tokens(2))
        t0 = time.perf_counter()
        deleted = await client.delete(base + f"api/chat/{reply.stream_id}", headers=auth)
        assert deleted.status_code == 204
        assert await idle_within(counters, backend, t0) < CANCEL_WITHIN_S
        await read_sse(response, reply)
    error = reply.events[-1]
    assert error.type == "error"
    assert error.data["code"] == "cancelled"
    assert error.data["partial"] is True
    door.check_client_went_away()
    again = await client.delete(base + "api/chat/no-such-stream", headers=auth)
    assert again.status_code == 404


async def _streams_in_flight(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> tuple[list[asyncio.Task[Reply]], list[asyncio.Event]]:
    """One long stream per backend, each read in a task; returns once all have two tokens."""
    ready = [asyncio.Event() for _ in BACKENDS]

    async def read(backend: str, flag: asyncio.Event) -> Reply:
        def seen(event: Event) -> bool:
            if event.type == "token" and event.data["seq"] >= 2:
                flag.set()
            return False

        return await chat_sse(
            client, base + "api/chat", chat_body(backend, PROFILE, LONG), auth, stop=seen
        )

    tasks = [asyncio.create_task(read(b, f)) for b, f in zip(BACKENDS, ready, strict=True)]
    async with asyncio.timeout(10):
        for flag in ready:
            await flag.wait()
    return tasks, ready


def _assert_shutdown_error(reply: Reply) -> None:
    assert reply.status == 200
    error = reply.events[-1]
    assert error.type == "error"
    assert error.data["code"] == "cancelled"
    assert "shutting down" in error.data["message"]
    assert error.data["partial"] is True


async def test_bridge_shutdown_closes_every_upstream(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    counters: DemoStats,
    app: StreamChatApp,
) -> None:
    """The bridge's ``aclose`` (server shutdown) ends each stream visibly and closes its
    upstream while the doors themselves keep running."""
    doors = [Snapshot(counters, b) for b in BACKENDS]
    tasks, _ = await _streams_in_flight(client, base, auth)
    assert counters.open_streams == len(BACKENDS)
    t0 = time.perf_counter()
    await app.bridge.aclose()
    await wait_until(lambda: counters.open_streams == 0, 5.0)
    assert time.perf_counter() - t0 < CANCEL_WITHIN_S
    for reply in await asyncio.gather(*tasks):
        _assert_shutdown_error(reply)
    for door in doors:
        door.check_client_went_away()


async def test_stop_extension_ends_streams_before_the_doors(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    counters: DemoStats,
    app: StreamChatApp,
) -> None:
    doors = [Snapshot(counters, b) for b in BACKENDS]
    tasks, _ = await _streams_in_flight(client, base, auth)
    t0 = time.perf_counter()
    await app.stop_extension()
    assert counters.open_streams == 0
    assert time.perf_counter() - t0 < 1.0
    for reply in await asyncio.gather(*tasks):
        _assert_shutdown_error(reply)
    for door in doors:
        # The bridge closed each upstream before the demo doors stopped.
        door.check_client_went_away()


async def test_non_resumable_stream_ends_when_its_client_leaves(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], app: StreamChatApp
) -> None:
    body: dict[str, Any] = chat_body("demo-sse", PROFILE, LONG)
    reply = await chat_sse(client, base + "api/chat", body, auth, stop=after_tokens(1))
    await wait_until(lambda: reply.stream_id not in app.bridge.sessions, 1.0)
    resumed = await chat_sse(client, base + f"api/chat/{reply.stream_id}", None, auth, method="GET")
    # Not resumable: nothing was kept to come back for.
    assert resumed.status == 410
    assert "resumable" in json.loads(resumed.body)["error"]["message"]
    (ended,) = [s for s in app.bridge.recent if s["id"] == reply.stream_id]
    assert ended["reason"] == "client_gone"
