"""gRPC upstream (grpcio's asyncio API) for the shipped ``streamchat.proto``.

``Generate`` (server streaming) by default; ``grpc_method: "chat"`` uses the
bidirectional ``Chat``, whose close sends a ``Cancel`` message first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import grpc
from google.protobuf.message import DecodeError

from ..backends import Backend, redact_url
from ..decode.emitter import Emitter
from ..dialects.base import ChatMessage
from ..errors import (
    Cancelled,
    ConfigError,
    ConnectFailed,
    ProtocolError,
    StreamError,
    Timeout,
    UpstreamClosed,
    UpstreamError,
)
from ..events import Event, now_ms
from ..proto.service import CHAT, GENERATE, pb
from .base import Watchdog, parse_retry_after, ran_too_long

__all__ = ["grpc_attempt", "grpc_request", "new_channel"]

# gRPC status → the HTTP status a client would see through a gRPC-HTTP gateway.
_HTTP_EQUIVALENT: Final[dict[grpc.StatusCode, int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class _Malformed:
    """What the deserializer returns for bytes that are not a ``GenerateChunk``."""

    __slots__ = ("error", "size")

    def __init__(self, size: int, error: str) -> None:
        self.size = size
        self.error = error


def _deserialize(data: bytes) -> pb.GenerateChunk | _Malformed:
    try:
        return pb.GenerateChunk.FromString(data)
    except DecodeError as exc:
        return _Malformed(len(data), str(exc))


def _target(url: str) -> tuple[str, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("grpc", "grpcs") or not parts.hostname:
        raise ConfigError(f"gRPC url must look like grpc://host:port, got {redact_url(url)!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port or (443 if parts.scheme == "grpcs" else 50051)
    return f"{host}:{port}", parts.scheme == "grpcs"


def new_channel(url: str, max_message_bytes: int) -> grpc.aio.Channel:
    """A channel for one backend URL, in the running event loop."""
    target, secure = _target(url)
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_http_proxy", 0),
    ]
    if secure:
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
    return grpc.aio.insecure_channel(target, options=options)


def grpc_request(
    messages: Sequence[ChatMessage], *, model: str | None, options: Mapping[str, Any]
) -> pb.GenerateRequest:
    """The ``GenerateRequest`` for these messages and options."""
    request = pb.GenerateRequest(
        model=model or "",
        messages=[
            pb.ChatMessage(role=str(m.get("role", "user")), content=str(m.get("content", "")))
            for m in messages
        ],
        max_tokens=int(options.get("max_tokens") or 0),
    )
    if options.get("temperature") is not None:
        request.temperature = float(options["temperature"])
    if options.get("seed") is not None:
        request.seed = int(options["seed"])
    return request


def _status_error(
    exc: grpc.aio.AioRpcError, backend: Backend, where: str, emitter: Emitter
) -> StreamError:
    code = exc.code()
    details = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        if emitter.started:
            return UpstreamClosed(
                f"backend {where} ended the gRPC stream: UNAVAILABLE: {details}"
                + (" (partial text kept)" if emitter.text_seen else "")
            )
        return ConnectFailed(f"could not reach backend {where}: UNAVAILABLE: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        # The call's deadline is the backend's max_seconds (the only deadline set).
        return Timeout(f"{ran_too_long(backend, where)} (gRPC DEADLINE_EXCEEDED: {details})")
    if code == grpc.StatusCode.CANCELLED:
        return Cancelled(f"backend {where} cancelled the gRPC call: {details}")
    retry_after = None
    metadata: Any = exc.trailing_metadata() or ()  # (key, value) pairs; grpc's stubs say otherwise
    for key, value in metadata:
        if key == "retry-after":
            retry_after = parse_retry_after(value if isinstance(value, str) else value.decode())
    error = UpstreamError(
        f"backend {where} failed: gRPC {code.name}: {details}",
        retryable=code == grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    error.status = _HTTP_EQUIVALENT.get(code, 500)  # type: ignore[attr-defined]
    error.retry_after = retry_after  # type: ignore[attr-defined]
    return error


async def grpc_attempt(
    backend: Backend,
    request: pb.GenerateRequest,
    emitter: Emitter,
    channel: grpc.aio.Channel,
) -> AsyncGenerator[list[Event], None]:
    """Call ``Generate`` (or ``Chat``) once and map each chunk to events."""
    where = f"{backend.name} ({redact_url(backend.url)})"
    metadata = tuple((k.lower(), v) for k, v in backend.request_headers().items())
    call: Any
    requests: asyncio.Queue[pb.ChatClientMessage | None] | None = None
    if backend.grpc_method == "chat":
        requests = asyncio.Queue()
        requests.put_nowait(pb.ChatClientMessage(request=request))

        async def outgoing() -> AsyncGenerator[pb.ChatClientMessage, None]:
            assert requests is not None
            while (item := await requests.get()) is not None:
                yield item

        call = channel.stream_stream(
            CHAT,
            request_serializer=pb.ChatClientMessage.SerializeToString,
            response_deserializer=_deserialize,
        )(outgoing(), metadata=metadata, timeout=backend.max_seconds)
    else:
        call = channel.unary_stream(
            GENERATE,
            request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=_deserialize,
        )(request, metadata=metadata, timeout=backend.max_seconds)
    watchdog = Watchdog(backend.idle_timeout, call.cancel)
    finished = False
    try:
        index = 0
        async for chunk in call:
            watchdog.kick()
            emitter.now = now_ms()
            if emitter.first_byte_ms is None:
                emitter.first_byte_ms = emitter.now
            if isinstance(chunk, _Malformed):
                raise ProtocolError(
                    f"backend {where} sent gRPC message #{index} of {chunk.size} bytes "
                    f"that is not a GenerateChunk: {chunk.error}"
                )
            index += 1
            emit_ms = chunk.emit_ms or None
            emitter.start()
            if chunk.text:
                emitter.token(chunk.text, emit_ms=emit_ms)
            if chunk.done:
                if chunk.HasField("usage"):
                    usage = chunk.usage
                    emitter.usage(
                        prompt_tokens=usage.prompt_tokens,
                        completion_tokens=usage.completion_tokens,
                        total_tokens=usage.total_tokens or None,
                        emit_ms=emit_ms,
                    )
                emitter.done(finish_reason=chunk.finish_reason or None, emit_ms=emit_ms)
                finished = True
            yield emitter.drain()
            if finished:
                return
        emitter.now = now_ms()
        if not emitter.finished:
            raise UpstreamClosed(
                f"backend {where} ended the gRPC stream before its final chunk"
                + (" (partial text kept)" if emitter.text_seen else "")
            )
    except asyncio.CancelledError:
        if (
            watchdog.expired
            and (task := asyncio.current_task()) is not None
            and not (task.cancelling() if hasattr(task, "cancelling") else False)
        ):
            raise Timeout(
                f"backend {where} sent nothing for idle_timeout={backend.idle_timeout} s",
                retryable=not emitter.text_seen,
            ) from None
        raise
    except grpc.aio.AioRpcError as exc:
        if watchdog.expired:
            raise Timeout(
                f"backend {where} sent nothing for idle_timeout={backend.idle_timeout} s",
                retryable=not emitter.text_seen,
            ) from None
        raise _status_error(exc, backend, where, emitter) from None
    finally:
        watchdog.cancel()
        if requests is not None:
            if not finished:
                requests.put_nowait(pb.ChatClientMessage(cancel=pb.Cancel()))
            requests.put_nowait(None)
            if not finished:
                # Let the Cancel message reach the wire before the call is torn down.
                with contextlib.suppress(Exception):
                    await asyncio.sleep(0)
        if not finished:
            call.cancel()
