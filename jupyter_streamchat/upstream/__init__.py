"""Upstream adapters: open a stream of events from any configured backend.

:func:`open_stream` picks the adapter for the backend's protocol, wraps it in
retries and returns an :class:`UpstreamStream`.  Connections (an httpx client,
gRPC channels) are pooled in an :class:`UpstreamPool`, one per event loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import grpc
import httpx

from ..backends import Backend
from ..decode.emitter import Emitter
from ..decode.stream import DecoderLimits
from ..dialects import get_dialect
from ..dialects.base import ChatMessage
from ..events import Event
from .base import RetryPolicy, UpstreamStream, run_with_retries
from .grpc import grpc_attempt, grpc_request, new_channel
from .h1 import H1Pool, h1_attempt, use_fast_path
from .http import http_attempt, join_url, new_client
from .websocket import websocket_attempt

__all__ = ["UpstreamPool", "UpstreamStream", "open_stream"]


class UpstreamPool:
    """Pooled upstream connections, bound to the event loop that made them."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}
        self.h1 = H1Pool()

    def http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client()
        return self._client

    def grpc_channel(self, url: str, max_message_bytes: int) -> grpc.aio.Channel:
        key = (url, max_message_bytes)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = new_channel(url, max_message_bytes)
        return channel

    async def aclose(self) -> None:
        """Close every pooled connection."""
        self.h1.close()
        client, self._client = self._client, None
        channels, self._channels = list(self._channels.values()), {}
        if client is not None:
            await client.aclose()
        for channel in channels:
            await channel.close(grace=None)


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UpstreamPool] = (
    weakref.WeakKeyDictionary()
)


def default_pool() -> UpstreamPool:
    """The pool of the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = UpstreamPool()
    return pool


def open_stream(
    backend: Backend,
    messages: Sequence[ChatMessage],
    *,
    model: str | None = None,
    options: Mapping[str, Any] | None = None,
    pool: UpstreamPool | None = None,
    limits: DecoderLimits | None = None,
    retries: int | None = None,
) -> UpstreamStream:
    """A stream of events for one chat request to ``backend``.

    Must be called with an event loop running.  Nothing is sent until the
    stream is first iterated.
    """
    options = dict(options or {})
    model = model or backend.model
    limits = limits or DecoderLimits()
    policy = RetryPolicy(
        backend.retries if retries is None else retries,
        backend.backoff_initial,
        backend.backoff_max,
    )
    emitter = Emitter(model=model, backend=backend.name, protocol=backend.protocol)

    if backend.protocol == "grpc":
        request = grpc_request(messages, model=model, options=options)

        def attempt(out: Emitter) -> AsyncGenerator[list[Event], None]:
            channel = (pool or default_pool()).grpc_channel(backend.url, limits.max_message_bytes)
            return grpc_attempt(backend, request, out, channel)

    else:
        config = dict(backend.mapping)
        fast = use_fast_path(backend.url)
        if backend.protocol in ("http", "websocket"):
            config.setdefault(
                "framing", "message" if backend.protocol == "websocket" else backend.framing
            )

        def attempt(out: Emitter) -> AsyncGenerator[list[Event], None]:
            dialect = get_dialect(backend.dialect, **config)
            request = dialect.request(messages, model=model, options=options)
            if backend.protocol == "websocket":
                return websocket_attempt(backend, request, dialect, out, limits)
            connections = pool or default_pool()
            url = join_url(backend.url, request.path)
            if fast:
                return h1_attempt(backend, url, request, dialect, out, connections.h1, limits)
            return http_attempt(backend, request, dialect, out, connections.http_client(), limits)

    return UpstreamStream(run_with_retries(attempt, emitter, policy), backend.name, emitter)
