"""The RocksDB worker's off-heap line index behaves as the cykhash tables it replaces.

The tables are checked against a dict and a set under random operations (with a tiny
front, so keys move to RocksDB between operations), and a provider state over them
against one over cykhash tables: same outcomes, snapshot, tables and checkpoint, and
a checkpoint of either restores into the other.
"""

from __future__ import annotations

import base64
import random
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.state import ProviderState
from streams.store import codec
from streams.store.offheap import OffHeapMap, OffHeapSet, OffHeapTables
from tests.domain.histories import Builder, encode, new_engine, op

INT64 = st.integers(-(2**63), 2**63 - 1)
SMALL = st.integers(-3, 40)  # keys that repeat
KEYS = st.one_of(SMALL, INT64)
HYPOTHESIS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def tables(tmp_path: Path) -> Any:
    t = OffHeapTables(tmp_path / "index", front_entries=3)
    yield t
    t.close()


map_op = st.one_of(
    st.tuples(st.just("set"), KEYS, INT64),
    st.tuples(st.just("contains_set"), KEYS, INT64),  # accept's `in`, then `[]=`
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("del"), KEYS),
    st.tuples(st.just("fill"), st.lists(st.tuples(KEYS, INT64), max_size=8)),
    st.tuples(st.just("flush")),
)


@HYPOTHESIS
@given(ops=st.lists(map_op, max_size=60))
def test_an_off_heap_map_behaves_as_a_dict(tables, ops):
    table, model = tables.new_map(), {}
    for o in ops:
        kind = o[0]
        if kind == "set":
            table[o[1]] = model[o[1]] = o[2]
        elif kind == "contains_set":
            assert (o[1] in table) == (o[1] in model)
            table[o[1]] = model[o[1]] = o[2]
        elif kind == "get":
            assert (o[1] in table) == (o[1] in model)
            assert table.get(o[1]) == model.get(o[1])
        elif kind == "del":
            if o[1] in model:
                del table[o[1]], model[o[1]]
            else:
                with pytest.raises(KeyError):
                    del table[o[1]]
        elif kind == "fill":
            keys, values = array("q", [k for k, _ in o[1]]), array("q", [v for _, v in o[1]])
            table.fill(keys, values)
            model.update(o[1])
        else:
            tables.flush()
        assert len(table) == len(model)
    keys, values = table.arrays()
    assert dict(zip(keys, values, strict=True)) == model
    assert len(keys) == len(model)
    assert dict(table.items()) == model and sorted(table) == sorted(model)


set_op = st.one_of(
    st.tuples(st.just("add"), KEYS),
    st.tuples(st.just("contains_add"), KEYS),
    st.tuples(st.just("discard"), KEYS),
    st.tuples(st.just("fill"), st.lists(KEYS, max_size=8)),
    st.tuples(st.just("flush")),
)


@HYPOTHESIS
@given(ops=st.lists(set_op, max_size=60))
def test_an_off_heap_set_behaves_as_a_set(tables, ops):
    table, model = tables.new_set(), set()
    for o in ops:
        kind = o[0]
        if kind == "add":
            table.add(o[1])
            model.add(o[1])
        elif kind == "contains_add":
            assert (o[1] in table) == (o[1] in model)
            table.add(o[1])
            model.add(o[1])
        elif kind == "discard":
            table.discard(o[1])
            model.discard(o[1])
        elif kind == "fill":
            table.fill(array("q", o[1]))
            model.update(o[1])
        else:
            tables.flush()
        assert len(table) == len(model)
    assert sorted(table.arrays()) == sorted(model) and set(table) == model


def test_lookups_stay_exact_as_tables_grow_past_their_filters(tmp_path):
    # Each table's filter starts at 64 keys and is rebuilt 4x as large when full,
    # from the keys in RocksDB and in the front; a key it missed would read absent. It
    # holds at most 32 bits a key once grown (an 8x growth held 51 here).
    tables = OffHeapTables(tmp_path / "index", front_entries=97)
    try:
        rng = random.Random(5)
        held = [rng.getrandbits(60) for _ in range(5_000)] + list(range(-50, 50))
        absent = [rng.getrandbits(60) for _ in range(5_000)]
        index, events = tables.new_map(), tables.new_set()
        for n, key in enumerate(held):
            assert key not in index and key not in events
            index[key] = n
            events.add(key)
        bulk = tables.new_map()
        bulk.fill(array("q", held[:3_000]), array("q", range(3_000)))
        bulk.fill(array("q", held[3_000:]), array("q", range(3_000, len(held))))
        for table in (index, events, bulk):
            assert len(table) == len(held)
            assert all(key in table for key in held)
            assert not any(key in table for key in absent)
        assert all(index[key] == n and bulk[key] == n for n, key in enumerate(held))
        for table in (index, events):
            assert len(table._bits) * 64 <= 32 * len(table)  # noqa: SLF001
    finally:
        tables.close()


