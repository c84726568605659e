"""The fast plain-http upstream against real sockets: reuse, stale connections, errors, proxies."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable

import pytest

from jupyter_streamchat.api import stream
from jupyter_streamchat.backends import Backend
from jupyter_streamchat.demo.servers import DemoServers
from jupyter_streamchat.events import Done, Error, Token
from jupyter_streamchat.upstream import UpstreamPool
from jupyter_streamchat.upstream.h1 import use_fast_path

SSE_BODY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


class RawServer:
    """A loopback HTTP server answering every request with one canned response."""

    def __init__(self, respond: Callable[[int], bytes], close_after: bool = False) -> None:
        self.respond = respond
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                writer.write(self.respond(self.requests))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the handlers see their connections close

    @property
    def backend(self) -> Backend:
        return Backend.from_config(
            "raw", {"protocol": "openai", "url": f"http://127.0.0.1:{self.port}/v1", "retries": 0}
        )


def chunked(body: bytes, extra_headers: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
        + extra_headers
        + b"\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n\r\n"
    )


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    connections = UpstreamPool()
    yield connections
    await connections.aclose()


async def collect(backend: Backend, pool: UpstreamPool) -> list[object]:
    return [event async for event in stream(backend, "hi", pool=pool)]


async def test_keep_alive_connection_is_reused(pool: UpstreamPool) -> None:
    async with RawServer(lambda _: chunked(SSE_BODY)) as server:
        for _ in range(3):
            events = await collect(server.backend, pool)
            assert "".join(e.text for e in events if isinstance(e, Token)) == "Hello"
            assert isinstance(events[-1], Done)
        assert server.requests == 3
        assert server.connections == 1


async def test_stale_idle_connection_is_replaced_transparently(pool: UpstreamPool) -> None:
    # The server answers and closes: the pooled connection is dead when reused.
    async with RawServer(lambda _: chunked(SSE_BODY), close_after=True) as server:
        for _ in range(3):
            events = await collect(server.backend, pool)
            assert isinstance(events[-1], Done), events[-1]
        assert server.requests == 3


async def test_gzip_body_is_decoded(pool: UpstreamPool) -> None:
    async with RawServer(
        lambda _: chunked(gzip.compress(SSE_BODY), b"Content-Encoding: gzip\r\n")
    ) as server:
        events = await collect(server.backend, pool)
        assert "".join(e.text for e in events if isinstance(e, Token)) == "Hello"


async def test_http_error_body_and_retry_after(pool: UpstreamPool) -> None:
    body = b'{"error": {"message": "slow down"}}'
    response = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    async with RawServer(lambda _: response) as server:
        events = await collect(server.backend, pool)
        error = events[-1]
        assert isinstance(error, Error)
        assert (error.code, error.status, error.retry_after) == ("http_status", 429, 7.0)
        assert "slow down" in error.message


async def test_garbage_response_is_a_protocol_error(pool: UpstreamPool) -> None:
    async with RawServer(lambda _: b"SSH-2.0-OpenSSH_9.2\r\n\r\n") as server:
        events = await collect(server.backend, pool)
        error = events[-1]
        assert isinstance(error, Error)
        assert error.code == "protocol_error"
        assert "status line" in error.message


async def test_connection_refused_is_connect_failed(pool: UpstreamPool) -> None:
    async with RawServer(lambda _: b"") as server:
        backend = server.backend
    events = await collect(backend, pool)  # the server is gone now
    error = events[-1]
    assert isinstance(error, Error)
    assert error.code == "connect_failed"


async def test_idle_timeout_keeps_partial_text(pool: UpstreamPool, demo: DemoServers) -> None:
    backend = Backend.from_config(
        "demo", {"protocol": "openai", "url": demo.openai, "idle_timeout": 0.3, "retries": 0}
    )
    events = [e async for e in stream(backend, "hi", model="instant:stall@3", pool=pool)]
    error = events[-1]
    assert isinstance(error, Error)
    assert (error.code, error.partial) == ("timeout", True)
    assert "idle_timeout=0.3" in error.message
    assert sum(isinstance(e, Token) for e in events) == 3


def test_proxy_configuration_sends_plain_http_through_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_streamchat.upstream import h1

    h1._proxied.cache_clear()
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "localhost")
    try:
        assert not use_fast_path("http://10.1.2.3:8000/v1")
        assert use_fast_path("http://localhost:8000/v1")
        assert not use_fast_path("https://api.example.com/v1")
    finally:
        h1._proxied.cache_clear()
