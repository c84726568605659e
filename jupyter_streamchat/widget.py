"""``ChatWidget``: a chat cell that shows tokens the moment they arrive.

The browser streams from the bridge directly (the kernel stays free).  Where
no bridge is reachable (VS Code, Colab, a server without the extension) the
browser asks the kernel instead: the kernel streams with the same core and
forwards events in small batches over the widget's comm.  And when no browser
view takes a prompt sent from Python (a headless run, or a kernel that cannot
hear the page while a cell runs), :meth:`ChatWidget.send` streams in the kernel
and records the reply itself, updating ``history`` about ten times a second so
that open views show it growing.

History and each reply's recorded timings are synced traitlets, so they are
saved with the notebook's widget state.  Nothing secret is ever put in them:
backends are named, never given by URL with credentials, and the listing a
view shows is the bridge's public one.

The custom messages between this class and ``js/src/controller.ts`` /
``js/src/kernel.ts`` are listed in ``docs/protocol.md`` ("Widget messages").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anywidget
import traitlets

from .api import stream
from .bridge.encode import wire_dict
from .errors import StreamChatError
from .events import Done, Error, Event, Heartbeat, Start, Token, Usage, now_ms

__all__ = ["ChatWidget", "PendingReply"]

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).parent / "static"
BATCH_SECONDS: Final = 0.03
"""Kernel path: events go to the browser at most every 30 ms, one comm message per batch."""
BATCH_EVENTS: Final = 256
"""Kernel path: a batch is sent at once when it holds this many events."""
HISTORY_SECONDS: Final = 0.1
"""Headless path: ``history`` is updated at most ten times a second while a reply streams."""
CLAIM_SECONDS: Final = 2.0
"""How long a prompt sent from Python waits for a browser view to take it."""
SAVE_SECONDS: Final = 5.0
"""After a view's ``reply_done``, how long to wait for its ``history`` write at most."""
_STREAM_PARAMETERS: Final = frozenset({"model", "retries", "limits", "pool"})
"""Keyword parameters of :func:`stream` that request options from a browser must not set."""
_WRITABLE: Final = frozenset(
    {"history", "busy", "active_path", "backends", "backend", "model", "leg"}
)
"""Traitlets a browser view may write with a ``state`` message (see ``pushState`` in js/)."""


def _bundle(name: str) -> Path | str:
    path = STATIC / name
    if path.exists():
        return path
    if name.endswith(".css"):
        return ""
    return (
        "export default { render({ el }) { el.textContent = 'jupyter_streamchat: the widget "
        "bundle is missing; reinstall the package (the build needs Node.js).'; } };"
    )


def utf16_length(text: str) -> int:
    """``text.length`` in JavaScript: UTF-16 code units (what the browser records)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _options(raw: Any) -> dict[str, Any]:
    """Request options from a browser message: a dict, minus :func:`stream`'s own parameters."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): v for k, v in raw.items() if str(k) not in _STREAM_PARAMETERS}


