"""``nesting.too_deep``: the depth of a JSON text, without decoding it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.nesting import MAX_DEPTH, too_deep


def depth(text: bytes) -> int:
    """Reference: containers open at the deepest point a decoder reaches, read one
    character at a time (strings and their escapes skipped; stops where a decoder
    would: at a closer with nothing open, or a backslash outside a string)."""
    deepest = level = 0
    in_string = escaped = False
    for byte in text:
        c = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "\\":
            break
        elif c in "[{":
            level += 1
            deepest = max(deepest, level)
        elif c in "]}":
            if level == 0:
                break
            level -= 1
    return deepest


def nested(levels: int, inner: Any = 1) -> Any:
    value = inner
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def nested_text(levels: int) -> bytes:
    """``nested(levels)`` as JSON, also deeper than the json module can write."""
    opening = "".join("[" if i % 2 else '{"k":' for i in reversed(range(levels)))
    closing = "".join("]" if i % 2 else "}" for i in range(levels))
    return f"{opening}1{closing}".encode()


@pytest.mark.parametrize("levels", [1, 3, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 100_000])
def test_the_bound_is_exact_for_arrays_and_objects(levels):
    raw = nested_text(levels)
    if levels < 100:
        assert raw == json.dumps(nested(levels), separators=(",", ":")).encode()
    assert too_deep(raw) == (levels > MAX_DEPTH)
    assert too_deep(raw.replace(b"[", b"[ ").replace(b"{", b"{\n")) == (levels > MAX_DEPTH)


def test_brackets_inside_strings_do_not_count():
    deep_text = "[[[[{{{{" * 100 + '\\"]]]' * 10
    line = {"client_ref": "c1", "note": deep_text, deep_text: "[" * 500}
    for raw in (json.dumps(line).encode(), json.dumps(line, ensure_ascii=False).encode()):
        assert not too_deep(raw)
    wrapped = json.dumps(nested(MAX_DEPTH - 1, deep_text)).encode()
    assert not too_deep(wrapped)
    assert too_deep(json.dumps(nested(MAX_DEPTH + 1, deep_text)).encode())


def test_strings_cannot_hide_a_deep_structure():
    """A closing bracket in a string next to each opening one outside, and the other
    way round: counted naively the brackets balance at depth 1."""
    levels = MAX_DEPTH + 10
    raw = ('["]",' * levels + "0" + ',"["]' * levels).encode()
    assert depth(raw) == levels
    assert too_deep(raw)


def test_a_sequence_of_texts_is_as_deep_as_its_deepest():
    texts = [json.dumps(nested(2)).encode()] * 50 + [json.dumps(nested(MAX_DEPTH + 1)).encode()]
    assert too_deep(b"\n".join(texts))
    assert not too_deep(b"\n".join(texts[:-1]))


def test_text_that_never_closes_is_bounded_by_what_it_opens():
    assert too_deep(b"[" * (MAX_DEPTH + 1))
    assert not too_deep(b"[" * MAX_DEPTH)
    assert too_deep(b"]]]" + b"[" * (MAX_DEPTH + 1))
    assert not too_deep(b'"' + b"[" * 1000)  # a string that never ends


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet=st.sampled_from('ab[]{}"\\é\n'), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(alphabet=st.sampled_from('k[]{"\\'), max_size=4), inner, max_size=3
        )
    ),
    max_leaves=40,
)


@settings(max_examples=400)
@given(json_values, st.booleans(), st.integers(0, 12))
def test_exact_for_any_json(value, ascii_only, limit):
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert too_deep(raw, limit) == (depth(raw) > limit)


@settings(max_examples=400)
@given(
    st.binary(max_size=60)
    | st.text(alphabet=st.sampled_from('[]{}"\\ ,:a'), max_size=60).map(str.encode),
    st.integers(0, 8),
)
def test_never_below_what_a_decoder_reaches_on_any_bytes(raw, limit):
    if depth(raw) > limit:
        assert too_deep(raw, limit)
