"""The fast HTTP upstream: plain-``http://`` streaming over an ``asyncio.Protocol``.

Why not httpx here: profiled under load, httpx spent ~45 % of the bridge's CPU
per token (anyio cancel scopes, pause/resume-reading syscalls and h11 for every
read).  This path does the whole read in ``data_received``: HTTP framing
(:mod:`jupyter_streamchat.decode.h1`), SSE/NDJSON and the dialect, then wakes
the reader once per read, whatever the number of events.  Benchmarked in
``benchmarks/bench_bridge.py``.

It serves ``http://`` backends reached without a proxy (local model servers,
the demo, a LAN); ``https://`` and proxied backends go through httpx, which
owns TLS and proxy handling.  Idle connections are kept per host for reuse.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
import zlib
from collections.abc import AsyncGenerator, Callable
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

from ..backends import Backend, redact_url
from ..decode.emitter import Emitter
from ..decode.h1 import END, ResponseHead, ResponseParser
from ..decode.stream import DecoderLimits, StreamDecoder
from ..dialects.base import Dialect, Request
from ..errors import ConnectFailed, HTTPStatus, ProtocolError, StreamError, Timeout, UpstreamClosed
from ..events import Event, now_ms
from .base import Deadline, Watchdog, parse_retry_after
from .http import ERROR_BODY_BYTES, _error_detail

__all__ = ["H1Pool", "h1_attempt", "use_fast_path"]

USER_AGENT: Final = "jupyter_streamchat"
HIGH_WATER: Final = 4096
"""Events decoded but not yet taken by the reader before reading pauses."""
MAX_IDLE_PER_HOST: Final = 16


@lru_cache(maxsize=256)
def _proxied(host: str) -> bool:
    proxies = urllib.request.getproxies_environment()
    if "http" not in proxies and "all" not in proxies:
        return False
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # untyped in typeshed  # noqa: B009
    return not bypass(host)


def use_fast_path(url: str) -> bool:
    """Plain http:// with no proxy configured for the host."""
    parts = urlsplit(url)
    return parts.scheme == "http" and bool(parts.hostname) and not _proxied(parts.hostname or "")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.head: ResponseHead | None = None
        self.on_body: Callable[[bytes], None] | None = None
        self.held: list[bytes] = []  # body bytes that came before on_body was set
        self.ended = False
        self.closed = False
        self.error: StreamError | None = None
        self.received = 0
        self.watchdog: Watchdog | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.paused = False

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.watchdog is not None:
            self.watchdog.kick()
        try:
            for piece in self.parser.feed(data):
                if type(piece) is bytes:
                    if self.on_body is not None:
                        self.on_body(piece)
                    else:
                        self.held.append(piece)
                elif piece is END:
                    self.ended = True
                else:
                    assert isinstance(piece, ResponseHead)
                    self.head = piece
        except StreamError as exc:
            self.error = exc
            self.abort()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ended and self.error is None and self.head is not None:
            try:
                if self.parser.eof():
                    self.ended = True
            except StreamError:
                pass  # cut short: the reader reports upstream_closed
        self._wake()

    # -- reader side ---------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until something arrives (or the connection ends)."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def reusable(self) -> bool:
        return (
            self.ended and self.parser.keep_alive and not self.closed and self.error is None
            and not self.paused
        )  # fmt: skip

    def reset(self) -> None:
        self.parser = ResponseParser()
        self.head = None
        self.on_body = None
        self.held = []
        self.ended = False
        self.received = 0
        self.watchdog = None