class _Throttle:
    """Run ``action`` at most once per ``interval`` seconds, trailing edge included."""

    def __init__(self, interval: float, action: Callable[[], None]) -> None:
        self.interval = interval
        self.action = action
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        """Something changed: act now, or once the interval since the last action is over."""
        if self._timer is not None:
            return
        wait = self._last + self.interval - time.monotonic()
        if wait <= 0:
            self.flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        """Act now (and forget a scheduled action)."""
        self.cancel()
        self._last = time.monotonic()
        self.action()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Recorder:
    """A reply's text and timing as the kernel reads it (the twin of ``js/src/timing.ts``).

    Rows are ``[seq, emit_ms, bridge_recv_ms, bridge_send_ms, reader_recv_ms,
    text_length]`` like the browser's; with no bridge and no browser the
    kernel is the reader, and ``text_length`` is the reply's length so far in
    UTF-16 code units, as JavaScript counts it.
    """

    def __init__(self, sent_ms: float) -> None:
        self.sent_ms = sent_ms
        self.parts: list[str] = []
        self.length = 0
        self.rows: list[list[Any]] = []
        self.chunks = 0
        self.first_ms: float | None = None
        self.last_ms = sent_ms
        self.completion_tokens: int | None = None
        self.terminal: Done | Error | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def record(self, event: Event) -> None:
        if isinstance(event, Heartbeat):
            return
        self.last_ms = event.recv_ms
        if isinstance(event, Token):
            self.parts.append(event.text)
            self.length += utf16_length(event.text)
            self.chunks += event.chunks
            if self.first_ms is None:
                self.first_ms = event.recv_ms
            recv = _round(event.recv_ms)
            self.rows.append([event.seq, _round(event.emit_ms), None, None, recv, self.length])
        elif isinstance(event, Usage) and event.completion_tokens is not None:
            self.completion_tokens = event.completion_tokens
        elif isinstance(event, (Done, Error)):
            self.terminal = event

    def outcome(self) -> dict[str, Any]:
        """``content``, ``status``, ``error`` (if any) and ``timing`` of the reply."""
        out: dict[str, Any] = {"content": self.text, "status": "done"}
        terminal = self.terminal
        if terminal is None:  # cancelled before the stream could say so
            terminal = Error(seq=0, recv_ms=now_ms(), code="cancelled", message="stopped")
        if isinstance(terminal, Error):
            out["status"] = "cancelled" if terminal.code == "cancelled" else "error"
            out["error"] = {
                "code": terminal.code, "message": terminal.message, "retryable": terminal.retryable,
            }  # fmt: skip
        first = self.first_ms
        out["timing"] = {
            "sent_ms": _round(self.sent_ms),
            "clock_offset_ms": 0.0,
            "clock_error_ms": 0.0,
            "ttft_ms": None if first is None else _round(first - self.sent_ms),
            "duration_ms": _round(self.last_ms - self.sent_ms),
            "tokens": self.completion_tokens or self.chunks,
            "arrivals": len(self.rows),
            "chunks": self.chunks,
            "events": self.rows,
        }
        return out


@dataclass(eq=False)
class _Request:
    """A prompt sent from Python, waiting for a view to take it or for the kernel to stream it."""

    id: str
    text: str
    future: asyncio.Future[dict[str, Any]]
    sent: float = field(default_factory=time.monotonic)
    claimed: asyncio.Event = field(default_factory=asyncio.Event)
    view: Any = None
    """The view that asked for it first (``claim``)."""
    decided: str = ""
    """``""`` while waiting, then ``"view"`` (granted to ``view``) or ``"kernel"``."""
    reply_at: tuple[int, str] | None = None
    """Where the view saved the reply: ``(index in history, message id)``."""


class PendingReply:
    """What :meth:`ChatWidget.send` returns: await it for the reply, or ignore it.

    ``await chat.send("hi")`` gives the reply message (a dict as in
    ``chat.history``) once it has ended, whichever way it streamed.
    """

    def __init__(self, request: _Request, widget: ChatWidget) -> None:
        self._request = request
        self._widget = widget

    @property
    def id(self) -> str:
        return self._request.id

    def done(self) -> bool:
        return self._request.future.done()

    def result(self) -> dict[str, Any]:
        """The reply message; raises if it has not ended yet."""
        return self._request.future.result()

    def add_done_callback(self, callback: Callable[[asyncio.Future[dict[str, Any]]], Any]) -> None:
        self._request.future.add_done_callback(callback)

    def __await__(self) -> Generator[Any, None, dict[str, Any]]:
        reply = yield from self._request.future.__await__()
        if self._request.decided == "kernel":
            self._widget._resend_history()
        return reply

    def __repr__(self) -> str:
        future = self._request.future
        if not future.done():
            how = {"view": "streaming in a view", "kernel": "streaming in the kernel"}
            return f"<PendingReply {how.get(self._request.decided, 'waiting for a view')}>"
        if future.cancelled():
            return "<PendingReply cancelled>"
        reply = future.result()
        text = str(reply.get("content", ""))
        short = text if len(text) <= 60 else text[:57] + "..."
        return f"<PendingReply {reply.get('status', 'done')}: {short!r}>"


