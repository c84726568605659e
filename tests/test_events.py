"""The event vocabulary's JSON form: exact round trips, clear refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_streamchat.events import (
    ERROR_CODES,
    Done,
    Error,
    Event,
    EventFormatError,
    Heartbeat,
    Start,
    Token,
    Usage,
    event_from_dict,
    event_to_dict,
    from_json,
    is_terminal,
    now_ms,
    to_json,
)

EXAMPLES: list[Event] = [
    Start(seq=0, recv_ms=1.5),
    Start(seq=0, recv_ms=1.5, emit_ms=1.25, model="steady", backend="demo-sse", protocol="openai"),
    Token(seq=1, recv_ms=2.0, text="Hello"),
    Token(seq=7, recv_ms=2.0, text="a\nb\r\u2028\"'\\😀", emit_ms=1.0, chunks=3),
    Usage(seq=2, recv_ms=3.0),
    Usage(seq=2, recv_ms=3.0, prompt_tokens=9, completion_tokens=3, total_tokens=12, emit_ms=2.5),
    Done(seq=3, recv_ms=4.0),
    Done(seq=3, recv_ms=4.0, finish_reason="length", emit_ms=3.5),
    Error(seq=0, recv_ms=5.0, code="connect_failed", message="refused"),
    Error(
        seq=4,
        recv_ms=5.0,
        code="http_status",
        message="busy",
        retryable=True,
        partial=True,
        status=429,
        retry_after=2.5,
        emit_ms=4.0,
    ),
    Heartbeat(seq=3, recv_ms=6.0),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_round_trip(event: Event) -> None:
    text = to_json(event)
    assert from_json(text) == event
    assert from_json(text.encode()) == event
    assert event_from_dict(event_to_dict(event)) == event


def test_json_shape() -> None:
    assert to_json(Token(seq=1, recv_ms=2.0, text="hi")) == (
        '{"type":"token","seq":1,"recv_ms":2.0,"text":"hi","chunks":1}'
    )
    data = event_to_dict(Error(seq=0, recv_ms=1.0, code="timeout", message="slow"))
    assert next(iter(data)) == "type"
    assert "status" not in data
    assert "emit_ms" not in data
    assert data["retryable"] is False
    assert data["partial"] is False


def test_every_type_covered() -> None:
    assert {e.type for e in EXAMPLES} == {"start", "token", "usage", "done", "error", "heartbeat"}


def test_terminal() -> None:
    assert [e.type for e in EXAMPLES if is_terminal(e)] == ["done", "done", "error", "error"]


def test_now_ms_is_epoch_and_monotonic() -> None:
    a, b = now_ms(), now_ms()
    assert b >= a > 1.6e12


# --- property-based -----------------------------------------------------------------------

floats = st.floats(allow_nan=False, allow_infinity=False)
ints = st.integers(min_value=0, max_value=2**53)
texts = st.text()
maybe = st.none

events = st.one_of(
    st.builds(
        Start,
        seq=ints,
        recv_ms=floats,
        emit_ms=maybe() | floats,
        model=maybe() | texts,
        backend=maybe() | texts,
        protocol=maybe() | texts,
    ),
    st.builds(Token, seq=ints, recv_ms=floats, text=texts, emit_ms=maybe() | floats, chunks=ints),
    st.builds(
        Usage,
        seq=ints,
        recv_ms=floats,
        prompt_tokens=maybe() | ints,
        completion_tokens=maybe() | ints,
        total_tokens=maybe() | ints,
        emit_ms=maybe() | floats,
    ),
    st.builds(
        Done, seq=ints, recv_ms=floats, finish_reason=maybe() | texts, emit_ms=maybe() | floats
    ),
    st.builds(
        Error,
        seq=ints,
        recv_ms=floats,
        code=st.sampled_from(sorted(ERROR_CODES)),
        message=texts,
        retryable=st.booleans(),
        partial=st.booleans(),
        status=maybe() | st.integers(100, 599),
        retry_after=maybe() | floats,
        emit_ms=maybe() | floats,
    ),
    st.builds(Heartbeat, seq=ints, recv_ms=floats, emit_ms=maybe() | floats),
)


@given(events)
def test_round_trip_property(event: Event) -> None:
    text = to_json(event)
    # Safe in one SSE data line: JSON escapes CR and LF (U+2028 is not an SSE newline).
    assert "\n" not in text
    assert "\r" not in text
    assert from_json(text) == event


# --- refusals ------------------------------------------------------------------------------

BAD: list[tuple[Any, str]] = [
    ("not json", "event is not JSON"),
    ("[1, 2]", "event must be a JSON object, got list"),
    ('"token"', "event must be a JSON object, got str"),
    ("{}", "unknown event type None"),
    ('{"type": "bogus", "seq": 0}', "unknown event type 'bogus'"),
    ('{"type": 3}', "unknown event type 3"),
    (
        '{"type": "token", "seq": 0, "recv_ms": 1, "text": "x", "extra": 1}',
        r"unknown fields \['extra'\]",
    ),
    (
        '{"type": "error", "seq": 0, "recv_ms": 1, "code": "nope", "message": "m"}',
        "unknown code 'nope'",
    ),
    ('{"type": "error", "seq": 0, "recv_ms": 1, "message": "m"}', "unknown code None"),
    ('{"type": "token", "seq": 0, "recv_ms": 1}', "token event: .*text"),
    ('{"type": "done"}', "done event: .*seq"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_from_json_refuses(text: str, message: str) -> None:
    with pytest.raises(EventFormatError, match=message):
        from_json(text)


def test_format_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        from_json(b"\xff")


def test_event_from_dict_matches_json() -> None:
    data = json.loads(to_json(EXAMPLES[1]))
    assert event_from_dict(data) == EXAMPLES[1]
