"""The RocksDB worker's off-heap line index behaves as the cykhash tables it replaces.

The tables are checked against a dict and a set under random operations (with a tiny
front, so keys move to RocksDB between operations), and a provider state over them
against one over cykhash tables: same outcomes, snapshot, tables, distinct-client
maps and checkpoint, and a checkpoint of either restores into the other.
"""

from __future__ import annotations

import base64
import random
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest
from cykhash import Int64toInt64Map
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.indicators import YearState
from streams.domain.state import ProviderState
from streams.store import codec
from streams.store.layout import StateTable, encoded
from streams.store.offheap import FILTER_BITS_PER_KEY, OffHeapMap, OffHeapSet, OffHeapTables
from tests.domain.histories import PROVIDERS, Builder, encode, new_engine, op

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
    st.tuples(st.just("count"), SMALL, st.sampled_from([1, 1, -1])),
    st.tuples(st.just("insert"), KEYS, INT64),  # of a key not held (else a set)
    st.tuples(st.just("flush")),
)


def count(model: dict[int, int], key: int, sign: int) -> int:
    """``OffHeapMap.count`` in a dict: a client's live lines, gone at none."""
    n = model.get(key, 0) + sign
    if n > 0:
        moved = 0 if key in model else 1
        model[key] = n
        return moved
    return -1 if model.pop(key, None) is not None else 0


@HYPOTHESIS
@given(ops=st.lists(map_op, max_size=60), filtered=st.booleans())
def test_an_off_heap_map_behaves_as_a_dict(tables, ops, filtered):
    """With its filter of the keys held, or without one (a year's line clients)."""
    table, model = tables.new_map(filtered), {}
    for o in ops:
        kind = o[0]
        if kind == "set" or (kind == "insert" and o[1] in model):
            table[o[1]] = model[o[1]] = o[2]
        elif kind == "insert":
            table.insert(o[1], o[2])
            model[o[1]] = o[2]
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
        elif kind == "count":
            assert table.count(o[1], o[2]) == count(model, o[1], o[2])
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
    # Each table's filter starts small and is rebuilt 4x as large when full, from the
    # keys in RocksDB and in the front; a key it missed would read absent. It holds at
    # most 4 x FILTER_BITS_PER_KEY bits a key once grown (an 8x growth held 6.4x).
    tables = OffHeapTables(tmp_path / "index", front_entries=97)
    try:
        rng = random.Random(5)
        held = [rng.getrandbits(60) for _ in range(5_000)] + list(range(-50, 50))
        absent = [rng.getrandbits(60) for _ in range(5_000)]
        index, events, inserted = tables.new_map(), tables.new_set(), tables.new_map()
        for n, key in enumerate(held):
            assert key not in index and key not in events
            index[key] = n
            events.add(key)
            inserted.insert(key, n)  # marks the filter as a set does
        bulk = tables.new_map()
        bulk.fill(array("q", held[:3_000]), array("q", range(3_000)))
        bulk.fill(array("q", held[3_000:]), array("q", range(3_000, len(held))))
        for table in (index, events, bulk, inserted):
            assert len(table) == len(held)
            assert all(key in table for key in held)
            assert not any(key in table for key in absent)
        assert all(index[key] == n == bulk[key] == inserted[key] for n, key in enumerate(held))
        for table in (index, events, inserted):
            assert len(table._bits) * 64 <= 4 * FILTER_BITS_PER_KEY * len(table)  # noqa: SLF001
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
        for kind in ("lines", "clients", "events", "distinct"):
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


def maps_of(ys: YearState) -> dict[str, dict[int, int]]:
    """A year's distinct-client maps as dicts, ``dept_live`` too (``__eq__`` leaves
    it out: the counts in its cells are compared)."""
    return {name: dict(live.items()) for name, live in ys.client_maps()}


