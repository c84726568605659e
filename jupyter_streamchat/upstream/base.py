"""What every upstream adapter shares: the stream object, retries, the idle watchdog.

An adapter is an *attempt*: an async generator that connects once, yields
events, and raises :class:`~jupyter_streamchat.errors.StreamError` when the
I/O fails.  :func:`run_with_retries` turns attempts into one stream: it retries
only before the first token, with exponential backoff honouring
``Retry-After``, and turns the final failure into an ``Error`` event.
:class:`UpstreamStream` is what callers get: an async iterator whose
``aclose()`` closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from types import TracebackType
from typing import TYPE_CHECKING, Final

from ..decode.emitter import Emitter
from ..errors import StreamError, Timeout
from ..events import Error, Event, Token, is_terminal, now_ms

if TYPE_CHECKING:
    from ..backends import Backend

__all__ = [
    "Attempt",
    "Deadline",
    "RetryPolicy",
    "UpstreamStream",
    "Watchdog",
    "parse_retry_after",
    "ran_too_long",
    "run_with_retries",
]

Attempt = Callable[[Emitter], AsyncGenerator[list[Event], None]]
"""One connection attempt: given the stream's emitter, yield its events in batches."""

MAX_RETRY_AFTER: Final = 60.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class RetryPolicy:
    """Exponential backoff with full jitter, honouring the server's ``Retry-After``."""

    __slots__ = ("initial", "maximum", "retries")

    def __init__(self, retries: int = 2, initial: float = 0.25, maximum: float = 8.0) -> None:
        self.retries = retries
        self.initial = initial
        self.maximum = maximum

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        ceiling = min(self.maximum, self.initial * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


async def run_with_retries(
    attempt: Attempt, emitter: Emitter, policy: RetryPolicy
) -> AsyncGenerator[list[Event], None]:
    """Run attempts until one streams a token or fails for good; yield one stream.

    Attempts yield events in batches (what one read decoded).  A failed
    attempt's ``Error`` is swallowed (and its sequence number reused) when the
    error is retryable, no token has been yielded yet, and retries remain.
    Anything else is passed on, and the stream ends at the first terminal event.
    """
    tries = 0
    while True:
        failure: Error | None = None
        emitted = False  # whether the emitter built ``failure`` (then it must be retracted)
        async with aclosing(attempt(emitter)) as batches:
            try:
                async for batch in batches:
                    last = batch[-1] if batch else None
                    if last is None:
                        continue
                    if (
                        type(last) is Error
                        and last.retryable
                        and not emitter.text_seen
                        and tries < policy.retries
                    ):
                        failure, emitted = last, True
                        if len(batch) > 1:
                            yield batch[:-1]
                        break
                    yield batch
                    if is_terminal(last):
                        return
            except StreamError as exc:
                if exc.retryable and not emitter.text_seen and tries < policy.retries:
                    failure = exc.to_event(emitter.seq, now_ms(), partial=False)
                else:
                    emitter.now = now_ms()
                    emitter.fail(exc)
                    yield emitter.drain()
                    return
        if failure is None:
            # The attempt ended without a terminal event: an adapter bug, reported as such.
            emitter.now = now_ms()
            emitter.error("internal", "upstream adapter ended without a final event")
            yield emitter.drain()
            return
        tries += 1
        if emitted:
            emitter.retract(failure)
        await asyncio.sleep(policy.delay(tries, failure.retry_after))


class UpstreamStream(AsyncIterator[Event]):
    """A stream of events from one backend.

    Iterate it (``async for``) event by event, or :meth:`batches` for what
    each read decoded; or use it as an async context manager.  ``aclose()``
    closes the upstream connection; the caller must not be iterating it from
    another task at that moment (cancel that task first).
    """

    __slots__ = ("_batches", "_emitter", "_finished", "_queue", "backend")

    def __init__(
        self,
        batches: AsyncGenerator[list[Event], None],
        backend: str,
        emitter: Emitter | None = None,
    ) -> None:
        self._batches = batches
        self._queue: deque[Event] = deque()
        self._finished = False
        self._emitter = emitter
        self.backend = backend

    @property
    def first_byte_ms(self) -> float | None:
        """When the first byte of the reply body arrived (the time the emitter was given)."""
        return None if self._emitter is None else self._emitter.first_byte_ms

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> Event:
        queue = self._queue
        while not queue:
            if self._finished:
                raise StopAsyncIteration
            batch = await self._batches.__anext__()
            if batch and is_terminal(batch[-1]):
                await self._end()
            queue.extend(batch)
        return queue.popleft()

    async def _end(self) -> None:
        """The terminal event is in: release the connection now, not at garbage collection."""
        self._finished = True
        await self._batches.aclose()

    async def batches(self) -> AsyncIterator[list[Event]]:
        """The events in the batches they were decoded in (one per upstream read)."""
        if self._queue:
            batch = list(self._queue)
            self._queue.clear()
            yield batch
        while not self._finished:
            try:
                batch = await self._batches.__anext__()
            except StopAsyncIteration:
                return
            if batch and is_terminal(batch[-1]):
                await self._end()
            yield batch

    async def aclose(self) -> None:
        """Close the upstream connection (idempotent)."""
        self._finished = True
        await self._batches.aclose()

    async def __aenter__(self) -> UpstreamStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def text(self) -> str:
        """Consume the stream; return its text, or raise the error it ended with."""
        parts: list[str] = []
        async for event in self:
            if isinstance(event, Token):
                parts.append(event.text)
            elif isinstance(event, Error):
                raise StreamError.from_event(event)
        return "".join(parts)


def ran_too_long(backend: Backend, where: str) -> str:
    """The message of a stream stopped by the backend's ``max_seconds``."""
    return f"backend {where} stream ran longer than max_seconds={backend.max_seconds}"


class Deadline:
    """A backend's ``max_seconds``, checked as the stream goes (no timer to cancel)."""

    __slots__ = ("_at", "_message")

    def __init__(self, backend: Backend, where: str) -> None:
        seconds = backend.max_seconds
        self._at = None if seconds is None else now_ms() + seconds * 1000.0
        self._message = ran_too_long(backend, where)

    def check(self, now: float) -> None:
        """Raise :class:`Timeout` once the stream has run past its limit."""
        if self._at is not None and now > self._at:
            raise Timeout(self._message)


class Watchdog:
    """Calls ``on_idle`` once if :meth:`kick` is not called for ``seconds``.

    One timer per stream, re-armed lazily: kicking only stores a time, so the
    hot path costs one attribute write instead of a timer per message.
    """

    __slots__ = ("_handle", "_last", "_loop", "_on_idle", "expired", "seconds")

    def __init__(self, seconds: float, on_idle: Callable[[], object]) -> None:
        self.seconds = seconds
        self.expired = False
        self._on_idle = on_idle
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            self._last + seconds, self._check
        )

    def kick(self) -> None:
        self._last = self._loop.time()

    def _check(self) -> None:
        due = self._last + self.seconds
        if self._loop.time() >= due:
            self._handle = None
            self.expired = True
            self._on_idle()
        else:
            self._handle = self._loop.call_at(due, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
