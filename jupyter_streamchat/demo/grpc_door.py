"""The gRPC door: ``jupyter_streamchat.v1.StreamChat`` (``proto/streamchat.proto``).

``Generate`` (server streaming) and ``Chat`` (bidirectional: the first client
message is the request, a later ``cancel`` ends the call with ``CANCELLED``)
both send ``GenerateChunk``s: ``{text, index, emit_ms}`` per token, then
``{done: true, finish_reason, usage, index, emit_ms}``.

Errors are statuses: ``INVALID_ARGUMENT`` (bad request, unknown profile, over
the ``max_tokens`` cap), ``RESOURCE_EXHAUSTED`` with trailing metadata
``retry-after: 1`` (``http429``), ``INTERNAL`` (``http500``).  Faults:
``drop`` ends the call with ``UNAVAILABLE``; ``malformed`` sends the bytes
``ff ff ff``, which do not parse as a ``GenerateChunk``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import grpc
import grpc.aio

from ..events import now_ms
from ..proto.service import SERVICE, pb
from .model import DemoModel, DemoRequest, Generation, Rejection, Reply

__all__ = ["MALFORMED_GRPC", "GrpcDoor", "serialize_chunk"]

MALFORMED_GRPC: Final = b"\xff\xff\xff"
"""An unterminated varint tag: no protobuf parser accepts it."""

_STATUS: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
}
_MALFORMED: Final = object()
_EOF: Final[object] = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs
_READER_EXIT_TIMEOUT_S: Final = 1.0

Context = grpc.aio.ServicerContext[Any, Any]


def serialize_chunk(message: object) -> bytes:
    """``GenerateChunk`` to bytes; the malformed-frame marker to ``ff ff ff``."""
    if message is _MALFORMED:
        return MALFORMED_GRPC
    assert isinstance(message, pb.GenerateChunk)
    return message.SerializeToString()


def _request(message: pb.GenerateRequest) -> DemoRequest:
    if message.max_tokens < 0:
        raise Rejection.bad_request(f"max_tokens must not be negative, got {message.max_tokens}")
    return DemoRequest(
        model=message.model,
        messages=tuple((m.role, m.content) for m in message.messages),
        max_tokens=message.max_tokens or None,
        seed=message.seed if message.HasField("seed") else None,
    )


class GrpcDoor:
    """A ``grpc.aio`` server serving the demo model."""

    def __init__(self, model: DemoModel) -> None:
        self.model = model
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def listen(self, host: str, port: int) -> int:
        limit = self.model.config.max_request_bytes
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit)])
        handlers = {
            "Generate": grpc.unary_stream_rpc_method_handler(
                self._generate,
                request_deserializer=pb.GenerateRequest.FromString,
                response_serializer=serialize_chunk,
            ),
            "Chat": grpc.stream_stream_rpc_method_handler(
                self._chat,
                request_deserializer=pb.ChatClientMessage.FromString,
                response_serializer=serialize_chunk,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"gRPC door could not listen on {address}")
        await server.start()
        self._server = server
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.2)
            self._server = None

    async def _admit(self, message: pb.GenerateRequest, context: Context) -> Reply:
        try:
            return self.model.admit("grpc", _request(message))
        except Rejection as r:
            trailing = () if r.retry_after is None else (("retry-after", f"{r.retry_after:g}"),)
            status = _STATUS.get(r.status, grpc.StatusCode.INTERNAL)
            await context.abort(status, r.message, trailing_metadata=trailing)

    async def _generate(self, message: pb.GenerateRequest, context: Context) -> None:
        reply = await self._admit(message, context)
        with self.model.open("grpc", reply) as generation:
            await self._stream(generation, context, cancel_requested=None)

    async def _chat(self, _requests: object, context: Context) -> None:
        first = await context.read()
        if first is _EOF or not first.HasField("request"):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first Chat message must be a request"
            )
        reply = await self._admit(first.request, context)
        cancel_requested = asyncio.Event()
        with self.model.open("grpc", reply) as generation:
            reader = asyncio.create_task(self._read_cancel(context, generation, cancel_requested))
            try:
                await self._stream(generation, context, cancel_requested)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(reader, _READER_EXIT_TIMEOUT_S)

    @staticmethod
    async def _read_cancel(context: Context, generation: Generation, flag: asyncio.Event) -> None:
        """Watch the client's side of a ``Chat`` for ``cancel`` (or its end)."""
        while True:  # one message per turn; ends at EOF, cancel, or when the call ends
            message = await context.read()
            if message is _EOF:
                return
            if message.HasField("cancel"):
                flag.set()
                generation.cancel("client")
                return

    async def _stream(
        self, generation: Generation, context: Context, cancel_requested: asyncio.Event | None
    ) -> None:
        # The call's task is cancelled when the client goes; this catches the rest.
        context.add_done_callback(lambda _: generation.cancel("client"))  # type: ignore[arg-type]
        reply = generation.reply
        while (token := await generation.next_token()) is not None:
            index, text = token
            await context.write(pb.GenerateChunk(text=text, index=index, emit_ms=now_ms()))
        if cancel_requested is not None and cancel_requested.is_set():
            await context.abort(grpc.StatusCode.CANCELLED, "cancelled by the client")
        if generation.gone == "shutdown":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the demo server is shutting down")
        if generation.gone is not None:
            return
        fault = reply.stream_fault
        if fault is not None:
            generation.fault(fault)
            await self._fault(generation, context, fault, cancel_requested)
            return
        usage = pb.Usage(**reply.usage(generation.generated))
        final = pb.GenerateChunk(
            done=True,
            finish_reason=reply.finish_reason,
            usage=usage,
            index=generation.generated,
            emit_ms=now_ms(),
        )
        await context.write(final)
        generation.complete()

    @staticmethod
    async def _fault(
        generation: Generation, context: Context, fault: str, cancel_requested: asyncio.Event | None
    ) -> None:
        if fault == "stall":
            await generation.wait_gone()
            if cancel_requested is not None and cancel_requested.is_set():
                await context.abort(grpc.StatusCode.CANCELLED, "cancelled by the client")
            if generation.gone != "client":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "stalled stream given up")
        elif fault == "drop":
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"connection dropped by fault injection after {generation.generated} tokens",
            )
        else:
            await context.write(_MALFORMED)
