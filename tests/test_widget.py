"""ChatWidget's kernel side, with no browser: the comm messages a page would send, real demo
backends behind them, and the headless path that answers when no page does."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from jupyter_streamchat import ChatWidget
from jupyter_streamchat import registry as registry_module
from jupyter_streamchat.demo.servers import DemoServers
from jupyter_streamchat.demo.text import generate, request_seed
from jupyter_streamchat.errors import StreamChatError
from jupyter_streamchat.events import now_ms
from jupyter_streamchat.registry import configure
from jupyter_streamchat.widget import BATCH_SECONDS, HISTORY_SECONDS, PendingReply, utf16_length

DEMO_NAMES = ("demo-sse", "demo-ndjson", "demo-ws", "demo-grpc")


def expected(conversation: list[tuple[str, str]], max_tokens: int) -> str:
    return "".join(generate(request_seed(conversation), max_tokens, complete=False))


def tail(
    messages: list[dict[str, Any]], start: int = 0, after: str | None = None
) -> dict[str, Any]:
    """A history tail, as a page sends it (see pushState in js/src/model.ts)."""
    return {"start": start, "after": after, "messages": messages}


class Page:
    """Stands in for a browser page: what Python sent it, and messages from it."""

    def __init__(self, widget: ChatWidget) -> None:
        self.widget = widget
        self.sent: list[tuple[float, dict[str, Any]]] = []
        widget.send_msg = lambda content: self.sent.append((now_ms(), content))  # type: ignore[method-assign]

    def say(self, content: dict[str, Any]) -> None:
        """A custom message from the page, through ipywidgets' own comm dispatch."""
        self.widget._handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.sent if m.get("type") == kind]

    def kernel_events(self, stream_id: str) -> list[dict[str, Any]]:
        return [
            e for m in self.of_type("kernel_events") if m["id"] == stream_id for e in m["events"]
        ]

    async def until(self, check: Callable[[], object], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout} s")
            await asyncio.sleep(0.01)

    async def kernel_chat(
        self, stream_id: str, timeout: float = 20.0, **request: Any
    ) -> list[dict[str, Any]]:
        """Ask the kernel to stream (the kernel path) and collect the events to the terminal one."""
        self.say({"type": "kernel_chat", "id": stream_id, **request})

        def ended() -> bool:
            events = self.kernel_events(stream_id)
            return bool(events) and events[-1]["type"] in ("done", "error")

        await self.until(ended, timeout)
        return self.kernel_events(stream_id)


@pytest.fixture
async def backends(demo: DemoServers) -> AsyncIterator[DemoServers]:
    """The demo-* names point at this test's demo doors (restored afterwards)."""
    saved = {n: registry_module._registered.get(n) for n in DEMO_NAMES}
    configure(demo.backend_configs())
    yield demo
    for name, backend in saved.items():
        if backend is None:
            registry_module._registered.pop(name, None)
        else:
            registry_module._registered[name] = backend


@pytest.fixture
def widget() -> Iterator[ChatWidget]:
    chat = ChatWidget(backend="demo-sse", claim_seconds=0.05)
    yield chat
    chat.close()


@pytest.fixture
def page(widget: ChatWidget) -> Page:
    return Page(widget)


def test_import_and_plain_python_errors() -> None:
    import jupyter_streamchat

    assert jupyter_streamchat.ChatWidget is ChatWidget
    chat = ChatWidget(backend="demo-sse")
    try:
        with pytest.raises(StreamChatError, match="running event loop"):
            chat.send("hi")
        with pytest.raises(StreamChatError, match="non-empty"):
            chat.send("  ")
        with pytest.raises(StreamChatError, match="no reply to replay"):
            chat.replay()
    finally:
        chat.close()


def test_utf16_length_counts_like_javascript() -> None:
    assert utf16_length("abc") == 3
    assert utf16_length("é") == 1
    assert utf16_length("😀") == 2  # a surrogate pair in JavaScript
    assert utf16_length("a😀b") == 4


