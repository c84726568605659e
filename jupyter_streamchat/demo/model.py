"""The demo model behind all four doors: admit a request, then pace its tokens.

A door turns its wire request into a :class:`DemoRequest`, asks
:meth:`DemoModel.admit` for a :class:`Reply` (or gets a :class:`Rejection` to
send back), then opens a :class:`Generation` and writes each token it yields
in its own framing.  Text, timing, faults and counters live here, once, so
the four doors differ only in bytes on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias

from ..errors import ConfigError
from .faults import AttemptLedger, Fault, ModelSpec, ModelSpecError, parse_model
from .profiles import PROFILES, Profile
from .stats import DemoStats, Door, DoorStats
from .text import count_tokens, generate, request_seed

__all__ = [
    "DemoConfig",
    "DemoModel",
    "DemoRequest",
    "Generation",
    "Rejection",
    "Reply",
    "messages_from_json",
    "optional_int",
]

FinishReason: TypeAlias = Literal["stop", "length"]
GoneReason: TypeAlias = Literal["client", "shutdown"]
STREAM_FAULTS: Final[frozenset[Fault]] = frozenset({"stall", "drop", "malformed"})
_MAX_SEED: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Settings shared by the doors; every one has a default."""

    default_profile: str = "steady"
    """Profile used when the model field is empty (or names no profile: ``":drop@3"``)."""
    default_max_tokens: int = 64
    """Reply length when the request gives none."""
    max_tokens_cap: int = 4096
    """Largest ``max_tokens`` accepted; more is a 400 / ``INVALID_ARGUMENT``."""
    stall_timeout_s: float = 600.0
    """How long a ``stall`` fault holds a connection open before the server drops it."""
    max_request_bytes: int = 1 << 20
    """Largest request body / WebSocket message / gRPC message accepted."""
    attempt_memory: int = 10_000
    """How many distinct requests ``http500@N`` / ``http429@N`` remember."""

    def __post_init__(self) -> None:
        if self.default_profile not in PROFILES:
            raise ConfigError(
                f"default_profile {self.default_profile!r} is not a profile; "
                f"valid profiles: {', '.join(sorted(PROFILES))}"
            )
        if self.max_tokens_cap < 1:
            raise ConfigError(f"max_tokens_cap must be at least 1, got {self.max_tokens_cap}")
        if not 1 <= self.default_max_tokens <= self.max_tokens_cap:
            raise ConfigError(
                f"default_max_tokens must be between 1 and max_tokens_cap "
                f"({self.max_tokens_cap}), got {self.default_max_tokens}"
            )
        if not (math.isfinite(self.stall_timeout_s) and self.stall_timeout_s > 0):
            raise ConfigError(
                f"stall_timeout_s must be a positive number, got {self.stall_timeout_s}"
            )
        if self.max_request_bytes < 1024:
            raise ConfigError(
                f"max_request_bytes must be at least 1024, got {self.max_request_bytes}"
            )
        if self.attempt_memory < 1:
            raise ConfigError(f"attempt_memory must be at least 1, got {self.attempt_memory}")


@dataclass(frozen=True, slots=True)
class DemoRequest:
    """What every door extracts from its wire request."""

    model: str
    messages: tuple[tuple[str, str], ...]
    """``(role, content)`` pairs; the text depends on these and ``seed`` only."""
    max_tokens: int | None = None
    seed: int | None = None


class Rejection(Exception):
    """A request answered with an error instead of a stream.

    ``status`` is the HTTP status each door maps to its own protocol; ``code``
    is ``bad_request`` (400), ``rate_limited`` (429) or ``server_error`` (500).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        fault: Fault | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.fault = fault

    @classmethod
    def bad_request(cls, message: str) -> Rejection:
        return cls(400, "bad_request", message)


@dataclass(frozen=True, slots=True)
class Reply:
    """An admitted request: what to generate, how fast, and how it ends."""

    request: DemoRequest
    spec: ModelSpec
    profile: Profile
    n_tokens: int
    finish_reason: FinishReason
    prompt_tokens: int
    seed: int

    @property
    def stream_fault(self) -> Fault | None:
        """``stall`` / ``drop`` / ``malformed``, or ``None``."""
        return self.spec.fault if self.spec.fault in STREAM_FAULTS else None

    @property
    def tokens_to_send(self) -> int:
        """Tokens before the final frame, or before the stream fault."""
        if self.stream_fault is None:
            return self.n_tokens
        return min(self.spec.fail_after, self.n_tokens)

    def text(self) -> str:
        """The whole reply at once (no pacing, no fault)."""
        return "".join(generate(self.seed, self.n_tokens, complete=self.finish_reason == "stop"))

    def usage(self, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }


def messages_from_json(value: Any, field: str = "messages") -> tuple[tuple[str, str], ...]:
    """``[{"role", "content"}]`` (content a string, ``null`` or OpenAI text parts)."""
    if not isinstance(value, list):
        raise Rejection.bad_request(
            f"{field!r} must be a list of messages, got {type(value).__name__}"
        )
    out: list[tuple[str, str]] = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise Rejection.bad_request(
                f"{field}[{i}] must be an object, got {type(message).__name__}"
            )
        role = message.get("role")
        if not isinstance(role, str):
            raise Rejection.bad_request(f"{field}[{i}].role must be a string")
        out.append((role, _content_text(message.get("content"), f"{field}[{i}].content")))
    return tuple(out)


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    raise Rejection.bad_request(f"{where} must be a string or a list of parts")


def optional_int(body: Mapping[str, Any], key: str, *, where: str = "") -> int | None:
    """An optional integer field (booleans are not integers here)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejection.bad_request(f"{where}{key!r} must be an integer, got {value!r}")
    return value


