"""The streaming worker's line index, clients and event ids live in C tables of int64.

A state that is persisted (``hashed``) keeps them in cykhash tables; its checkpoint
must still be state format 3 (base64 of little-endian unsigned 64-bit arrays, keys
and values in the same order), whatever order the tables iterate in and however the
chunks are cut, and a chunk of that format must restore exactly.
"""

from __future__ import annotations

import base64
import random
from array import array
from typing import Any

import orjson
import pytest

from streams.domain.engine import Engine
from streams.domain.state import _CREDITED, ProviderState, key_of
from tests.conftest import AGB


def plain(st: ProviderState) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]]:
    """The tables as Python dicts and sets, for comparing across table types."""
    return (
        {y: dict(t.items()) for y, t in st.lines.items()},
        {y: dict(t.items()) for y, t in st.clients.items()},
        {y: set(t) for y, t in st.events.items()},
    )


def uint64s(text: str) -> list[int]:
    packed = array("Q")
    packed.frombytes(base64.b64decode(text))
    return packed.tolist()


@pytest.fixture
def live(policy: Any, make_line: Any) -> ProviderState:
    """A worker's state over three service years: ADHD lines (clients), credits,
    a redelivered line."""
    engine = Engine(policy, journal=True)
    sent = []
    for n in range(60):
        debit = make_line(
            service_date=f"{2024 + n % 3}-0{1 + n % 9}-10",
            diagnosis_group="adhd" if n % 4 == 0 else "depression",
            amount_cents=1_000 + n,
        )
        sent.append(debit)
        if n % 5 == 0:
            sent.append(make_line.credit(debit))
    sent.append(sent[3])
    for obj in sent:
        engine.process(orjson.dumps(obj), AGB)
    return engine.providers[AGB]


def test_the_worker_state_is_in_int64_tables_and_the_offline_one_in_dicts(policy, make_line):
    for journal, types in ((True, ("Int64toInt64Map", "Int64Set")), (False, ("dict", "set"))):
        engine = Engine(policy, journal=journal)
        engine.process(orjson.dumps(make_line(diagnosis_group="adhd")), AGB)
        st = engine.providers[AGB]
        assert type(st.lines[2026]).__name__ == types[0]
        assert type(st.clients[2026]).__name__ == types[0]
        assert type(st.events[2026]).__name__ == types[1]


@pytest.mark.parametrize("max_entries", [1, 7, 10_000])
def test_a_checkpoint_restores_every_table_whatever_the_chunks_and_their_order(live, max_entries):
    lines, clients, events = plain(live)
    assert len(lines) == 3 and sum(map(len, clients.values())) == 15
    assert any(v & _CREDITED for t in lines.values() for v in t.values())
    chunks = live.checkpoint(max_entries)
    random.Random(max_entries).shuffle(chunks)
    copy = ProviderState(AGB)
    for chunk in chunks:
        copy.restore_checkpoint(orjson.loads(orjson.dumps(chunk)))
    assert plain(copy) == (lines, clients, events)
    assert copy.lines == live.lines and copy.events == live.events  # C tables compare too
    assert copy.years.keys() == live.years.keys()


def test_a_checkpoint_is_the_packed_uint64_layout_of_state_format_3(live):
    lines, clients, events = plain(live)
    chunks = live.checkpoint(10_000)
    assert len(chunks) == 1
    chunk = chunks[0]
    for kind, tables in (("lines", lines), ("clients", clients)):
        for y, (keys, values) in chunk[kind].items():
            assert dict(zip(uint64s(keys), uint64s(values), strict=True)) == tables[int(y)]
    for y, keys in chunk["events"].items():
        assert sorted(uint64s(keys)) == sorted(events[int(y)])


def test_a_chunk_with_the_largest_keys_and_every_flag_bit_restores_exactly():
    def b64(values: list[int]) -> str:
        return base64.b64encode(array("Q", values).tobytes()).decode()

    top = (1 << 60) - 1  # key_of is below 2**60
    entry = 123 | 0xFFFF << 24 | 3 << 40 | 2025 << 44 | _CREDITED  # every flag bit
    chunk = {
        "lines": {"2025": [b64([top, 0, key_of("l1")]), b64([entry, 1, 2])]},
        "clients": {"2025": [b64([top]), b64([key_of("c1")])]},
        "events": {"2025": b64([top, 7])},
    }
    st = ProviderState(AGB)
    st.restore_checkpoint(chunk)
    assert plain(st) == (
        {2025: {top: entry, 0: 1, key_of("l1"): 2}},
        {2025: {top: key_of("c1")}},
        {2025: {top, 7}},
    )
    again = st.checkpoint(10_000)[0]
    assert plain(st) == plain(_restored(again))


def _restored(chunk: dict[str, Any]) -> ProviderState:
    st = ProviderState(AGB)
    st.restore_checkpoint(chunk)
    return st


def test_a_chunk_whose_keys_and_values_differ_in_number_is_refused():
    two = base64.b64encode(array("Q", [1, 2]).tobytes()).decode()
    one = base64.b64encode(array("Q", [1]).tobytes()).decode()
    chunk = {"lines": {"2025": [two, one]}, "clients": {}, "events": {}}
    with pytest.raises(ValueError, match="keys and values"):
        ProviderState(AGB).restore_checkpoint(chunk)
