"""Dialects against recorded real frames and hand-written complete streams."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import (
    FRAMES,
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
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_streamchat.decode.emitter import Emitter
from jupyter_streamchat.dialects import (
    DIALECTS,
    GenericDialect,
    default_dialect_for,
    get_dialect,
)
from jupyter_streamchat.dialects.base import Request
from jupyter_streamchat.errors import ConfigError
from jupyter_streamchat.events import Done, Error, Event, Start, Token, Usage

# --- recorded heads of real streams -------------------------------------------------------

RECORDED: dict[str, tuple[str, list[str]]] = {
    # file: (dialect, the first tokens)
    "llama_server_openai.sse": ("openai-chat", ["f", "ello", " event", "o"]),
    "llamacpp_python_openai.sse": ("openai-chat", [" sto", "long", "ight", "ight"]),
    "tfserve_openai.sse": ("openai-chat", ["fi", " token", "ne", "ch"]),
    # The head ends inside the last event (no blank line): per the SSE spec that
    # event is never dispatched, so " dark" is not a token.
    "llama_server_anthropic.sse": ("anthropic-messages", ["\r", " gre"]),
    # Its only delta (U+FFFD) is that unfinished last event: no text at all.
    "llama_server_responses.sse": ("openai-responses", []),
    "tfserve_responses.sse": ("openai-responses", ["bl", " ca", "iver"]),
}


def recorded(name: str) -> bytes:
    return (FRAMES / name).read_bytes()


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_head(name: str) -> None:
    dialect, first_tokens = RECORDED[name]
    data = recorded(name)
    events = decode_stream(dialect, [data])
    assert_grammar(events)
    assert texts(events)[: len(first_tokens)] == first_tokens
    last = events[-1]
    # A head ends before its final frame: an early close, never an invented Done.
    assert isinstance(last, Error)
    assert last.code == "upstream_closed"
    assert last.partial == bool(first_tokens)
    assert last.retryable
    assert not any(isinstance(e, Done) for e in events)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_head_however_split(name: str) -> None:
    dialect, _ = RECORDED[name]
    data = recorded(name)
    expected = normalise(decode_stream(dialect, [data]))
    assert normalise(decode_stream(dialect, one_byte(data))) == expected
    for seed in range(10):
        assert normalise(decode_stream(dialect, random_chunks(data, seed, 64))) == expected


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(RECORDED)), st.lists(st.integers(0, 3000), max_size=30))
def test_recorded_head_random_splits(name: str, points: list[int]) -> None:
    dialect, _ = RECORDED[name]
    data = recorded(name)
    assert normalise(decode_stream(dialect, split_at(data, points))) == normalise(
        decode_stream(dialect, [data])
    )


def test_recorded_first_delta_without_content_makes_no_token() -> None:
    # llama.cpp: "content": null; llama-cpp-python: no "content" key at all.
    for name in ("llama_server_openai.sse", "llamacpp_python_openai.sse", "tfserve_openai.sse"):
        events = decode_stream("openai-chat", [recorded(name)])
        assert all(e.text for e in events if isinstance(e, Token))
        assert isinstance(events[0], Start)


def test_recorded_model_reaches_start() -> None:
    events = decode_stream("anthropic-messages", [recorded("llama_server_anthropic.sse")])
    assert events[0] == Start(seq=0, recv_ms=1.0, model="tiny")


def test_recorded_responses_delta_with_replacement_character() -> None:
    # Completing the last event (one more blank line) dispatches its U+FFFD delta.
    events = decode_stream("openai-responses", [recorded("llama_server_responses.sse") + b"\n"])
    assert texts(events) == ["\ufffd"]


def test_recorded_responses_without_event_lines() -> None:
    data = recorded("tfserve_responses.sse")
    assert b"event:" not in data
    assert texts(decode_stream("openai-responses", [data]))[:3] == ["bl", " ca", "iver"]


def test_recorded_anthropic_prompt_tokens_include_cache() -> None:
    head = recorded("llama_server_anthropic.sse")
    tail = sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 4},
        },
        {"type": "message_stop"},
    )
    events = decode_stream("anthropic-messages", [head + b"\n" + tail])
    usage = [e for e in events if isinstance(e, Usage)]
    # input_tokens 1 + cache_read_input_tokens 20
    assert [(u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in usage] == [(21, 4, 25)]
    assert events[-1] == Done(seq=len(events) - 1, recv_ms=1.0, finish_reason="end_turn")


# --- hand-written complete streams ---------------------------------------------------------


def kinds(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def chunk(content: str | None = None, *, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    return {
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


OPENAI_COMPLETE = sse(
    {
        "object": "chat.completion.chunk",
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
    },
    chunk("Hel", emit_ms=100.0),
    chunk("lo", emit_ms=101),
    chunk(finish="length", emit_ms=102.0),
    {
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        "emit_ms": 103.0,
    },
    "[DONE]",
)


def check_splits(dialect: str, data: bytes, **config: Any) -> list[Event]:
    """Decode ``data`` whole, byte by byte and in random pieces; all must agree."""
    events = decode_stream(dialect, [data], **config)
    expected = normalise(events)
    assert normalise(decode_stream(dialect, one_byte(data), **config)) == expected
    for seed in range(3):
        assert normalise(decode_stream(dialect, random_chunks(data, seed), **config)) == expected
    assert_grammar(events)
    return events


def test_openai_complete_stream() -> None:
    events = check_splits("openai-chat", OPENAI_COMPLETE)
    assert events == [
        Start(seq=0, recv_ms=1.0, model="gpt-x"),
        Token(seq=1, recv_ms=1.0, text="Hel", emit_ms=100.0),
        Token(seq=2, recv_ms=1.0, text="lo", emit_ms=101.0),
        Usage(
            seq=3, recv_ms=1.0, prompt_tokens=5, completion_tokens=2, total_tokens=7, emit_ms=103.0
        ),
        Done(seq=4, recv_ms=1.0, finish_reason="length"),
    ]


def test_openai_nothing_after_done() -> None:
    events = decode_stream("openai-chat", [OPENAI_COMPLETE + sse(chunk("late"), "garbage")])
    assert kinds(events)[-1] == "done"
    assert "late" not in texts(events)


def test_openai_finish_reason_without_done_marker_is_done() -> None:
    # Some servers end with the finish_reason chunk and close: not an early close.
    events = decode_stream("openai-chat", [sse(chunk("a"), chunk(finish="stop"))])
    assert events[-1] == Done(seq=2, recv_ms=2.0, finish_reason="stop")


def test_openai_in_band_error_keeps_partial() -> None:
    data = sse(
        chunk("a"), {"error": {"message": "model crashed", "type": "server_error"}, "emit_ms": 5}
    )
    events = check_splits("openai-chat", data)
    assert events[-1] == Error(
        seq=2,
        recv_ms=1.0,
        code="upstream_error",
        message="server_error: model crashed",
        partial=True,
        emit_ms=5.0,
    )


def test_openai_vllm_error_object() -> None:
    data = sse({"object": "error", "message": "bad", "type": "BadRequestError", "code": 400})
    events = decode_stream("openai-chat", [data])
    assert isinstance(events[-1], Error)
    assert events[-1].message == "400: bad"
    assert not events[-1].partial


def test_openai_malformed_json_keeps_partial() -> None:
    data = sse(chunk("a"), '{"choices": [' + "x" * 200)
    events = check_splits("openai-chat", data)
    last = events[-1]
    assert isinstance(last, Error)
    assert last.code == "protocol_error"
    assert last.partial
    assert last.message.startswith("openai-chat frame is not JSON (")
    assert '\'{"choices": [xxxx' in last.message
    assert "… (213 chars)" in last.message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("[1, 2]", "openai-chat frame is an array, expected an object: '[1, 2]'"),
        ('"text"', "openai-chat frame is a string, expected an object: '\"text\"'"),
        ("null", "openai-chat frame is null, expected an object: 'null'"),
        ("", "openai-chat frame is not JSON (Expecting value): ''"),
        ("[" * 100_000, "openai-chat frame is nested too deeply: '[[[["),
    ],
)
def test_openai_frames_that_are_not_chunks(data: str, message: str) -> None:
    events = decode_stream("openai-chat", [sse(data)])
    assert isinstance(events[-1], Error)
    assert events[-1].code == "protocol_error"
    assert events[-1].message.startswith(message)


def test_openai_only_first_choice_is_followed() -> None:
    data = sse(
        {
            "choices": [
                {"index": 0, "delta": {"content": "a"}},
                {"index": 1, "delta": {"content": "B"}},
            ]
        },
        {"choices": [{"index": 1, "delta": {"content": "C"}}]},
        "[DONE]",
    )
    assert texts(decode_stream("openai-chat", [data])) == ["a"]


def test_openai_null_usage_and_event_names_ignored() -> None:
    data = sse(chunk("a", usage=None), event="message") + sse("[DONE]", event="done")
    assert kinds(decode_stream("openai-chat", [data])) == ["start", "token", "done"]


RESPONSES_COMPLETE = sse(
    {
        "type": "response.created",
        "response": {"model": "gpt-r", "status": "in_progress"},
        "emit_ms": 1,
    },
    {"type": "response.in_progress", "response": {"status": "in_progress"}},
    {"type": "response.output_item.added", "item": {"type": "message"}},
    {"type": "response.output_text.delta", "delta": "Hi", "emit_ms": 2},
    {"type": "response.output_text.delta", "delta": " there", "emit_ms": 3},
    {"type": "response.output_text.done", "text": "Hi there"},
    {
        "type": "response.completed",
        "response": {
            "status": "completed",
            "usage": {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6},
        },
        "emit_ms": 4,
    },
)


def test_responses_complete_stream() -> None:
    events = check_splits("openai-responses", RESPONSES_COMPLETE)
    assert events == [
        Start(seq=0, recv_ms=1.0, emit_ms=1.0, model="gpt-r"),
        Token(seq=1, recv_ms=1.0, text="Hi", emit_ms=2.0),
        Token(seq=2, recv_ms=1.0, text=" there", emit_ms=3.0),
        Usage(
            seq=3, recv_ms=1.0, prompt_tokens=4, completion_tokens=2, total_tokens=6, emit_ms=4.0
        ),
        Done(seq=4, recv_ms=1.0, finish_reason="stop", emit_ms=4.0),
    ]


def test_responses_with_event_lines_same_as_without() -> None:
    with_names = b"".join(
        f"event: {json.loads(block[6:])['type']}\n".encode() + block + b"\n\n"
        for block in RESPONSES_COMPLETE.split(b"\n\n")
        if block
    )
    assert normalise(decode_stream("openai-responses", [with_names])) == normalise(
        decode_stream("openai-responses", [RESPONSES_COMPLETE])
    )


def test_responses_incomplete() -> None:
    data = sse(
        {"type": "response.output_text.delta", "delta": "a"},
        {
            "type": "response.incomplete",
            "response": {
                "incomplete_details": {"reason": "max_output_tokens"},
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        },
    )
    events = decode_stream("openai-responses", [data])
    assert kinds(events) == ["start", "token", "usage", "done"]
    assert events[-1] == Done(seq=3, recv_ms=1.0, finish_reason="max_output_tokens")


def test_responses_failed() -> None:
    data = sse(
        {"type": "response.output_text.delta", "delta": "a"},
        {
            "type": "response.failed",
            "response": {"error": {"code": "server_error", "message": "boom"}},
        },
    )
    events = check_splits("openai-responses", data)
    assert events[-1] == Error(
        seq=2, recv_ms=1.0, code="upstream_error", message="server_error: boom", partial=True
    )


def test_responses_error_event() -> None:
    data = sse(
        {
            "type": "error",
            "code": "rate_limit_exceeded",
            "message": "slow down",
            "sequence_number": 1,
        }
    )
    events = decode_stream("openai-responses", [data])
    assert events == [
        Error(seq=0, recv_ms=1.0, code="upstream_error", message="rate_limit_exceeded: slow down")
    ]


def test_responses_malformed() -> None:
    data = sse({"type": "response.output_text.delta", "delta": "a"}, "{oops")
    last = check_splits("openai-responses", data)[-1]
    assert isinstance(last, Error)
    assert last.code == "protocol_error"
    assert last.partial
    assert "openai-responses frame is not JSON" in last.message
    assert "'{oops'" in last.message


ANTHROPIC_FRAMES: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {"model": "claude-x", "usage": {"input_tokens": 12, "output_tokens": 1}},
        "emit_ms": 10,
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "\r"},
        "emit_ms": 11,
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hi\n"},
        "emit_ms": 12,
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": "{"},
    },
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens"},
        "usage": {"output_tokens": 5},
        "emit_ms": 13,
    },
    {"type": "message_stop", "emit_ms": 14},
]
ANTHROPIC_COMPLETE = b"".join(sse(obj, event=obj["type"]) for obj in ANTHROPIC_FRAMES)


def test_anthropic_complete_stream() -> None:
    events = check_splits("anthropic-messages", ANTHROPIC_COMPLETE)
    assert events == [
        Start(seq=0, recv_ms=1.0, emit_ms=10.0, model="claude-x"),
        Token(seq=1, recv_ms=1.0, text="\r", emit_ms=11.0),
        Token(seq=2, recv_ms=1.0, text="Hi\n", emit_ms=12.0),
        Usage(
            seq=3, recv_ms=1.0, prompt_tokens=12, completion_tokens=5, total_tokens=17, emit_ms=13.0
        ),
        Done(seq=4, recv_ms=1.0, finish_reason="max_tokens", emit_ms=14.0),
    ]


def test_anthropic_error_event() -> None:
    data = sse(
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "a"}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    events = check_splits("anthropic-messages", data)
    assert events[-1] == Error(
        seq=2,
        recv_ms=1.0,
        code="upstream_error",
        message="overloaded_error: Overloaded",
        retryable=True,
        partial=True,
    )


def test_anthropic_invalid_request_error_not_retryable() -> None:
    data = sse({"type": "error", "error": {"type": "invalid_request_error", "message": "no"}})
    last = decode_stream("anthropic-messages", [data])[-1]
    assert isinstance(last, Error)
    assert not last.retryable


def test_anthropic_malformed() -> None:
    data = sse(
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "a"}}, "nope"
    )
    last = check_splits("anthropic-messages", data)[-1]
    assert isinstance(last, Error)
    assert last.code == "protocol_error"
    assert last.partial
    assert last.message == "anthropic-messages frame is not JSON (Expecting value): 'nope'"


OLLAMA_CHAT = ndjson(
    {
        "model": "llama3",
        "message": {"role": "assistant", "content": "Hel"},
        "done": False,
        "emit_ms": 1,
    },
    {
        "model": "llama3",
        "message": {"role": "assistant", "content": "lo"},
        "done": False,
        "emit_ms": 2,
    },
    {
        "model": "llama3",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 8,
        "eval_count": 2,
        "emit_ms": 3,
    },
)


def test_ollama_chat_complete_stream() -> None:
    events = check_splits("ollama-chat", OLLAMA_CHAT)
    assert events == [
        Start(seq=0, recv_ms=1.0, emit_ms=1.0, model="llama3"),
        Token(seq=1, recv_ms=1.0, text="Hel", emit_ms=1.0),
        Token(seq=2, recv_ms=1.0, text="lo", emit_ms=2.0),
        Usage(
            seq=3, recv_ms=1.0, prompt_tokens=8, completion_tokens=2, total_tokens=10, emit_ms=3.0
        ),
        Done(seq=4, recv_ms=1.0, finish_reason="stop", emit_ms=3.0),
    ]


def test_ollama_chat_crlf_and_blank_lines() -> None:
    data = OLLAMA_CHAT.replace(b"\n", b"\r\n\r\n")
    assert normalise(decode_stream("ollama-chat", [data])) == normalise(
        decode_stream("ollama-chat", [OLLAMA_CHAT])
    )


def test_ollama_last_line_without_newline() -> None:
    events = decode_stream("ollama-chat", [OLLAMA_CHAT.rstrip(b"\n")])
    assert kinds(events)[-1] == "done"


def test_ollama_generate_complete_stream() -> None:
    data = ndjson(
        {"model": "m", "response": "a", "done": False},
        {"model": "m", "response": "b", "done": False},
        {"model": "m", "response": "", "done": True, "done_reason": "length", "eval_count": 2},
    )
    events = check_splits("ollama-generate", data)
    assert texts(events) == ["a", "b"]
    assert events[-2] == Usage(seq=3, recv_ms=1.0, completion_tokens=2)
    assert events[-1] == Done(seq=4, recv_ms=1.0, finish_reason="length")


def test_ollama_error_line() -> None:
    data = ndjson(
        {"message": {"content": "a"}, "done": False}, {"error": "model ran out of memory"}
    )
    events = check_splits("ollama-chat", data)
    assert events[-1] == Error(
        seq=2, recv_ms=1.0, code="upstream_error", message="model ran out of memory", partial=True
    )


def test_ollama_malformed_line() -> None:
    data = ndjson({"message": {"content": "a"}}) + b'{"model":"demo","message":{\n'
    last = check_splits("ollama-chat", data)[-1]
    assert isinstance(last, Error)
    assert last.code == "protocol_error"
    assert last.partial
    assert last.message.startswith("ollama-chat frame is not JSON")


def test_ollama_early_close() -> None:
    events = decode_stream("ollama-chat", [OLLAMA_CHAT.split(b"\n")[0] + b"\n"])
    last = events[-1]
    assert isinstance(last, Error)
    assert last.code == "upstream_closed"
    assert last.partial


# --- generic -------------------------------------------------------------------------------

DEMO_WS = [
    '{"token":"Alice","index":0,"emit_ms":1795448266100.5}',
    '{"token":" was","index":1,"emit_ms":1795448266101.5}',
    '{"done":true,"finish_reason":"stop","usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11},"emit_ms":1795448266102.5}',
]


def test_generic_decodes_the_demo_websocket_door() -> None:
    events = decode_messages("generic", DEMO_WS)
    assert_grammar(events)
    assert events == [
        Start(seq=0, recv_ms=1.0),
        Token(seq=1, recv_ms=1.0, text="Alice", emit_ms=1795448266100.5),
        Token(seq=2, recv_ms=2.0, text=" was", emit_ms=1795448266101.5),
        Usage(
            seq=3,
            recv_ms=3.0,
            prompt_tokens=9,
            completion_tokens=2,
            total_tokens=11,
            emit_ms=1795448266102.5,
        ),
        Done(seq=4, recv_ms=3.0, finish_reason="stop", emit_ms=1795448266102.5),
    ]


def test_generic_demo_error_frame() -> None:
    error = json.dumps(
        {
            "error": {
                "code": "rate_limited",
                "message": "try later",
                "status": 429,
                "retry_after": 1.5,
            },
            "emit_ms": 5,
        }
    )
    events = decode_messages("generic", [DEMO_WS[0], error])
    assert events[-1] == Error(
        seq=2,
        recv_ms=2.0,
        code="upstream_error",
        message="rate_limited: try later",
        retryable=True,
        partial=True,
        status=429,
        retry_after=1.5,
        emit_ms=5.0,
    )


def test_generic_string_error_and_bad_request() -> None:
    last = decode_messages("generic", ['{"error": "nope"}'])[-1]
    assert last == Error(seq=0, recv_ms=1.0, code="upstream_error", message="nope")
    last = decode_messages(
        "generic", ['{"error": {"code": "bad_request", "message": "x", "status": 400}}']
    )[-1]
    assert isinstance(last, Error)
    assert not last.retryable
    assert last.status == 400


def test_generic_malformed_message() -> None:
    events = decode_messages("generic", [DEMO_WS[0], 'this is not JSON {"token": '])
    last = events[-1]
    assert isinstance(last, Error)
    assert last.code == "protocol_error"
    assert last.partial
    assert last.message == (
        "generic frame is not JSON (Expecting value): 'this is not JSON {\"token\": '"
    )


def test_generic_websocket_close_before_done() -> None:
    last = decode_messages("generic", DEMO_WS[:2])[-1]
    assert isinstance(last, Error)
    assert last.code == "upstream_closed"
    assert last.partial


def test_generic_bytes_message() -> None:
    events = decode_messages("generic", [DEMO_WS[0].encode(), DEMO_WS[2].encode()])
    assert kinds(events) == ["start", "token", "usage", "done"]


def test_generic_custom_paths_over_sse() -> None:
    config = {
        "token": "choices.0.delta.content",
        "finish_reason": "choices.0.finish_reason",
        "done": "",
        "error": "error",
        "emit_ms": "meta.t",
        "framing": "sse",
    }
    events = check_splits(
        "generic", OPENAI_COMPLETE.replace(b'"emit_ms":', b'"meta":{"t":0},"x":'), **config
    )
    assert texts(events) == ["Hel", "lo"]
    assert events[1].emit_ms == 0.0
    assert events[-1] == Done(seq=len(events) - 1, recv_ms=1.0, finish_reason="length")


def test_generic_ndjson_framing() -> None:
    data = b'{"out":{"text":"a"}}\n{"out":{"text":"b"},"end":1}\n'
    events = check_splits("generic", data, token="out.text", done="end", framing="ndjson")
    assert texts(events) == ["a", "b"]
    assert kinds(events)[-1] == "done"


def test_generic_list_index_out_of_range_is_missing() -> None:
    events = decode_messages(
        "generic", ['{"c": []}', '{"c": [{"t": "x"}]}', '{"done": true}'], token="c.0.t"
    )
    assert texts(events) == ["x"]


def test_generic_unmapped_fields() -> None:
    events = decode_messages(
        "generic", ['{"token": "a", "usage": {"prompt_tokens": 1}}', '{"done": 1}'], usage=None
    )
    assert kinds(events) == ["start", "token", "done"]


# --- requests ------------------------------------------------------------------------------

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": [{"type": "text", "text": "More"}]},
]
OPTIONS = {
    "max_tokens": 64,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": "END",
    "seed": 7,
    "unset": None,
}


def request(
    name: str, *, model: str | None = "m", options: dict[str, Any] | None = None, **config: Any
) -> Request:
    return get_dialect(name, **config).request(
        MESSAGES, model=model, options=OPTIONS if options is None else options
    )


def test_openai_chat_request() -> None:
    assert request(
        "openai-chat", options={**OPTIONS, "presence_penalty": 1, "stream": False}
    ) == Request(
        "/chat/completions",
        {
            "presence_penalty": 1,
            "max_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "seed": 7,
            "model": "m",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert "model" not in request("openai-chat", model=None).body


def test_openai_responses_request() -> None:
    assert request("openai-responses") == Request(
        "/responses",
        {
            "temperature": 0.5,
            "top_p": 0.9,
            "max_output_tokens": 64,
            "model": "m",
            "input": MESSAGES,
            "stream": True,
        },
    )


def test_anthropic_request() -> None:
    assert request("anthropic-messages") == Request(
        "/v1/messages",
        {
            "model": "m",
            "system": "Be brief.",
            "messages": MESSAGES[1:],
            "max_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "stream": True,
        },
    )
    body = request("anthropic-messages", options={}).body
    assert body["max_tokens"] == 1024
    assert "temperature" not in body


def test_anthropic_request_without_system() -> None:
    body = get_dialect("anthropic-messages").request(MESSAGES[1:], model="m", options={}).body
    assert "system" not in body
    assert body["messages"] == MESSAGES[1:]


def test_ollama_chat_request() -> None:
    assert request(
        "ollama-chat", options={**OPTIONS, "keep_alive": "5m", "num_ctx": 4096}
    ) == Request(
        "/api/chat",
        {
            "keep_alive": "5m",
            "messages": MESSAGES,
            "stream": True,
            "model": "m",
            "options": {
                "num_ctx": 4096,
                "num_predict": 64,
                "temperature": 0.5,
                "top_p": 0.9,
                "seed": 7,
                "stop": ["END"],
            },
        },
    )
    assert "options" not in request("ollama-chat", options={}).body


def test_ollama_generate_request() -> None:
    assert request("ollama-generate", options={"max_tokens": 3}) == Request(
        "/api/generate",
        {
            "prompt": "Hi\n\nHello\n\nMore",
            "stream": True,
            "model": "m",
            "system": "Be brief.",
            "options": {"num_predict": 3},
        },
    )


def test_generic_default_request() -> None:
    assert request(
        "generic", options={"max_tokens": 32, "seed": 7, "temperature": None}
    ) == Request("", {"max_tokens": 32, "seed": 7, "messages": MESSAGES, "model": "m"})


def test_generic_request_template() -> None:
    template = {
        "inputs": "$prompt",
        "system": "$system",
        "parameters": {
            "max_new_tokens": "$max_tokens",
            "temperature": "$temperature",
            "fixed": "$ not a placeholder",
        },
        "list": ["$model", "$nothing", 1],
        "all": "$options",
    }
    req = request("generic", options={"max_tokens": 5}, request_template=template, path="/generate")
    assert req == Request(
        "/generate",
        {
            "inputs": "Hi\n\nHello\n\nMore",
            "system": "Be brief.",
            "parameters": {"max_new_tokens": 5, "fixed": "$ not a placeholder"},
            "list": ["m", None, 1],
            "all": {"max_tokens": 5},
        },
    )


def test_requests_do_not_share_message_objects() -> None:
    messages = [{"role": "user", "content": "x"}]
    for name in DIALECTS:
        body = get_dialect(name).request(messages, model="m", options={}).body
        json.dumps(body)  # JSON-ready
        for value in body.values():
            if isinstance(value, list):
                assert all(item is not messages[0] for item in value)


# --- registry -----------------------------------------------------------------------------


def test_dialect_names() -> None:
    assert DIALECTS == (
        "anthropic-messages",
        "generic",
        "ollama-chat",
        "ollama-generate",
        "openai-chat",
        "openai-responses",
    )
    for name in DIALECTS:
        assert get_dialect(name).name == name


def test_fresh_instance_per_call() -> None:
    assert get_dialect("anthropic-messages") is not get_dialect("anthropic-messages")


def test_unknown_dialect_lists_valid_names() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown dialect 'nope'; valid names: anthropic-messages, generic, "
    ):
        get_dialect("nope")


def test_unknown_option() -> None:
    with pytest.raises(
        ConfigError, match=r"dialect 'openai-chat' has no option token; valid: framing$"
    ):
        get_dialect("openai-chat", token="x")
    with pytest.raises(
        ConfigError, match=r"dialect 'generic' has no option tokn; valid: framing, token, done"
    ):
        get_dialect("generic", tokn="x")


def test_bad_generic_config() -> None:
    with pytest.raises(ConfigError, match=r"generic token: field path 'a\.\.b'"):
        get_dialect("generic", token="a..b")
    with pytest.raises(ConfigError, match="framing must be one of sse, ndjson, message, got 'xml'"):
        get_dialect("generic", framing="xml")
    with pytest.raises(ConfigError, match="request_template must be a dict"):
        get_dialect("generic", request_template=["x"])


def test_framing_override() -> None:
    dialect = get_dialect("openai-chat", framing="message")
    assert dialect.framing == "message"
    assert get_dialect("openai-chat").framing == "sse"
    events = decode_messages(dialect, [json.dumps(chunk("a")), "[DONE]"])
    assert kinds(events) == ["start", "token", "done"]
    assert get_dialect("generic", framing="ndjson").framing == "ndjson"
    assert GenericDialect().framing == "message"


@pytest.mark.parametrize(
    ("protocol", "dialect"),
    [
        ("openai", "openai-chat"),
        ("responses", "openai-responses"),
        ("anthropic", "anthropic-messages"),
        ("ollama", "ollama-chat"),
        ("websocket", "generic"),
        ("http", "generic"),
        ("grpc", "generic"),
    ],
)
def test_default_dialect_for(protocol: str, dialect: str) -> None:
    assert default_dialect_for(protocol) == dialect
    assert dialect in DIALECTS


def test_default_dialect_for_unknown_protocol() -> None:
    with pytest.raises(ConfigError, match="no default dialect for protocol 'smtp'"):
        default_dialect_for("smtp")


@pytest.mark.parametrize("name", DIALECTS)
def test_emit_ms_reaches_every_event_kind(name: str) -> None:
    """Every dialect passes a frame's top-level ``emit_ms`` on."""
    dialect = get_dialect(name)
    out = Emitter()
    frames = {
        "openai-chat": ['{"choices":[{"index":0,"delta":{"content":"a"}}],"emit_ms":7}'],
        "openai-responses": ['{"type":"response.output_text.delta","delta":"a","emit_ms":7}'],
        "anthropic-messages": [
            '{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"},"emit_ms":7}'
        ],
        "ollama-chat": ['{"message":{"content":"a"},"emit_ms":7}'],
        "ollama-generate": ['{"response":"a","emit_ms":7}'],
        "generic": ['{"token":"a","emit_ms":7}'],
    }[name]
    for frame in frames:
        dialect.on_message(frame, None, out)
    tokens = [e for e in out.drain() if isinstance(e, Token)]
    assert [t.emit_ms for t in tokens] == [7.0]


def test_emit_ms_must_be_a_number() -> None:
    out = Emitter()
    get_dialect("generic").on_message('{"token":"a","emit_ms":true}', None, out)
    get_dialect("generic").on_message('{"token":"b","emit_ms":"7"}', None, out)
    assert [e.emit_ms for e in out.drain() if isinstance(e, Token)] == [None, None]