class DemoModel:
    """Admits requests and hands out :class:`Generation` objects; one per server set."""

    def __init__(self, config: DemoConfig | None = None, stats: DemoStats | None = None) -> None:
        self.config = config or DemoConfig()
        self.stats = stats or DemoStats()
        self.ledger = AttemptLedger(self.config.attempt_memory)
        self._live: set[Generation] = set()
        self._drained = asyncio.Event()

    def admit(self, door: Door, request: DemoRequest) -> Reply:
        """Count the request and decide its reply, or raise :class:`Rejection`."""
        stats = self.stats[door]
        stats.requests += 1
        try:
            spec = parse_model(request.model, PROFILES, self.config.default_profile)
        except ModelSpecError as exc:
            raise Rejection.bad_request(str(exc)) from None
        cap = self.config.max_tokens_cap
        if request.max_tokens is not None and not 1 <= request.max_tokens <= cap:
            raise Rejection.bad_request(
                f"max_tokens must be between 1 and the cap of {cap}, got {request.max_tokens}"
            )
        if request.seed is not None and not 0 <= request.seed <= _MAX_SEED:
            raise Rejection.bad_request(
                f"seed must be between 0 and {_MAX_SEED}, got {request.seed}"
            )
        if self.ledger.should_fail(door, spec, request.model, request.messages):
            stats.count_fault(spec.fault or "")
            if spec.fault == "http429":
                raise Rejection(
                    429,
                    "rate_limited",
                    f"rate limited by fault injection (model {request.model!r}); retry after 1 s",
                    retry_after=1.0,
                    fault="http429",
                )
            raise Rejection(
                500,
                "server_error",
                f"internal server error by fault injection (model {request.model!r})",
                fault="http500",
            )
        return Reply(
            request=request,
            spec=spec,
            profile=PROFILES[spec.profile],
            n_tokens=request.max_tokens or self.config.default_max_tokens,
            finish_reason="stop" if request.max_tokens is None else "length",
            prompt_tokens=sum(count_tokens(content) for _, content in request.messages),
            seed=request_seed(request.messages, request.seed),
        )

    def open(self, door: Door, reply: Reply) -> Generation:
        """A generation for ``reply``; use it as a ``with`` block."""
        return Generation(self, self.stats[door], reply)

    @property
    def live(self) -> int:
        return len(self._live)

    async def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every open generation and wait (bounded) for the doors to close them."""
        if not self._live:
            return
        self._drained.clear()
        for generation in list(self._live):
            generation.cancel("shutdown")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout_s)

    def _closed(self, generation: Generation) -> None:
        self._live.discard(generation)
        if not self._live:
            self._drained.set()


class Generation:
    """One reply being streamed: paces tokens on an absolute clock, counts them,
    and stops promptly when the client goes away (:meth:`cancel` wakes it)."""

    def __init__(self, model: DemoModel, stats: DoorStats, reply: Reply) -> None:
        self._model = model
        self.stats = stats
        self.reply = reply
        self._loop = asyncio.get_running_loop()
        self.t0 = self._loop.time()
        self.gone: GoneReason | None = None
        self.generated = 0
        self.completed = False
        self._waiter: asyncio.Future[None] | None = None
        self._offsets = reply.profile.offsets(reply.seed)
        self._text = generate(reply.seed, reply.n_tokens, complete=reply.finish_reason == "stop")

    def __enter__(self) -> Generation:
        self.stats.open_streams += 1
        self._model._live.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stats.open_streams -= 1
        self._model._closed(self)
        if isinstance(exc, asyncio.CancelledError) and self.gone is None:
            self.gone = "client"  # the door's task was cancelled: its client left
        if self.completed:
            self.stats.completed += 1
        elif self.gone == "client":
            self.stats.cancelled += 1
        else:
            self.stats.failed += 1

    def cancel(self, reason: GoneReason = "client") -> None:
        """The client went away or cancelled (or the server is stopping)."""
        if self.gone is None:
            self.gone = reason
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def complete(self) -> None:
        """The door sent the final frame."""
        self.completed = True

    def fault(self, fault: Fault) -> None:
        """The door injected a stream fault."""
        self.stats.count_fault(fault)

    async def next_token(self) -> tuple[int, str] | None:
        """Wait until the next token is due and return ``(index, text)``.

        ``None`` when the reply (or the part before a stream fault) is over,
        or when the client is gone: no token is generated after that.
        """
        if self.gone is not None or self.generated >= self.reply.tokens_to_send:
            return None
        await self._sleep_until(self.t0 + next(self._offsets) / 1000.0)
        if self.gone is not None:
            return None
        index = self.generated
        self.generated += 1
        self.stats.tokens += 1
        return index, next(self._text)

    def lost_token(self) -> None:
        """The door could not deliver the token just generated (the client left)."""
        self.stats.tokens_after_cancel += 1
        self.cancel("client")

    async def wait_gone(self) -> bool:
        """For ``stall``: hold until the client leaves (or ``stall_timeout_s``)."""
        if self.gone is None:
            await self._sleep_until(self._loop.time() + self._model.config.stall_timeout_s)
        return self.gone is not None

    async def _sleep_until(self, when: float) -> None:
        if when <= self._loop.time():
            await asyncio.sleep(0)  # still let other streams and I/O run
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        timer = self._loop.call_at(when, _wake, waiter)
        self._waiter = waiter
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
