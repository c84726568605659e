"""``POST api/chat``: a reply as ``text/event-stream``, from every demo backend.

What a browser sees: the headers that keep proxies from buffering, one SSE
event per stream event (``id`` = seq, ``event`` = type, JSON ``data`` with
timing stamps), the right text, and tokens arriving as they are made.
"""

from __future__ import annotations

import socket
import statistics

import httpx
import pytest
from bridge_clients import (
    BACKENDS,
    Reply,
    chat_body,
    chat_sse,
    check_continuity,
    expected_text,
    median_gap,
)
from tornado.iostream import IOStream


def assert_well_formed(reply: Reply, backend: str, model: str, max_tokens: int) -> None:
    """The stream a user should get for a reply that ran to its end."""
    assert reply.status == 200, reply.body
    assert reply.types[0] == "start"
    assert reply.types[-1] == "done"
    assert set(reply.types[1:-1]) <= {"token", "usage"}
    for event in reply.events:
        assert event.id == str(event.data["seq"]), "SSE id is the event's seq"
        assert event.type == event.data["type"]
        assert isinstance(event.data["recv_ms"], float)
        assert event.data["send_ms"] >= event.data["recv_ms"]
    assert [e.data["seq"] for e in reply.events] == list(range(len(reply.events)))
    check_continuity(reply.events)
    start = reply.events[0].data
    assert start["stream_id"] == reply.stream_id
    assert (start["backend"], start["model"]) == (backend, model)
    for token in reply.tokens:
        assert token.data["chunks"] == 1
        # The demo doors stamp every frame; the bridge received it afterwards.
        assert token.data["emit_ms"] <= token.data["recv_ms"]
    assert reply.text == expected_text(max_tokens)
    (usage,) = [e.data for e in reply.events if e.type == "usage"]
    assert usage["completion_tokens"] == max_tokens
    assert reply.events[-1].data.get("finish_reason") == "length"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_backend_streams_the_reply(
    backend: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    reply = await chat_sse(client, base + "api/chat", chat_body(backend, max_tokens=12), auth)
    assert_well_formed(reply, backend, "instant", 12)
    headers = reply.headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-accel-buffering"] == "no"
    assert "no-cache" in headers["cache-control"]
    assert len(reply.stream_id) >= 8
    # The headers go out at once, with a comment naming the stream.
    assert reply.comments[0] == f"stream {reply.stream_id}"


async def test_every_backend_gives_the_same_text(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    texts = set()
    for backend in BACKENDS:
        reply = await chat_sse(client, base + "api/chat", chat_body(backend, max_tokens=20), auth)
        texts.add(reply.text)
    assert texts == {expected_text(20)}


@pytest.mark.parametrize(
    "accept", ["*/*", "application/json", "text/html,application/xhtml+xml", "", None]
)
async def test_any_accept_header_gets_an_event_stream(
    accept: str | None, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    headers = dict(auth)
    request = client.build_request("POST", base + "api/chat", json=chat_body(), headers=headers)
    if accept is None:
        del request.headers["accept"]
    else:
        request.headers["accept"] = accept
    response = await client.send(request)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: done" in response.text


async def test_streaming_socket_has_nodelay(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCP_NODELAY is really on at the server's end of the browser connection while it streams."""
    streams: list[IOStream] = []
    set_nodelay = IOStream.set_nodelay

    def record(self: IOStream, value: bool) -> None:
        set_nodelay(self, value)
        streams.append(self)

    monkeypatch.setattr(IOStream, "set_nodelay", record)
    body = chat_body(model="slow", max_tokens=2)  # still streaming while we look
    async with client.stream("POST", base + "api/chat", json=body, headers=auth) as response:
        assert response.status_code == 200
        network = response.extensions["network_stream"]
        local_port = network.get_extra_info("client_addr")[1]
        ours = [
            s for s in streams if s.socket is not None and s.socket.getpeername()[1] == local_port
        ]
        assert ours, "the handler never set TCP_NODELAY on the browser connection"
        assert all(s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in ours)


async def test_tokens_arrive_as_they_are_made(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    """``slow`` is ~600 ms to the first token, then one every 125 ms: the client sees that
    pacing, not one burst at the end."""
    reply = await chat_sse(
        client, base + "api/chat", chat_body("demo-sse", "slow", max_tokens=8), auth
    )
    assert reply.text == expected_text(8)
    arrivals = [t.at_ms for t in reply.tokens]
    assert len(set(arrivals)) == len(arrivals), "every token arrived in its own read"
    assert 80.0 <= median_gap(arrivals) <= 250.0
    assert arrivals[-1] - arrivals[0] >= 0.6 * 7 * 125
    assert arrivals[0] - reply.sent_ms >= 400.0, "the first token waited for the profile's TTFT"
    # The bridge forwarded each token straight away.
    delays = [t.data["send_ms"] - t.data["recv_ms"] for t in reply.tokens]
    assert statistics.median(delays) < 20.0


async def test_no_compression_by_default(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    headers = {**auth, "Accept-Encoding": "gzip, br"}
    reply = await chat_sse(client, base + "api/chat", chat_body(), headers)
    assert reply.status == 200
    assert "content-encoding" not in reply.headers
    assert reply.text == expected_text(8)


async def test_client_chosen_stream_id(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    body = chat_body(stream_id="my-stream_0001")
    reply = await chat_sse(client, base + "api/chat", body, auth)
    assert reply.stream_id == "my-stream_0001"
    assert reply.events[0].data["stream_id"] == "my-stream_0001"


async def test_backend_rejection_is_an_error_event(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    """A model the backend refuses: the stream starts, then ends with the backend's reason."""
    reply = await chat_sse(client, base + "api/chat", chat_body(model="no-such-profile"), auth)
    assert reply.status == 200
    error = reply.events[-1]
    assert error.type == "error"
    assert error.data["code"] == "http_status"
    assert error.data["status"] == 400
    assert "valid profiles" in error.data["message"]
    assert error.data["partial"] is False
