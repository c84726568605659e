"""Discovery: local model servers on the probed ports, and providers whose API key is in the
environment, become backends — in the background, never delaying the server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from io import StringIO
from typing import Any

import httpx
import pytest
from bridge_clients import chat_body, chat_sse, expected_text, wait_until

from jupyter_streamchat.demo.servers import DemoServers

SLOW_PROBE = 2.0  # long enough to see the bridge serve while discovery still runs
OPENAI_KEY = "sk-ENV-SECRET-0a1b2c"
ANTHROPIC_KEY = "sk-ant-ENV-SECRET-3d4e"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
async def local() -> AsyncIterator[DemoServers]:
    """Stand-ins for an OpenAI-compatible server and an Ollama on this machine."""
    async with DemoServers() as servers:
        yield servers


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts connections and never answers: a probe there must time out, not hang."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the prober gives up and closes
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


@pytest.fixture
def probe_timeout(request: pytest.FixtureRequest) -> float:
    """``discovery_timeout`` (parametrize indirectly to change it)."""
    return float(getattr(request, "param", 0.5))


@pytest.fixture
def provider_env(request: pytest.FixtureRequest) -> str:
    """Which provider key is in the environment (parametrize indirectly to change it)."""
    return getattr(request, "param", "openai")


@pytest.fixture
def streamchat_config(
    local: DemoServers,
    closed_port: int,
    silent_port: int,
    provider_env: str,
    probe_timeout: float,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    if provider_env == "openai":
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        # The "hosted" provider is the local stand-in: no test reaches the internet.
        monkeypatch.setenv("OPENAI_BASE_URL", local.openai)
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    return {
        "demo": True,
        "discovery": True,
        "discovery_ports": [port_of(local.openai), closed_port, silent_port],
        "discovery_ollama_port": port_of(local.ollama),
        "discovery_timeout": probe_timeout,
    }


async def names(client: httpx.AsyncClient, base: str, auth: dict[str, str]) -> set[str]:
    """Backend names from ``v1/models`` (which does not wait for discovery or probes)."""
    data = (await client.get(base + "v1/models", headers=auth)).json()["data"]
    return {m["id"] for m in data if "/" not in m["id"]}


@pytest.mark.parametrize("probe_timeout", [SLOW_PROBE], indirect=True)
async def test_discovery_finds_local_servers_without_delaying_the_server(
    client: httpx.AsyncClient,
    base: str,
    auth: dict[str, str],
    local: DemoServers,
    closed_port: int,
    silent_port: int,
) -> None:
    openai_name = f"local-{port_of(local.openai)}"
    t0 = time.perf_counter()
    clock = await client.get(base + "api/clock", headers=auth)
    assert clock.status_code == 200
    # The silent port holds discovery for its whole probe timeout, yet the bridge serves.
    first = await names(client, base, auth)
    assert time.perf_counter() - t0 < SLOW_PROBE / 2
    assert {"demo-sse", "demo-ws"} <= first
    assert openai_name not in first

    async def found() -> bool:
        return {openai_name, "ollama"} <= await names(client, base, auth)

    waited = await wait_until(found, 10.0, interval=0.05)
    # All probes ran at once: one probe timeout, not one per port.
    assert waited < 2 * SLOW_PROBE
    listing = (await client.get(base + "api/backends", headers=auth)).json()
    backends = {b["name"]: b for b in listing["backends"]}
    assert backends[openai_name]["protocol"] == "openai"
    assert backends[openai_name]["source"] == "discovered"
    assert "instant" in backends[openai_name]["models"]
    assert backends["ollama"]["protocol"] == "ollama"
    assert "slow" in backends["ollama"]["models"]
    assert f"local-{closed_port}" not in backends
    assert f"local-{silent_port}" not in backends
    for name in (openai_name, "ollama"):
        reply = await chat_sse(client, base + "api/chat", chat_body(name, "instant", 6), auth)
        assert reply.types[-1] == "done"
        assert reply.text == expected_text(6)


async def test_openai_api_key_registers_openai_without_exposing_it(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], logs: StringIO
) -> None:
    async def found() -> bool:
        return "openai" in await names(client, base, auth)

    await wait_until(found, 10.0, interval=0.05)
    listing = await client.get(base + "api/backends", headers=auth)
    entry = next(b for b in listing.json()["backends"] if b["name"] == "openai")
    assert entry["protocol"] == "openai"
    assert entry["source"] == "environment"
    assert entry["authenticated"] is True
    assert entry["health"]["reachable"] is True
    reply = await chat_sse(client, base + "api/chat", chat_body("openai", "instant", 4), auth)
    assert reply.text == expected_text(4)
    models = await client.get(base + "v1/models", headers=auth)
    for text in (listing.text, models.text, reply.body.decode(), logs.getvalue()):
        assert OPENAI_KEY not in text
    assert "openai" in logs.getvalue()


@pytest.mark.parametrize("provider_env", ["anthropic"], indirect=True)
async def test_anthropic_api_key_registers_anthropic(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    async def found() -> bool:
        return "anthropic" in await names(client, base, auth)

    await wait_until(found, 10.0, interval=0.05)
    models = await client.get(base + "v1/models", headers=auth)
    assert ANTHROPIC_KEY not in models.text
    assert "openai" not in await names(client, base, auth)
