"""StreamDecoder: the stream grammar holds whatever the backend sends, limits become events."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from helpers import (
    assert_grammar,
    decode_messages,
    decode_stream,
    ndjson,
    normalise,
    one_byte,
    random_chunks,
    split_at,
    sse,
    texts,
)
from hypothesis import given
from hypothesis import strategies as st

from jupyter_streamchat.decode.emitter import Emitter
from jupyter_streamchat.decode.stream import DecoderLimits, StreamDecoder
from jupyter_streamchat.dialects import get_dialect
from jupyter_streamchat.errors import ConnectFailed, Timeout
from jupyter_streamchat.events import Error, Event, Start, Token

# --- the grammar, property-based ----------------------------------------------------------

frames = st.lists(
    st.one_of(
        st.tuples(st.just("token"), st.text(min_size=1, max_size=5)),
        st.tuples(st.just("empty"), st.none()),
        st.tuples(st.just("finish"), st.sampled_from(["stop", "length"])),
        st.tuples(st.just("usage"), st.none()),
        st.tuples(st.just("comment"), st.none()),
        st.tuples(st.just("done"), st.none()),
        st.tuples(st.just("error"), st.none()),
        st.tuples(st.just("garbage"), st.none()),
    ),
    max_size=12,
)


def openai_frame(kind: str, value: Any) -> bytes:
    if kind == "comment":
        return b": keep-alive\n\n"
    if kind == "done":
        return b"data: [DONE]\n\n"
    if kind == "garbage":
        return b"data: {not json\n\n"
    obj: dict[str, Any] = {"choices": [{"index": 0, "delta": {}}]}
    if kind == "token":
        obj["choices"][0]["delta"]["content"] = value
    elif kind == "finish":
        obj["choices"][0]["finish_reason"] = value
    elif kind == "usage":
        obj = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    elif kind == "error":
        obj = {"error": {"message": "boom"}}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def expected_outcome(script: list[tuple[str, Any]]) -> tuple[list[str], str, str | None]:
    """Tokens, and the terminal event's type and code, from the script alone."""
    tokens: list[str] = []
    finish = False
    for kind, value in script:
        if kind == "token":
            tokens.append(value)
        elif kind == "finish":
            finish = True
        elif kind == "done":
            return tokens, "done", None
        elif kind == "error":
            return tokens, "error", "upstream_error"
        elif kind == "garbage":
            return tokens, "error", "protocol_error"
    return (tokens, "done", None) if finish else (tokens, "error", "upstream_closed")


@given(frames, st.lists(st.integers(0, 2000), max_size=20))
def test_grammar_and_outcome(script: list[tuple[str, Any]], points: list[int]) -> None:
    data = b"".join(openai_frame(kind, value) for kind, value in script)
    events = decode_stream("openai-chat", split_at(data, points))
    assert_grammar(events)
    tokens, kind, code = expected_outcome(script)
    assert texts(events) == tokens
    assert events[-1].type == kind
    if code is not None:
        assert isinstance(events[-1], Error)
        assert events[-1].code == code


@given(frames, st.lists(st.integers(0, 2000), max_size=20))
def test_grammar_without_eof(script: list[tuple[str, Any]], points: list[int]) -> None:
    """Mid-stream the grammar holds too: Start first, seq contiguous, nothing after a terminal."""
    data = b"".join(openai_frame(kind, value) for kind, value in script)
    events = decode_stream("openai-chat", split_at(data, points), eof=False)
    assert [e.seq for e in events] == list(range(len(events)))
    if events:
        assert isinstance(events[0], (Start, Error))
    terminal = [i for i, e in enumerate(events) if e.type in ("done", "error")]
    assert terminal in ([], [len(events) - 1])


@given(st.lists(st.sampled_from(["token", "done", "error", "garbage", "other"]), max_size=10))
def test_grammar_message_framing(script: list[str]) -> None:
    frames = {
        "token": '{"token": "t"}',
        "done": '{"done": true}',
        "error": '{"error": "e"}',
        "garbage": "{",
        "other": '{"heartbeat": 1}',
    }
    assert_grammar(decode_messages("generic", [frames[k] for k in script]))


# --- after the end ------------------------------------------------------------------------


def test_nothing_after_the_terminal_event() -> None:
    decoder = StreamDecoder(get_dialect("openai-chat"), Emitter())
    events = decoder.feed(sse({"choices": [{"delta": {"content": "a"}}]}, "[DONE]"), 1.0)
    assert [e.type for e in events] == ["start", "token", "done"]
    assert decoder.finished
    assert decoder.feed(sse({"choices": [{"delta": {"content": "b"}}]}), 2.0) == []
    assert decoder.feed(b"data: garbage\n\n", 2.0) == []
    assert decoder.eof(3.0) == []
    assert decoder.fail(Timeout("late"), 4.0) == []


def test_error_without_start() -> None:
    decoder = StreamDecoder(get_dialect("openai-chat"), Emitter())
    events = decoder.fail(ConnectFailed("refused"), 1.0)
    assert events == [
        Error(seq=0, recv_ms=1.0, code="connect_failed", message="refused", retryable=True)
    ]
    assert_grammar(events)


