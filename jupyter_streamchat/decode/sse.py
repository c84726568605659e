"""Server-sent events framing, bytes in, messages out (sans-I/O).

Follows the WHATWG *event stream interpretation* algorithm exactly:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

* the stream is UTF-8 with errors replaced, and one leading BOM is stripped;
* lines end with CRLF, LF or CR, and only those (U+2028, U+2029 and NEL are
  text); a CR that ends one chunk and an LF that starts the next are one CRLF;
* a line starting with ``:`` is a comment; otherwise the field name runs to the
  first colon and one space after it is dropped from the value;
* ``data`` appends the value and a LF, ``event`` sets the type (``message``
  when unset), ``id`` sets the last event ID unless it holds NUL, ``retry``
  counts only if it is all ASCII digits, other fields are ignored;
* an empty line dispatches the event, unless no ``data`` came, and the final
  LF of the data is dropped; an event still open at the end of the stream is
  discarded.

This is the hot path of the bridge, so the decoder works on bytes: CR/LF are
never part of a multi-byte UTF-8 sequence, so splitting lines before decoding
gives the same text as an incremental decoder, and only values are decoded.
A chunk holding no CR (the usual case) is split with one ``bytes.split``.
Both security limits are checked before a line or an event grows past them,
so memory stays bounded whatever the peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import ConfigError, LimitExceeded
from .lines import LineBuffer

__all__ = ["SSEDecoder", "SSEMessage"]

_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched event.

    ``id`` is the stream's last event ID when the event was dispatched (as the
    spec's ``MessageEvent.lastEventId``; ``None`` when it is empty); ``retry``
    is a valid ``retry`` field received in this event's lines, if any.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental SSE parser: :meth:`feed` bytes as they arrive, then :meth:`eof`.

    ``last_event_id`` is the ID to resume with (``Last-Event-ID``), updated at
    each blank line as the spec says; ``retry`` the latest reconnection time in
    milliseconds, if the server set one.  Once :class:`LimitExceeded` has been
    raised, every later call raises it again: the stream must be abandoned.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_fault",
        "_head",
        "_id",
        "_lines",
        "_max_event",
        "_message_retry",
        "_skip_lf",
        "_slow",
        "_started",
        "last_event_id",
        "retry",
    )

    def __init__(self, max_line_bytes: int, max_event_bytes: int) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ConfigError(
                f"SSE limits must be >= 1 byte, got max_line_bytes={max_line_bytes}, "
                f"max_event_bytes={max_event_bytes}"
            )
        self._max_event = max_event_bytes
        self.last_event_id = ""
        self.retry: int | None = None
        self._started = False  # False until the BOM question is settled
        self._slow = True  # the BOM is unsettled or a chunk ended with CR: see _normalise
        self._head = b""  # the first bytes while they may still be a BOM
        self._skip_lf = False  # the last chunk ended with CR: a leading LF completes CRLF
        self._lines = LineBuffer(max_line_bytes, "SSE line")
        self._fault: LimitExceeded | None = None  # raised by the next call, see feed()
        self._reset_event()
        self._id = ""  # the spec's "last event ID buffer"

    def _reset_event(self) -> None:
        self._data: list[bytes] = []
        self._data_size = 0  # bytes of the data buffer, counting a LF after each line
        self._event = b""
        self._message_retry: int | None = None

    def feed(self, data: bytes) -> list[SSEMessage]:
        """Parse a chunk; return the events it completed, oldest first.

        Raises :class:`LimitExceeded` for an over-long line or event.  Events
        completed before the fault in the same chunk are returned first, and
        the error is raised by the next call (``feed`` or ``eof``): how the
        bytes were split never changes what is delivered.
        """
        if self._fault is not None:
            raise self._fault
        if self._slow or b"\r" in data:
            data = self._normalise(data)
        lines, fault = self._lines.split(data)
        out: list[SSEMessage] = []
        try:
            self._process(lines, out)
            if fault is not None:
                raise fault
        except LimitExceeded as exc:
            if not out:
                raise
            self._fault = exc
        return out

    def _normalise(self, data: bytes) -> bytes:
        """The chunk with a leading BOM dropped and every line ending made LF."""
        if not self._started:
            data = self._head + data
            if len(data) < 3 and _BOM.startswith(data):
                self._head = data
                return b""
            self._started = True
            self._head = b""
            if data.startswith(_BOM):
                data = data[3:]
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == 10:
                data = data[1:]
        if b"\r" in data:
            # A CR at the very end may be the first half of a CRLF split across chunks:
            # it ends the line now, and the LF that may start the next chunk is dropped.
            self._skip_lf = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._slow = not self._started or self._skip_lf
        return data

    def eof(self) -> list[SSEMessage]:
        """The stream ended: an unfinished event is discarded, as the spec says."""
        if self._fault is not None:
            raise self._fault
        self._lines.clear()
        self._head = b""
        self._skip_lf = False
        self._slow = not self._started
        self._reset_event()
        return []

    def _process(self, lines: list[bytes], out: list[SSEMessage]) -> None:
        """Interpret complete lines: the spec's "process the field" and "dispatch the event"."""
        data = self._data
        size = self._data_size
        for line in lines:
            if line[:6] == b"data: ":  # the common cases first, without find()
                value = line[6:]
            elif line[:5] == b"data:":
                value = line[5:]
            elif not line:
                self.last_event_id = self._id
                if data:
                    text = data[0] if len(data) == 1 else b"\n".join(data)
                    event = self._event
                    out.append(
                        _message(
                            text.decode("utf-8", "replace"),
                            event.decode("utf-8", "replace") if event else "message",
                            self._id or None,
                            self._message_retry,
                        )
                    )
                    data.clear()
                    size = self._data_size = 0
                self._event = b""
                self._message_retry = None
                continue
            else:
                colon = line.find(b":")
                if colon == 0:
                    continue  # a comment
                if colon < 0:
                    name, value = line, b""
                else:
                    name = line[:colon]
                    value = (
                        line[colon + 2 :]
                        if line[colon + 1 : colon + 2] == b" "
                        else line[colon + 1 :]
                    )
                if name != b"data":
                    self._field(name, value)
                    continue
            # The data buffer gets value + LF; the dispatched data drops the last LF,
            # so the limit applies to size - 1.
            size += len(value) + 1
            if size - 1 > self._max_event:
                raise LimitExceeded("SSE event", size - 1, "max_event_bytes", self._max_event)
            data.append(value)
            self._data_size = size

    def _field(self, name: bytes, value: bytes) -> None:
        """Any field but ``data``."""
        if name == b"event":
            self._event = value
        elif name == b"id":
            if b"\x00" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():  # bytes.isdigit(): ASCII digits only
            self.retry = self._message_retry = int(value)
        # any other field is ignored


# A frozen dataclass's __init__ sets each field through object.__setattr__; on this
# path (once per token) setting the slots directly is measurably cheaper.
_new_message = object.__new__
_set_data = SSEMessage.__dict__["data"].__set__
_set_event = SSEMessage.__dict__["event"].__set__
_set_id = SSEMessage.__dict__["id"].__set__
_set_retry = SSEMessage.__dict__["retry"].__set__


def _message(data: str, event: str, id: str | None, retry: int | None) -> SSEMessage:
    message: SSEMessage = _new_message(SSEMessage)
    _set_data(message, data)
    _set_event(message, event)
    _set_id(message, id)
    _set_retry(message, retry)
    return message
