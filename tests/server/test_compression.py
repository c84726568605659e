"""Compression of the browser leg: gzip / br for SSE negotiated by ``Accept-Encoding`` and
flushed per event (so tokens still arrive one by one), permessage-deflate for the WebSocket.
Each test runs under each ``compression`` policy."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from bridge_clients import Reply, chat_body, chat_sse, expected_text, median_gap, ws_events
from websockets.asyncio.client import connect

TIMING = ("recv_ms", "send_ms", "emit_ms", "stream_id")
# policy -> [(Accept-Encoding, expected Content-Encoding)]
NEGOTIATION: dict[str, list[tuple[str, str | None]]] = {
    "gzip": [
        ("gzip", "gzip"),
        ("gzip, deflate, br", "gzip"),
        ("br", None),
        ("identity", None),
        ("gzip;q=0", None),
    ],
    "br": [
        ("br", "br"),
        ("gzip, br", "br"),
        ("gzip", "gzip"),  # br policy falls back to gzip when that is all the client takes
        ("identity", None),
    ],
    "auto": [
        ("gzip, deflate, br", "br"),
        ("gzip", "gzip"),
        ("br", "br"),
        ("deflate", None),
        ("identity", None),
    ],
}


@pytest.fixture(params=sorted(NEGOTIATION))
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def streamchat_config(policy: str) -> dict[str, Any]:
    return {
        "demo": True,
        "discovery": False,
        "compression": policy,
        "websocket_compression": True,
    }


def meaning(reply: Reply) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.data.items() if k not in TIMING} for e in reply.events]


async def test_accept_encoding_negotiation(
    policy: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    for accept, coding in NEGOTIATION[policy]:
        reply = await chat_sse(
            client, base + "api/chat", chat_body(), {**auth, "Accept-Encoding": accept}
        )
        assert reply.status == 200
        assert reply.headers.get("content-encoding") == coding, accept
        if coding:
            assert "Accept-Encoding" in reply.headers["vary"]
        # httpx decoded whatever was chosen: the stream reads the same either way.
        assert reply.types[-1] == "done"
        assert reply.text == expected_text(8)


async def test_compressed_stream_is_identical_and_smaller(
    policy: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    body = chat_body("demo-sse", "instant", 400)
    plain = await chat_sse(client, base + "api/chat", body, {**auth, "Accept-Encoding": "identity"})
    packed = await chat_sse(
        client, base + "api/chat", body, {**auth, "Accept-Encoding": "gzip, br"}
    )
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == ("gzip" if policy == "gzip" else "br")
    assert meaning(packed) == meaning(plain)
    assert packed.text == expected_text(400)
    assert plain.wire_bytes == len(plain.body)
    assert len(packed.body) >= 0.9 * len(plain.body)
    # Measured on the wire: at most half the bytes.
    assert packed.wire_bytes < 0.5 * plain.wire_bytes, (packed.wire_bytes, plain.wire_bytes)


async def test_compressed_events_still_arrive_one_by_one(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    headers = {**auth, "Accept-Encoding": "gzip, br"}
    reply = await chat_sse(client, base + "api/chat", chat_body("demo-sse", "slow", 6), headers)
    assert reply.headers["content-encoding"] in ("gzip", "br")
    arrivals = [t.at_ms for t in reply.tokens]
    assert len(arrivals) == 6
    assert len(set(arrivals)) == 6, "each token was flushed through the compressor at once"
    assert 80.0 <= median_gap(arrivals) <= 250.0


async def test_websocket_permessage_deflate(ws_url: str, auth: dict[str, str]) -> None:
    async with connect(ws_url, additional_headers=auth, compression="deflate") as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.send(json.dumps({"type": "chat", **chat_body("demo-ws", "instant", 30)}))
        events = await ws_events(ws)
    assert events[-1].type == "done"
    assert "".join(e.data["text"] for e in events if e.type == "token") == expected_text(30)
