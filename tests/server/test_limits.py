"""Limits, each set by a config trait: request size (413), concurrent streams (429), stream
duration and upstream silence (``timeout`` error events), and heartbeats while silent."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bridge_clients import (
    BACKENDS,
    DOOR_OF,
    MESSAGES,
    Reply,
    chat_body,
    chat_sse,
    door_idle_after,
    expected_text,
    read_sse,
    seq_after,
    ws_events,
)
from websockets.asyncio.client import connect

from jupyter_streamchat.demo.stats import DemoStats

MAX_BYTES = 4096
MAX_STREAMS = 3
MAX_SECONDS = 1.2
IDLE = 0.5
HEARTBEAT = 0.1


@pytest.fixture
def streamchat_config() -> dict[str, Any]:
    return {
        "demo": True,
        "discovery": False,
        "max_request_bytes": MAX_BYTES,
        "max_concurrent_streams": MAX_STREAMS,
        "max_stream_seconds": MAX_SECONDS,
        "upstream_idle_timeout": IDLE,
        "heartbeat_interval": HEARTBEAT,
        "resume_window": 5.0,
    }


def big_body(size: int) -> bytes:
    body = chat_body()
    body["messages"] = [{"role": "user", "content": "x" * size}]
    return json.dumps(body).encode()


# -- 413 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["api/chat", "v1/chat/completions"])
async def test_body_too_large_is_413_naming_limit_and_size(
    route: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    body = big_body(MAX_BYTES)
    response = await client.post(base + route, content=body, headers=auth)
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert f"max_request_bytes={MAX_BYTES}" in message
    assert f"{len(body)} bytes" in message


async def test_chunked_body_too_large_is_413(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    """No Content-Length: the bridge counts as the body arrives and stops at the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * 2000
        yield json.dumps(chat_body()).encode()

    response = await client.post(base + "api/chat", content=chunks(), headers=auth)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert f"max_request_bytes={MAX_BYTES}" in error["message"]


async def test_body_just_under_the_limit_is_accepted(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    body = big_body(0)
    body = big_body(MAX_BYTES - len(body) - 1)
    assert len(body) < MAX_BYTES
    reply = await chat_sse(client, base + "api/chat", body, auth)
    assert reply.status == 200
    assert reply.types[-1] == "done"


async def test_websocket_message_too_large(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **json.loads(big_body(MAX_BYTES))}))
        (error,) = await ws_events(ws)
    assert (error.data["status"], error.data["code"]) == (413, "too_large")
    assert f"max_request_bytes={MAX_BYTES}" in error.data["message"]


# -- 429 ------------------------------------------------------------------------------------


async def test_too_many_streams_is_429(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], ws_url: str
) -> None:
    async with contextlib.AsyncExitStack() as held:
        for _ in range(MAX_STREAMS - 1):
            body = chat_body(model="slow", max_tokens=100)
            response = await held.enter_async_context(
                client.stream("POST", base + "api/chat", json=body, headers=auth)
            )
            assert response.status_code == 200
        # A resumable stream whose client left still counts.
        body = chat_body("demo-sse", "slow", 100, resumable=True)
        dropped = await chat_sse(client, base + "api/chat", body, auth, stop=seq_after(0))
        assert dropped.closed_early
        response = await client.post(base + "api/chat", json=chat_body(), headers=auth)
        assert response.status_code == 429
        error = response.json()["error"]
        assert error["code"] == "too_many_streams"
        assert f"max_concurrent_streams={MAX_STREAMS}" in error["message"]
        async with connect(ws_url, additional_headers=auth) as ws:
            await ws.send(json.dumps({"type": "chat", **chat_body()}))
            (refused,) = await ws_events(ws)
        assert (refused.data["status"], refused.data["code"]) == (429, "too_many_streams")
        openai = await client.post(
            base + "v1/chat/completions",
            json={"model": "demo-sse/instant", "messages": MESSAGES},
            headers=auth,
        )
        assert openai.status_code == 429
        cancel = await client.delete(base + f"api/chat/{dropped.stream_id}", headers=auth)
        assert cancel.status_code == 204
        # A slot is free again.
        reply = await chat_sse(client, base + "api/chat", chat_body(), auth)
        assert reply.status == 200
        assert reply.types[-1] == "done"


# -- timeouts --------------------------------------------------------------------------------


async def test_max_stream_seconds_ends_the_stream_with_timeout(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], counters: DemoStats
) -> None:
    t0 = time.perf_counter()
    reply = await chat_sse(client, base + "api/chat", chat_body("demo-sse", "steady", 4000), auth)
    took = time.perf_counter() - t0
    error = reply.events[-1]
    assert error.type == "error"
    assert error.data["code"] == "timeout"
    assert f"max_stream_seconds={MAX_SECONDS}" in error.data["message"]
    assert error.data["partial"] is True
    assert MAX_SECONDS * 0.9 <= took <= MAX_SECONDS + 2.0
    assert reply.text == expected_text(len(reply.tokens))
    await door_idle_after(counters, "openai", timeout=0.5)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_silent_upstream_times_out_keeping_the_partial_text(
    backend: str, client: httpx.AsyncClient, base: str, auth: dict[str, str], counters: DemoStats
) -> None:
    """``stall@2``: two tokens, then silence; after ``upstream_idle_timeout`` the stream
    ends with ``timeout`` (partial), and heartbeats kept the browser leg alive meanwhile."""
    t0 = time.perf_counter()
    reply = await chat_sse(
        client, base + "api/chat", chat_body(backend, "steady:stall@2", 10), auth
    )
    took = time.perf_counter() - t0
    assert reply.text == expected_text(2)
    error = reply.events[-1]
    assert error.type == "error"
    assert error.data["code"] == "timeout"
    assert error.data["partial"] is True
    assert f"idle_timeout={IDLE}" in error.data["message"]
    assert IDLE <= took <= IDLE + 2.0
    heartbeats = [c for c in reply.comments if c.startswith("hb ")]
    assert len(heartbeats) >= 2, reply.comments
    assert all(float(c.split()[1]) > 0 for c in heartbeats)
    # The stalled door saw its client (the bridge) leave.
    await door_idle_after(counters, DOOR_OF[backend], timeout=0.5)


async def test_heartbeats_over_websocket(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **chat_body("demo-ws", "steady:stall@1", 5)}))
        events = await ws_events(ws)
    beats = [e for e in events if e.type == "heartbeat"]
    # 500 ms of silence with a 100 ms heartbeat: several keep-alives, each naming the
    # seq of the last real event so a resume knows where it stands.
    assert len(beats) >= 2
    last_seq = -1
    for event in events:
        if event.type == "heartbeat":
            assert event.data["seq"] == last_seq
        else:
            last_seq = event.data["seq"]
    assert events[-1].type == "error"
    assert events[-1].data["code"] == "timeout"


async def test_heartbeats_stop_while_tokens_flow(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    """A heartbeat is for silence only: a busy stream (a token every 20 ms) sends none
    between its first and last token."""
    body = chat_body("demo-sse", "steady", 30)
    async with client.stream("POST", base + "api/chat", json=body, headers=auth) as response:
        reply = Reply(response.status_code, response.headers)
        await read_sse(response, reply, lambda e: e.type == "token")
        before = len(reply.comments)
        await read_sse(response, reply)
    assert reply.types[-1] == "done"
    assert len(reply.comments) == before