async def test_clock_ping_is_answered_with_the_kernel_clock(page: Page) -> None:
    before = now_ms()
    page.say({"type": "clock_ping", "id": "p1"})
    (pong,) = page.of_type("clock_pong")
    assert pong["id"] == "p1"
    assert before <= pong["now_ms"] <= now_ms()


# -- the kernel path: a page with no bridge streams through the comm ----------------------


async def test_kernel_path_batches_events_and_ends_with_one_terminal(
    page: Page, backends: DemoServers
) -> None:
    messages = [{"role": "user", "content": "Hello"}]
    events = await page.kernel_chat(
        "k1", backend="demo-sse", messages=messages, model="instant", options={"max_tokens": 300}
    )
    assert events[0]["type"] == "start"
    assert [e["type"] for e in events].count("done") == 1
    assert events[-1]["type"] == "done"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "seq must grow, no repeats"
    text = "".join(e["text"] for e in events if e["type"] == "token")
    assert text == expected([("user", "Hello")], 300)
    assert all("send_ms" in e and "recv_ms" in e for e in events)
    batches = page.of_type("kernel_events")
    # 300 instant tokens must not become 300 comm messages.
    assert len(batches) < len(events) / 3, f"{len(batches)} messages for {len(events)} events"


async def test_kernel_path_sends_a_slow_token_at_once(page: Page, backends: DemoServers) -> None:
    """Batching must not hold a token back until the next one comes."""
    events = await page.kernel_chat(
        "k2", backend="demo-ndjson", messages=[{"role": "user", "content": "Hi"}],
        model="slow", options={"max_tokens": 6},
    )  # fmt: skip
    assert sum(e["type"] == "token" for e in events) == 6
    delays = []
    for sent_at, message in page.sent:
        if message.get("type") == "kernel_events":
            delays.append(sent_at - message["events"][0]["recv_ms"])
    # A token every 125 ms; each goes out within the batch window (plus scheduling slack).
    assert max(delays) < BATCH_SECONDS * 1000 + 60, delays
    assert len(page.of_type("kernel_events")) >= 6


async def test_kernel_cancel_closes_the_upstream_and_numbers_the_error(
    page: Page, backends: DemoServers
) -> None:
    page.say(
        {"type": "kernel_chat", "id": "k3", "backend": "demo-ws", "model": "slow",
         "messages": [{"role": "user", "content": "Go on"}], "options": {"max_tokens": 400}}
    )  # fmt: skip
    await page.until(lambda: sum(e["type"] == "token" for e in page.kernel_events("k3")) >= 2)
    assert backends.counters.open_streams == 1
    page.say({"type": "kernel_cancel", "id": "k3"})
    await page.until(lambda: page.kernel_events("k3")[-1]["type"] == "error")
    events = page.kernel_events("k3")
    error = events[-1]
    assert error["code"] == "cancelled"
    assert error["partial"] is True
    assert error["seq"] == events[-2]["seq"] + 1, "the error is numbered after the last event"
    await page.until(lambda: backends.counters.open_streams == 0)


async def test_kernel_path_failures_are_one_error_event(page: Page) -> None:
    events = await page.kernel_chat(
        "k4", backend="no-such-backend", messages=[{"role": "user", "content": "Hi"}]
    )
    assert len(events) == 1
    assert events[0]["type"] == "error"
    assert events[0]["seq"] == 0
    assert "no-such-backend" in events[0]["message"]
    assert "demo-sse" in events[0]["message"], "the message lists the valid names"


async def test_kernel_path_options_cannot_reach_the_api_parameters(
    page: Page, backends: DemoServers
) -> None:
    events = await page.kernel_chat(
        "k5", backend="demo-sse", messages=[{"role": "user", "content": "Hi"}], model="instant",
        options={"max_tokens": 3, "pool": "x", "retries": 99, "limits": None, "model": "slow"},
    )  # fmt: skip
    assert events[-1]["type"] == "done"
    assert sum(e["type"] == "token" for e in events) == 3


