"""Under a non-root ``base_url`` (as JupyterHub serves a user's server) every route lives
at ``{base_url}streamchat/`` and nothing answers at the root."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from bridge_clients import (
    chat_body,
    chat_sse,
    check_continuity,
    expected_text,
    seq_after,
    ws_events,
)
from websockets.asyncio.client import connect

BASE_URL = "/user/x/"


@pytest.fixture
def jp_base_url() -> str:
    return BASE_URL


async def test_routes_live_under_the_base_url(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], jp_http_port: int
) -> None:
    assert base == f"http://127.0.0.1:{jp_http_port}{BASE_URL}streamchat/"
    assert (await client.get(base + "api/clock", headers=auth)).status_code == 200
    assert (await client.get(base + "api/backends", headers=auth)).status_code == 200
    root = f"http://127.0.0.1:{jp_http_port}/streamchat/api/clock"
    assert (await client.get(root, headers=auth)).status_code == 404


async def test_chat_over_sse(client: httpx.AsyncClient, base: str, auth: dict[str, str]) -> None:
    reply = await chat_sse(client, base + "api/chat", chat_body("demo-grpc", max_tokens=6), auth)
    assert reply.types[-1] == "done"
    assert reply.text == expected_text(6)


async def test_chat_over_websocket(ws_url: str, auth: dict[str, str]) -> None:
    assert f"{BASE_URL}streamchat/api/chat/ws" in ws_url
    async with connect(ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "chat", **chat_body("demo-ws", max_tokens=6)}))
        events = await ws_events(ws)
    assert events[-1].type == "done"


async def test_resume(client: httpx.AsyncClient, base: str, auth: dict[str, str]) -> None:
    body = chat_body("demo-sse", "steady", 20, resumable=True)
    first = await chat_sse(client, base + "api/chat", body, auth, stop=seq_after(3))
    headers = {**auth, "Last-Event-ID": str(first.last_seq)}
    url = base + f"api/chat/{first.stream_id}"
    second = await chat_sse(client, url, None, headers, method="GET")
    check_continuity(second.events, after=first.last_seq)
    assert first.text + second.text == expected_text(20)


async def test_openai_client(base: str, auth: dict[str, str]) -> None:
    token = auth["Authorization"].removeprefix("token ")
    async with openai.AsyncOpenAI(base_url=base + "v1", api_key=token, max_retries=0) as oai:
        stream = await oai.chat.completions.create(
            model="demo-ndjson/instant",
            messages=[{"role": "user", "content": "Tell me about the White Rabbit."}],
            max_tokens=5,
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == expected_text(5)
        assert "demo-ndjson" in [m.id async for m in oai.models.list()]
