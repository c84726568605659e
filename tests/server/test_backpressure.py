"""Backpressure: a client that keeps up gets every token as its own write; a slow reader gets
tokens merged (``chunks`` > 1, seq may jump) with the text still exact, and the bridge stops
reading the backend instead of buffering without bound."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bridge_clients import (
    BACKENDS,
    Reply,
    chat_body,
    chat_sse,
    check_continuity,
    expected_text,
    read_sse,
    ws_events,
)
from tornado.iostream import IOStream
from websockets.asyncio.client import connect

MAX_PENDING = 16 << 10
LINK_BUFFER = 16 << 10
MANY = 4000  # instant: as fast as the demo door can make them


@pytest.fixture
def streamchat_config() -> dict[str, Any]:
    return {"demo": True, "discovery": False, "max_pending_bytes": MAX_PENDING}


@pytest.fixture
async def slow_client(
    jp_http_port: int, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a slow link: small socket buffers at both ends of its connection.

    Loopback TCP grows its buffers to megabytes, more than a whole reply, so a reader that
    stops would never push back; a real network link buffers tens of kilobytes.  The
    server's end is shrunk when the bridge turns on TCP_NODELAY for the stream.
    """
    set_nodelay = IOStream.set_nodelay

    def shrink(self: IOStream, value: bool) -> None:
        set_nodelay(self, value)
        sock = self.socket
        if value and sock is not None and sock.getsockname()[1] == jp_http_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)

    monkeypatch.setattr(IOStream, "set_nodelay", shrink)
    transport = httpx.AsyncHTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, LINK_BUFFER)]
    )
    async with httpx.AsyncClient(transport=transport, timeout=60) as c:
        yield c


async def live_tokens(client: httpx.AsyncClient, base: str, auth: dict[str, str]) -> int:
    """Tokens the bridge has read from the backend so far (``api/streams``)."""
    (live,) = (await client.get(base + "api/streams", headers=auth)).json()["live"]
    return int(live["tokens"])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_slow_reader_gets_merged_tokens_and_bounded_buffering(
    backend: str,
    slow_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
) -> None:
    body = chat_body(backend, "instant", MANY)
    async with slow_client.stream("POST", base + "api/chat", json=body, headers=auth) as response:
        reply = Reply(response.status_code, response.headers)
        await read_sse(response, reply, lambda e: e.type == "token")
        # The reader stops reading for a while: the bridge must stop reading the backend
        # too, rather than hold the whole reply in memory for it.
        await asyncio.sleep(0.4)
        early = await live_tokens(client, base, auth)
        await asyncio.sleep(0.4)
        late = await live_tokens(client, base, auth)
        assert early == late < MANY, (early, late)
        await read_sse(response, reply, chunk_size=4096)
    assert reply.types[-1] == "done", reply.events[-1].data["message"]
    check_continuity(reply.events)
    merged = [t for t in reply.tokens if t.data["chunks"] > 1]
    assert merged, "a slow reader gets merged tokens"
    assert sum(t.data["chunks"] for t in reply.tokens) == MANY
    seqs = [e.data["seq"] for e in reply.events]
    assert seqs[-1] == MANY + 2  # start, MANY tokens, usage, done: nothing lost
    assert len(seqs) < MANY + 3  # ...though fewer events carried them
    assert reply.text == expected_text(MANY)
    recent = (await client.get(base + "api/streams", headers=auth)).json()["recent"][-1]
    assert recent["coalesced_writes"] > 0


@pytest.mark.parametrize(("profile", "n"), [("instant", 300), ("fast", 100)])
async def test_client_that_keeps_up_gets_every_token_alone(
    profile: str, n: int, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    reply = await chat_sse(client, base + "api/chat", chat_body("demo-sse", profile, n), auth)
    assert reply.types[-1] == "done"
    assert [t.data["chunks"] for t in reply.tokens] == [1] * n
    assert [e.data["seq"] for e in reply.events] == list(range(len(reply.events)))
    recent = (await client.get(base + "api/streams", headers=auth)).json()["recent"][-1]
    assert recent["coalesced_writes"] == 0


@pytest.mark.parametrize("backend", ["demo-ws", "demo-grpc"])
async def test_websocket_client_that_keeps_up_gets_every_token_alone(
    backend: str, ws_url: str, auth: dict[str, str]
) -> None:
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **chat_body(backend, "instant", 300)}))
        events = await ws_events(ws)
    tokens = [e for e in events if e.type == "token"]
    assert [t.data["chunks"] for t in tokens] == [1] * 300
    assert [e.data["seq"] for e in events] == list(range(len(events)))