def test_kernel_backends_lists_names_without_secrets(page: Page) -> None:
    configure(
        {
            "secret-one": {
                "protocol": "openai",
                "url": "http://127.0.0.1:9/v1",
                "api_key": "sk-TOPSECRET",
            }
        }
    )
    try:
        page.say({"type": "kernel_backends"})
        names = [b["name"] for b in page.widget.backends]
        assert {"demo-sse", "demo-ws", "secret-one"} <= set(names)
        assert "sk-TOPSECRET" not in json.dumps(page.widget.get_state())
        demo_entry = next(b for b in page.widget.backends if b["name"] == "demo-grpc")
        assert "slow" in demo_entry["models"]
    finally:
        registry_module._registered.pop("secret-one", None)


# -- prompts sent from Python ---------------------------------------------------------------


async def test_with_no_view_the_kernel_answers_and_records_history(
    widget: ChatWidget, page: Page, backends: DemoServers
) -> None:
    widget.options = {"max_tokens": 12}
    widget.model = "instant"
    pending = widget.send("Tell me about the Hatter.")
    assert isinstance(pending, PendingReply)
    assert page.of_type("send")[0]["text"] == "Tell me about the Hatter."
    reply = await pending
    assert pending.done()
    assert "done" in repr(pending)
    text = expected([("user", "Tell me about the Hatter.")], 12)
    assert reply["content"] == text
    assert reply["status"] == "done"
    assert reply["path"] == "kernel"
    assert reply["protocol"] == "openai"
    assert [(m["role"], m["status"]) for m in widget.history] == [
        ("user", "done"),
        ("assistant", "done"),
    ]
    assert widget.history[1] == reply
    timing = reply["timing"]
    rows = timing["events"]
    assert timing["arrivals"] == len(rows) == 12
    assert timing["tokens"] == 12
    assert timing["ttft_ms"] is not None
    assert timing["ttft_ms"] >= 0
    lengths = [row[5] for row in rows]
    assert lengths == sorted(lengths)
    assert lengths[-1] == utf16_length(text), "text_length is cumulative, in UTF-16 code units"
    assert all(row[2] is None and row[3] is None for row in rows), "no bridge on this path"
    assert not widget.busy


async def test_headless_history_grows_about_ten_times_a_second(
    widget: ChatWidget, backends: DemoServers
) -> None:
    widget.model = "steady"  # 20 ms a token
    widget.options = {"max_tokens": 50}
    seen: list[tuple[float, str, str]] = []

    def on_history(change: dict[str, Any]) -> None:
        last = change["new"][-1]
        seen.append((time.monotonic(), last.get("status", ""), last["content"]))

    widget.observe(on_history, names="history")
    reply = await widget.send("Tell me a story.")
    streaming = [(t, c) for t, s, c in seen if s == "streaming"]
    lengths = [len(c) for _, c in streaming]
    assert lengths == sorted(lengths), "the reply only grows"
    assert lengths[-1] > 0, "views saw the text while it streamed"
    # ~1 s of tokens: several updates, far fewer than one per token.
    assert 4 <= len(streaming) <= 20, lengths
    # (after the placeholder written when the reply starts)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(streaming[1:])]
    assert min(gaps) >= HISTORY_SECONDS * 0.8
    assert seen[-1][1] == "done"
    assert seen[-1][2] == reply["content"]


async def test_prompts_are_answered_in_order_with_the_conversation_so_far(
    widget: ChatWidget, backends: DemoServers
) -> None:
    widget.model = "instant"
    widget.options = {"max_tokens": 5}
    first = widget.send("One?")
    second = widget.send("Two?")
    replies = await widget.wait()
    assert [r["content"] for r in replies] == [
        first.result()["content"],
        second.result()["content"],
    ]
    a1 = expected([("user", "One?")], 5)
    a2 = expected([("user", "One?"), ("assistant", a1), ("user", "Two?")], 5)
    assert [m["content"] for m in widget.history] == ["One?", a1, "Two?", a2]