def assert_years_off_the_heap(off: ProviderState, heap: ProviderState) -> None:
    """Every distinct-client map of ``off`` is off the heap and holds what ``heap``'s do."""
    assert off.years.keys() == heap.years.keys()
    for y, ys in off.years.items():
        kinds = {type(live) for _, live in ys.client_maps()}
        assert kinds == {OffHeapMap}, kinds
        assert ys == heap.years[y]
        assert maps_of(ys) == maps_of(heap.years[y])


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
            assert_years_off_the_heap(b, a)
            assert b.index_entries() == a.index_entries()
            checkpoint = codec.checkpoint(b, chunk)
            assert canonical(checkpoint) == canonical(codec.checkpoint(a, chunk))
            # a checkpoint of one restores into the other, chunks in any order
            random.Random(chunk).shuffle(checkpoint)
            back = ProviderState(agb)
            for part in checkpoint:
                codec.restore_checkpoint(back, orjson.loads(orjson.dumps(part)))
            assert plain(back) == plain(a)
            assert back.years == a.years
            assert {y: maps_of(ys) for y, ys in back.years.items()} == {
                y: maps_of(ys) for y, ys in a.years.items()
            }
            into = ProviderState(agb, tables=tables)
            for part in codec.checkpoint(a, chunk):
                codec.restore_checkpoint(into, orjson.loads(orjson.dumps(part)))
            assert plain(into) == plain(a) and into.index_entries() == a.index_entries()
            assert all(isinstance(t, OffHeapSet) for t in into.events.values())
            assert_years_off_the_heap(into, a)
    finally:
        tables.close()


# -- the years' distinct-client maps off the heap (issue #21) ----------------------------

AGB = PROVIDERS[0]
# k1's one line counts in every distinct-client map of 2026 (ADHD Q1, consult, digital,
# detox, clinical detox, the ward's February); the others' lines overlap in some.
K1 = {
    "provider": AGB,
    "date": "2026-02-10",
    "activity": "consult",
    "mode": "individual",
    "practitioners": 1,
    "digital": True,
    "detox": "clinical",
    "zvt": 3,
    "setting": 5,
    "diagnosis": "adhd",
    "client": "k1",
    "amount": 10_000,
    "department": "ward",
    "stay": 1,
}
OTHERS = [
    {"client": "k2"},
    {"client": "k2", "date": "2026-05-10", "detox": "ambulant", "digital": False},
    {"client": "k3", "activity": "stay", "detox": None, "department": "crisis", "stay": 30},
    {"client": "k4", "diagnosis": "depression", "detox": "ambulant"},
    {"client": "k3", "date": "2025-05-10", "department": None},
]


def client_history() -> tuple[Builder, list[dict[str, Any]]]:
    """Debits of four clients over two years, then a credit of k2's May line."""
    b = Builder()
    events = [b.debit(K1), *(b.debit({**K1, **other}) for other in OTHERS)]
    events.append(b.credit(events[2]))
    return b, events


def test_a_state_off_the_heap_counts_distinct_clients_in_off_heap_maps(tables):
    _, events = client_history()
    heap, off = new_engine(journal=True), new_engine(journal=True)
    off.tables = tables
    for raw in encode(events):
        heap.process(raw, None)
        off.process(raw, None)
    a, b = heap.providers[AGB], off.providers[AGB]
    assert_years_off_the_heap(b, a)
    for ys in a.years.values():  # the same history in C tables, without off-heap tables
        assert {type(live) for _, live in ys.client_maps()} == {Int64toInt64Map}
    ys = b.years[2026]
    # k2's May line is credited: k2 leaves the maps it counted in only there
    assert {name: len(live) for name, live in ys.client_maps()} == {
        "adhd1": 3,  # k1, k2, k3 (a stay of an ADHD client too; k4's is no ADHD line)
        "adhd2": 0,  # k2's line went: the quarter stays, empty
        "clients_detox": 3,  # k1, k2 (its February line), k4
        "clients_clinical": 2,  # k1, k2
        "clients_consult": 3,  # k1, k2, k4 (k3's lines are stays)
        "clients_digital": 3,  # k1, k2, k4
        "dept_live": 4,  # the ward's February: k1, k2, k4; the crisis's: k3
    }
    # the front holds three keys at most: most of these counts were read from RocksDB
    assert len(list(tables.db.keys())) > 0