def test_fail_mid_stream_keeps_partial() -> None:
    decoder = StreamDecoder(get_dialect("openai-chat"), Emitter())
    decoder.feed(sse({"choices": [{"delta": {"content": "a"}}]}), 1.0)
    [error] = decoder.fail(Timeout("idle"), 2.0)
    assert isinstance(error, Error)
    assert error.partial
    assert error.seq == 2


def test_empty_reply_is_an_early_close() -> None:
    # The decoder never invents a Start: the adapter makes it once the backend answers.
    events = decode_stream("openai-chat", [])
    assert [(e.type, getattr(e, "code", None)) for e in events] == [("error", "upstream_closed")]


def test_recv_ms_is_the_feed_time() -> None:
    decoder = StreamDecoder(get_dialect("openai-chat"), Emitter())
    a = decoder.feed(sse({"choices": [{"delta": {"content": "a"}}]}), 10.0)
    b = decoder.feed(sse({"choices": [{"delta": {"content": "b"}}]}), 20.0)
    assert [e.recv_ms for e in a + b] == [10.0, 10.0, 20.0]


def test_feed_needs_byte_framing() -> None:
    decoder = StreamDecoder(get_dialect("generic"), Emitter())
    with pytest.raises(TypeError, match="feed_message"):
        decoder.feed(b"{}", 1.0)


# --- limits --------------------------------------------------------------------------------


def limit_error(events: list[Event]) -> Error:
    last = events[-1]
    assert isinstance(last, Error)
    assert last.code == "limit_exceeded"
    assert_grammar(events)
    return last


def test_sse_line_limit() -> None:
    limits = DecoderLimits(max_line_bytes=100)
    data = sse({"choices": [{"delta": {"content": "a"}}]}) + b"data: " + b"x" * 200
    last = limit_error(decode_stream("openai-chat", [data], limits=limits))
    assert last.message == "SSE line of 206 bytes exceeds max_line_bytes=100"
    assert last.partial
    assert not last.retryable


@pytest.mark.parametrize("framing", ["sse", "ndjson"])
def test_limit_outcome_however_split(framing: str) -> None:
    limits = DecoderLimits(max_line_bytes=100, max_event_bytes=100)
    if framing == "sse":
        dialect = "openai-chat"
        data = (
            sse(*({"choices": [{"delta": {"content": t}}]} for t in "abc")) + b"data: " + b"x" * 200
        )
    else:
        dialect = "ollama-chat"
        data = ndjson(*({"message": {"content": t}} for t in "abc")) + b"x" * 200

    def run(chunks: list[bytes]) -> list[dict[str, Any]]:
        events = normalise(decode_stream(dialect, chunks, limits=limits))
        # The size named is what had arrived when the limit tripped (at least 101).
        message = events[-1]["message"]
        assert re.fullmatch(r"(SSE|NDJSON) line of \d+ bytes exceeds max_line_bytes=100", message)
        assert int(message.split()[3]) > 100
        events[-1]["message"] = "..."
        return events

    expected = run([data])
    assert expected[-1]["code"] == "limit_exceeded"
    assert expected[-1]["partial"]
    assert [e.get("text") for e in expected if e["type"] == "token"] == ["a", "b", "c"]
    assert run(one_byte(data)) == expected
    for seed in range(5):
        assert run(random_chunks(data, seed, 40)) == expected


def test_sse_line_limit_fed_slowly() -> None:
    limits = DecoderLimits(max_line_bytes=100)
    chunks = [b"data: "] + [b"x" * 10] * 30
    last = limit_error(decode_stream("openai-chat", chunks, limits=limits, eof=False))
    assert last.message == "SSE line of 106 bytes exceeds max_line_bytes=100"
    assert not last.partial


def test_sse_event_limit() -> None:
    limits = DecoderLimits(max_event_bytes=50)
    data = b"data: " + b"y" * 30 + b"\ndata: " + b"z" * 30 + b"\n\n"
    last = limit_error(decode_stream("openai-chat", [data], limits=limits))
    assert last.message == "SSE event of 61 bytes exceeds max_event_bytes=50"


def test_ndjson_line_limit() -> None:
    limits = DecoderLimits(max_line_bytes=64)
    data = ndjson({"message": {"content": "a"}}) + b'{"message": {"content": "' + b"b" * 100
    last = limit_error(decode_stream("ollama-chat", [data], limits=limits))
    assert last.message == "NDJSON line of 125 bytes exceeds max_line_bytes=64"
    assert last.partial


def test_message_limit() -> None:
    limits = DecoderLimits(max_message_bytes=32)
    big = json.dumps({"token": "x" * 40})
    events = decode_messages("generic", ['{"token": "a"}', big], limits=limits)
    last = limit_error(events)
    assert last.message == f"message of {len(big)} bytes exceeds max_message_bytes=32"
    assert last.partial
    assert [e.text for e in events if isinstance(e, Token)] == ["a"]


# --- public names ------------------------------------------------------------------------


def test_public_names() -> None:
    import jupyter_streamchat.decode as decode
    import jupyter_streamchat.dialects as dialects

    for package in (decode, dialects):
        assert package.__all__ == sorted(package.__all__, key=lambda n: (not n.isupper(), n))
        for name in package.__all__:
            assert getattr(package, name) is not None
    assert decode.StreamDecoder is StreamDecoder
    assert decode.DecoderLimits is DecoderLimits
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = decode.nope
