"""All four doors (and the stats page) in this process, on one event loop.

::

    async with DemoServers() as demo:          # ports 0: free ones are picked
        demo.openai      # "http://127.0.0.1:P/v1"   (an OpenAI base_url)
        demo.ollama      # "http://127.0.0.1:P"
        demo.websocket   # "ws://127.0.0.1:P/"
        demo.grpc        # "grpc://127.0.0.1:P"
        demo.stats       # "http://127.0.0.1:P/stats"
        demo.backend_configs()   # {"demo-sse": {"protocol": "openai", "url": …}, …}

Runs inside an existing event loop (a Jupyter server's, a test's); ``stop()``
ends every open stream, closes every connection and leaves no task behind.
"""

from __future__ import annotations

import ipaddress
from types import TracebackType
from typing import Any

from ..errors import ConfigError
from .grpc_door import GrpcDoor
from .http_door import HTTPDoor, StatsHandler
from .model import DemoConfig, DemoModel
from .ollama_door import ollama_door
from .openai_door import openai_door
from .profiles import PROFILES
from .stats import DemoStats
from .ws_door import WebSocketDoor

__all__ = ["DemoServers", "is_loopback"]

_SHUTDOWN_TIMEOUT_S = 5.0


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(name: str, port: int) -> int:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535 (0: any free port), got {port}")
    return port


class DemoServers:
    """The demo model's four front doors plus a stats page; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port_openai: int = 0,
        port_ollama: int = 0,
        port_ws: int = 0,
        port_grpc: int = 0,
        port_stats: int = 0,
        default_profile: str = "steady",
        default_max_tokens: int = 64,
        max_tokens_cap: int = 4096,
        stall_timeout_s: float = 600.0,
        max_request_bytes: int = 1 << 20,
    ) -> None:
        self.host = host
        self._ports = {
            "openai": _check_port("port_openai", port_openai),
            "ollama": _check_port("port_ollama", port_ollama),
            "websocket": _check_port("port_ws", port_ws),
            "grpc": _check_port("port_grpc", port_grpc),
            "stats": _check_port("port_stats", port_stats),
        }
        self.config = DemoConfig(
            default_profile=default_profile,
            default_max_tokens=default_max_tokens,
            max_tokens_cap=max_tokens_cap,
            stall_timeout_s=stall_timeout_s,
            max_request_bytes=max_request_bytes,
        )
        self.counters = DemoStats()
        self.model = DemoModel(self.config, self.counters)
        self._openai: HTTPDoor | None = None
        self._ollama: HTTPDoor | None = None
        self._stats: HTTPDoor | None = None
        self._ws: WebSocketDoor | None = None
        self._grpc: GrpcDoor | None = None
        self._bound: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._bound)

    async def start(self) -> DemoServers:
        """Listen on every door; on any failure nothing is left listening."""
        if self.running:
            raise RuntimeError("DemoServers already started")
        try:
            self._openai = openai_door(self.model)
            self._bound["openai"] = self._openai.listen(self.host, self._ports["openai"])
            self._ollama = ollama_door(self.model)
            self._bound["ollama"] = self._ollama.listen(self.host, self._ports["ollama"])
            self._stats = HTTPDoor([(r"/stats", StatsHandler, {"model": self.model})], self.model)
            self._bound["stats"] = self._stats.listen(self.host, self._ports["stats"])
            self._ws = WebSocketDoor(self.model)
            self._bound["websocket"] = await self._ws.listen(self.host, self._ports["websocket"])
            self._grpc = GrpcDoor(self.model)
            self._bound["grpc"] = await self._grpc.listen(self.host, self._ports["grpc"])
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """End open streams, close every connection and listening socket."""
        await self.model.shutdown(_SHUTDOWN_TIMEOUT_S)
        for door in (self._grpc, self._ws, self._openai, self._ollama, self._stats):
            if door is not None:
                await door.close()
        self._grpc = self._ws = None
        self._openai = self._ollama = self._stats = None
        self._bound.clear()

    async def __aenter__(self) -> DemoServers:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- addresses -----------------------------------------------------------

    def _port(self, door: str) -> int:
        if door not in self._bound:
            raise RuntimeError("DemoServers is not running: call start() first")
        return self._bound[door]

    @property
    def _host_in_url(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def openai(self) -> str:
        """OpenAI ``base_url``: ``http://host:port/v1``."""
        return f"http://{self._host_in_url}:{self._port('openai')}/v1"

    @property
    def ollama(self) -> str:
        return f"http://{self._host_in_url}:{self._port('ollama')}"

    @property
    def websocket(self) -> str:
        return f"ws://{self._host_in_url}:{self._port('websocket')}/"

    @property
    def grpc(self) -> str:
        return f"grpc://{self._host_in_url}:{self._port('grpc')}"

    @property
    def stats(self) -> str:
        return f"http://{self._host_in_url}:{self._port('stats')}/stats"

    def backend_configs(self) -> dict[str, dict[str, Any]]:
        """The four doors as backend configs (``c.StreamChatApp.backends`` form).

        Each lists the timing profiles as its models: the WebSocket and gRPC doors
        have no models endpoint to probe.
        """
        models = list(PROFILES)
        return {
            "demo-sse": {"protocol": "openai", "url": self.openai, "models": models},
            "demo-ndjson": {"protocol": "ollama", "url": self.ollama, "models": models},
            "demo-ws": {"protocol": "websocket", "url": self.websocket, "models": models},
            "demo-grpc": {"protocol": "grpc", "url": self.grpc, "models": models},
        }

    def urls(self) -> dict[str, Any]:
        """What ``jupyter streamchat demo`` prints: every URL plus the backends."""
        return {
            "openai": self.openai,
            "ollama": self.ollama,
            "websocket": self.websocket,
            "grpc": self.grpc,
            "stats": self.stats,
            "backends": self.backend_configs(),
        }
