"""WebSocket upstream (``websockets``, permessage-deflate): one JSON message per frame."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from ..backends import Backend, redact_url
from ..decode.emitter import Emitter
from ..decode.stream import DecoderLimits, StreamDecoder
from ..dialects.base import Dialect, Request
from ..errors import (
    ConnectFailed,
    HTTPStatus,
    LimitExceeded,
    ProtocolError,
    StreamError,
    Timeout,
    UpstreamClosed,
)
from ..events import Event, now_ms
from .base import Deadline, Watchdog, parse_retry_after

__all__ = ["websocket_attempt"]

CLOSE_TIMEOUT = 1.0
"""Seconds to wait for the backend's close frame when we close: cancel must be prompt."""

_HANDSHAKE_HEADERS = frozenset(
    {"host", "upgrade", "connection", "user-agent", "sec-websocket-key",
     "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)  # fmt: skip


class _RedactHeaders(logging.Filter):
    """``websockets`` logs every handshake header at DEBUG; ours carry API keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.msg == "> %s: %s"
            and isinstance(args, tuple)
            and len(args) == 2
            and str(args[0]).lower() not in _HANDSHAKE_HEADERS
        ):
            record.args = (args[0], "[redacted]")
        return True


WIRE_LOG = logging.getLogger("websockets.client.streamchat")
"""The logger handed to ``websockets`` for upstream connections (header values redacted)."""
WIRE_LOG.addFilter(_RedactHeaders())


async def websocket_attempt(
    backend: Backend,
    request: Request,
    dialect: Dialect,
    emitter: Emitter,
    limits: DecoderLimits,
) -> AsyncGenerator[list[Event], None]:
    """Open the socket, send the request message, decode each message."""
    where = f"{backend.name} ({redact_url(backend.url)})"
    decoder = StreamDecoder(dialect, emitter, framing="message", limits=limits)
    deadline = Deadline(backend, where)
    try:
        async with connect(
            backend.url,
            compression="deflate",
            open_timeout=backend.connect_timeout,
            close_timeout=CLOSE_TIMEOUT,
            max_size=limits.max_message_bytes,
            additional_headers=backend.request_headers(),
            logger=WIRE_LOG,
        ) as ws:
            await ws.send(json.dumps(request.body, ensure_ascii=False, separators=(",", ":")))
            emitter.now = now_ms()
            emitter.start()
            yield emitter.drain()
            watchdog = Watchdog(backend.idle_timeout, ws.transport.abort)
            try:
                while True:
                    try:
                        message = await ws.recv()
                    except ConnectionClosedOK:
                        yield decoder.eof(now_ms())
                        return
                    watchdog.kick()
                    now = now_ms()
                    if emitter.first_byte_ms is None:
                        emitter.first_byte_ms = now
                    if events := decoder.feed_message(message, now):
                        yield events
                    if decoder.finished:
                        return
                    deadline.check(now)
            except ConnectionClosed as exc:
                if watchdog.expired:
                    raise Timeout(
                        f"backend {where} sent nothing for idle_timeout={backend.idle_timeout} s",
                        retryable=not emitter.text_seen,
                    ) from None
                if exc.sent is not None and exc.sent.code == 1009:  # we refused a too-big message
                    raise LimitExceeded(
                        "WebSocket message", limits.max_message_bytes + 1,
                        "max_message_bytes", limits.max_message_bytes,
                    ) from None  # fmt: skip
                raise UpstreamClosed(
                    f"backend {where} closed the WebSocket mid-stream ({exc})"
                    + (" (partial text kept)" if emitter.text_seen else "")
                ) from None
            finally:
                watchdog.cancel()
    except StreamError:
        raise
    except InvalidStatus as exc:
        status = exc.response.status_code
        detail = exc.response.body.decode("utf-8", "replace")[:300] if exc.response.body else ""
        raise HTTPStatus(
            status,
            f"backend {where} refused the WebSocket with HTTP {status}: {detail}".rstrip(": "),
            retry_after=parse_retry_after(exc.response.headers.get("Retry-After")),
        ) from None
    except InvalidURI as exc:
        raise ConnectFailed(f"backend {where}: invalid WebSocket URL: {exc.msg}") from None
    except InvalidHandshake as exc:
        raise ProtocolError(f"backend {where}: WebSocket handshake failed: {exc}") from None
    except (TimeoutError, asyncio.TimeoutError):
        raise Timeout(
            f"could not open the WebSocket to backend {where} "
            f"within connect_timeout={backend.connect_timeout} s"
        ) from None
    except OSError as exc:
        raise ConnectFailed(f"could not connect to backend {where}: {exc}") from None
