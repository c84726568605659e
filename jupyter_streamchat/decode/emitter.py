"""The one place events are created while decoding a stream.

Dialects and adapters call :class:`Emitter` methods; the emitter numbers the
events, stamps them with the receive time it was last given, and keeps the
stream's grammar (``Start`` first, one terminal event last, nothing after it).
Pure: no I/O, no clock — the caller sets :attr:`Emitter.now`.
"""

from __future__ import annotations

from ..errors import StreamError
from ..events import Done, Error, ErrorCode, Event, Start, Token, Usage

__all__ = ["Emitter"]


class Emitter:
    """Builds the events of one stream in order."""

    __slots__ = (
        "_finish_reason",
        "_out",
        "backend",
        "finished",
        "first_byte_ms",
        "model",
        "now",
        "protocol",
        "seq",
        "started",
        "text_seen",
    )

    def __init__(
        self, *, model: str | None = None, backend: str | None = None, protocol: str | None = None
    ) -> None:
        self.seq = 0
        self.now = 0.0
        self.started = False
        self.finished = False
        self.text_seen = False
        self.first_byte_ms: float | None = None  # set by adapters: the reply body began
        self.model = model
        self.backend = backend
        self.protocol = protocol
        self._finish_reason: str | None = None
        self._out: list[Event] = []

    def drain(self) -> list[Event]:
        """Return the events built since the last call, oldest first."""
        out = self._out
        self._out = []
        return out

    def _next(self) -> int:
        seq = self.seq
        self.seq = seq + 1
        return seq

    def start(self, *, emit_ms: float | None = None, model: str | None = None) -> None:
        """The backend accepted the request.  Idempotent."""
        if self.started or self.finished:
            return
        self.started = True
        if model is not None:
            self.model = model
        self._out.append(
            Start(
                seq=self._next(),
                recv_ms=self.now,
                emit_ms=emit_ms,
                model=self.model,
                backend=self.backend,
                protocol=self.protocol,
            )
        )

    def token(self, text: str, *, emit_ms: float | None = None) -> None:
        """Text arrived.  Empty text is not an event."""
        if self.finished or not text:
            return
        if not self.started:
            self.start()
        self.text_seen = True
        seq = self.seq
        self.seq = seq + 1
        self._out.append(_token(seq, self.now, text, emit_ms))

    def usage(
        self,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        total_tokens: int | None = None,
        emit_ms: float | None = None,
    ) -> None:
        if self.finished:
            return
        if not self.started:
            self.start()
        if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
            total_tokens = prompt_tokens + completion_tokens
        self._out.append(
            Usage(
                seq=self._next(),
                recv_ms=self.now,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=total_tokens,
                emit_ms=emit_ms,
            )
        )

    def finish_reason(self, reason: str | None) -> None:
        """Remember why generation stopped; reported by :meth:`done`."""
        if reason:
            self._finish_reason = reason

    @property
    def saw_finish_reason(self) -> bool:
        return self._finish_reason is not None

    def done(self, *, finish_reason: str | None = None, emit_ms: float | None = None) -> None:
        """The stream ended normally.  Idempotent."""
        if self.finished:
            return
        if not self.started:
            self.start()
        self.finished = True
        self._out.append(
            Done(
                seq=self._next(),
                recv_ms=self.now,
                finish_reason=finish_reason or self._finish_reason,
                emit_ms=emit_ms,
            )
        )

    def fail(self, exc: StreamError) -> None:
        """The stream ended abnormally.  Ignored once the stream has ended."""
        if self.finished:
            return
        self.finished = True
        self._out.append(exc.to_event(self._next(), self.now, partial=self.text_seen))

    def retract(self, error: Error) -> None:
        """Take back ``error``, the last event built, so the stream can go on (a retry)."""
        if not (self.finished and error.seq == self.seq - 1):
            raise ValueError(
                f"can only retract the final event (seq {self.seq - 1}), not {error.seq}"
            )
        self.finished = False
        self.seq = error.seq

    def error(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        emit_ms: float | None = None,
    ) -> None:
        """An error reported by the backend inside the stream."""
        if self.finished:
            return
        self.finished = True
        self._out.append(
            Error(
                seq=self._next(),
                recv_ms=self.now,
                code=code,
                message=message,
                retryable=retryable,
                partial=self.text_seen,
                status=status,
                retry_after=retry_after,
                emit_ms=emit_ms,
            )
        )


# Once per token: a frozen dataclass's __init__ sets each field through
# object.__setattr__; setting the slots directly builds the same Token faster.
_new = object.__new__
_token_slots = [
    Token.__dict__[name].__set__ for name in ("seq", "recv_ms", "text", "emit_ms", "chunks")
]
_set_seq, _set_recv, _set_text, _set_emit, _set_chunks = _token_slots


def _token(seq: int, recv_ms: float, text: str, emit_ms: float | None) -> Token:
    token: Token = _new(Token)
    _set_seq(token, seq)
    _set_recv(token, recv_ms)
    _set_text(token, text)
    _set_emit(token, emit_ms)
    _set_chunks(token, 1)
    return token