class ChatWidget(anywidget.AnyWidget):
    """A chat cell.  ``ChatWidget(backend="demo-sse")``, then type, or ``chat.send("...")``."""

    _esm = _bundle("widget.js")
    _css = _bundle("widget.css")

    backend = traitlets.Unicode("", help="Backend name ('' = the bridge's default).").tag(sync=True)
    model = traitlets.Unicode("", help="Model for the backend ('' = its default).").tag(sync=True)
    leg = traitlets.Enum(["auto", "sse", "ws"], "auto", help="Browser leg to the bridge.").tag(
        sync=True
    )
    path = traitlets.Enum(
        ["auto", "bridge", "kernel"], "auto", help="Stream through the bridge, the kernel, or pick."
    ).tag(sync=True)
    active_path = traitlets.Unicode("", help="The path in use, as reported by the browser.").tag(
        sync=True
    )
    history = traitlets.List(
        traitlets.Dict(),
        help="""The conversation, with recorded timings.  Pages and the kernel exchange only
        its changed end (a history tail); assigning it from Python syncs it whole.""",
    ).tag(sync=True, echo_update=False)
    system_prompt = traitlets.Unicode("", help="System message sent first.").tag(sync=True)
    options = traitlets.Dict(help="Request options, e.g. {'max_tokens': 256}.").tag(sync=True)
    busy = traitlets.Bool(False, help="A reply is streaming.").tag(sync=True)
    backends = traitlets.List(traitlets.Dict(), help="Backends the selector offers.").tag(sync=True)
    title = traitlets.Unicode("", help="Heading shown above the chat.").tag(sync=True)
    claim_seconds = traitlets.Float(
        CLAIM_SECONDS,
        min=0.0,
        help="""Seconds a prompt sent from Python waits for a browser view to take it before
        the kernel streams it itself (not synced; 0: always stream in the kernel).""",
    )

    def __init__(self, backend: str = "", **kwargs: Any) -> None:
        super().__init__(backend=backend, **kwargs)
        self._requests: dict[str, _Request] = {}
        self._order: list[_Request] = []
        self._drainer: asyncio.Task[None] | None = None
        self._headless: asyncio.Task[None] | None = None
        self._kernel_streams: dict[str, asyncio.Task[None]] = {}
        self._state_revs: dict[tuple[str, str], int] = {}
        self._finishing: dict[str, _Request] = {}
        self.last_replay: dict[str, Any] | None = None
        """What the last ``replay_done`` said: ``{"index", "status"}``."""
        self.on_msg(self._on_frontend_msg)

    # -- Python API ----------------------------------------------------------------

    def send(self, text: str) -> PendingReply:
        """Send a prompt as if typed; returns a :class:`PendingReply`.

        Fire-and-forget (``chat.send("hi")``) or awaitable (``await chat.send("hi")``).
        A browser view takes the prompt and streams it; if none does within
        :attr:`claim_seconds` (two), the kernel streams it and records the reply itself.
        Prompts are answered one after another, in the order they were sent.
        """
        if not isinstance(text, str) or not text.strip():
            raise StreamChatError("send() needs a non-empty prompt string")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise StreamChatError(
                "send() needs a running event loop (a Jupyter kernel has one); "
                "outside one, use jupyter_streamchat.stream_sync()"
            ) from None
        request = _Request(secrets.token_hex(8), text, loop.create_future())
        self._requests[request.id] = request
        self._order.append(request)
        self.send_msg({"type": "send", "id": request.id, "text": text})
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return PendingReply(request, self)

    async def wait(self) -> list[dict[str, Any]]:
        """Wait until every prompt sent from Python so far has its reply; returns the replies.

        A prompt a view took is answered when that view reports it done.
        """
        requests = [*self._requests.values(), *self._finishing.values()]
        replies = list(await asyncio.gather(*(request.future for request in requests)))
        if any(request.decided == "kernel" for request in requests):
            self._resend_history()
        return replies

    def send_msg(self, content: dict[str, Any]) -> None:
        """Send a custom message to the browser views."""
        super().send(content)

    def stop(self) -> None:
        """Stop the reply that is streaming (in a view or in the kernel)."""
        self.send_msg({"type": "stop"})
        if self._headless is not None:
            self._headless.cancel()
        for task in list(self._kernel_streams.values()):
            task.cancel()

    def replay(self, index: int = -1, speed: float = 1.0) -> None:
        """Play a recorded reply back in the views with its original timing (for teaching).

        ``index`` is a position in ``history`` (-1: the last reply); ``speed`` 2.0
        plays twice as fast.  The views report back with ``replay_done`` (see
        :attr:`last_replay`).
        """
        replies = [i for i, m in enumerate(self.history) if m.get("role") == "assistant"]
        if not replies:
            raise StreamChatError("there is no reply to replay yet")
        if index < 0:
            index = replies[-1] if index == -1 else len(self.history) + index
        if not 0 <= index < len(self.history):
            raise StreamChatError(
                f"history has {len(self.history)} messages; index {index} is out of range"
            )
        message = self.history[index]
        if message.get("role") != "assistant" or not message.get("timing"):
            raise StreamChatError(f"history[{index}] is not a reply with recorded timing")
        if speed <= 0:
            raise StreamChatError(f"speed must be > 0, got {speed}")
        self.send_msg({"type": "replay", "index": index, "speed": speed})

    def clear(self) -> None:
        """Forget the conversation."""
        self.history = []

    # -- browser messages ----------------------------------------------------------

    def _on_frontend_msg(self, _: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, Mapping):
            return
        kind = content.get("type")
        request_id = str(content.get("id", ""))
        if kind == "state":
            self._on_state(
                content.get("page"),
                content.get("rev"),
                content.get("state"),
                content.get("history"),
            )
        elif kind == "history_resync":
            self._send_tail(None, 0, list(self.history))
        elif kind == "clock_ping":
            self.send_msg({"type": "clock_pong", "id": request_id, "now_ms": now_ms()})
        elif kind == "claim":
            self._on_claim(request_id, content.get("view"))
        elif kind == "reply_done":
            self._on_reply_done(request_id, content.get("index"), content.get("message_id"))
        elif kind == "replay_done":
            self.last_replay = {"index": content.get("index"), "status": content.get("status")}
        elif kind == "stop_kernel":
            if self._headless is not None:
                self._headless.cancel()
        elif kind == "kernel_chat":
            self._start_kernel_stream(request_id, content)
        elif kind == "kernel_cancel":
            task = self._kernel_streams.get(request_id)
            if task is not None:
                task.cancel()
        elif kind == "kernel_backends":
            self.backends = _kernel_backends()

    def _on_state(self, page: Any, rev: Any, state: Any, tail: Any) -> None:
        """Traitlet writes from a page, newest per page and trait (they may come out of order).

        ``history`` comes as a tail (see ``pushState`` in js/): the messages
        from ``start`` on, after the message with id ``after``.
        """
        if not isinstance(state, Mapping):
            state = {}
        page = str(page)
        fresh = {
            name: value
            for name, value in state.items()
            if name in _WRITABLE and name != "history" and self._newest(page, rev, name)
        }
        if fresh:
            try:
                self.set_state(fresh)
            except traitlets.TraitError as exc:
                log.warning("ChatWidget: ignored a state update from the browser: %s", exc)
        if isinstance(tail, Mapping) and self._newest(page, rev, "history"):
            self._apply_tail(page, tail)
        for request in list(self._finishing.values()):
            self._settle(request)

    def _newest(self, page: str, rev: Any, name: str) -> bool:
        """Whether this write of ``name`` by ``page`` is newer than the last one applied."""
        if not isinstance(rev, int) or isinstance(rev, bool):
            return True
        key = (page, name)
        if rev <= self._state_revs.get(key, -1):
            return False  # an older write, overtaken by a newer one
        self._state_revs[key] = rev
        return True

    def _apply_tail(self, page: str, tail: Mapping[str, Any]) -> None:
        start, after, messages = tail.get("start"), tail.get("after"), tail.get("messages")
        current = self.history
        if (
            isinstance(start, int)
            and not isinstance(start, bool)
            and 0 <= start <= len(current)
            and (start == 0 or current[start - 1].get("id") == after)
            and isinstance(messages, list)
            and all(isinstance(m, Mapping) for m in messages)
        ):
            self._set_history([*current[:start], *messages])
            self._send_tail(page, start, messages)
        else:
            self.send_msg({"type": "history_resync", "page": page})  # send all of it

    def _set_history(self, value: list[dict[str, Any]]) -> None:
        """Set ``history`` here without the usual sync of the whole list: pages get tails."""
        try:
            self.set_state({"history": value})  # history has echo_update=False: no echo
        except traitlets.TraitError as exc:
            log.warning("ChatWidget: ignored a history update: %s", exc)

    def _write_tail(self, start: int, messages: list[dict[str, Any]]) -> None:
        """The kernel's own history write: keep ``history[:start]``, then ``messages``."""
        self._set_history([*self.history[:start], *messages])
        self._send_tail(None, start, messages)

    def _send_tail(self, page: str | None, start: int, messages: list[Any]) -> None:
        """Tell the pages that ``history[start:]`` is now ``messages`` (``page`` wrote it)."""
        after = self.history[start - 1].get("id") if start > 0 else None
        tail = {"start": start, "after": after, "messages": messages}
        self.send_msg({"type": "history_tail", "page": page, **tail})

    def _on_claim(self, request_id: str, view: Any) -> None:
        request = self._requests.get(request_id)
        if request is None or request.decided or request.claimed.is_set():
            # Too late (the kernel took it) or another view was first.
            self.send_msg({"type": "denied", "id": request_id, "view": view})
            return
        request.view = view
        request.claimed.set()  # granted when its turn comes (see _drain)

    def _on_reply_done(self, request_id: str, index: Any, message_id: Any) -> None:
        """A view finished a prompt it took: answer ``send`` with the reply it saved.

        The view writes ``history`` just before, but the kernel may handle the
        two messages in either order, so the answer waits until ``history``
        holds that reply, ended (or :data:`SAVE_SECONDS` at most).
        """
        request = self._requests.pop(request_id, None)
        if request is None or request.future.done():
            return
        request.reply_at = (index if isinstance(index, int) else -1, str(message_id or ""))
        self._finishing[request.id] = request
        if not self._settle(request):
            asyncio.get_running_loop().call_later(SAVE_SECONDS, self._settle, request, True)

    def _settle(self, request: _Request, give_up: bool = False) -> bool:
        """Resolve a view's reply once ``history`` has it; True when resolved."""
        if request.future.done():
            self._finishing.pop(request.id, None)
            return True
        index, message_id = request.reply_at or (-1, "")
        history = self.history
        message = history[index] if 0 <= index < len(history) else {}
        ended = message.get("status") not in (None, "streaming")
        if not give_up and not (ended and message.get("id", "") == message_id):
            return False
        self._finishing.pop(request.id, None)
        request.future.set_result(dict(message))
        return True

    # -- prompts sent from Python ----------------------------------------------------

    async def _drain(self) -> None:
        """Answer prompts in order: grant each to the view that claimed it, or stream it here."""
        while self._order:
            request = self._order[0]
            wait = request.sent + self.claim_seconds - time.monotonic()
            if not request.claimed.is_set() and wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(request.claimed.wait(), wait)
            self._order.pop(0)
            if request.future.done():  # cancelled by the caller
                self._requests.pop(request.id, None)
                continue
            if request.claimed.is_set():
                request.decided = "view"
                self.send_msg({"type": "claimed", "id": request.id, "view": request.view})
                continue  # the view answers with reply_done
            request.decided = "kernel"
            self._headless = asyncio.get_running_loop().create_task(self._stream_headless(request))
            try:
                await self._headless
            except asyncio.CancelledError:
                if not self._headless.cancelled():
                    raise  # this drainer itself was cancelled
            except Exception:  # a bug: log it, and answer the next prompts all the same
                log.exception("ChatWidget: streaming a prompt in the kernel failed")
                if not request.future.done():
                    request.future.set_exception(StreamChatError("streaming in the kernel failed"))
            finally:
                self._headless = None
                self._requests.pop(request.id, None)

    async def _stream_headless(self, request: _Request) -> None:
        """No view took the prompt: stream in the kernel and record the reply in ``history``."""
        backend = self.backend or "demo-sse"
        messages = [m for m in self._conversation() if m["content"]]
        messages.append({"role": "user", "content": request.text})
        user = {"id": _message_id(), "role": "user", "content": request.text, "status": "done"}
        reply: dict[str, Any] = {
            "id": _message_id(), "role": "assistant", "content": "", "status": "streaming",
            "backend": backend, "path": "kernel",
        }  # fmt: skip
        if self.model:
            reply["model"] = self.model
        self._write_tail(len(self.history), [user, dict(reply)])
        recorder = _Recorder(now_ms())

        def publish() -> None:
            reply["content"] = recorder.text
            self._put_reply(reply)

        throttle = _Throttle(HISTORY_SECONDS, publish)
        self.busy = True
        try:
            async for event in self._events(backend, messages, self.model or None, self.options):
                recorder.record(event)
                if isinstance(event, Start):
                    reply.update({k: v for k, v in (("protocol", event.protocol),
                                                     ("model", event.model)) if v})  # fmt: skip
                elif isinstance(event, Token):
                    throttle.poke()
        finally:
            throttle.cancel()
            reply.update(recorder.outcome())
            self._put_reply(reply, whole=True)
            self.busy = False
            if not request.future.done():
                request.future.set_result(dict(reply))

    def _resend_history(self) -> None:
        """Sync ``history`` whole again, from the code that awaited a reply the kernel streamed.

        The kernel streams in a task, and ipykernel sends what a task sends as
        output of the cell that started it: a client keeping only the messages
        of the cell running now (nbclient saving widget state) would miss the
        reply.  Sent from the awaiting cell, it is that cell's.
        """
        self.send_state("history")

    def _put_reply(self, reply: dict[str, Any], whole: bool = False) -> None:
        """Write ``reply`` over the message with its id in ``history``.

        While it streams, as a tail (cheap, ten times a second); once ended,
        ``whole``: the ordinary sync of the whole list, so that whoever only
        listens to widget state (nbclient saving an executed notebook) has it.
        """
        history = self.history
        at = next(
            (i for i in range(len(history) - 1, -1, -1) if history[i].get("id") == reply["id"]),
            None,
        )
        if whole:
            updated = list(history)
            if at is None:
                updated.append(dict(reply))
            else:
                updated[at] = dict(reply)
            self.history = updated
        elif at is None:
            self._write_tail(len(history), [dict(reply)])
        else:
            self._write_tail(at, [dict(reply), *history[at + 1 :]])

    def _conversation(self) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for message in self.history:
            role, status = message.get("role"), message.get("status")
            if role in ("user", "assistant") and status in (None, "done"):
                out.append({"role": str(role), "content": str(message.get("content", ""))})
        return out

    # -- kernel path (a view with no bridge streams through us) ------------------------

    def _start_kernel_stream(self, request_id: str, content: Mapping[str, Any]) -> None:
        if not request_id or request_id in self._kernel_streams:
            return
        task = asyncio.get_running_loop().create_task(self._forward(request_id, content))
        self._kernel_streams[request_id] = task
        task.add_done_callback(lambda _: self._kernel_streams.pop(request_id, None))

    async def _forward(self, request_id: str, content: Mapping[str, Any]) -> None:
        """Stream in the kernel; forward events to the browser in batches."""
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            if batch:
                self.send_msg({"type": "kernel_events", "id": request_id, "events": list(batch)})
                batch.clear()

        throttle = _Throttle(BATCH_SECONDS, flush)
        messages = content.get("messages")
        try:
            async for event in self._events(
                str(content.get("backend") or self.backend or "demo-sse"),
                list(messages) if isinstance(messages, list) else [],
                str(content.get("model") or "") or None,
                _options(content.get("options")),
            ):
                batch.append(wire_dict(event, now_ms()))
                if isinstance(event, (Done, Error)) or len(batch) >= BATCH_EVENTS:
                    throttle.flush()
                else:
                    throttle.poke()
        finally:
            throttle.cancel()
            flush()

    async def _events(
        self,
        backend: str,
        messages: list[dict[str, Any]],
        model: str | None,
        options: Mapping[str, Any],
    ) -> AsyncIterator[Event]:
        """The stream's events, ending with ``Done`` or ``Error`` whatever happens.

        Failures to even start, and cancellation, become an ``Error`` numbered
        after the last event (``seq`` + 1), as the bridge numbers its own.
        """
        last_seq = -1
        text_seen = False
        try:
            upstream = stream(backend, messages, model=model, **_options(options))
        except StreamChatError as exc:
            yield Error(seq=0, recv_ms=now_ms(), code="internal", message=str(exc))
            return
        try:
            async for event in upstream:
                if not isinstance(event, Heartbeat):
                    last_seq = max(last_seq, event.seq)
                text_seen = text_seen or isinstance(event, Token)
                yield event
                if isinstance(event, (Done, Error)):
                    return
            yield Error(
                seq=last_seq + 1, recv_ms=now_ms(), code="upstream_closed",
                message="the stream ended without a final event", retryable=True, partial=text_seen,
            )  # fmt: skip
        except asyncio.CancelledError:
            yield Error(
                seq=last_seq + 1, recv_ms=now_ms(), code="cancelled",
                message="stopped in the kernel", partial=text_seen,
            )  # fmt: skip
            raise
        finally:
            await upstream.aclose()


def _round(ms: float | None) -> float | None:
    """0.1 ms, as the browser records (finer is noise)."""
    return None if ms is None else round(ms, 1)


def _message_id() -> str:
    return secrets.token_hex(6)


def _kernel_backends() -> list[dict[str, Any]]:
    """The backend names this kernel knows, for the selector (public fields only)."""
    from .demo.profiles import PROFILES
    from .registry import DEMO_NAMES, _configured, _registered, known_names

    out: list[dict[str, Any]] = []
    for name in known_names():
        found = _registered.get(name) or _configured().get(name)
        if found is not None:
            entry = found.public()
        elif name in DEMO_NAMES:
            entry = {"name": name, "source": "demo", "models": sorted(PROFILES), "model": "steady"}
        else:
            continue
        entry["source"] = f"kernel {entry.get('source', '')}".strip()
        out.append(entry)
    return out
