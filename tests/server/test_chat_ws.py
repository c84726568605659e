"""``GET api/chat/ws``: the same events as SSE, as JSON messages, one stream at a time."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from bridge_clients import (
    BACKENDS,
    chat_body,
    chat_sse,
    check_continuity,
    expected_text,
    median_gap,
    ws_dicts,
    ws_events,
)
from websockets.asyncio.client import ClientConnection, connect

TIMING = ("recv_ms", "send_ms", "emit_ms", "stream_id")


def meaning(data: dict[str, Any]) -> dict[str, Any]:
    """An event without the fields that differ from run to run."""
    return {k: v for k, v in data.items() if k not in TIMING}


async def chat(ws: ClientConnection, body: dict[str, Any]) -> list[Any]:
    await ws.send(json.dumps({"type": "chat", **body}))
    return await ws_events(ws)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_websocket_events_match_sse(
    backend: str, ws_url: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    body = chat_body(backend, max_tokens=10)
    sse = await chat_sse(client, base + "api/chat", body, auth)
    async with connect(ws_url, additional_headers=auth) as ws:
        events = await chat(ws, body)
    assert [e.type for e in events] == sse.types
    assert [meaning(e.data) for e in events] == [meaning(e.data) for e in sse.events]
    check_continuity(events)
    start = events[0].data
    assert start["backend"] == backend
    assert len(start["stream_id"]) >= 8
    assert start["stream_id"] != sse.stream_id
    assert "".join(e.data["text"] for e in events if e.type == "token") == expected_text(10)
    for event in events:
        assert event.data["send_ms"] >= event.data["recv_ms"]


async def test_one_socket_runs_streams_one_after_another(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        ids = set()
        for backend in BACKENDS:
            events = await chat(ws, chat_body(backend, max_tokens=4))
            assert events[-1].type == "done"
            ids.add(events[0].data["stream_id"])
        assert len(ids) == len(BACKENDS)


async def test_second_chat_while_streaming_is_refused(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **chat_body(model="fast", max_tokens=20)}))
        await ws.send(json.dumps({"type": "chat", **chat_body()}))
        events = []
        async for data in ws_dicts(ws):
            events.append(data)
            if data["type"] == "done":
                break
        refusals = [e for e in events if e["type"] == "request_error"]
        assert len(refusals) == 1
        assert refusals[0]["status"] == 409
        assert refusals[0]["code"] == "busy"
        assert "cancel" in refusals[0]["message"]
        text = "".join(e["text"] for e in events if e["type"] == "token")
        assert text == expected_text(20), "the running stream was not disturbed"


@pytest.mark.parametrize(
    ("message", "status", "code", "named"),
    [
        ("{not json", 400, "bad_request", "not valid JSON"),
        ("[1]", 400, "bad_request", "JSON object"),
        ('{"type": "launch"}', 400, "bad_request", "'launch'"),
        (json.dumps({"type": "chat", "backend": "demo-sse"}), 400, "bad_request", "'messages'"),
        (json.dumps({"type": "chat", **chat_body("nope")}), 404, "unknown_backend", "demo-grpc"),
        (
            json.dumps({"type": "chat", **chat_body(), "url": "http://example.com"}),
            400,
            "bad_request",
            "never a URL",
        ),
        (json.dumps({"type": "resume", "stream_id": "unknown-stream"}), 404, "unknown_stream", ""),
    ],
)
async def test_request_errors_keep_the_socket_open(
    message: str, status: int, code: str, named: str, ws_url: str, auth: dict[str, str]
) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(message)
        (error,) = await ws_events(ws)
        assert error.type == "request_error"
        assert (error.data["status"], error.data["code"]) == (status, code)
        assert named in error.data["message"]
        events = await chat(ws, chat_body())
        assert events[-1].type == "done"


async def test_cancel_without_a_stream_is_harmless(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "cancel"}))
        events = await chat(ws, chat_body())
        assert events[-1].type == "done"


async def test_tokens_arrive_as_they_are_made(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        events = await chat(ws, chat_body("demo-ws", "slow", 6))
    tokens = [e for e in events if e.type == "token"]
    arrivals = [e.at_ms for e in tokens]
    assert len(tokens) == 6
    assert 80.0 <= median_gap(arrivals) <= 250.0


async def test_no_permessage_deflate_by_default(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth, compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