class H1Pool:
    """Idle keep-alive connections per (host, port)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def connect(self, host: str, port: int, timeout: float) -> tuple[_Connection, bool]:
        """A connection to ``host:port`` and whether it was reused."""
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(_Connection, host, port), timeout)
        return conn, False

    def release(self, host: str, port: int, conn: _Connection) -> None:
        if conn.reusable():
            idle = self._idle.setdefault((host, port), [])
            if len(idle) < MAX_IDLE_PER_HOST:
                conn.reset()
                idle.append(conn)
                return
        if conn.transport is not None:
            conn.transport.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()


def _request_bytes(
    backend: Backend, url: str, request: Request, accept: str
) -> tuple[bytes, str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(request.body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "host": host if port == 80 else f"{host}:{port}",
        "user-agent": USER_AGENT,
        "accept": accept,
        "accept-encoding": "identity",
        "content-type": "application/json",
        "connection": "keep-alive",
    }
    headers.update({k.lower(): v for k, v in backend.request_headers().items()})
    headers["content-length"] = str(len(body))
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ProtocolError(f"header {name!r} contains a line break")
    head = (
        f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    )
    return head.encode("latin-1") + body, host, port


def _decompressor(head: ResponseHead) -> Callable[[bytes], bytes] | None:
    coding = (head.get("content-encoding") or "identity").lower()
    if coding == "identity":
        return None
    if coding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(47).decompress  # gzip or zlib header, detected
    raise ProtocolError(f"unsupported content-encoding {coding!r} (we asked for identity)")


async def h1_attempt(
    backend: Backend,
    url: str,
    request: Request,
    dialect: Dialect,
    emitter: Emitter,
    pool: H1Pool,
    limits: DecoderLimits,
) -> AsyncGenerator[list[Event], None]:
    """POST once over a pooled connection; decode the body as it arrives."""
    where = f"{backend.name} ({redact_url(backend.url)})"
    accept = "application/x-ndjson" if backend.framing == "ndjson" else "text/event-stream"
    payload, host, port = _request_bytes(backend, url, request, accept)
    deadline = Deadline(backend, where)
    conn: _Connection | None = None
    for fresh in (False, True):
        try:
            conn, reused = await pool.connect(host, port, backend.connect_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            limit = backend.connect_timeout
            raise Timeout(
                f"could not connect to backend {where} within connect_timeout={limit} s"
            ) from None
        except OSError as exc:
            raise ConnectFailed(
                f"could not connect to backend {where}: {exc.strerror or exc}"
            ) from None
        assert conn.transport is not None
        conn.transport.write(payload)
        timed_out = False

        def expire(c: _Connection = conn) -> None:
            nonlocal timed_out
            timed_out = True
            c.abort()

        conn.watchdog = Watchdog(backend.idle_timeout, expire)
        while conn.head is None and conn.error is None and not conn.closed:
            await conn.wait()
        if conn.head is None and conn.error is None and reused and conn.received == 0 and not fresh:
            conn.watchdog.cancel()
            continue  # the server had closed this idle connection: once more, on a new one
        break
    assert conn is not None
    assert conn.watchdog is not None
    watchdog = conn.watchdog
    try:
        if conn.error is not None:
            raise conn.error
        if conn.head is None:
            if timed_out:
                raise Timeout(
                    f"backend {where} sent nothing for idle_timeout={backend.idle_timeout} s"
                )
            raise UpstreamClosed(f"backend {where} closed the connection before answering")
        head = conn.head
        if head.status >= 300:
            body = b"".join(conn.held)
            conn.on_body = lambda data: conn.held.append(data)
            while (
                not conn.ended
                and not conn.closed
                and conn.error is None
                and len(body) < ERROR_BODY_BYTES
            ):
                await conn.wait()
                body = b"".join(conn.held)
            raise HTTPStatus(
                head.status,
                f"backend {where} answered HTTP {head.status}: {_error_detail(body)}",
                retry_after=parse_retry_after(head.get("retry-after")),
            )
        decompress = _decompressor(head)
        decoder = StreamDecoder(dialect, emitter, framing=backend.framing, limits=limits)
        emitter.now = now_ms()
        emitter.start()
        yield emitter.drain()
        events: list[Event] = []
        transport = conn.transport
        assert transport is not None

        def on_body(data: bytes) -> None:
            now = now_ms()
            if emitter.first_byte_ms is None:
                emitter.first_byte_ms = now
            if decompress is not None:
                data = decompress(data)
            events.extend(decoder.feed(data, now))
            if len(events) > HIGH_WATER and not conn.paused:
                conn.paused = True
                transport.pause_reading()

        for data in conn.held:
            on_body(data)
        conn.held = []
        conn.on_body = on_body
        while True:
            if events:
                batch = events[:]
                events.clear()
                if conn.paused:
                    conn.paused = False
                    transport.resume_reading()
                yield batch
                # Reads go on while the reader holds a batch: the final event may still
                # be waiting in ``events``.
                if decoder.finished and not events:
                    return
                deadline.check(now_ms())
                continue
            if conn.error is not None:
                raise conn.error
            if conn.ended:
                yield decoder.eof(now_ms())
                return
            if conn.closed:
                if timed_out:
                    raise Timeout(
                        f"backend {where} sent nothing for idle_timeout={backend.idle_timeout} s",
                        retryable=not emitter.text_seen,
                    )
                raise UpstreamClosed(
                    f"backend {where} closed the connection mid-stream"
                    + (" (partial text kept)" if emitter.text_seen else "")
                )
            await conn.wait()
    except zlib.error as exc:
        raise ProtocolError(f"backend {where} sent a corrupt compressed body: {exc}") from None
    finally:
        watchdog.cancel()
        conn.on_body = None
        pool.release(host, port, conn)
