"""One bridged stream: the upstream's events, kept for resume, written to one client at a time.

A :class:`Session` owns the task that reads the upstream.  Clients attach a
:class:`Sink` (an SSE response or a WebSocket) and detach when they go away;
a resumable session keeps reading (and buffering) for ``resume_window``
seconds with no client, then cancels the upstream.

Whatever ends first ends the stream and cancels the rest: the upstream's
final event, the client going away (non-resumable) or not coming back
(resumable), an explicit cancel, the stream's time limit, server shutdown.

Writes are immediate while the client keeps up.  While the client's
connection is backed up, events wait in ``pending``; when it drains, the
waiting tokens are merged into one write (:func:`~.encode.coalesce`).  If
even that grows past ``max_pending_bytes``, the session stops reading the
upstream until the client catches up, so memory stays bounded and nothing
is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from ..events import Done, Error, ErrorCode, Event, Start, Token, Usage, now_ms
from ..upstream import UpstreamStream
from .encode import coalesce

__all__ = ["CloseReason", "Gone", "Session", "SessionLimits", "Sink", "coalesce_run"]

CloseReason: TypeAlias = Literal[
    "done", "error", "client_cancelled", "client_gone", "resume_expired", "timeout", "shutdown"
]

_CANCEL_EVENTS: dict[str, tuple[ErrorCode, str]] = {
    "client_cancelled": ("cancelled", "the client cancelled the stream"),
    "client_gone": ("cancelled", "the client went away"),
    "resume_expired": ("cancelled", "no client came back within the resume window"),
    "timeout": ("timeout", "the stream ran longer than max_stream_seconds"),
    "shutdown": ("cancelled", "the server is shutting down"),
}


class Gone(Exception):
    """The events after the requested seq are no longer buffered."""


class Sink(Protocol):
    """Where a session's events go: one client connection."""

    def write(self, events: Sequence[Event]) -> asyncio.Future[Any] | None:
        """Send these now; return a future that resolves when they are flushed (if not yet)."""

    def heartbeat(self, seq: int) -> None:
        """Send a keep-alive."""

    def superseded(self) -> None:
        """Another client took this stream over: end this client's stream (no final event)."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-stream limits (from the app's config traits)."""

    resume_window: float = 30.0
    resume_buffer_bytes: int = 8 << 20
    max_pending_bytes: int = 1 << 20
    max_stream_seconds: float = 600.0
    heartbeat_interval: float = 15.0


def coalesce_run(events: Sequence[Event]) -> list[Event]:
    """Merge each run of consecutive tokens into one; other events pass through."""
    out: list[Event] = []
    run: list[Token] = []
    for event in events:
        if type(event) is Token:
            run.append(event)
            continue
        if run:
            out.append(coalesce(run))
            run = []
        out.append(event)
    if run:
        out.append(coalesce(run))
    return out


def _size(event: Event) -> int:
    return 96 + (len(event.text) * 2 if type(event) is Token else 0)