async def test_a_view_that_claims_a_prompt_streams_it(widget: ChatWidget, page: Page) -> None:
    widget.claim_seconds = 5.0
    pending = widget.send("From Python")
    request_id = page.of_type("send")[0]["id"]
    page.say({"type": "claim", "id": request_id, "view": "page-a"})
    page.say({"type": "claim", "id": request_id, "view": "page-b"})
    await page.until(lambda: page.of_type("claimed"))
    assert page.of_type("claimed") == [{"type": "claimed", "id": request_id, "view": "page-a"}]
    assert page.of_type("denied") == [{"type": "denied", "id": request_id, "view": "page-b"}]
    assert "streaming in a view" in repr(pending)
    user = {"id": "u1", "role": "user", "content": "From Python", "status": "done"}
    streaming = {"id": "a1", "role": "assistant", "content": "", "status": "streaming"}
    final = {**streaming, "content": "Hello.", "status": "done", "path": "bridge"}
    page.say(
        {
            "type": "state",
            "page": "page-a",
            "rev": 1,
            "state": {"busy": True},
            "history": tail([user, streaming]),
        }
    )
    # The kernel may handle reply_done before the state write sent just before it:
    page.say(
        {"type": "reply_done", "id": request_id, "index": 1, "status": "done", "message_id": "a1"}
    )
    await asyncio.sleep(0.05)
    assert not pending.done(), "answered before history holds the reply"
    page.say(
        {
            "type": "state",
            "page": "page-a",
            "rev": 2,
            "state": {"busy": False},
            "history": tail([final], 1, "u1"),
        }
    )
    reply = await pending
    assert reply == final
    assert widget.history == [user, final]
    assert not widget.busy


async def test_a_view_reply_in_order_is_answered_at_once(widget: ChatWidget, page: Page) -> None:
    widget.claim_seconds = 5.0
    pending = widget.send("Again")
    request_id = page.of_type("send")[0]["id"]
    page.say({"type": "claim", "id": request_id, "view": "v"})
    await page.until(lambda: page.of_type("claimed"))
    final = {"id": "b2", "role": "assistant", "content": "Yes.", "status": "error"}
    history = [{"id": "b1", "role": "user", "content": "Again"}, final]
    page.say({"type": "state", "page": "v", "rev": 1, "state": {}, "history": tail(history)})
    page.say(
        {"type": "reply_done", "id": request_id, "index": 1, "status": "error", "message_id": "b2"}
    )
    assert pending.done()
    assert (await widget.wait()) == []
    assert pending.result() == final


async def test_a_late_claim_is_denied(
    widget: ChatWidget, page: Page, backends: DemoServers
) -> None:
    widget.model = "instant"
    widget.options = {"max_tokens": 3}
    reply = await widget.send("Quick")
    request_id = page.of_type("send")[0]["id"]
    page.say({"type": "claim", "id": request_id, "view": "late"})
    assert page.of_type("denied") == [{"type": "denied", "id": request_id, "view": "late"}]
    assert reply["path"] == "kernel"


def test_state_writes_keep_the_newest_per_page_and_trait(widget: ChatWidget, page: Page) -> None:
    old = [{"id": "x", "role": "user", "content": "old"}]
    new = [{"id": "y", "role": "user", "content": "new"}]
    page.say({"type": "state", "page": "p", "rev": 5, "state": {}, "history": tail(new)})
    page.say(
        {
            "type": "state",
            "page": "p",
            "rev": 4,
            "state": {"backend": "demo-ws"},
            "history": tail(old),
        }
    )
    assert widget.history == new, "an overtaken write does not win"
    assert widget.backend == "demo-ws", "but what it alone carried is applied"
    page.say({"type": "state", "page": "other", "rev": 1, "state": {}, "history": tail(old)})
    assert widget.history == old, "another page counts its own revisions"
    # Only what a page may write: not the prompt, the options or the kernel-side settings.
    page.say(
        {
            "type": "state",
            "page": "p",
            "rev": 9,
            "state": {"system_prompt": "x", "options": {"a": 1}, "history": new},
        }
    )
    assert widget.system_prompt == ""
    assert widget.options == {}
    assert widget.history == old, "history comes only as a tail"
    page.say({"type": "state", "page": "p", "rev": 10, "state": {"leg": "carrier-pigeon"}})
    assert widget.leg == "auto", "an invalid value is ignored"


