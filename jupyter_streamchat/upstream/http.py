"""HTTP streaming upstream (httpx): SSE or NDJSON bodies, any HTTP dialect."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, Final

import httpx

from ..backends import Backend, redact_url
from ..decode.emitter import Emitter
from ..decode.stream import DecoderLimits, StreamDecoder
from ..dialects.base import Dialect, Request
from ..errors import ConnectFailed, HTTPStatus, StreamError, Timeout, UpstreamClosed
from ..events import Event, now_ms
from .base import Deadline, parse_retry_after

__all__ = ["http_attempt", "new_client"]

ERROR_BODY_BYTES: Final = 16 << 10
"""How much of a non-2xx response body is read to explain the error."""


def new_client() -> httpx.AsyncClient:
    """A client for streaming: no overall timeout (set per request), keep-alive pooled."""
    return httpx.AsyncClient(
        timeout=None,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        follow_redirects=False,
    )


def join_url(base: str, path: str) -> str:
    """``path`` appended to the backend's base URL."""
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


def _error_detail(body: bytes) -> str:
    """The human part of an error body: ``error.message`` when JSON, else the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:300]
    return text[:300]


async def http_attempt(
    backend: Backend,
    request: Request,
    dialect: Dialect,
    emitter: Emitter,
    client: httpx.AsyncClient,
    limits: DecoderLimits,
) -> AsyncGenerator[list[Event], None]:
    """POST the request once and decode the streamed body."""
    url = join_url(backend.url, request.path)
    where = f"{backend.name} ({redact_url(backend.url)})"
    headers = backend.request_headers()
    headers.setdefault(
        "accept", "application/x-ndjson" if backend.framing == "ndjson" else "text/event-stream"
    )
    # Per-event flushing upstream matters more than bytes; compressed bodies would be buffered.
    headers["accept-encoding"] = "identity"
    timeout = httpx.Timeout(
        connect=backend.connect_timeout,
        read=backend.idle_timeout,
        write=backend.connect_timeout,
        pool=backend.connect_timeout,
    )
    decoder = StreamDecoder(dialect, emitter, framing=backend.framing, limits=limits)
    deadline = Deadline(backend, where)
    try:
        async with client.stream(
            "POST", url, json=request.body, headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 300:
                body = b""
                async for part in response.aiter_raw():
                    body += part
                    if len(body) >= ERROR_BODY_BYTES:
                        break
                raise HTTPStatus(
                    response.status_code,
                    f"backend {where} answered HTTP {response.status_code}: {_error_detail(body)}",
                    retry_after=parse_retry_after(response.headers.get("retry-after")),
                )
            emitter.now = now_ms()
            emitter.start()
            yield emitter.drain()
            async for chunk in response.aiter_raw():
                now = now_ms()
                if emitter.first_byte_ms is None:
                    emitter.first_byte_ms = now
                if events := decoder.feed(chunk, now):
                    yield events
                if decoder.finished:
                    return
                deadline.check(now)
            yield decoder.eof(now_ms())
    except StreamError:
        raise
    except httpx.ConnectTimeout:
        limit = backend.connect_timeout
        raise Timeout(
            f"could not connect to backend {where} within connect_timeout={limit} s"
        ) from None
    except httpx.ReadTimeout:
        raise Timeout(
            f"backend {where} sent nothing for idle_timeout={backend.idle_timeout} s",
            retryable=not emitter.text_seen,
        ) from None
    except httpx.TimeoutException as exc:
        raise Timeout(f"backend {where}: {type(exc).__name__}") from None
    except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.ProxyError) as exc:
        raise ConnectFailed(f"could not connect to backend {where}: {exc}") from None
    except httpx.RemoteProtocolError as exc:
        if not emitter.started:
            raise UpstreamClosed(f"backend {where} closed the connection: {exc}") from None
        raise UpstreamClosed(
            f"backend {where} closed the connection mid-stream: {exc}"
            + (" (partial text kept)" if emitter.text_seen else "")
        ) from None
    except (httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
        raise UpstreamClosed(
            f"connection to backend {where} failed mid-stream: {type(exc).__name__} {exc}"
        ) from None
    except httpx.HTTPError as exc:
        raise ConnectFailed(f"backend {where}: {type(exc).__name__}: {exc}") from None