class Session:
    """A stream between one upstream and (at most) one client at a time."""

    def __init__(
        self,
        stream_id: str,
        upstream: UpstreamStream,
        *,
        limits: SessionLimits,
        resumable: bool,
        log: logging.Logger,
        describe: str,
        on_closed: Callable[[Session], None] | None = None,
    ) -> None:
        self.id = stream_id
        self.limits = limits
        self.resumable = resumable
        self._upstream = upstream
        self._log = log
        self._describe = describe
        self._on_closed = on_closed
        self._loop = asyncio.get_running_loop()

        self.buffer: deque[Event] = deque()  # for resume; empty unless resumable
        self.usage: Usage | None = None
        self._attached = False
        self._buffer_bytes = 0
        self.first_seq = 0  # seq of the oldest event still buffered
        self.next_seq = 0
        self.terminal: Event | None = None

        self.sink: Sink | None = None
        self._pending: list[Event] = []
        self._pending_bytes = 0
        self._draining = False
        self._resume: asyncio.Future[None] | None = None
        self.last_write = 0.0

        self.reason: CloseReason | None = None
        self._cancel_reason: CloseReason | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()

        # Timing (ms, see events.now_ms): one INFO line per stream is built from these.
        self.opened_ms = now_ms()
        self.start_ms: float | None = None
        self.first_token_ms: float | None = None
        self.closed_ms: float | None = None
        self.tokens = 0
        self.writes = 0
        self.coalesced = 0
        self.token_times = array("d")  # recv_ms, send_ms per token as first written

        self._task: asyncio.Task[None] = self._loop.create_task(self._pump())
        self._window: asyncio.TimerHandle | None = None
        self._deadline = self._loop.call_later(limits.max_stream_seconds, self.cancel, "timeout")
        self._heartbeat: asyncio.TimerHandle | None = None

    # -- upstream side -------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            async for batch in self._upstream.batches():
                self._on_events(batch)
                if self._resume is not None:
                    await self._resume
                if self.terminal is not None:
                    break
            if self.terminal is None:
                self._on_event(
                    Error(
                        seq=self.next_seq, recv_ms=now_ms(), code="internal",
                        message="upstream ended without a final event",
                    )
                )  # fmt: skip
        except asyncio.CancelledError:
            reason = self._cancel_reason or "shutdown"
            code, message = _CANCEL_EVENTS.get(reason, ("cancelled", reason))
            if reason == "timeout":
                message = f"{message}={self.limits.max_stream_seconds}"
            if self.terminal is None:
                self._on_event(
                    Error(
                        seq=self.next_seq, recv_ms=now_ms(), code=code, message=message,
                        partial=self.tokens > 0,
                    )
                )  # fmt: skip
        except Exception as exc:  # a bug below us: end the stream visibly, not silently
            self._log.exception("stream %s: upstream failed", self.id)
            if self.terminal is None:
                self._on_event(
                    Error(
                        seq=self.next_seq, recv_ms=now_ms(), code="internal",
                        message=f"bridge error: {type(exc).__name__}", partial=self.tokens > 0,
                    )
                )  # fmt: skip
        finally:
            await self._close_upstream()

    async def _close_upstream(self) -> None:
        try:
            await asyncio.shield(self._upstream.aclose())
        except Exception:
            self._log.debug("stream %s: error closing upstream", self.id, exc_info=True)
        finally:
            self._finish()

    def _on_event(self, event: Event) -> None:
        self._on_events((event,))

    def _on_events(self, events: Sequence[Event]) -> None:
        """Events decoded from one upstream read: recorded, then written in one go."""
        for event in events:
            kind = type(event)
            if kind is Token:
                self.tokens += 1
                if self.first_token_ms is None:
                    self.first_token_ms = event.recv_ms
                    self._log.debug(
                        "stream %s: first token after %.1f ms",
                        self.id,
                        event.recv_ms - self.opened_ms,
                    )
            elif kind is Start:
                self.start_ms = event.recv_ms
                self._log.debug(
                    "stream %s: upstream accepted after %.1f ms",
                    self.id,
                    event.recv_ms - self.opened_ms,
                )
            elif kind is Error or kind is Done:
                self.terminal = event
            self._remember(event)
        if not events:
            return
        self.next_seq = events[-1].seq + 1
        if self.sink is None:
            return
        if self._draining:
            self._pending.extend(events)
            self._pending_bytes += sum(_size(e) for e in events)
            if self._pending_bytes > self.limits.max_pending_bytes and self._resume is None:
                self._resume = self._loop.create_future()
        else:
            self._write(events)

    def _remember(self, event: Event) -> None:
        if type(event) is Usage:
            self.usage = event
        if not self.resumable:
            # Nobody can come back for these: keeping them would only give the garbage
            # collector tens of thousands of objects to walk at load (p99 latency).
            return
        self.buffer.append(event)
        self._buffer_bytes += _size(event)
        # Keep the terminal event and at least one before it, whatever the limit.
        while self._buffer_bytes > self.limits.resume_buffer_bytes and len(self.buffer) > 2:
            dropped = self.buffer.popleft()
            self._buffer_bytes -= _size(dropped)
            self.first_seq = self.buffer[0].seq

    # -- client side ---------------------------------------------------------------

    def _write(self, events: Sequence[Event]) -> None:
        sink = self.sink
        assert sink is not None
        self.writes += 1
        self.last_write = send_ms = now_ms()
        for event in events:
            if type(event) is Token:
                if event.chunks > 1:
                    self.coalesced += 1
                self.token_times.append(event.recv_ms)
                self.token_times.append(send_ms)
        flushed = sink.write(events)
        if flushed is not None and not flushed.done():
            self._draining = True
            flushed.add_done_callback(self._on_drained)

    def _on_drained(self, _: asyncio.Future[Any]) -> None:
        self._draining = False
        if self.sink is None:
            return
        if self._pending:
            batch = coalesce_run(self._pending)
            self._pending = []
            self._pending_bytes = 0
            self._write(batch)
        if not self._draining and self._resume is not None:
            self._resume.set_result(None)
            self._resume = None

    def check_resume(self, after_seq: int | None) -> None:
        """Raise :class:`Gone` unless a client could resume after ``after_seq``."""
        if not self._attached:
            return
        if not self.resumable:
            raise Gone(
                f'stream {self.id!r} was not requested with "resumable": true; '
                "its events are not kept"
            )
        if after_seq is not None and after_seq + 1 < self.first_seq:
            raise Gone(
                f"events after seq {after_seq} are gone: the resume buffer starts at seq "
                f"{self.first_seq} (resume_buffer_bytes={self.limits.resume_buffer_bytes})"
            )

    def attach(self, sink: Sink, after_seq: int | None = None) -> None:
        """Send ``sink`` the buffered events after ``after_seq``, then the live ones.

        Raises :class:`Gone` if some of those events are no longer buffered.
        A previous client, if any, is detached.
        """
        self.check_resume(after_seq)
        self._attached = True
        if self._window is not None:
            self._window.cancel()
            self._window = None
        previous = self.sink
        if previous is not None and previous is not sink:
            previous.superseded()
        self.sink = sink
        self._pending = []
        self._pending_bytes = 0
        self._draining = False
        replay = [e for e in self.buffer if after_seq is None or e.seq > after_seq]
        if replay:
            self._write(coalesce_run(replay))
        if self._resume is not None and not self._draining:
            self._resume.set_result(None)
            self._resume = None
        self._arm_heartbeat()

    def detach(self, sink: Sink) -> None:
        """The client of ``sink`` went away."""
        if self.sink is not sink:
            return
        self.sink = None
        self._pending = []
        self._pending_bytes = 0
        self._draining = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self.terminal is not None or self.closed.done():
            return
        if self.resumable and self.limits.resume_window > 0:
            self._window = self._loop.call_later(
                self.limits.resume_window, self.cancel, "resume_expired"
            )
            # An unread client must not stall the upstream while we wait for it.
            if self._resume is not None:
                self._resume.set_result(None)
                self._resume = None
        else:
            self.cancel("client_gone")

    def cancel(self, reason: CloseReason = "client_cancelled") -> None:
        """End the stream now: the upstream is closed, the client gets an ``Error``."""
        if self._task.done() or self.terminal is not None:
            return
        self._cancel_reason = reason
        self._task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    def _arm_heartbeat(self) -> None:
        if self.limits.heartbeat_interval > 0 and self._heartbeat is None:
            self._heartbeat = self._loop.call_later(self.limits.heartbeat_interval, self._beat)

    def _beat(self) -> None:
        self._heartbeat = None
        if self.sink is None or self.terminal is not None:
            return
        idle_s = (now_ms() - self.last_write) / 1000.0
        if idle_s >= self.limits.heartbeat_interval * 0.9:
            self.sink.heartbeat(self.next_seq - 1)
            self.last_write = now_ms()
            self._arm_heartbeat()
        else:
            self._heartbeat = self._loop.call_later(
                self.limits.heartbeat_interval - idle_s, self._beat
            )

    # -- end -----------------------------------------------------------------------

    def _finish(self) -> None:
        if self.closed.done():
            return
        self.closed_ms = now_ms()
        self._deadline.cancel()
        if self._window is not None:
            self._window.cancel()
        if self._resume is not None:
            self._resume.cancel()
        terminal = self.terminal
        if self._cancel_reason is not None:
            self.reason = self._cancel_reason
        elif isinstance(terminal, Error):
            self.reason = "error"
        else:
            self.reason = "done"
        self._log.info("%s", self.summary())
        self.closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    def summary(self) -> str:
        """The one INFO line of a stream (no secrets: names, numbers, error codes)."""

        def since(t: float | None) -> str:
            return "-" if t is None else f"{t - self.opened_ms:.1f}ms"

        end = self.closed_ms or now_ms()
        error = ""
        if isinstance(self.terminal, Error):
            error = f" error={self.terminal.code}"
        return (
            f"stream {self.id} {self._describe} reason={self.reason}{error} "
            f"upstream={since(self.start_ms)} first_byte={since(self._upstream.first_byte_ms)} "
            f"first_token={since(self.first_token_ms)} "
            f"duration={end - self.opened_ms:.1f}ms tokens={self.tokens} writes={self.writes} "
            f"coalesced={self.coalesced}"
        )

    def timing(self, detail: bool = False) -> dict[str, Any]:
        """Phase times for ``api/streams`` (ms since the stream opened).

        ``detail`` adds each token write as ``[bridge receive, bridge send]`` in
        ms since the stream opened: the bridge's own share of every token.
        """

        def since(t: float | None) -> float | None:
            return None if t is None else round(t - self.opened_ms, 3)

        usage = self.usage
        return {
            "id": self.id,
            "opened_ms": self.opened_ms,
            "upstream_ms": since(self.start_ms),
            "first_byte_ms": since(self._upstream.first_byte_ms),
            "first_token_ms": since(self.first_token_ms),
            "closed_ms": since(self.closed_ms),
            "tokens": self.tokens,
            "writes": self.writes,
            "coalesced_writes": self.coalesced,
            "completion_tokens": usage.completion_tokens if usage else None,
            "reason": self.reason,
            "attached": self.sink is not None,
            **({"token_times": self._token_rows()} if detail else {}),
        }

    def _token_rows(self) -> list[list[float]]:
        times, start = self.token_times, self.opened_ms
        return [
            [round(times[i] - start, 3), round(times[i + 1] - start, 3)]
            for i in range(0, len(times) - 1, 2)
        ]
