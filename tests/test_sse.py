"""SSE framing against the WHATWG event stream interpretation, split every way.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import re

import pytest
from helpers import feed_all, one_byte, random_chunks, split_at
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_streamchat.decode.sse import SSEDecoder, SSEMessage
from jupyter_streamchat.errors import ConfigError, LimitExceeded

BIG = 1 << 20


def decode(data: bytes, chunks: list[bytes] | None = None) -> list[SSEMessage]:
    return feed_all(SSEDecoder(BIG, BIG), chunks if chunks is not None else [data])


def m(
    data: str, event: str = "message", id: str | None = None, retry: int | None = None
) -> SSEMessage:
    return SSEMessage(data, event, id, retry)


SPEC_TABLE: list[tuple[str, bytes, list[SSEMessage]]] = [
    ("lf", b"data: hello\n\n", [m("hello")]),
    ("crlf", b"data: hello\r\n\r\n", [m("hello")]),
    ("cr", b"data: a\r\rdata: b\r\r", [m("a"), m("b")]),
    ("mixed endings", b"data: a\r\n\ndata: b\r\r\n", [m("a"), m("b")]),
    ("cr then crlf is two endings", b"data: a\r\r\n", [m("a")]),
    ("multi-line data", b"data: a\ndata: b\ndata: c\n\n", [m("a\nb\nc")]),
    ("only the last LF is stripped", b"data: a\ndata:\n\n", [m("a\n")]),
    ("empty data still dispatches", b"data:\n\n", [m("")]),
    ("field without colon", b"data\n\n", [m("")]),
    ("two data lines without values", b"data\ndata\n\n", [m("\n")]),
    ("one space stripped, not two", b"data:  two\n\n", [m(" two")]),
    ("no space after colon", b"data:tight\n\n", [m("tight")]),
    ("tab is not stripped", b"data:\tx\n\n", [m("\tx")]),
    ("colon in the value", b"data: a: b:c\n\n", [m("a: b:c")]),
    ("event type", b"event: add\ndata: x\n\ndata: y\n\n", [m("x", "add"), m("y")]),
    ("empty event type is message", b"event\ndata: x\n\n", [m("x")]),
    ("event type reset without dispatch", b"event: add\n\ndata: y\n\n", [m("y")]),
    ("last event type wins", b"event: a\nevent: b\ndata: x\n\n", [m("x", "b")]),
    ("id persists", b"id: 1\ndata: x\n\ndata: y\n\n", [m("x", id="1"), m("y", id="1")]),
    ("empty id resets", b"id: 1\ndata: x\n\nid\ndata: y\n\n", [m("x", id="1"), m("y")]),
    (
        "id with NUL ignored",
        b"id: 1\ndata: x\n\nid: a\x00b\ndata: y\n\n",
        [m("x", id="1"), m("y", id="1")],
    ),
    ("id set without data", b"id: 7\n\ndata: y\n\n", [m("y", id="7")]),
    ("id value keeps spaces", b"id:  a b \ndata: x\n\n", [m("x", id=" a b ")]),
    ("retry", b"retry: 3000\ndata: x\n\ndata: y\n\n", [m("x", retry=3000), m("y")]),
    ("retry not digits", b"retry: 3s\ndata: x\n\n", [m("x")]),
    ("retry negative", b"retry: -1\ndata: x\n\n", [m("x")]),
    ("retry empty", b"retry\ndata: x\n\n", [m("x")]),
    ("retry non-ASCII digits", "retry: ١٢\ndata: x\n\n".encode(), [m("x")]),
    ("retry two spaces", b"retry:  5\ndata: x\n\n", [m("x")]),
    ("comment", b": ping\ndata: x\n\n", [m("x")]),
    ("bare colon comment", b":\n\n:\n\ndata: x\n\n", [m("x")]),
    ("comment-only events dispatch nothing", b": a\n\n: b\n\n", []),
    ("comment inside data", b"data: a\n: note\ndata: b\n\n", [m("a\nb")]),
    ("unknown field ignored", b"foo: bar\ndata: x\n\n", [m("x")]),
    ("field names are case-sensitive", b"Data: x\n\nDATA: y\n\n", []),
    ("field name prefix is not the field", b"dat: x\ndatas: y\n\n", []),
    ("no data, no event", b"event: x\nid: 3\nretry: 5\n\n", []),
    ("bom stripped", b"\xef\xbb\xbfdata: x\n\n", [m("x")]),
    ("only one bom stripped", b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n", [m("y")]),
    ("bom later is text", b"data: \xef\xbb\xbfx\n\n", [m("\ufeffx")]),
    ("U+2028 is not a newline", "data: a\u2028b\n\n".encode(), [m("a\u2028b")]),
    ("U+2029 is not a newline", "data: a\u2029b\n\n".encode(), [m("a\u2029b")]),
    ("NEL is not a newline", "data: a\x85b\n\n".encode(), [m("a\x85b")]),
    ("VT and FF are not newlines", b"data: a\x0bb\x0cc\n\n", [m("a\x0bb\x0cc")]),
    ("invalid UTF-8 replaced", b"data: \xff\xfeok\n\n", [m("\ufffd\ufffdok")]),
    ("truncated UTF-8 before a newline", b"data: \xe2\x82\n\n", [m("\ufffd")]),
    ("event name decoded", "event: ünï\ndata: x\n\n".encode(), [m("x", "ünï")]),
    ("NUL in data kept", b"data: a\x00b\n\n", [m("a\x00b")]),
    ("incomplete event discarded", b"data: x\n\ndata: y\n", [m("x")]),
    ("unterminated line discarded", b"data: x\n\ndata: y", [m("x")]),
    ("blank lines alone", b"\n\n\r\n\r", []),
    ("empty stream", b"", []),
]


@pytest.mark.parametrize(
    ("stream", "expected"), [c[1:] for c in SPEC_TABLE], ids=[c[0] for c in SPEC_TABLE]
)
def test_spec_table(stream: bytes, expected: list[SSEMessage]) -> None:
    assert decode(stream) == expected
    assert decode(stream, one_byte(stream)) == expected
    for seed in range(5):
        assert decode(stream, random_chunks(stream, seed, 5)) == expected


def test_cr_lf_split_across_chunks_is_one_line_ending() -> None:
    chunks = [b"data: a\r", b"\n", b"data: b\r", b"\n", b"\r", b"\n"]
    assert decode(b"", chunks) == [m("a\nb")]


def test_empty_chunk_between_cr_and_lf() -> None:
    chunks = [b"data: a\r", b"", b"\ndata: b\r", b"", b"", b"\n\n"]
    assert decode(b"", chunks) == [m("a\nb")]


def test_cr_at_chunk_end_then_other_text() -> None:
    assert decode(b"", [b"data: a\r", b"data: b\r", b"\r"]) == [m("a\nb")]


def test_bom_split_across_chunks() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    assert decode(b"", [b"\xef", b"\xbb", b"\xbf", b"data: x\n\n"]) == [m("x")]
    assert decode(b"", [b"", b"\xef\xbb", b"\xbfdata: x\n\n"]) == [m("x")]
    assert decode(stream, one_byte(stream)) == [m("x")]


def test_partial_bom_is_text() -> None:
    # Not a BOM after all: the bytes are part of the first line (an unknown field).
    assert decode(b"", [b"\xef\xbb", b"data: x\n\ndata: y\n\n"]) == [m("y")]


def test_multibyte_character_split_across_chunks() -> None:
    stream = "data: é€😀\n\n".encode()
    assert decode(stream, one_byte(stream)) == [m("é€😀")]


def test_last_event_id_updates_at_blank_line() -> None:
    decoder = SSEDecoder(BIG, BIG)
    assert decoder.last_event_id == ""
    decoder.feed(b"id: 5\n")
    assert decoder.last_event_id == ""  # not yet dispatched
    decoder.feed(b"\n")
    assert decoder.last_event_id == "5"
    decoder.feed(b"id: 6\ndata: x\n")
    decoder.eof()
    assert decoder.last_event_id == "5"  # the unfinished event never counted


def test_retry_attribute_persists() -> None:
    decoder = SSEDecoder(BIG, BIG)
    assert decoder.retry is None
    assert decoder.feed(b"retry: 10\n\ndata: x\n\n") == [m("x")]
    assert decoder.retry == 10
    decoder.feed(b"retry: nope\n\n")
    assert decoder.retry == 10


def test_eof_discards_and_returns_nothing() -> None:
    decoder = SSEDecoder(BIG, BIG)
    assert decoder.feed(b"data: a\n") == []
    assert decoder.eof() == []


def test_message_is_frozen_and_slotted() -> None:
    message = decode(b"data: x\n\n")[0]
    assert message == SSEMessage("x")
    assert not hasattr(message, "__dict__")
    with pytest.raises(AttributeError):
        message.data = "y"  # type: ignore[misc]


# --- limits ------------------------------------------------------------------------------


def test_line_limit_before_newline() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    decoder.feed(b"data: 1234")  # exactly 10: fine
    with pytest.raises(LimitExceeded) as info:
        decoder.feed(b"5")
    assert str(info.value) == "SSE line of 11 bytes exceeds max_line_bytes=10"
    assert (info.value.limit, info.value.value, info.value.size) == ("max_line_bytes", 10, 11)
    assert info.value.code == "limit_exceeded"


def test_line_limit_in_one_chunk() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    with pytest.raises(LimitExceeded, match=r"^SSE line of 12 bytes exceeds max_line_bytes=10$"):
        decoder.feed(b": 1\n\ndata: 123456\n\n")


def test_line_limit_across_chunks() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    decoder.feed(b"data: 123")
    with pytest.raises(LimitExceeded, match=r"^SSE line of 11 bytes exceeds max_line_bytes=10$"):
        decoder.feed(b"45\n\n")


def test_line_limit_excludes_line_ending() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    assert feed_all(decoder, [b"data: 1234\r\n\r\n"]) == [m("1234")]


def test_line_limit_counts_unterminated_tail() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    with pytest.raises(LimitExceeded, match=r"^SSE line of 11 bytes"):
        decoder.feed(b"data: x\ndata: 12345")


def test_comment_lines_are_limited_too() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    with pytest.raises(LimitExceeded, match=r"^SSE line of 20 bytes"):
        decoder.feed(b": " + b"x" * 18)


def test_event_limit() -> None:
    decoder = SSEDecoder(max_line_bytes=BIG, max_event_bytes=5)
    assert decoder.feed(b"data: abc\ndata: d\n\n") == [m("abc\nd")]  # exactly 5
    with pytest.raises(LimitExceeded) as info:
        decoder.feed(b"data: abc\ndata: de\n\n")
    assert str(info.value) == "SSE event of 6 bytes exceeds max_event_bytes=5"
    assert (info.value.limit, info.value.value, info.value.size) == ("max_event_bytes", 5, 6)


def test_event_limit_counts_bytes_not_characters() -> None:
    decoder = SSEDecoder(max_line_bytes=BIG, max_event_bytes=5)
    with pytest.raises(LimitExceeded, match=r"^SSE event of 6 bytes exceeds max_event_bytes=5$"):
        decoder.feed("data: ééé\n\n".encode())


def test_event_limit_before_dispatch() -> None:
    # Memory stays bounded: the event is refused while it grows, not when it ends.
    decoder = SSEDecoder(max_line_bytes=BIG, max_event_bytes=8)
    decoder.feed(b"data: 1234\n")
    with pytest.raises(LimitExceeded, match=r"^SSE event of 9 bytes"):
        decoder.feed(b"data: 5678\n")


def test_events_before_a_fault_are_delivered_first() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    assert decoder.feed(b"data: a\n\ndata: b\n\ndata: 123456789\n\n") == [m("a"), m("b")]
    with pytest.raises(LimitExceeded, match=r"^SSE line of 15 bytes"):
        decoder.feed(b"data: c\n\n")
    with pytest.raises(LimitExceeded, match=r"^SSE line of 15 bytes"):
        decoder.eof()


def test_event_fault_after_a_dispatched_event() -> None:
    decoder = SSEDecoder(max_line_bytes=BIG, max_event_bytes=3)
    assert decoder.feed(b"data: a\n\ndata: 1234\n") == [m("a")]
    with pytest.raises(LimitExceeded, match=r"^SSE event of 4 bytes"):
        decoder.eof()


def test_tail_fault_after_a_dispatched_event() -> None:
    decoder = SSEDecoder(max_line_bytes=10, max_event_bytes=BIG)
    assert decoder.feed(b"data: a\n\ndata: 123456789") == [m("a")]
    with pytest.raises(LimitExceeded, match=r"^SSE line of 15 bytes"):
        decoder.eof()


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_line_bytes=0"):
        SSEDecoder(0, 10)


# --- properties --------------------------------------------------------------------------


def reference(stream: bytes) -> tuple[list[SSEMessage], str, int | None]:
    """The spec's algorithm, literally: decode it all, split lines with a regex."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split("\r\n|\r|\n", text)
    lines.pop()  # what follows the last line ending never completes a line
    out: list[SSEMessage] = []
    data, event, id_buffer, last_id = "", "", "", ""
    retry: int | None = None
    message_retry: int | None = None
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data:
                out.append(
                    SSEMessage(data[:-1], event or "message", last_id or None, message_retry)
                )
            data, event, message_retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data += value + "\n"
        elif name == "event":
            event = value
        elif name == "id" and "\x00" not in value:
            id_buffer = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = message_retry = int(value)
    return out, last_id, retry


