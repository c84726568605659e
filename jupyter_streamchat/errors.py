"""Exceptions.

::

    StreamChatError
    ├── ConfigError           you misused the API: bad backend config, bad option
    │   └── UnknownBackend    a backend name that is not configured
    └── StreamError           the peer misbehaved; carries an event error ``code``
        ├── ConnectFailed     connect_failed
        ├── Timeout           timeout
        ├── HTTPStatus        http_status  (``status``, ``retry_after``)
        ├── ProtocolError     protocol_error
        ├── UpstreamError     upstream_error (the backend reported an error)
        ├── UpstreamClosed    upstream_closed
        ├── Cancelled         cancelled
        └── LimitExceeded     limit_exceeded (``limit``, ``value``, ``size``)

Foreign exceptions (httpx, websockets, grpc) are converted to these where they
enter, in :mod:`jupyter_streamchat.upstream`, and nowhere else.  A stream never
raises a ``StreamError`` at its reader: it ends with an ``Error`` event instead
(see :meth:`StreamError.to_event`).
"""

from __future__ import annotations

from typing import ClassVar

from .events import Error, ErrorCode


class StreamChatError(Exception):
    """Base of every exception raised by this package."""


class ConfigError(StreamChatError, ValueError):
    """The caller's configuration or arguments are wrong."""


class UnknownBackend(ConfigError, LookupError):
    """A backend name that is not configured."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "none configured"
        super().__init__(f"unknown backend {name!r}; valid names: {listed}")


class StreamError(StreamChatError):
    """A stream failed; ``code`` is the stable error code of the ``Error`` event."""

    code: ClassVar[ErrorCode] = "internal"
    default_retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable

    @staticmethod
    def from_event(event: Error) -> StreamError:
        """The exception matching an ``Error`` event (for callers who prefer raising)."""
        cls = _BY_CODE.get(event.code, StreamError)
        exc = cls.__new__(cls)
        StreamError.__init__(exc, event.message, retryable=event.retryable)
        exc.status = event.status  # type: ignore[attr-defined]
        exc.retry_after = event.retry_after  # type: ignore[attr-defined]
        return exc

    def to_event(self, seq: int, recv_ms: float, *, partial: bool) -> Error:
        return Error(
            seq=seq,
            recv_ms=recv_ms,
            code=self.code,
            message=self.message,
            retryable=self.retryable,
            partial=partial,
            status=getattr(self, "status", None),
            retry_after=getattr(self, "retry_after", None),
        )


class ConnectFailed(StreamError):
    code = "connect_failed"
    default_retryable = True


class Timeout(StreamError):
    code = "timeout"
    default_retryable = True


class HTTPStatus(StreamError):
    code = "http_status"

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=status == 429 or status in (500, 502, 503, 504))
        self.status = status
        self.retry_after = retry_after


class ProtocolError(StreamError):
    code = "protocol_error"


class UpstreamError(StreamError):
    code = "upstream_error"


class UpstreamClosed(StreamError):
    code = "upstream_closed"
    default_retryable = True


class Cancelled(StreamError):
    code = "cancelled"


class LimitExceeded(StreamError):
    """A configured size or count limit was exceeded.

    ``limit`` is the setting's name, ``value`` its configured value and
    ``size`` what was seen, so the message reads e.g.
    ``SSE line of 1048577 bytes exceeds max_line_bytes=1048576``.
    """

    code = "limit_exceeded"

    def __init__(self, what: str, size: int, limit: str, value: int, unit: str = "bytes") -> None:
        super().__init__(f"{what} of {size} {unit} exceeds {limit}={value}")
        self.limit = limit
        self.value = value
        self.size = size


_BY_CODE: dict[str, type[StreamError]] = {
    cls.code: cls
    for cls in (
        ConnectFailed, Timeout, HTTPStatus, ProtocolError, UpstreamError,
        UpstreamClosed, Cancelled, LimitExceeded,
    )
}  # fmt: skip
