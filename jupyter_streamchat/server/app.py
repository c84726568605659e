"""``StreamChatApp``: the Jupyter server extension hosting the streaming bridge."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, default

from ..bridge.manager import Bridge, BridgeLimits
from ..bridge.session import SessionLimits
from ..decode.stream import DecoderLimits
from ..upstream.probe import discover_environment, discover_local
from .handlers import HANDLERS
from .openai_compat import OPENAI_HANDLERS

__all__ = ["StreamChatApp"]


class StreamChatApp(ExtensionApp):
    """Re-streams any configured model backend to the browser (SSE, WebSocket, OpenAI API)."""

    name = "jupyter_streamchat"
    load_other_extensions = True

    backends = Dict(
        config=True,
        help="""Named model backends: name -> {"protocol": "openai" | "responses" |
        "anthropic" | "ollama" | "http" | "websocket" | "grpc", "url": ..., "dialect": ...,
        "model": ..., "headers": {...}, "api_key_env": "ENV_VAR" (or "api_key"),
        "connect_timeout": s, "idle_timeout": s, "retries": n}. The URLs printed by
        `jupyter streamchat demo` go straight in. Keys stay on the server.""",
    )
    default_backend = Unicode(
        "", config=True, help="Backend the widgets select first (default: the first configured)."
    )
    demo = Bool(
        True,
        config=True,
        help="""Start the built-in demo model in this server (four doors on free loopback
        ports) and register it as backends demo-sse, demo-ndjson, demo-ws, demo-grpc.""",
    )
    demo_profile = Unicode(
        "steady", config=True, help="Timing profile of the demo backends when a request names none."
    )
    discovery = Bool(
        True,
        config=True,
        help="""Look for local model servers (Ollama on 11434, OpenAI-compatible servers on
        discovery_ports) and for OPENAI_API_KEY / ANTHROPIC_API_KEY in the environment.
        Runs in the background; never delays server start.""",
    )
    discovery_host = Unicode("127.0.0.1", config=True, help="Host probed by discovery.")
    discovery_ports = List(
        [8000, 8080, 1234],
        config=True,
        help="Ports probed for OpenAI-compatible servers (/v1/models).",
    )
    discovery_ollama_port = Int(
        11434, config=True, help="Port probed for Ollama (/api/tags); 0 = off."
    )
    discovery_timeout = Float(0.5, config=True, help="Seconds each discovery probe may take.")

    max_request_bytes = Int(
        1 << 20, config=True, help="Largest accepted request body, in bytes (413 above)."
    )
    max_concurrent_streams = Int(
        64, config=True, help="Streams open at once, resumable ones included (429 above)."
    )
    max_stream_seconds = Float(
        600.0,
        config=True,
        help="Longest a stream may run, in seconds; then it ends with a timeout error.",
    )
    upstream_connect_timeout = Float(
        10.0, config=True, help="Default seconds to connect to a backend."
    )
    upstream_idle_timeout = Float(
        120.0,
        config=True,
        help="Default seconds a backend may send nothing before the stream fails with timeout.",
    )
    resume_window = Float(
        30.0,
        config=True,
        help="""Seconds a resumable stream keeps running with no client attached, and an ended
        stream's events stay available, for a reconnect with Last-Event-ID / resume.""",
    )
    resume_buffer_bytes = Int(
        8 << 20, config=True, help="Per-stream bytes of events kept for resume."
    )
    max_pending_bytes = Int(
        1 << 20,
        config=True,
        help="""Per-stream bytes of events waiting for a slow client (merged into one write).
        Above it the bridge stops reading the backend until the client catches up.""",
    )
    heartbeat_interval = Float(
        15.0, config=True, help="Seconds of silence before a keep-alive is sent; 0 = off."
    )
    max_line_bytes = Int(
        1 << 20, config=True, help="Longest SSE/NDJSON line accepted from a backend, in bytes."
    )
    max_event_bytes = Int(
        4 << 20, config=True, help="Largest SSE event / WebSocket message from a backend, in bytes."
    )
    compression = Enum(
        ["off", "gzip", "br", "auto"],
        "off",
        config=True,
        help="""Compress SSE responses when the browser accepts it (flushed per event, never
        buffered): off, gzip, br (falls back to gzip), or auto (br, else gzip).""",
    )
    websocket_compression = Bool(
        False, config=True, help="Offer permessage-deflate on the browser WebSocket."
    )

    @default("backends")
    def _default_backends(self) -> dict[str, Any]:
        return {}

    bridge: Bridge

    def initialize_settings(self) -> None:
        limits = BridgeLimits(
            max_request_bytes=self.max_request_bytes,
            max_concurrent_streams=self.max_concurrent_streams,
            session=SessionLimits(
                resume_window=self.resume_window,
                resume_buffer_bytes=self.resume_buffer_bytes,
                max_pending_bytes=self.max_pending_bytes,
                max_stream_seconds=self.max_stream_seconds,
                heartbeat_interval=self.heartbeat_interval,
            ),
            decoder=DecoderLimits(
                max_line_bytes=self.max_line_bytes,
                max_event_bytes=self.max_event_bytes,
                max_message_bytes=self.max_event_bytes,
            ),
        )
        self.bridge = Bridge(limits, self.log)
        self.bridge.add_backends(self.backends, "config", self._backend_defaults())
        if self.default_backend:
            self.bridge.default_backend = self.default_backend
        self._demo_servers: Any = None
        if self.demo:
            self.bridge.on_start(self._start_demo, wait=True)
        if self.discovery:
            self.bridge.on_start(self._discover, wait=False)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """The server's loop is running: start the demo doors and discovery now."""
        self.bridge.start()

    def _backend_defaults(self) -> dict[str, Any]:
        return {
            "connect_timeout": self.upstream_connect_timeout,
            "idle_timeout": self.upstream_idle_timeout,
        }

    async def _start_demo(self) -> None:
        from ..demo.servers import DemoServers

        servers = DemoServers(default_profile=self.demo_profile)
        await servers.start()
        self._demo_servers = servers
        self.bridge.add_backends(servers.backend_configs(), "demo", self._backend_defaults())
        self.log.info("streamchat demo backends: %s", ", ".join(servers.backend_configs()))

    async def _discover(self) -> None:
        defaults = self._backend_defaults()
        from_env = discover_environment(os.environ)
        if from_env:
            self.bridge.add_backends(
                {k: v for k, v in from_env.items() if k not in self.backends},
                "environment",
                defaults,
            )
        try:
            found = await discover_local(
                self.bridge.pool.http_client(),
                host=self.discovery_host,
                openai_ports=self.discovery_ports,
                ollama_port=self.discovery_ollama_port or None,
                timeout=self.discovery_timeout,
            )
        except Exception:
            self.log.warning("streamchat discovery failed", exc_info=True)
            return
        if found:
            self.bridge.add_backends(
                {k: v for k, v in found.items() if k not in self.backends}, "discovered", defaults
            )
        if found or from_env:
            names = sorted({*found, *from_env})
            self.log.info("streamchat discovered backends: %s", ", ".join(names))

    def initialize_handlers(self) -> None:
        sse = {"bridge": self.bridge, "compression": self.compression}
        for route, handler in [*HANDLERS, *OPENAI_HANDLERS]:
            if handler.__name__ == "ChatWebSocket":
                kwargs: dict[str, Any] = {
                    "bridge": self.bridge,
                    "compression": self.websocket_compression,
                }
            else:
                kwargs = sse
            self.handlers.append((route, handler, kwargs))

    async def stop_extension(self) -> None:
        await self.bridge.aclose()
        if self._demo_servers is not None:
            # Closing a connection is seen by its peer a loop turn or two later: let the
            # doors see their clients leave before they shut down (bounded).
            counters = self._demo_servers.counters
            for _ in range(200):
                if counters.open_streams == 0:
                    break
                await asyncio.sleep(0.005)
            await self._demo_servers.stop()
            self._demo_servers = None
