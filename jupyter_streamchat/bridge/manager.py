"""The bridge: named backends, live sessions, limits — everything handlers hand work to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..backends import Backend, Source
from ..decode.stream import DecoderLimits
from ..upstream import UpstreamPool, open_stream
from ..upstream.probe import Health, probe
from .requests import ChatRequest, RequestError
from .session import Session, SessionLimits

__all__ = ["Bridge", "BridgeLimits"]


@dataclass(frozen=True, slots=True)
class BridgeLimits:
    """The bridge's limits, from ``StreamChatApp``'s config traits."""

    max_request_bytes: int = 1 << 20
    max_concurrent_streams: int = 64
    session: SessionLimits = field(default_factory=SessionLimits)
    decoder: DecoderLimits = field(default_factory=DecoderLimits)
    health_ttl: float = 10.0
    probe_timeout: float = 1.5


class Bridge:
    """Owns backends, sessions and pooled upstream connections for one server."""

    def __init__(self, limits: BridgeLimits, log: logging.Logger) -> None:
        self.limits = limits
        self.log = log
        self._backends: dict[str, Backend] = {}
        self._health: dict[str, Health] = {}
        self.sessions: dict[str, Session] = {}
        self._ended: dict[str, Session] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self._pool: UpstreamPool | None = None
        self._starters: list[tuple[Callable[[], Coroutine[Any, Any, None]], bool]] = []
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._waited: list[asyncio.Task[None]] = []
        self.default_backend: str | None = None

    # -- backends ------------------------------------------------------------------

    def add_backends(
        self,
        configs: Mapping[str, Mapping[str, Any] | str],
        source: Source,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Register backends; a name already configured by the user is never replaced."""
        for name, config in configs.items():
            existing = self._backends.get(name)
            if existing is not None and existing.source == "config" and source != "config":
                self.log.info(
                    "backend %s: keeping the configured one over the %s one", name, source
                )
                continue
            if isinstance(config, Mapping) and defaults:
                config = {**defaults, **config}
            self._backends[name] = Backend.from_config(name, config, source=source)
            if self.default_backend is None:
                self.default_backend = name

    def backend(self, name: str) -> Backend:
        found = self._backends.get(name)
        if found is None:
            valid = sorted(self._backends)
            raise RequestError(
                404, "unknown_backend",
                f"unknown backend {name!r}; valid names: {', '.join(valid) or 'none configured'}",
                valid=valid,
            )  # fmt: skip
        return found

    @property
    def backends(self) -> dict[str, Backend]:
        return dict(self._backends)

    def on_start(self, starter: Callable[[], Coroutine[Any, Any, None]], *, wait: bool) -> None:
        """Run ``starter`` once, in the server's running loop, at :meth:`start` or first use.

        ``wait``: requests wait for it (the demo doors); otherwise it runs in the
        background (discovery).
        """
        self._starters.append((starter, wait))

    def start(self) -> None:
        """Start what :meth:`on_start` registered (idempotent; needs a running loop)."""
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        for starter, wait in self._starters:
            task = loop.create_task(self._guard(starter))
            self._tasks.append(task)
            if wait:
                self._waited.append(task)

    async def _guard(self, starter: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await starter()
        except Exception:
            self.log.exception("streamchat: %s failed", getattr(starter, "__name__", starter))

    async def ready(self, timeout: float = 30.0) -> None:
        """Start if needed; wait for backends still starting (the demo), not for discovery."""
        self.start()
        pending = [t for t in self._waited if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None:
            self._pool = UpstreamPool()
        return self._pool

    async def health(self, names: list[str], force: bool = False) -> dict[str, Health]:
        """Probe backends whose last probe is older than ``health_ttl`` (concurrently)."""
        now = time.monotonic()
        ttl = self.limits.health_ttl
        known = self._health
        stale = [n for n in names if force or n not in known or now - known[n].checked > ttl]
        if stale:
            client = self.pool.http_client()
            results = await asyncio.gather(
                *(probe(self._backends[n], client, self.limits.probe_timeout) for n in stale)
            )
            self._health.update(zip(stale, results, strict=True))
        return {n: self._health[n] for n in names if n in self._health}

    # -- sessions ------------------------------------------------------------------

    def open(self, request: ChatRequest, leg: str) -> Session:
        """Start streaming ``request`` upstream; 404 / 409 / 429 as :class:`RequestError`."""
        backend = self.backend(request.backend)
        if len(self.sessions) >= self.limits.max_concurrent_streams:
            raise RequestError(
                429, "too_many_streams",
                f"{len(self.sessions)} streams are open; "
                f"max_concurrent_streams={self.limits.max_concurrent_streams}",
            )  # fmt: skip
        stream_id = request.stream_id or secrets.token_urlsafe(12)
        if stream_id in self.sessions or stream_id in self._ended:
            raise RequestError(409, "stream_exists", f"stream_id {stream_id!r} is already in use")
        model = request.model or backend.model
        upstream = open_stream(
            backend,
            request.messages,
            model=model,
            options=request.options,
            pool=self.pool,
            limits=self.limits.decoder,
        )
        session = Session(
            stream_id,
            upstream,
            limits=self.limits.session,
            resumable=request.resumable,
            log=self.log,
            describe=f"backend={backend.name} protocol={backend.protocol} model={model} leg={leg}",
            on_closed=self._closed,
        )
        self.sessions[stream_id] = session
        return session

    def find(self, stream_id: str) -> Session | None:
        """A live session, or one that ended within the resume window."""
        return self.sessions.get(stream_id) or self._ended.get(stream_id)

    def _closed(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self.recent.append(session.timing())
        window = self.limits.session.resume_window
        if window > 0:
            # A client that blipped just before the end can still fetch the tail.
            self._ended[session.id] = session
            asyncio.get_running_loop().call_later(window, self._ended.pop, session.id, None)

    async def aclose(self) -> None:
        """Server shutdown: stop starters, cancel every stream, close pooled connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sessions = list(self.sessions.values())
        for session in sessions:
            session.cancel("shutdown")
        for session in sessions:
            await session.wait_closed()
        self._ended.clear()
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
