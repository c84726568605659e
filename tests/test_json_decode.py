"""The dialects' JSON decoding (orjson first, the standard library as the judge) means
exactly what ``json.loads`` means, and fails where and how it fails."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_streamchat.dialects.generic import _decode, load_object
from jupyter_streamchat.errors import ProtocolError

TRICKY = [
    '{"a": NaN, "b": Infinity, "c": -Infinity}',
    '{"lone": "\\ud800"}',
    '{"dup": 1, "dup": 2}',
    '{"nested": [[[[[[[[[[1]]]]]]]]]]}',
    '{"text": "\\u2028 line separator, \\u00e9, \\ud83d\\ude00"}',
    '  {"spaces": true}  ',
    "[1, 2, 3]",
    '"just a string"',
]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_documents_decode_like_the_standard_library(text: str) -> None:
    assert same(_decode(text), json.loads(text))


@pytest.mark.parametrize("text", ['{"a": ', "{'single': 1}", '{"a": 1} trailing', "", "nul\x00"])
def test_invalid_documents_fail_with_the_standard_library_message(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as fast:
        _decode(text)
    with pytest.raises(json.JSONDecodeError) as std:
        json.loads(text)
    assert fast.value.msg == std.value.msg
    with pytest.raises(ProtocolError, match=std.value.msg):
        load_object(text, "openai-chat")


def test_integers_beyond_64_bits_become_floats() -> None:
    # The documented difference from json.loads; usage counts that large are ignored.
    assert _decode('{"big": 123456789012345678901234567890}') == {"big": 1.2345678901234568e29}
    assert _decode('{"fits": -9223372036854775808}') == {"fits": -(2**63)}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_any_document_round_trips_like_the_standard_library(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert same(_decode(text), json.loads(text))
