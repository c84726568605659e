"""Resume: a client that drops mid-stream reconnects and continues exactly after the last
event it saw — no duplicate, no gap — over SSE (``Last-Event-ID``) or WebSocket
(``resume`` with ``last_seq``).  With no client for ``resume_window`` seconds the
upstream is cancelled."""

from __future__ import annotations

import json
import time
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
    check_continuity,
    door_idle_after,
    expected_text,
    read_sse,
    seq_after,
    wait_until,
    ws_events,
)
from websockets.asyncio.client import connect

from jupyter_streamchat.demo.stats import DemoStats
from jupyter_streamchat.server.app import StreamChatApp

WINDOW = 0.8
N = 20  # steady: ~0.6 s of tokens, so the drop and the reconnect happen mid-stream


@pytest.fixture
def streamchat_config() -> dict[str, Any]:
    return {"demo": True, "discovery": False, "resume_window": WINDOW}


def resumable(backend: str = "demo-sse", n: int = N, **extra: Any) -> dict[str, Any]:
    return chat_body(backend, "steady", n, resumable=True, **extra)


def joined(first: list[Event], second: list[Event]) -> str:
    return "".join(e.data["text"] for e in [*first, *second] if e.type == "token")


async def drop_after(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], body: dict[str, Any], seq: int
) -> Reply:
    """Start a stream and leave once the event with ``seq`` arrived."""
    reply = await chat_sse(client, base + "api/chat", body, auth, stop=seq_after(seq))
    assert reply.status == 200
    assert reply.closed_early
    return reply


@pytest.mark.parametrize("backend", BACKENDS)
async def test_last_event_id_continues_exactly_after_the_last_event_seen(
    backend: str, client: httpx.AsyncClient, base: str, auth: dict[str, str], counters: DemoStats
) -> None:
    door = counters[DOOR_OF[backend]]
    completed, cancelled = door.completed, door.cancelled
    first = await drop_after(client, base, auth, resumable(backend), 6)
    last = first.last_seq
    headers = {**auth, "Last-Event-ID": str(last)}
    second = await chat_sse(
        client, base + f"api/chat/{first.stream_id}", None, headers, method="GET"
    )
    assert second.status == 200
    assert second.headers["content-type"].startswith("text/event-stream")
    assert second.headers["x-streamchat-stream-id"] == first.stream_id
    assert second.events[0].data["seq"] > last
    check_continuity(first.events)
    check_continuity(second.events, after=last)
    assert second.types[-1] == "done"
    assert "start" not in second.types
    # The reconstructed reply is the uninterrupted one (the demo model is deterministic).
    whole = await chat_sse(client, base + "api/chat", chat_body(backend, "instant", N), auth)
    assert joined(first.events, second.events) == whole.text == expected_text(N)
    # The drop did not cancel the upstream: the door finished the reply.
    assert door.completed == completed + 2
    assert door.cancelled == cancelled


async def test_last_event_id_as_query_parameter(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    first = await drop_after(client, base, auth, resumable(), 4)
    url = base + f"api/chat/{first.stream_id}?last_event_id={first.last_seq}"
    second = await chat_sse(client, url, None, auth, method="GET")
    check_continuity(second.events, after=first.last_seq)
    assert joined(first.events, second.events) == expected_text(N)


async def test_resume_without_last_event_id_replays_from_the_start(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    first = await drop_after(client, base, auth, resumable(), 3)
    second = await chat_sse(client, base + f"api/chat/{first.stream_id}", None, auth, method="GET")
    assert second.types[0] == "start"
    check_continuity(second.events)
    assert second.text == expected_text(N)


@pytest.mark.parametrize("last", ["-1", None])
async def test_resume_before_any_event(
    last: str | None, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    """The client lost the connection before it saw a single event."""
    body = chat_body("demo-sse", "steady", 3, resumable=True, stream_id="early-drop-0001")
    async with client.stream("POST", base + "api/chat", json=body, headers=auth) as response:
        assert response.status_code == 200  # headers only: no event read
    headers = dict(auth) if last is None else {**auth, "Last-Event-ID": last}
    second = await chat_sse(client, base + "api/chat/early-drop-0001", None, headers, method="GET")
    assert second.types[0] == "start"
    check_continuity(second.events)
    assert second.types[-1] == "done"
    assert second.text == expected_text(3)


async def test_resume_after_the_stream_ended_fetches_the_tail(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], app: StreamChatApp
) -> None:
    first = await drop_after(client, base, auth, resumable(n=10), 3)
    await wait_until(lambda: first.stream_id not in app.bridge.sessions, 5.0)
    headers = {**auth, "Last-Event-ID": str(first.last_seq)}
    second = await chat_sse(
        client, base + f"api/chat/{first.stream_id}", None, headers, method="GET"
    )
    check_continuity(second.events, after=first.last_seq)
    assert second.types[-1] == "done"
    assert joined(first.events, second.events) == expected_text(10)


async def test_websocket_resume_with_last_seq(
    ws_url: str, auth: dict[str, str], counters: DemoStats
) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **resumable("demo-ws")}))
        first = await ws_events(ws, stop=seq_after(5))
    stream_id = first[0].data["stream_id"]
    last = int(first[-1].data["seq"])
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "resume", "stream_id": stream_id, "last_seq": last}))
        second = await ws_events(ws)
    check_continuity(first)
    check_continuity(second, after=last)
    assert second[-1].type == "done"
    assert joined(first, second) == expected_text(N)


