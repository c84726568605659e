"""Health probes and discovery of local model servers (short timeouts, concurrent)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import grpc
import httpx
from websockets.asyncio.client import connect as ws_connect

from ..backends import Backend
from .websocket import WIRE_LOG

__all__ = ["Health", "discover_environment", "discover_local", "probe"]

LOCAL_OPENAI_PORTS: Final = (8000, 8080, 1234)
OLLAMA_PORT: Final = 11434


@dataclass(frozen=True, slots=True)
class Health:
    """The result of one probe: reachable or why not, how fast, which models."""

    reachable: bool
    latency_ms: float | None
    error: str | None = None
    models: tuple[str, ...] = ()
    checked: float = 0.0  # time.monotonic() of the probe

    def public(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "error": self.error,
        }


def _models_url(backend: Backend) -> str | None:
    base = backend.url.rstrip("/")
    if backend.protocol in ("openai", "responses"):
        return f"{base}/models"
    if backend.protocol == "ollama":
        return f"{base}/api/tags"
    if backend.protocol == "anthropic":
        return f"{base}/v1/models"
    return None


def _model_names(data: Any) -> tuple[str, ...]:
    items: Any = ()
    if isinstance(data, dict):
        items = data.get("data") or data.get("models") or ()
    names = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            name = item.get("id") or item.get("name") or item.get("model")
            if isinstance(name, str):
                names.append(name)
    return tuple(names)


async def probe(backend: Backend, client: httpx.AsyncClient, timeout: float = 1.5) -> Health:
    """Is the backend reachable, and which models does it list?"""
    started = time.monotonic()

    def done(error: str | None = None, models: tuple[str, ...] = ()) -> Health:
        now = time.monotonic()
        return Health(error is None, (now - started) * 1000.0, error, models, now)

    try:
        url = _models_url(backend)
        if url is not None:
            response = await client.get(url, headers=backend.request_headers(), timeout=timeout)
            if response.status_code >= 400:
                return done(f"HTTP {response.status_code}")
            try:
                return done(models=_model_names(response.json()))
            except ValueError:
                return done()
        if backend.protocol == "websocket":
            async with ws_connect(
                backend.url, open_timeout=timeout, close_timeout=0.5,
                additional_headers=backend.request_headers(), logger=WIRE_LOG,
            ):  # fmt: skip
                return done()
        if backend.protocol == "grpc":
            from .grpc import new_channel

            channel = new_channel(backend.url, 1 << 20)
            try:
                await asyncio.wait_for(channel.channel_ready(), timeout)
            finally:
                await channel.close(grace=None)
            return done()
        # Plain HTTP backends: any answer at all means reachable.
        await client.request("HEAD", backend.url, timeout=timeout)
        return done()
    except (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException):
        return done(f"no answer within {timeout} s")
    except (OSError, httpx.HTTPError, grpc.RpcError) as exc:
        return done(f"{type(exc).__name__}: {exc}"[:200])
    except Exception as exc:  # a probe must never break the listing
        return done(f"{type(exc).__name__}"[:200])


async def discover_local(
    client: httpx.AsyncClient,
    *,
    host: str = "127.0.0.1",
    openai_ports: Iterable[int] = LOCAL_OPENAI_PORTS,
    ollama_port: int | None = OLLAMA_PORT,
    timeout: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Backend configs for model servers answering on the usual local ports."""
    candidates: dict[str, dict[str, Any]] = {}
    if ollama_port:
        candidates["ollama"] = {"protocol": "ollama", "url": f"http://{host}:{ollama_port}"}
    for port in openai_ports:
        candidates[f"local-{port}"] = {"protocol": "openai", "url": f"http://{host}:{port}/v1"}
    backends = {
        name: Backend.from_config(name, config, source="discovered")
        for name, config in candidates.items()
    }
    results = await asyncio.gather(*(probe(b, client, timeout) for b in backends.values()))
    found: dict[str, dict[str, Any]] = {}
    for (name, config), health in zip(candidates.items(), results, strict=True):
        if health.reachable and (health.models or name == "ollama"):
            found[name] = {**config, "models": list(health.models)}
            if health.models:
                found[name]["model"] = health.models[0]
    return found


def discover_environment(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Hosted providers whose API key is in the environment (the key stays there)."""
    found: dict[str, dict[str, Any]] = {}
    if environ.get("OPENAI_API_KEY"):
        found["openai"] = {
            "protocol": "openai",
            "url": environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
            "api_key_env": "OPENAI_API_KEY",
            "model": "gpt-4o-mini",
        }
    if environ.get("ANTHROPIC_API_KEY"):
        found["anthropic"] = {
            "protocol": "anthropic",
            "url": "https://api.anthropic.com",
            "api_key_env": "ANTHROPIC_API_KEY",
            "model": "claude-3-5-haiku-latest",
        }
    return found
