"""The four demo doors over real loopback sockets: shapes, determinism, pacing, faults, counters.

Each door is driven by a plain client (httpx, websockets, grpc.aio) that records
every frame with its arrival time, so the assertions are about what a client sees.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio
import httpx
import pytest
import websockets
from google.protobuf.message import DecodeError
from websockets.exceptions import ConnectionClosed

from jupyter_streamchat.demo import PROFILES, DemoServers, Door
from jupyter_streamchat.demo.model import DemoRequest
from jupyter_streamchat.demo.text import request_seed
from jupyter_streamchat.events import now_ms
from jupyter_streamchat.proto.service import CHAT, GENERATE, pb

MESSAGES = [{"role": "user", "content": "Tell me about the White Rabbit."}]
DOORS: list[Door] = ["openai", "ollama", "websocket", "grpc"]
CAP = 1000


@pytest.fixture
async def demo() -> AsyncIterator[DemoServers]:
    async with DemoServers(max_tokens_cap=CAP) as servers:
        yield servers


# -- clients ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a client saw: tokens with arrival times, then a final frame or an error."""

    tokens: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """ms after the request was sent."""
    emit_ms: list[float] = field(default_factory=list)
    final: dict[str, Any] | None = None
    error: str | None = None
    """``status 429``, ``dropped``, ``malformed``, ``grpc UNAVAILABLE``, ``ws rate_limited``…"""
    detail: Any = None
    retry_after: str | None = None
    frames: list[Any] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def token(self, t0: float, text: str, emit: float) -> None:
        self.arrivals.append(1000.0 * (time.perf_counter() - t0))
        self.tokens.append(text)
        self.emit_ms.append(emit)


Streamer = Callable[..., Coroutine[Any, Any, Outcome]]


async def _http_stream(
    url: str,
    body: dict[str, Any],
    out: Outcome,
    on_line: Callable[[str], None],
    close_after: int | None,
) -> Outcome:
    """POST and feed each line to ``on_line``; a connection cut at any point is ``dropped``."""
    try:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            client.stream("POST", url, json=body) as response,
        ):
            if response.status_code != 200:
                await response.aread()
                out.error, out.detail = f"status {response.status_code}", response.json()
                out.retry_after = response.headers.get("retry-after")
                return out
            async for line in response.aiter_lines():
                on_line(line)
                if close_after is not None and len(out.tokens) >= close_after:
                    return out  # leaving the block closes the connection mid-body
    except httpx.RemoteProtocolError as exc:
        out.error, out.detail = "dropped", str(exc)
    return out


async def openai_stream(
    demo: DemoServers,
    model: str,
    *,
    max_tokens: int | None = None,
    close_after: int | None = None,
    include_usage: bool = True,
) -> Outcome:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": True}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    out = Outcome()
    final: dict[str, Any] = {}
    t0 = time.perf_counter()

    def on_line(line: str) -> None:
        if not line:
            return
        assert line.startswith("data: "), line
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            out.final = final
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            out.error, out.detail = "malformed", line
            return
        out.frames.append(chunk)
        if chunk.get("usage"):
            final["usage"] = chunk["usage"]
        for choice in chunk["choices"]:
            if choice["finish_reason"] is not None:
                final["finish_reason"] = choice["finish_reason"]
            elif "content" in choice["delta"] and "role" not in choice["delta"]:
                out.token(t0, choice["delta"]["content"], chunk["emit_ms"])

    return await _http_stream(f"{demo.openai}/chat/completions", body, out, on_line, close_after)


async def ollama_stream(
    demo: DemoServers,
    model: str,
    *,
    max_tokens: int | None = None,
    close_after: int | None = None,
) -> Outcome:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if max_tokens is not None:
        body["options"] = {"num_predict": max_tokens}
    out = Outcome()
    t0 = time.perf_counter()

    def on_line(line: str) -> None:
        try:
            frame = json.loads(line)
        except ValueError:
            out.error, out.detail = "malformed", line
            return
        out.frames.append(frame)
        if frame["done"]:
            out.final = {
                "finish_reason": frame["done_reason"],
                "usage": {
                    "prompt_tokens": frame["prompt_eval_count"],
                    "completion_tokens": frame["eval_count"],
                },
            }
        else:
            out.token(t0, frame["message"]["content"], frame["emit_ms"])

    return await _http_stream(f"{demo.ollama}/api/chat", body, out, on_line, close_after)


