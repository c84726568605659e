"""``v1/chat/completions`` and ``v1/models`` with the official ``openai`` client: it streams
from every configured backend through the bridge, WebSocket and gRPC ones included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from bridge_clients import BACKENDS, DOOR_OF, MESSAGES, door_idle_after, expected_text, median_gap

from jupyter_streamchat.demo.stats import DemoStats


@pytest.fixture
async def oai(base: str, auth: dict[str, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    token = auth["Authorization"].removeprefix("token ")
    client = openai.AsyncOpenAI(base_url=base + "v1", api_key=token, max_retries=0, timeout=30)
    async with client:
        yield client


def messages() -> Any:
    return MESSAGES


@pytest.mark.parametrize("backend", BACKENDS)
async def test_streams_from_every_backend(backend: str, oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model=f"{backend}/instant",
        messages=messages(),
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: list[str | None] = []
    usage = None
    ids = set()
    async for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == f"{backend}/instant"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason is not None:
                finish.append(choice.finish_reason)
    assert "".join(pieces) == expected_text(12)
    assert len(pieces) == 12
    assert finish == ["length"]
    assert usage is not None
    assert usage.completion_tokens == 12
    assert usage.total_tokens == usage.prompt_tokens + 12
    assert len(ids) == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_whole_reply_from_every_backend(backend: str, oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model=f"{backend}/instant", messages=messages(), max_tokens=9
    )
    assert completion.object == "chat.completion"
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == expected_text(9)
    assert choice.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 9


async def test_model_may_name_just_the_backend(oai: openai.AsyncOpenAI) -> None:
    """``demo-grpc`` alone: the backend's default model (the demo's ``steady``)."""
    completion = await oai.chat.completions.create(
        model="demo-grpc", messages=messages(), max_tokens=3
    )
    assert completion.choices[0].message.content == expected_text(3)


async def test_stream_arrives_incrementally(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="demo-ws/slow", messages=messages(), max_tokens=6, stream=True
    )
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() * 1000.0)
    assert len(arrivals) == 6
    assert 80.0 <= median_gap(arrivals) <= 250.0


async def test_models_list(oai: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in oai.models.list()]
    for backend in BACKENDS:
        assert backend in ids
    # Backends that list models offer backend/model ids too.
    assert "demo-sse/instant" in ids
    assert "demo-ndjson/slow" in ids


async def test_unknown_model_is_404_listing_backends(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as refusal:
        await oai.chat.completions.create(model="gpt-17", messages=messages())
    body = refusal.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_found"
    for backend in BACKENDS:
        assert backend in body["message"]


async def test_bad_request_is_400(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refusal:
        await oai.chat.completions.create(model="demo-sse", messages=[], max_tokens=2)
    assert "'messages'" in str(refusal.value)
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="demo-sse", messages=messages(), n=2)


async def test_upstream_failure_mid_stream_reaches_the_client(oai: openai.AsyncOpenAI) -> None:
    """``drop@3``: three tokens, then the backend cuts the connection."""
    stream = await oai.chat.completions.create(
        model="demo-sse/instant:drop@3", messages=messages(), max_tokens=10, stream=True
    )
    pieces: list[str] = []

    async def read() -> None:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError) as failure:
        await read()
    assert "".join(pieces) == expected_text(3)
    assert "closed the connection" in str(failure.value)


async def test_upstream_failure_of_a_whole_reply(oai: openai.AsyncOpenAI) -> None:
    """The backend answers 500 on every attempt: the client gets a server error."""
    with pytest.raises(openai.InternalServerError) as failure:
        await oai.chat.completions.create(
            model="demo-ndjson/instant:http500", messages=messages(), max_tokens=3
        )
    assert failure.value.status_code == 500
    assert "HTTP 500" in str(failure.value)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_closing_the_stream_closes_the_upstream(
    backend: str, oai: openai.AsyncOpenAI, counters: DemoStats
) -> None:
    door = counters[DOOR_OF[backend]]
    cancelled = door.cancelled
    stream = await oai.chat.completions.create(
        model=f"{backend}/steady", messages=messages(), max_tokens=2000, stream=True
    )
    seen = 0
    async for chunk in stream:
        seen += bool(chunk.choices and chunk.choices[0].delta.content)
        if seen == 2:
            break
    assert door.open_streams == 1
    t0 = time.perf_counter()
    await stream.close()
    await door_idle_after(counters, DOOR_OF[backend])
    assert time.perf_counter() - t0 < 0.1
    assert door.cancelled == cancelled + 1
