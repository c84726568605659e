"""NDJSON framing: lines out of bytes, split every way."""

from __future__ import annotations

import pytest
from helpers import feed_all, one_byte, random_chunks, split_at
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_streamchat.decode.ndjson import NDJSONDecoder
from jupyter_streamchat.errors import ConfigError, LimitExceeded

BIG = 1 << 20

TABLE: list[tuple[str, bytes, list[str]]] = [
    ("lines", b'{"a":1}\n{"b":2}\n', ['{"a":1}', '{"b":2}']),
    ("crlf", b'{"a":1}\r\n{"b":2}\r\n', ['{"a":1}', '{"b":2}']),
    ("only one CR stripped", b"a\r\r\n", ["a\r"]),
    ("lone CR is not a line ending", b"a\rb\n", ["a\rb"]),
    ("blank lines skipped", b"\n\n  \n\t\r\na\n\r\n", ["a"]),
    ("last line without newline", b"a\nb", ["a", "b"]),
    ("last line with CR only", b"a\r", ["a"]),
    ("blank last line", b"a\n  ", ["a"]),
    ("U+2028 is not a newline", "a\u2028b\n".encode(), ["a\u2028b"]),
    ("invalid UTF-8 replaced", b"\xff{}\n", ["\ufffd{}"]),
    ("inner spaces kept", b"  {} \n", ["  {} "]),
    ("empty", b"", []),
]


@pytest.mark.parametrize(("stream", "expected"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE])
def test_table(stream: bytes, expected: list[str]) -> None:
    assert feed_all(NDJSONDecoder(BIG), [stream]) == expected
    assert feed_all(NDJSONDecoder(BIG), one_byte(stream)) == expected
    for seed in range(5):
        assert feed_all(NDJSONDecoder(BIG), random_chunks(stream, seed, 4)) == expected


def test_multibyte_character_split() -> None:
    stream = '{"t":"é😀"}\n'.encode()
    assert feed_all(NDJSONDecoder(BIG), one_byte(stream)) == ['{"t":"é😀"}']


def test_lines_returned_as_soon_as_complete() -> None:
    decoder = NDJSONDecoder(BIG)
    assert decoder.feed(b'{"a":') == []
    assert decoder.feed(b'1}\n{"b"') == ['{"a":1}']
    assert decoder.eof() == ['{"b"']
    assert decoder.eof() == []


def test_line_limit_before_newline() -> None:
    decoder = NDJSONDecoder(max_line_bytes=10)
    decoder.feed(b"0123456789")  # exactly 10
    with pytest.raises(LimitExceeded) as info:
        decoder.feed(b"0")
    assert str(info.value) == "NDJSON line of 11 bytes exceeds max_line_bytes=10"
    assert (info.value.limit, info.value.value, info.value.size) == ("max_line_bytes", 10, 11)


def test_line_limit_in_one_chunk() -> None:
    decoder = NDJSONDecoder(max_line_bytes=10)
    with pytest.raises(LimitExceeded, match=r"^NDJSON line of 12 bytes exceeds max_line_bytes=10$"):
        decoder.feed(b"\n" + b"x" * 12 + b"\n{}\n")


def test_line_limit_across_chunks() -> None:
    decoder = NDJSONDecoder(max_line_bytes=10)
    decoder.feed(b"x" * 8)
    with pytest.raises(LimitExceeded, match=r"^NDJSON line of 11 bytes"):
        decoder.feed(b"xxx\n")


def test_lines_before_a_fault_are_delivered_first() -> None:
    decoder = NDJSONDecoder(max_line_bytes=10)
    assert decoder.feed(b"{}\n[]\n" + b"x" * 11 + b"\n{}\n") == ["{}", "[]"]
    with pytest.raises(LimitExceeded, match=r"^NDJSON line of 11 bytes"):
        decoder.feed(b"{}\n")
    with pytest.raises(LimitExceeded, match=r"^NDJSON line of 11 bytes"):
        decoder.eof()


def test_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        NDJSONDecoder(0)


@settings(deadline=None)  # byte-at-a-time feeding; timing is not what is tested
@given(
    st.one_of(
        st.binary(max_size=200),
        st.lists(st.sampled_from([b"{}", b"\n", b"\r", b" ", b"x", b"\xc3", b"\xa9"])).map(
            b"".join
        ),
    ),
    st.lists(st.integers(0, 200), max_size=20),
)
def test_same_lines_however_split(stream: bytes, points: list[int]) -> None:
    expected = [
        text
        for raw in stream.split(b"\n")
        if (text := raw.removesuffix(b"\r").decode("utf-8", "replace")).strip(" \t\r\n\x0b\x0c")
    ]
    assert feed_all(NDJSONDecoder(BIG), [stream]) == expected
    assert feed_all(NDJSONDecoder(BIG), split_at(stream, points)) == expected
    assert feed_all(NDJSONDecoder(BIG), one_byte(stream)) == expected