PIECES = [
    b"data:", b"data: ", b"event:", b"id:", b"id: ", b"retry:", b"retry: 12", b":", b" ",
    b"x", b"\xc3", b"\xa9", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\x00", b"7", b"\r", b"\n",
    b"\r\n", b"\n\n",
]  # fmt: skip
streams = st.one_of(
    st.binary(max_size=200), st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)
)


@settings(deadline=None)  # byte-at-a-time feeding; timing is not what is tested
@given(streams, st.lists(st.integers(0, 200), max_size=20))
def test_same_messages_however_split(stream: bytes, points: list[int]) -> None:
    whole = SSEDecoder(BIG, BIG)
    expected = feed_all(whole, [stream])
    for chunks in (one_byte(stream), split_at(stream, points)):
        decoder = SSEDecoder(BIG, BIG)
        assert feed_all(decoder, chunks) == expected
        assert (decoder.last_event_id, decoder.retry) == (whole.last_event_id, whole.retry)


@given(streams, st.lists(st.integers(0, 200), max_size=20))
def test_matches_the_literal_algorithm(stream: bytes, points: list[int]) -> None:
    decoder = SSEDecoder(BIG, BIG)
    messages = feed_all(decoder, split_at(stream, points))
    assert (messages, decoder.last_event_id, decoder.retry) == reference(stream)


