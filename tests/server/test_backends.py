"""``GET api/backends``: every backend with protocol, dialect, models and health — and never
a secret.  Backends configured with keys, header values and URL credentials are used
through every route; no response, header or log line may show any of them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from io import StringIO
from typing import Any

import httpx
import openai
import pytest
from bridge_clients import BACKENDS, chat_body, chat_sse, expected_text, wait_until, ws_events
from websockets.asyncio.client import connect

from jupyter_streamchat.demo.servers import DemoServers
from jupyter_streamchat.server.app import StreamChatApp

SECRETS = {
    "url_password": "pw-SECRET-1f7a",
    "api_key": "sk-SECRET-2b8c",
    "header": "hdr-SECRET-3c9d",
    "env_key": "sk-SECRET-4dae",
    "ws_header": "SECRET-5ebf",
    "grpc_key": "sk-SECRET-6fc0",
    "dead_key": "sk-SECRET-7ad1",
}
ENV_VAR = "STREAMCHAT_TEST_KEY"


@pytest.fixture
async def upstream() -> AsyncIterator[DemoServers]:
    """A second set of demo doors, standing in for real backends that want credentials."""
    async with DemoServers() as servers:
        yield servers


@pytest.fixture
def streamchat_config(upstream: DemoServers, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(ENV_VAR, SECRETS["env_key"])
    openai_url = upstream.openai.replace("http://", f"http://alice:{SECRETS['url_password']}@")
    return {
        "demo": True,
        "discovery": False,
        "backends": {
            "secret-sse": {
                "protocol": "openai",
                "url": openai_url,
                "api_key": SECRETS["api_key"],
                "headers": {"X-Org-Token": SECRETS["header"]},
                "model": "instant",
            },
            "secret-env": {"protocol": "ollama", "url": upstream.ollama, "api_key_env": ENV_VAR},
            "secret-ws": {
                "protocol": "websocket",
                "url": upstream.websocket,
                "headers": {"Authorization": f"Bearer {SECRETS['ws_header']}"},
            },
            "secret-grpc": {
                "protocol": "grpc",
                "url": upstream.grpc,
                "api_key": SECRETS["grpc_key"],
            },
            "secret-dead": {
                "protocol": "openai",
                "url": f"http://bob:{SECRETS['url_password']}@127.0.0.1:9/v1",
                "api_key": SECRETS["dead_key"],
                "retries": 0,
                "connect_timeout": 1.0,
            },
        },
    }


async def test_lists_the_demo_backends_with_health(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    response = await client.get(base + "api/backends", headers=auth)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    listing = response.json()
    assert listing["default"] == "secret-sse"  # the first configured one
    backends = {b["name"]: b for b in listing["backends"]}
    expected = {
        "demo-sse": ("openai", "openai-chat"),
        "demo-ndjson": ("ollama", "ollama-chat"),
        "demo-ws": ("websocket", "generic"),
        "demo-grpc": ("grpc", "streamchat-grpc"),
    }
    for name, (protocol, dialect) in expected.items():
        entry = backends[name]
        assert (entry["protocol"], entry["dialect"]) == (protocol, dialect)
        assert entry["source"] == "demo"
        assert entry["authenticated"] is False
        health = entry["health"]
        assert health["reachable"] is True, health
        assert isinstance(health["latency_ms"], float)
        assert 0 < health["latency_ms"] < 1500
        assert health["error"] is None
    # Backends that can list their models do.
    assert "slow" in backends["demo-sse"]["models"]
    assert "slow" in backends["demo-ndjson"]["models"]
    for name in ("secret-sse", "secret-env", "secret-ws", "secret-grpc", "secret-dead"):
        assert backends[name]["authenticated"] is True
        assert backends[name]["source"] == "config"
    dead = backends["secret-dead"]["health"]
    assert dead["reachable"] is False
    assert dead["error"]


async def test_probe_is_cached_unless_asked(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    first = (await client.get(base + "api/backends", headers=auth)).json()
    second = (await client.get(base + "api/backends", headers=auth)).json()
    forced = (await client.get(base + "api/backends?probe=1", headers=auth)).json()

    def latency(listing: Any) -> float:
        return next(b for b in listing["backends"] if b["name"] == "demo-sse")["health"][
            "latency_ms"
        ]  # type: ignore[no-any-return]

    assert latency(first) == latency(second)
    assert latency(forced) != latency(first)


async def test_no_secret_in_any_response_or_log_line(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    ws_url: str,
    logs: StringIO,
) -> None:
    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        seen.append(json.dumps(dict(response.headers)))
        seen.append(response.text)

    keep(await client.get(base + "api/backends?probe=1", headers=auth))
    keep(await client.get(base + "v1/models", headers=auth))
    for backend in ("secret-sse", "secret-env", "secret-ws", "secret-grpc"):
        reply = await chat_sse(client, base + "api/chat", chat_body(backend, "instant", 5), auth)
        assert reply.types[-1] == "done", reply.events[-1].data
        assert reply.text == expected_text(5)
        seen.append(reply.body.decode())
        seen.append(json.dumps(dict(reply.headers)))
    dead = await chat_sse(client, base + "api/chat", chat_body("secret-dead"), auth)
    error = dead.events[-1].data
    assert error["code"] == "connect_failed"
    assert "127.0.0.1:9" in error["message"], "the error still says which backend failed"
    seen.append(dead.body.decode())
    async with connect(ws_url, additional_headers=auth) as ws:
        for backend in ("secret-ws", "secret-dead"):
            await ws.send(json.dumps({"type": "chat", **chat_body(backend, "instant", 3)}))
            seen.extend(json.dumps(e.data) for e in await ws_events(ws))
    token = auth["Authorization"].removeprefix("token ")
    async with openai.AsyncOpenAI(base_url=base + "v1", api_key=token, max_retries=0) as oai:
        for model in ("secret-grpc/instant", "secret-dead"):
            try:
                completion = await oai.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=3
                )
                seen.append(completion.model_dump_json())
            except openai.APIError as exc:
                seen.append(str(exc))
                seen.append(json.dumps(exc.body))
    keep(await client.get(base + "api/streams", headers=auth))
    # Lines of the stand-in backends themselves (their WebSocket server logs the headers it
    # received) are not the bridge's: a real backend logs in its own process.
    lines = [
        line for line in logs.getvalue().splitlines() if not line.startswith("websockets.server ")
    ]
    log_text = "\n".join(lines)
    assert "backend=secret-ws" in log_text, "the log capture works"
    assert "websockets.client.streamchat DEBUG > Authorization: [redacted]" in log_text
    everything = "\n".join(seen)
    for name, secret in SECRETS.items():
        assert secret not in everything, f"{name} leaked into a response"
        assert secret not in log_text, f"{name} leaked into a log line"


async def test_one_info_line_per_stream(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    logs: StringIO,
    app: StreamChatApp,
) -> None:
    ids = []
    for backend in BACKENDS:
        reply = await chat_sse(client, base + "api/chat", chat_body(backend, "instant", 4), auth)
        ids.append(reply.stream_id)
    # The line is written when the session has closed its upstream, just after the reply.
    await wait_until(lambda: not app.bridge.sessions, 5.0)
    lines = logs.getvalue().splitlines()
    for stream_id, backend in zip(ids, BACKENDS, strict=True):
        info = [line for line in lines if " INFO " in line and f"stream {stream_id}" in line]
        assert len(info) == 1, info
        line = info[0]
        assert f"backend={backend}" in line
        assert "reason=done" in line
        assert "first_token=" in line
        assert "first_byte=-" not in line  # every adapter reports when the body began
        assert "tokens=4" in line
