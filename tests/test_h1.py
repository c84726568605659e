"""The sans-I/O HTTP/1.1 response parser: framing, limits, and chunk-boundary independence."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_streamchat.decode.h1 import END, ResponseHead, ResponseParser
from jupyter_streamchat.errors import LimitExceeded, ProtocolError


def parse(chunks: list[bytes], *, eof: bool = False) -> tuple[ResponseHead | None, bytes, bool]:
    """Feed chunks; return (head, body, ended)."""
    parser = ResponseParser()
    head = None
    body = b""
    ended = False
    pieces = [p for chunk in chunks for p in parser.feed(chunk)]
    if eof:
        pieces += parser.eof()
    for piece in pieces:
        if isinstance(piece, ResponseHead):
            head = piece
        elif piece is END:
            ended = True
        else:
            assert isinstance(piece, bytes)
            body += piece
    return head, body, ended


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"6\r\ndata: \r\n"
    b"5;ext=1\r\nhello\r\n"
    b"2\r\n\n\n\r\n"
    b"0\r\nX-Trailer: yes\r\n\r\n"
)


def test_chunked_body_with_extension_and_trailer() -> None:
    head, body, ended = parse([CHUNKED])
    assert head is not None
    assert head.status == 200
    assert head.get("content-type") == "text/event-stream"
    assert body == b"data: hello\n\n"
    assert ended


def test_sized_body() -> None:
    head, body, ended = parse(
        [b"HTTP/1.1 429 Too Many\r\nContent-Length: 5\r\nRetry-After: 1\r\n\r\nslow!"]
    )
    assert head is not None
    assert (head.status, head.reason, head.get("retry-after")) == (429, "Too Many", "1")
    assert (body, ended) == (b"slow!", True)


def test_close_delimited_body_ends_at_eof() -> None:
    parser = ResponseParser()
    pieces = parser.feed(b"HTTP/1.0 200 OK\r\n\r\nabc")
    assert pieces[1:] == [b"abc"]
    assert not parser.keep_alive
    assert parser.feed(b"def") == [b"def"]
    assert parser.eof() == [END]


def test_interim_responses_are_skipped() -> None:
    head, body, ended = parse([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"])
    assert head is not None
    assert head.status == 204
    assert (body, ended) == (b"", True)


def test_keep_alive_follows_version_and_connection_header() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert parser.keep_alive
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not parser.keep_alive


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", "folding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer-encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", "not followed by CRLF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", "after the response body"),
    ],
)
def test_malformed_responses_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        ResponseParser().feed(raw)


def test_head_over_the_limit_names_limit_and_size() -> None:
    parser = ResponseParser(max_head_bytes=100)
    with pytest.raises(
        LimitExceeded, match=r"response head of \d+ bytes exceeds max_head_bytes=100"
    ):
        parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 200)


def test_eof_mid_body_is_an_error() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    with pytest.raises(ProtocolError, match="closed in the middle of the response body"):
        parser.eof()


@given(st.lists(st.integers(min_value=1, max_value=len(CHUNKED) - 1), max_size=12, unique=True))
def test_split_points_do_not_matter(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(CHUNKED)]
    chunks = [CHUNKED[a:b] for a, b in itertools.pairwise(edges)]
    assert parse(chunks) == parse([CHUNKED])


def test_one_byte_at_a_time() -> None:
    assert parse([CHUNKED[i : i + 1] for i in range(len(CHUNKED))]) == parse([CHUNKED])