async def test_websocket_resume_with_last_seq_minus_one_replays_everything(
    ws_url: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    """A stream started over SSE is picked up over a WebSocket, from before its first event."""
    first = await drop_after(client, base, auth, resumable(), 2)
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "resume", "stream_id": first.stream_id, "last_seq": -1}))
        second = await ws_events(ws)
    assert second[0].type == "start"
    check_continuity(second)
    assert joined([], second) == expected_text(N)


async def test_resume_window_expiry_cancels_the_upstream(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], counters: DemoStats
) -> None:
    door = counters["openai"]
    cancelled = door.cancelled
    first = await drop_after(client, base, auth, resumable(n=4000), 2)
    left = time.perf_counter()
    # No client, but within the window: the stream keeps running.
    await wait_until(lambda: time.perf_counter() - left > WINDOW / 2, 5.0)
    assert door.open_streams == 1
    await door_idle_after(counters, "openai", timeout=WINDOW + 5.0)
    waited = time.perf_counter() - left
    assert WINDOW * 0.9 <= waited <= WINDOW + 1.0
    assert door.cancelled == cancelled + 1
    # A late reconnect learns what happened, and gets nothing after it.
    late = await chat_sse(client, base + f"api/chat/{first.stream_id}", None, auth, method="GET")
    assert late.status == 200
    error = late.events[-1]
    assert error.data["code"] == "cancelled"
    assert "resume window" in error.data["message"]
    # Once the window has passed again, the stream is forgotten.
    gone_after = await wait_until(
        lambda: _is_404(client, base + f"api/chat/{first.stream_id}", auth), WINDOW + 5.0, 0.05
    )
    assert gone_after <= WINDOW + 1.0


async def _is_404(client: httpx.AsyncClient, url: str, auth: dict[str, str]) -> bool:
    async with client.stream("GET", url, headers=auth) as response:
        return response.status_code == 404


async def test_reconnect_within_the_window_keeps_the_upstream(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], counters: DemoStats
) -> None:
    """Each reconnect restarts the window; the reply completes."""
    body = resumable(n=40)
    reply = await drop_after(client, base, auth, body, 3)
    events = list(reply.events)
    while events[-1].type not in ("done", "error"):
        headers = {**auth, "Last-Event-ID": str(events[-1].data["seq"])}
        nxt = await chat_sse(
            client,
            base + f"api/chat/{reply.stream_id}",
            None,
            headers,
            method="GET",
            stop=seq_after(int(events[-1].data["seq"]) + 10),
        )
        check_continuity(nxt.events, after=int(events[-1].data["seq"]))
        events.extend(nxt.events)
    assert events[-1].type == "done"
    assert joined(events, []) == expected_text(40)


async def test_unknown_stream_is_404(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], ws_url: str
) -> None:
    response = await client.get(base + "api/chat/not-a-stream-id", headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_stream"
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "resume", "stream_id": "not-a-stream-id", "last_seq": 3}))
        (error,) = await ws_events(ws)
    assert error.data["status"] == 404


async def test_bad_last_event_id_is_400(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    first = await drop_after(client, base, auth, resumable(n=6), 1)
    headers = {**auth, "Last-Event-ID": "seven"}
    response = await client.get(base + f"api/chat/{first.stream_id}", headers=headers)
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]["message"]


async def test_a_second_client_supersedes_the_first(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    # Two tabs on one stream: the one that resumes takes it; the other's response ends
    # (no final event, a comment says why) instead of hanging until its socket closes.
    async with client.stream("POST", base + "api/chat", json=resumable(), headers=auth) as first:
        reply = Reply(first.status_code, first.headers, sent_ms=0.0)
        await read_sse(first, reply, seq_after(3))
        stream_id = reply.stream_id
        headers = {**auth, "Last-Event-ID": str(reply.last_seq)}
        second = await chat_sse(client, base + f"api/chat/{stream_id}", None, headers, method="GET")
        await read_sse(first, reply)  # to the end of the first response
    assert second.types[-1] == "done"
    assert reply.types[-1] == "token"
    assert any(c.startswith("superseded") for c in reply.comments)
    check_continuity(second.events, after=int(headers["Last-Event-ID"]))
