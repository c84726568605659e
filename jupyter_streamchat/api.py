"""The Python API: stream a chat reply from any backend, in any kernel, no server needed.

::

    async for event in jupyter_streamchat.stream("demo-sse", "Tell me a story"):
        if isinstance(event, Token):
            print(event.text, end="", flush=True)

    for event in jupyter_streamchat.stream_sync("demo-grpc", "Hello", model="slow"):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from .backends import Backend
from .decode.stream import DecoderLimits
from .dialects.base import ChatMessage
from .errors import ConfigError, StreamError
from .events import Error, Event, Token
from .registry import resolve
from .runtime import io_loop, submit
from .upstream import UpstreamPool, UpstreamStream, open_stream

__all__ = ["SyncStream", "complete", "normalize_messages", "stream", "stream_sync"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


def normalize_messages(messages: str | Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """A prompt string becomes one user message; lists are checked."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ConfigError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise ConfigError(f"messages[{i}].role must be one of {sorted(_ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ConfigError(f"messages[{i}].content must be a string")
        out.append({"role": role, "content": content})
    if not out:
        raise ConfigError("messages must not be empty")
    return out


def stream(
    backend: str | Backend | Mapping[str, Any],
    messages: str | Sequence[ChatMessage],
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    retries: int | None = None,
    limits: DecoderLimits | None = None,
    pool: UpstreamPool | None = None,
    **options: Any,
) -> UpstreamStream:
    """Stream a chat reply as events; use with ``async for``.

    ``backend`` is a configured name (see :mod:`jupyter_streamchat.registry`),
    a config dict, or a :class:`Backend`.  Extra keyword arguments are passed
    to the backend as request options (``top_p``, ``stop``, ``seed``...).
    The stream ends with ``Done`` or ``Error``; it does not raise for
    upstream failures.  ``aclose()`` closes the upstream connection.
    """
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    if temperature is not None:
        options["temperature"] = temperature
    return open_stream(
        resolve(backend),
        normalize_messages(messages),
        model=model,
        options=options,
        pool=pool,
        limits=limits,
        retries=retries,
    )


_END = object()


class SyncStream(Iterator[Event]):
    """The blocking twin of :class:`UpstreamStream`; ``close()`` closes the upstream."""

    def __init__(self, upstream_factory: Any) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._future: Future[None] = submit(self._pump(upstream_factory))

    async def _pump(self, factory: Any) -> None:
        self._task = asyncio.current_task()
        try:
            async with factory() as upstream:
                async for event in upstream:
                    self._queue.put(event)
        except BaseException as exc:
            self._queue.put(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._queue.put(_END)

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Event:
        if self._closed:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._closed = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._closed = True
            raise item
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the stream and close the upstream connection (waits for it)."""
        if self._closed and self._future.done():
            return
        self._closed = True
        task = self._task
        if task is not None and not self._future.done():
            io_loop().call_soon_threadsafe(task.cancel)
        with contextlib.suppress(BaseException):  # cancelled or failed: either way it is closed
            self._future.result(timeout=10)

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._closed:
            self.close()

    def text(self) -> str:
        """Consume the stream; return its text, or raise the error it ended with."""
        parts: list[str] = []
        with self:
            for event in self:
                if isinstance(event, Token):
                    parts.append(event.text)
                elif isinstance(event, Error):
                    raise StreamError.from_event(event)
        return "".join(parts)


def stream_sync(
    backend: str | Backend | Mapping[str, Any],
    messages: str | Sequence[ChatMessage],
    **kwargs: Any,
) -> SyncStream:
    """Blocking twin of :func:`stream`: a plain iterator of events.

    The stream runs on a background event loop, so this works inside a
    Jupyter kernel (whose own loop is already running) and in plain scripts.
    """
    resolved = resolve(backend)
    normalized = normalize_messages(messages)
    return SyncStream(lambda: stream(resolved, normalized, **kwargs))


def complete(
    backend: str | Backend | Mapping[str, Any],
    messages: str | Sequence[ChatMessage],
    **kwargs: Any,
) -> str:
    """The whole reply as a string (blocking); raises the stream's error if it fails."""
    return stream_sync(backend, messages, **kwargs).text()