async def ws_stream(
    demo: DemoServers,
    model: str,
    *,
    max_tokens: int | None = None,
    close_after: int | None = None,
) -> Outcome:
    request: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    out = Outcome()
    async with websockets.connect(demo.websocket) as ws:
        t0 = time.perf_counter()
        await ws.send(json.dumps(request))
        try:
            await _ws_read(ws, out, t0, close_after)
        except ConnectionClosed as exc:
            out.error = "dropped" if exc.rcvd is None else f"closed {exc.rcvd.code}"
            out.detail = str(exc)
    return out


async def _ws_read(
    ws: websockets.ClientConnection, out: Outcome, t0: float, close_after: int | None
) -> None:
    for _ in range(CAP + 2):
        message = await asyncio.wait_for(ws.recv(), 10)
        try:
            frame = json.loads(message)
        except ValueError:
            out.error, out.detail = "malformed", message
            return
        out.frames.append(frame)
        if "token" in frame:
            out.token(t0, frame["token"], frame["emit_ms"])
            if close_after is not None and len(out.tokens) >= close_after:
                return
        elif frame.get("done"):
            out.final = {"finish_reason": frame["finish_reason"], "usage": frame["usage"]}
            return
        else:
            out.error, out.detail = f"ws {frame['error']['code']}", frame["error"]
            return


def _grpc_request(model: str, max_tokens: int | None) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        model=model,
        messages=[pb.ChatMessage(role=m["role"], content=m["content"]) for m in MESSAGES],
        max_tokens=max_tokens or 0,
    )


async def _grpc_read(call: Any, out: Outcome, t0: float, close_after: int | None) -> None:
    try:
        for _ in range(CAP + 2):
            raw = await asyncio.wait_for(call.read(), 10)
            if not isinstance(raw, bytes):
                return  # EOF
            try:
                chunk = pb.GenerateChunk.FromString(raw)
            except DecodeError:
                out.error, out.detail = "malformed", raw
                continue
            out.frames.append(chunk)
            if chunk.done:
                usage = chunk.usage
                out.final = {
                    "finish_reason": chunk.finish_reason,
                    "usage": {
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens,
                    },
                }
            else:
                assert chunk.index == len(out.tokens)
                out.token(t0, chunk.text, chunk.emit_ms)
                if close_after is not None and len(out.tokens) >= close_after:
                    call.cancel()
                    return
    except grpc.aio.AioRpcError as exc:
        out.error, out.detail = f"grpc {exc.code().name}", exc.details()
        metadata: Any = exc.trailing_metadata() or ()  # grpc-stubs type this loosely
        trailing = {str(key): value for key, value in metadata}
        value = trailing.get("retry-after")
        out.retry_after = None if value is None else str(value)


async def grpc_stream(
    demo: DemoServers,
    model: str,
    *,
    max_tokens: int | None = None,
    close_after: int | None = None,
) -> Outcome:
    out = Outcome()
    async with grpc.aio.insecure_channel(demo.grpc.removeprefix("grpc://")) as channel:
        # Raw bytes: grpc.aio would log and hand over None for an undecodable frame.
        generate = channel.unary_stream(
            GENERATE,
            request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=None,
        )
        t0 = time.perf_counter()
        call = generate(_grpc_request(model, max_tokens))
        await _grpc_read(call, out, t0, close_after)
    return out


STREAMERS: dict[Door, Streamer] = {
    "openai": openai_stream,
    "ollama": ollama_stream,
    "websocket": ws_stream,
    "grpc": grpc_stream,
}


def expected_text(n: int | None = None, *, complete: bool = False) -> str:
    from jupyter_streamchat.demo.text import generate

    seed = request_seed([(m["role"], m["content"]) for m in MESSAGES])
    return "".join(generate(seed, n or 64, complete=complete or n is None))