def test_history_tails_are_applied_passed_on_or_refused(widget: ChatWidget, page: Page) -> None:
    """A page sends only the changed end of history; Python passes it to the other pages."""
    first = [
        {"id": "a", "role": "user", "content": "One"},
        {"id": "b", "role": "assistant", "content": "1"},
    ]
    page.say({"type": "state", "page": "p", "rev": 1, "state": {}, "history": tail(first)})
    more = [{"id": "c", "role": "user", "content": "Two"}]
    page.say({"type": "state", "page": "p", "rev": 2, "state": {}, "history": tail(more, 2, "b")})
    assert [m["id"] for m in widget.history] == ["a", "b", "c"]
    passed_on = page.of_type("history_tail")
    assert passed_on[-1] == {
        "type": "history_tail",
        "page": "p",
        "start": 2,
        "after": "b",
        "messages": more,
    }
    # A tail written against another history does not fit: the page is asked for all of it.
    page.say({"type": "state", "page": "p", "rev": 3, "state": {}, "history": tail(more, 1, "zz")})
    assert page.of_type("history_resync") == [{"type": "history_resync", "page": "p"}]
    assert [m["id"] for m in widget.history] == ["a", "b", "c"]
    # A page that lost track asks Python for all of it.
    page.say({"type": "history_resync"})
    assert page.of_type("history_tail")[-1]["messages"] == widget.history
    # Python's own assignment syncs the whole list the usual way (not as a tail).
    count = len(page.of_type("history_tail"))
    widget.clear()
    assert widget.history == []
    assert len(page.of_type("history_tail")) == count


async def test_stop_cancels_a_kernel_reply_and_keeps_the_partial_text(
    widget: ChatWidget, page: Page, backends: DemoServers
) -> None:
    widget.model = "slow"
    widget.options = {"max_tokens": 400}
    pending = widget.send("Talk for a while.")
    await page.until(lambda: len(widget.history) == 2 and widget.history[1]["content"])
    assert widget.busy
    page.say({"type": "stop_kernel"})  # the Stop button of a view
    reply = await pending
    assert reply["status"] == "cancelled"
    assert reply["error"]["code"] == "cancelled"
    assert reply["content"]
    assert expected([("user", "Talk for a while.")], 400).startswith(reply["content"])
    assert not widget.busy
    await page.until(lambda: backends.counters.open_streams == 0)
    # Python's stop() also tells the views.
    widget.stop()
    assert page.of_type("stop") == [{"type": "stop"}]


async def test_replay_asks_the_views_and_hears_back(
    widget: ChatWidget, page: Page, backends: DemoServers
) -> None:
    widget.model = "instant"
    widget.options = {"max_tokens": 4}
    await widget.send("Hi")
    widget.replay(speed=2)
    assert page.of_type("replay") == [{"type": "replay", "index": 1, "speed": 2}]
    with pytest.raises(StreamChatError, match="not a reply"):
        widget.replay(0)
    with pytest.raises(StreamChatError, match="speed"):
        widget.replay(speed=0)
    page.say({"type": "replay_done", "index": 1, "status": "done"})
    assert widget.last_replay == {"index": 1, "status": "done"}


async def test_no_secret_reaches_the_widget_state(
    widget: ChatWidget, page: Page, demo: DemoServers
) -> None:
    configure({"keyed": {"protocol": "openai", "url": demo.openai, "api_key": "sk-TOPSECRET"}})
    try:
        widget.backend = "keyed"
        widget.model = "instant"
        widget.options = {"max_tokens": 3}
        reply = await widget.send("Hi")
        assert reply["status"] == "done"
        page.say({"type": "kernel_backends"})
        state = json.dumps(widget.get_state(), default=str)
        assert "sk-TOPSECRET" not in state
        assert "keyed" in state
    finally:
        registry_module._registered.pop("keyed", None)