line_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"))
events = st.lists(
    st.tuples(
        st.text(st.characters(codec="utf-8", exclude_characters="\r")),
        st.none() | line_text,
        st.none() | line_text,
    ),
    max_size=8,
)


@given(events, st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=1), st.data())
def test_encoded_events_round_trip(
    specs: list[tuple[str, str | None, str | None]], endings: list[str], data: st.DataObject
) -> None:
    """Events written with any line endings read back as written, however split."""
    lines: list[str] = []
    for text, event, id in specs:
        if id is not None:
            lines.append(f"id: {id}")
        if event is not None:
            lines.append(f"event: {event}")
        lines.extend(f"data: {part}" for part in text.split("\n"))
        lines.append(": a comment")
        lines.append("")
    out = []
    previous = ""
    for i, line in enumerate(lines):
        ending = endings[i % len(endings)]
        if previous == "\r" and line == "" and ending == "\n":
            ending = "\r"  # CR + LF would be one CRLF, not two endings
        out.append(line + ending)
        previous = ending
    stream = "".join(out).encode()
    expected = []
    last_id = None
    for text, event, id in specs:
        if id is not None:
            last_id = id or None
        expected.append(SSEMessage(text, event or "message", last_id))
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert decode(stream) == expected
    assert decode(stream, split_at(stream, points)) == expected
