"""``jupyter streamchat show``: the raw frames of each door, as they arrive.

Each line is the arrival time (ms after the request was sent) and the frame
exactly as the client library handed it over: SSE and NDJSON lines, WebSocket
messages, gRPC messages in protobuf text format.  Plain clients only (httpx,
websockets, grpc.aio), so this shows the wire, not this package's decoders.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TextIO

import grpc
import grpc.aio
import httpx
import websockets
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from ..proto.service import GENERATE, pb
from .servers import DemoServers
from .stats import DOORS, Door

__all__ = ["show"]

_MAX_FRAMES: Final = 10_000
_IDLE_TIMEOUT_S: Final = 3.0
"""Give up on a door after this long without a frame (``stall`` faults never end)."""


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = time.perf_counter()

    def start(self, title: str) -> None:
        self.out.write(f"\n== {title}\n")
        self.out.flush()
        self.t0 = time.perf_counter()

    def __call__(self, frame: str) -> None:
        elapsed = 1000.0 * (time.perf_counter() - self.t0)
        self.out.write(f"{elapsed:+9.1f} ms  {frame}\n")
        self.out.flush()


async def _http_lines(printer: _Printer, url: str, body: dict[str, Any]) -> None:
    async with (
        httpx.AsyncClient(timeout=_IDLE_TIMEOUT_S) as client,
        client.stream("POST", url, json=body) as response,
    ):
        printer(f"HTTP {response.status_code} {response.headers.get('content-type', '')}")
        n = 0
        async for line in response.aiter_lines():
            if line:
                printer(line)
                n += 1
                if n >= _MAX_FRAMES:
                    break


async def _ws(printer: _Printer, url: str, body: dict[str, Any]) -> None:
    async with websockets.connect(url, open_timeout=_IDLE_TIMEOUT_S) as ws:
        await ws.send(json.dumps(body))
        for _ in range(_MAX_FRAMES):
            message = await asyncio.wait_for(ws.recv(), _IDLE_TIMEOUT_S)
            printer(message if isinstance(message, str) else repr(message))
            try:
                frame = json.loads(message)
            except ValueError:
                return  # not JSON: the malformed fault
            if not isinstance(frame, dict) or "token" not in frame:
                return  # done or error


async def _grpc(printer: _Printer, url: str, body: dict[str, Any]) -> None:
    request = pb.GenerateRequest(
        model=body["model"],
        messages=[pb.ChatMessage(role=m["role"], content=m["content"]) for m in body["messages"]],
        max_tokens=body["max_tokens"],
    )
    async with grpc.aio.insecure_channel(url.removeprefix("grpc://")) as channel:
        generate = channel.unary_stream(
            GENERATE,
            request_serializer=pb.GenerateRequest.SerializeToString,
            # Raw bytes: with a deserializer grpc.aio would log a bad frame and hand over None.
            response_deserializer=None,
        )
        call = generate(request)
        try:
            for _ in range(_MAX_FRAMES):
                chunk = await asyncio.wait_for(call.read(), _IDLE_TIMEOUT_S)
                if not isinstance(chunk, bytes):
                    break  # grpc.aio.EOF
                try:
                    message = pb.GenerateChunk.FromString(chunk)
                except DecodeError:
                    printer(f"{len(chunk)} bytes that are not a GenerateChunk: {chunk.hex(' ')}")
                    return
                printer(text_format.MessageToString(message, as_one_line=True))
        except grpc.aio.AioRpcError as exc:
            printer(f"status {exc.code().name}: {exc.details()}")
            return
        finally:
            call.cancel()
        printer("status OK")


async def show(
    *,
    model: str = "steady",
    prompt: str = "Tell me a story.",
    max_tokens: int = 12,
    doors: Sequence[Door] = DOORS,
    out: TextIO,
) -> int:
    """Start the demo in this process and print each door's frames; returns an exit code."""
    messages = [{"role": "user", "content": prompt}]
    failures = 0
    async with DemoServers() as demo:
        printer = _Printer(out)
        plans: dict[Door, tuple[str, Callable[..., Any], str, dict[str, Any]]] = {
            "openai": (
                "OpenAI SSE",
                _http_lines,
                f"{demo.openai}/chat/completions",
                {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True},
            ),
            "ollama": (
                "Ollama NDJSON",
                _http_lines,
                f"{demo.ollama}/api/chat",
                {"model": model, "messages": messages, "options": {"num_predict": max_tokens}},
            ),
            "websocket": (
                "JSON WebSocket",
                _ws,
                demo.websocket,
                {"model": model, "messages": messages, "max_tokens": max_tokens},
            ),
            "grpc": (
                "gRPC Generate",
                _grpc,
                demo.grpc,
                {"model": model, "messages": messages, "max_tokens": max_tokens},
            ),
        }
        for door in doors:
            title, run, url, body = plans[door]
            printer.start(f"{title}  {url}  model={model!r}")
            try:
                await run(printer, url, body)
            except asyncio.TimeoutError:
                printer(f"no frame for {_IDLE_TIMEOUT_S:g} s; giving up")
                failures += 1
            except (httpx.HTTPError, websockets.exceptions.WebSocketException, OSError) as exc:
                printer(f"connection ended: {type(exc).__name__}: {exc}")
                failures += 1
    return 1 if failures else 0