def test_tables_are_separate_key_ranges_and_a_table_let_go_leaves_nothing(tables):
    a, b, s = tables.new_map(), tables.new_map(), tables.new_set()
    for k in range(10):
        a[k], b[k] = k, -k
        s.add(k)
    assert dict(a.items()) == {k: k for k in range(10)}
    assert dict(b.items()) == {k: -k for k in range(10)}
    del a, s
    tables.flush()
    assert len(list(tables.db.keys())) == 10  # b's only


def test_the_database_is_wiped_at_start_and_removed_at_close(tmp_path):
    path = tmp_path / "index"
    first = OffHeapTables(path, front_entries=1)
    m = first.new_map()
    m[1] = 2
    first.db.close()  # as a SIGKILL leaves it
    second = OffHeapTables(path)
    assert list(second.db.keys()) == []
    second.close()
    assert not path.exists()


# -- a provider state over the off-heap tables --------------------------------------------


def canonical(chunks: list[dict[str, Any]]) -> Any:
    """A checkpoint's content independent of table iteration order and chunking."""
    years: dict[str, Any] = {}
    tables: dict[tuple[str, str], dict[int, int | None]] = {}
    for chunk in chunks:
        years.update(chunk.get("years", {}))
        for kind in ("lines", "clients", "events"):
            for y, raw in chunk[kind].items():
                into = tables.setdefault((kind, y), {})
                if kind == "events":
                    into.update(dict.fromkeys(_ints(raw["keys"])))
                else:
                    into.update(zip(_ints(raw["keys"]), _ints(raw["values"]), strict=True))
    return years, tables


def _ints(text: str) -> list[int]:
    packed = array("q")
    packed.frombytes(base64.b64decode(text))
    return packed.tolist()


def plain(state: ProviderState) -> Any:
    return (
        {y: dict(t.items()) for y, t in state.lines.items() if len(t)},
        {y: dict(t.items()) for y, t in state.clients.items() if len(t)},
        {y: set(t) for y, t in state.events.items() if len(t)},
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=60), chunk=st.sampled_from([1, 5, 10_000]))
def test_a_state_off_the_heap_gives_the_snapshot_and_checkpoint_of_one_in_c_tables(
    tmp_path_factory, ops, chunk
):
    tables = OffHeapTables(tmp_path_factory.mktemp("index"), front_entries=4)
    try:
        messages = encode(Builder().build(ops))
        heap, off = new_engine(journal=True), new_engine(journal=True)
        off.tables = tables
        for raw in messages:
            fa, fb = heap.process(raw, None), off.process(raw, None)
            assert fb.alerts == fa.alerts
            assert [d.reason for d in fb.dead_letters] == [d.reason for d in fa.dead_letters]
        assert off.snapshot() == heap.snapshot()
        for agb, a in heap.providers.items():
            b = off.providers[agb]
            assert all(isinstance(t, OffHeapMap) for t in b.lines.values())
            assert plain(b) == plain(a)
            assert b.index_entries() == a.index_entries()
            checkpoint = codec.checkpoint(b, chunk)
            assert canonical(checkpoint) == canonical(codec.checkpoint(a, chunk))
            # a checkpoint of one restores into the other, chunks in any order
            random.Random(chunk).shuffle(checkpoint)
            back = ProviderState(agb)
            for part in checkpoint:
                codec.restore_checkpoint(back, orjson.loads(orjson.dumps(part)))
            assert plain(back) == plain(a)
            into = ProviderState(agb, tables=tables)
            for part in codec.checkpoint(a, chunk):
                codec.restore_checkpoint(into, orjson.loads(orjson.dumps(part)))
            assert plain(into) == plain(a) and into.index_entries() == a.index_entries()
            assert all(isinstance(t, OffHeapSet) for t in into.events.values())
    finally:
        tables.close()