async def wait_closed(demo: DemoServers, door: Door, limit_s: float = 1.0) -> float:
    """Seconds until ``open_streams`` of ``door`` is back to 0 (polled every ms)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    # Polling is the point: this measures how soon the counter drops.
    while demo.counters[door].open_streams and loop.time() - t0 < limit_s:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    return loop.time() - t0


def median_gap(out: Outcome) -> float:
    return statistics.median(b - a for a, b in zip(out.arrivals, out.arrivals[1:], strict=False))


# -- every door: shape and determinism ------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
async def test_full_stream(demo: DemoServers, door: Door) -> None:
    before = now_ms()
    out = await STREAMERS[door](demo, "instant", max_tokens=20)
    assert out.error is None, out.detail
    assert len(out.tokens) == 20
    assert out.text == expected_text(20)
    assert out.final is not None
    assert out.final["finish_reason"] == "length"
    assert out.final["usage"]["completion_tokens"] == 20
    assert out.final["usage"]["prompt_tokens"] > 0
    assert out.emit_ms == sorted(out.emit_ms)
    assert before <= out.emit_ms[0] <= out.emit_ms[-1] <= now_ms()
    stats = demo.counters[door]
    assert (stats.requests, stats.completed, stats.tokens, stats.open_streams) == (1, 1, 20, 0)


async def test_same_text_on_every_door_and_profile(demo: DemoServers) -> None:
    outs = await asyncio.gather(
        openai_stream(demo, "instant"),
        ollama_stream(demo, "fast"),
        ws_stream(demo, ""),
        # The stall takes the place of the final frame: leave after the last token.
        grpc_stream(demo, "instant:stall@100", close_after=64),
        openai_stream(demo, "instant"),
    )
    texts = {out.text for out in outs}
    assert texts == {expected_text()}
    assert len(outs[0].tokens) == 64
    assert outs[0].final is not None
    assert outs[0].final["finish_reason"] == "stop"
    assert outs[0].text.endswith(".")


# -- door specifics --------------------------------------------------------------------------


async def test_openai_frames_are_openai_chunks(demo: DemoServers) -> None:
    body = {"model": "instant", "messages": MESSAGES, "stream": True, "max_tokens": 2}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{demo.openai}/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert len(chunks) == 4  # role, 2 tokens, finish; no usage chunk unless asked
    for chunk in chunks:
        assert set(chunk) == {"id", "object", "created", "model", "choices", "emit_ms"}
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "instant"
        assert chunk["id"] == chunks[0]["id"]
        assert chunk["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert chunks[1]["choices"][0]["delta"] == {"content": expected_text(2)[:-1].split(" ")[0]}
    assert chunks[3]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]


async def test_openai_usage_chunk_and_null_usage(demo: DemoServers) -> None:
    out = await openai_stream(demo, "instant", max_tokens=3, include_usage=True)
    assert all("usage" in f for f in out.frames)
    assert [f["usage"] is None for f in out.frames] == [True] * 5 + [False]
    assert out.frames[-1]["choices"] == []
    assert out.frames[-1]["usage"]["total_tokens"] == out.frames[-1]["usage"]["prompt_tokens"] + 3


async def test_openai_not_streamed_and_models(demo: DemoServers) -> None:
    async with httpx.AsyncClient() as client:
        body = {"model": "instant", "messages": MESSAGES, "max_tokens": 7, "seed": 3}
        whole = (await client.post(f"{demo.openai}/chat/completions", json=body)).json()
        models = (await client.get(f"{demo.openai}/models")).json()
    assert whole["object"] == "chat.completion"
    assert whole["choices"][0]["message"]["role"] == "assistant"
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 7
    assert isinstance(whole["emit_ms"], float)
    assert whole["choices"][0]["message"]["content"] != expected_text(7), "seed changes text"
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == list(PROFILES)


async def test_ollama_frames_generate_and_tags(demo: DemoServers) -> None:
    out = await ollama_stream(demo, "instant", max_tokens=3)
    assert set(out.frames[0]) == {"model", "created_at", "message", "done", "emit_ms"}
    assert out.frames[0]["message"]["role"] == "assistant"
    assert out.frames[0]["created_at"].endswith("Z")
    last = out.frames[-1]
    assert last["message"] == {"role": "assistant", "content": ""}
    assert last["done_reason"] == "length"
    assert last["eval_count"] == 3
    assert last["total_duration"] >= 0
    assert "emit_ms" in last
    prompt = MESSAGES[0]["content"]
    async with httpx.AsyncClient() as client:
        body = {
            "model": "instant",
            "prompt": prompt,
            "stream": False,
            "options": {"num_predict": 3},
        }
        generated = (await client.post(f"{demo.ollama}/api/generate", json=body)).json()
        body = {"model": "instant", "messages": MESSAGES, "stream": False}
        chat = (await client.post(f"{demo.ollama}/api/chat", json=body)).json()
        tags = (await client.get(f"{demo.ollama}/api/tags")).json()
    assert generated["response"] == out.text, "/api/generate and /api/chat agree"
    assert generated["done"] is True
    assert chat["message"]["content"] == expected_text()
    assert chat["done_reason"] == "stop"
    assert [(m["name"], m["model"]) for m in tags["models"]] == [(p, p) for p in PROFILES]


async def test_websocket_requests_follow_one_another_and_cancel(demo: DemoServers) -> None:
    async with websockets.connect(demo.websocket) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        for _ in range(2):
            out = Outcome()
            await ws.send(json.dumps({"model": "instant", "messages": MESSAGES, "max_tokens": 5}))
            await _ws_read(ws, out, time.perf_counter(), None)
            assert out.text == expected_text(5)
        # Bad input gets an error frame; the connection stays usable.
        await ws.send("not json")
        assert json.loads(await ws.recv())["error"]["code"] == "bad_request"
        await ws.send(json.dumps({"model": "steady", "messages": MESSAGES}))
        await ws.send(json.dumps({"model": "steady", "messages": MESSAGES}))
        assert json.loads(await ws.recv())["error"]["code"] == "busy"
        first = json.loads(await ws.recv())
        assert first["index"] == 0
        await ws.send(json.dumps({"cancel": True}))
        done: dict[str, Any] = {}
        for _ in range(10):  # a token already on its way may come first
            done = json.loads(await asyncio.wait_for(ws.recv(), 2))
            if "done" in done:
                break
        assert done["finish_reason"] == "cancelled"
        assert 1 <= done["usage"]["completion_tokens"] <= 4
    assert demo.counters["websocket"].cancelled == 1


async def test_grpc_chat_streams_and_cancels(demo: DemoServers) -> None:
    async with grpc.aio.insecure_channel(demo.grpc.removeprefix("grpc://")) as channel:
        chat = channel.stream_stream(
            CHAT,
            request_serializer=pb.ChatClientMessage.SerializeToString,
            response_deserializer=pb.GenerateChunk.FromString,
        )
        call = chat(None)
        await call.write(pb.ChatClientMessage(request=_grpc_request("instant", 4)))
        chunks: list[Any] = [await call.read() for _ in range(5)]
        assert "".join(c.text for c in chunks) == expected_text(4)
        assert chunks[-1].done
        assert chunks[-1].finish_reason == "length"
        assert chunks[-1].usage.completion_tokens == 4
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK

        call = chat(None)
        await call.write(pb.ChatClientMessage(request=_grpc_request("steady", None)))
        first: Any = await call.read()
        assert first.index == 0
        await call.write(pb.ChatClientMessage(cancel=pb.Cancel()))
        code = grpc.StatusCode.OK
        for _ in range(100):  # a token already on its way may come first
            try:
                await call.read()
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                break
        assert code == grpc.StatusCode.CANCELLED
    await wait_closed(demo, "grpc")
    assert demo.counters["grpc"].cancelled == 1
    assert demo.counters["grpc"].completed == 1


# -- pacing ----------------------------------------------------------------------------------

PACING = [
    # door, profile, tokens, (ttft low, high) ms, (median gap low, high) ms
    ("openai", "steady", 30, (200, 600), (14, 30)),
    ("ollama", "slow", 8, (500, 1000), (100, 160)),
    ("websocket", "fast", 150, (5, 250), (3, 9)),
    ("grpc", "steady", 30, (200, 600), (14, 30)),
]


@pytest.mark.parametrize(("door", "profile", "n", "ttft", "gap"), PACING)
async def test_pacing(
    demo: DemoServers,
    door: Door,
    profile: str,
    n: int,
    ttft: tuple[float, float],
    gap: tuple[float, float],
) -> None:
    out = await STREAMERS[door](demo, profile, max_tokens=n)
    assert len(out.tokens) == n
    assert ttft[0] <= out.arrivals[0] <= ttft[1]
    assert gap[0] <= median_gap(out) <= gap[1]
    # Absolute schedule: the whole reply takes ttft + (n-1) gaps, not more.
    expected = PROFILES[profile].ttft_ms + (n - 1) * PROFILES[profile].gap_ms
    assert out.arrivals[-1] - out.arrivals[0] < (expected - PROFILES[profile].ttft_ms) * 1.5 + 100


async def test_jittery_pacing_follows_its_seeded_schedule(demo: DemoServers) -> None:
    n = 80
    seed = request_seed([(m["role"], m["content"]) for m in MESSAGES])
    due = list(itertools.islice(PROFILES["jittery"].offsets(seed), n))
    due_gaps = [b - a for a, b in itertools.pairwise(due)]
    assert max(due_gaps) > 100, "a pause"
    assert sum(g < 3 for g in due_gaps) >= 2, "a burst"
    out = await openai_stream(demo, "jittery", max_tokens=n)
    gaps = [b - a for a, b in itertools.pairwise(out.arrivals)]
    assert 10 <= statistics.median(gaps) <= 45
    # Each token arrives near its absolute due time (client-side: plus a constant offset).
    lag = [arrived - d for arrived, d in zip(out.arrivals, due, strict=True)]
    assert statistics.median(abs(x - statistics.median(lag)) for x in lag) < 15
    assert max(gaps) > 80, "the longest scheduled pause shows"


async def test_instant_is_fast(demo: DemoServers) -> None:
    out = await grpc_stream(demo, "instant", max_tokens=500)
    assert len(out.tokens) == 500
    assert out.arrivals[-1] < 3000


async def test_concurrent_fast_streams_keep_their_pace(demo: DemoServers) -> None:
    outs = await asyncio.gather(*(openai_stream(demo, "fast", max_tokens=100) for _ in range(10)))
    for out in outs:
        assert len(out.tokens) == 100
    assert statistics.median(median_gap(out) for out in outs) < 10


# -- faults ----------------------------------------------------------------------------------

HTTP_ERROR_KEYS = {
    "openai": lambda d: d["error"]["message"],
    "ollama": lambda d: d["error"],
    "websocket": lambda d: d["message"],
    "grpc": lambda d: d,
}


def error_message(door: Door, out: Outcome) -> str:
    message = HTTP_ERROR_KEYS[door](out.detail)
    assert isinstance(message, str)
    return message


@pytest.mark.parametrize("door", DOORS)
async def test_http500(demo: DemoServers, door: Door) -> None:
    out = await STREAMERS[door](demo, "instant:http500")
    expected = {
        "openai": "status 500",
        "ollama": "status 500",
        "websocket": "ws server_error",
        "grpc": "grpc INTERNAL",
    }[door]
    assert out.error == expected
    assert "fault injection" in error_message(door, out)
    if door == "openai":
        assert out.detail["error"]["type"] == "server_error"
    assert demo.counters[door].faults == {"http500": 1}
    assert demo.counters[door].open_streams == 0


async def test_websocket_http500_closes_the_connection(demo: DemoServers) -> None:
    async with websockets.connect(demo.websocket) as ws:
        await ws.send(json.dumps({"model": "instant:http500", "messages": MESSAGES}))
        assert json.loads(await ws.recv())["error"]["code"] == "server_error"
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1011


@pytest.mark.parametrize("door", DOORS)
async def test_http429(demo: DemoServers, door: Door) -> None:
    out = await STREAMERS[door](demo, "instant:http429")
    expected = {
        "openai": "status 429",
        "ollama": "status 429",
        "websocket": "ws rate_limited",
        "grpc": "grpc RESOURCE_EXHAUSTED",
    }[door]
    assert out.error == expected
    if door == "websocket":
        assert out.detail["retry_after"] == 1
    else:
        assert out.retry_after == "1"
    if door == "openai":
        assert out.detail["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("fault", ["http500", "http429"])
async def test_fail_first_n_attempts_then_succeed(
    demo: DemoServers, door: Door, fault: str
) -> None:
    model = f"instant:{fault}@2"
    outs = [await STREAMERS[door](demo, model, max_tokens=5) for _ in range(4)]
    assert [o.error is None for o in outs] == [False, False, True, True]
    assert outs[2].text == outs[3].text == expected_text(5)
    assert demo.counters[door].faults == {fault: 2}
    # Another request (other model string) has its own count.
    assert (await STREAMERS[door](demo, f"fast:{fault}@2", max_tokens=5)).error is not None


DROPPED = {
    "openai": "dropped",
    "ollama": "dropped",
    "websocket": "dropped",
    "grpc": "grpc UNAVAILABLE",
}


@pytest.mark.parametrize("door", DOORS)
async def test_drop(demo: DemoServers, door: Door) -> None:
    out = await STREAMERS[door](demo, "instant:drop@3", max_tokens=10)
    assert out.tokens == list(out.tokens[:3])
    assert len(out.tokens) == 3
    assert out.final is None
    assert out.error == DROPPED[door], out.detail
    await wait_closed(demo, door)
    stats = demo.counters[door]
    assert stats.faults == {"drop": 1}
    assert (stats.failed, stats.completed, stats.open_streams) == (1, 0, 0)


@pytest.mark.parametrize("door", ["openai", "ollama"])
async def test_drop_cuts_the_chunked_body(demo: DemoServers, door: Door) -> None:
    """On the wire: the socket closes with no terminating zero-length chunk."""
    body: dict[str, Any] = {"model": "instant:drop@1", "messages": MESSAGES, "stream": True}
    path = "/v1/chat/completions" if door == "openai" else "/api/chat"
    port = urlsplit(demo.openai if door == "openai" else demo.ollama).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    raw = await asyncio.wait_for(reader.read(), 5)  # until EOF
    writer.close()
    await writer.wait_closed()
    assert b"Transfer-Encoding: chunked" in raw
    assert not raw.endswith(b"0\r\n\r\n")
    assert b"[DONE]" not in raw
    assert b'"done":true' not in raw


@pytest.mark.parametrize("door", DOORS)
async def test_malformed(demo: DemoServers, door: Door) -> None:
    out = await STREAMERS[door](demo, "instant:malformed@3", max_tokens=10)
    assert len(out.tokens) == 3
    assert out.error == "malformed"
    assert out.final is None
    expected = {
        "openai": 'data: {"choices": [',
        "ollama": '{"model":"demo","message":{',
        "websocket": 'this is not JSON {"token": ',
        "grpc": b"\xff\xff\xff",
    }[door]
    assert out.detail == expected
    assert demo.counters[door].faults == {"malformed": 1}


@pytest.mark.parametrize("door", DOORS)
async def test_unknown_profile_lists_the_valid_ones(demo: DemoServers, door: Door) -> None:
    out = await STREAMERS[door](demo, "turbo:drop@1")
    assert out.error in {"status 400", "ws bad_request", "grpc INVALID_ARGUMENT"}
    message = error_message(door, out)
    assert "unknown profile 'turbo'" in message
    assert "valid profiles: fast, instant, jittery, slow, steady" in message
    assert "http500" in message
    assert "malformed@N" in message
    out = await STREAMERS[door](demo, "steady:boom")
    assert "unknown fault 'boom'" in error_message(door, out)


@pytest.mark.parametrize("door", DOORS)
async def test_over_the_cap(demo: DemoServers, door: Door) -> None:
    out = await STREAMERS[door](demo, "instant", max_tokens=CAP + 1)
    assert out.error in {"status 400", "ws bad_request", "grpc INVALID_ARGUMENT"}
    assert f"cap of {CAP}, got {CAP + 1}" in error_message(door, out)


# -- counters --------------------------------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("model", ["slow", "instant:stall@2"])
async def test_client_leaving_closes_the_stream_at_once(
    demo: DemoServers, door: Door, model: str
) -> None:
    out = await STREAMERS[door](demo, model, close_after=2)
    assert len(out.tokens) == 2
    # STREAMERS returned: the client's connection/call is closed now.
    elapsed = await wait_closed(demo, door)
    assert elapsed < 0.1, f"open_streams took {elapsed * 1000:.0f} ms to fall back to 0"
    stats = demo.counters[door]
    assert (stats.open_streams, stats.cancelled, stats.completed) == (0, 1, 0)
    assert stats.tokens_after_cancel <= 2
    assert 2 <= stats.tokens <= 4
    assert stats.faults == ({"stall": 1} if "stall" in model else {})


async def test_stall_holds_the_connection_open(demo: DemoServers) -> None:
    async with websockets.connect(demo.websocket) as ws:
        await ws.send(json.dumps({"model": "instant:stall@2", "messages": MESSAGES}))
        frames = [json.loads(await ws.recv()) for _ in range(2)]
        assert [f["index"] for f in frames] == [0, 1]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        assert demo.counters["websocket"].open_streams == 1
        # A cancel ends the stall like any stream.
        await ws.send(json.dumps({"cancel": True}))
        assert json.loads(await ws.recv())["finish_reason"] == "cancelled"


async def test_stats_pages(demo: DemoServers) -> None:
    await openai_stream(demo, "instant", max_tokens=4)
    await grpc_stream(demo, "instant:http429")
    async with httpx.AsyncClient() as client:
        own = (await client.get(demo.stats)).json()
        shared = (await client.get(demo.openai.removesuffix("/v1") + "/stats")).json()
    for page in (own, shared):
        assert set(page["doors"]) == set(DOORS)
        assert page["doors"]["openai"] == {
            "requests": 1,
            "open_streams": 0,
            "completed": 1,
            "cancelled": 0,
            "failed": 0,
            "tokens": 4,
            "tokens_after_cancel": 0,
            "faults": {},
        }
        assert page["doors"]["grpc"]["faults"] == {"http429": 1}
        assert page["now_ms"] >= page["started_ms"]


# -- lifecycle -------------------------------------------------------------------------------


async def test_urls_and_backend_configs(demo: DemoServers) -> None:
    assert demo.openai.startswith("http://127.0.0.1:")
    assert demo.openai.endswith("/v1")
    assert demo.websocket.startswith("ws://127.0.0.1:")
    assert demo.websocket.endswith("/")
    assert demo.grpc.startswith("grpc://127.0.0.1:")
    assert demo.stats.endswith("/stats")
    models = ["instant", "steady", "slow", "jittery", "fast"]
    assert demo.backend_configs() == {
        "demo-sse": {"protocol": "openai", "url": demo.openai, "models": models},
        "demo-ndjson": {"protocol": "ollama", "url": demo.ollama, "models": models},
        "demo-ws": {"protocol": "websocket", "url": demo.websocket, "models": models},
        "demo-grpc": {"protocol": "grpc", "url": demo.grpc, "models": models},
    }
    assert demo.urls()["backends"] == demo.backend_configs()


async def test_stop_ends_open_streams() -> None:
    servers = DemoServers(default_profile="slow")
    await servers.start()
    tasks = [asyncio.create_task(STREAMERS[door](servers, "slow")) for door in DOORS]
    for _ in range(2000):
        if servers.model.live == 4:
            break
        await asyncio.sleep(0.001)
    assert servers.model.live == 4
    t0 = time.perf_counter()
    await servers.stop()
    assert time.perf_counter() - t0 < 2
    outs = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert all(out.final is None for out in outs)
    assert servers.counters.open_streams == 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = servers.openai


async def test_default_profile_and_request_model(demo: DemoServers) -> None:
    request = DemoRequest("", (("user", "x"),))
    assert demo.model.admit("openai", request).profile.name == "steady"
    async with DemoServers(default_profile="instant", default_max_tokens=5) as other:
        out = await ws_stream(other, "")
        assert len(out.tokens) == 5
        assert out.final is not None
        assert out.final["finish_reason"] == "stop"