def test_a_client_leaves_the_off_heap_counts_when_its_last_line_is_credited(tables):
    b, events = client_history()
    engine = new_engine(journal=True)
    engine.tables = tables
    for raw in encode(events):
        engine.process(raw, None)
    st_ = engine.providers[AGB]
    ys = st_.years[2026]
    before = {name: dict(live.items()) for name, live in ys.client_maps()}
    cells = {key: cell[0] for key, cell in ys.dept_cells.items()}
    engine.process(encode([b.credit(events[0])])[0], None)  # k1's only line
    after = {name: dict(live.items()) for name, live in ys.client_maps()}
    # k1 leaves every map it counted in (all but the second quarter's), the others stay
    dropped = {name: len(before[name]) - len(after[name]) for name in before}
    assert dropped == {**dict.fromkeys(before, 1), "adhd2": 0}
    for name in before:
        assert after[name].items() <= before[name].items()
    (ward_february,) = [k for k, n in cells.items() if ys.dept_cells[k][0] != n]
    assert ys.dept_cells[ward_february][0] == cells[ward_february] - 1 == 2
    assert all(type(live) is OffHeapMap for _, live in ys.client_maps())


@pytest.mark.parametrize("chunk", [1, 4, 10_000])
def test_off_heap_client_maps_survive_a_checkpoint_and_recovery_into_off_heap_tables(
    tmp_path, chunk
):
    b, events = client_history()
    events += [b.credit(events[0]), b.debit({**K1, "client": "k5", "date": "2026-11-30"})]
    heap = new_engine(journal=True)
    off_tables = OffHeapTables(tmp_path / "off", front_entries=3)
    into_tables = OffHeapTables(tmp_path / "into", front_entries=3)
    try:
        off = new_engine(journal=True)
        off.tables = off_tables
        table: dict[str, bytes] = {}
        writer = StateTable(table)
        writer.checkpoint_chunk, writer.checkpoint_tail_ratio = chunk, 1_000
        for n, raw in enumerate(encode(events)):
            heap.process(raw, None)
            off.process(raw, None)
            # a checkpoint after the fifth message, journal segments before and after it
            writer.checkpoint_segments = 1 if n == 4 else 1_000
            for key, value in encoded(writer.persist(off.providers[AGB], 0)):
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        # recovery reads a checkpoint, then the journal segments written after it
        assert {key[:2] for key in table} == {"h:", "k:", "j:"}
        loaded = StateTable(table).load(AGB, lambda agb: ProviderState(agb, tables=into_tables))
        assert loaded is not None
        recovered, a = loaded[0], heap.providers[AGB]
        assert_years_off_the_heap(recovered, a)
        assert plain(recovered) == plain(a)
        assert all(type(t) is OffHeapMap for t in recovered.lines.values())
    finally:
        off_tables.close()
        into_tables.close()


def test_a_states_line_clients_keep_no_filter_and_a_debit_writes_its_client_unread(
    tables, monkeypatch
):
    """A debit's line is new to the index, so its client is new to the line clients:
    the kernel inserts it without a lookup, and the table keeps no filter of its keys
    (one fewer per line of the worker's heap). A credit still finds its client."""
    b = Builder()
    debits = [b.debit({**K1, "client": f"k{n}"}) for n in range(40)]
    engine = new_engine(journal=True)
    engine.tables = tables
    looked_up: list[int] = []
    real = OffHeapMap._stored

    def spy(self: OffHeapMap, key: int) -> bytes | None:
        looked_up.append(self.id)
        return real(self, key)

    monkeypatch.setattr(OffHeapMap, "_stored", spy)
    for raw in encode(debits):
        engine.process(raw, None)
    st = engine.providers[AGB]
    clients, index = st.clients[2026], st.lines[2026]
    assert clients._bits is None and index._bits is not None  # noqa: SLF001
    assert len(clients) == 40 and clients.id not in looked_up
    assert index.id in looked_up  # the index is asked whether each line is new
    heap = new_engine(journal=True)
    credits = [b.credit(debits[3]), b.credit(debits[30])]
    for raw in encode(debits + credits):
        heap.process(raw, None)
    for raw in encode(credits):
        engine.process(raw, None)
    assert_years_off_the_heap(st, heap.providers[AGB])
