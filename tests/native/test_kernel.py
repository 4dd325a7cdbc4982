"""The compiled kernel (streams/native/kernel.pyx) against what it stands in for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xxhash import xxh3_64_intdigest

from streams.domain.state import key_of
from streams.native import kernel


@given(st.text(max_size=200))
def test_keys_are_python_xxhash_s_xxh3_of_the_utf8_shifted_to_60_bits(text):
    # the same key in the worker, the offline replay and every checkpoint ever written
    assert key_of(text) == xxh3_64_intdigest(text.encode()) >> 4
    assert 0 <= key_of(text) < 2**60


def test_keys_of_long_and_non_ascii_identifiers():
    for text in ("", "é" * 300, "🙂" * 1000, "x" * 5000, "line-\u0000-id"):
        assert key_of(text) == xxh3_64_intdigest(text.encode()) >> 4


def test_an_identifier_that_is_not_utf8_encodable_raises_as_encode_does():
    with pytest.raises(UnicodeEncodeError):
        "\ud800".encode()
    with pytest.raises(UnicodeEncodeError):
        kernel.key_of("\ud800")


def test_table_arrays_reads_a_c_table_in_one_order_and_leaves_others_to_the_caller():
    from cykhash import Int64toInt64Map

    table = Int64toInt64Map()
    for k in range(1000):
        table[k * 7919] = k
    keys, values = kernel.table_arrays(table)
    assert dict(zip(keys, values, strict=True)) == dict(table.items())
    assert kernel.table_arrays({1: 2}) is None
