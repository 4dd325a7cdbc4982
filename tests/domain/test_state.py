"""The provider state (streams/domain/state.py): its tables, and the ChangeLog through
which it tells a store what changed.

The state persists nothing itself: it tells each change to ``journal`` (any
``ChangeLog``) and takes the same calls back through ``Replay``. Storage lives in
``streams/store/``, which the domain never imports.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import orjson
import pytest

import streams.domain
from streams.domain import state
from streams.domain.engine import Engine
from streams.domain.indicators import breakdown
from streams.domain.state import Dims, Key, ProviderState, Replay
from tests.conftest import AGB


class Calls:
    """A ChangeLog that lists the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def interned(self, dims_id: int, dims: Dims) -> None:
        self.calls.append(("interned", dims_id, dims))

    def debit(
        self, key: Key, event: Key, year: int, packed: int, client: Key | None, line_id: str | None
    ) -> None:
        self.calls.append(("debit", key, event, year, packed, client, line_id))

    def credit(self, key: Key, event: Key, year: int, debit_year: int) -> None:
        self.calls.append(("credit", key, event, year, debit_year))

    def judged(self, event: Key, year: int) -> None:
        self.calls.append(("judged", event, year))


def tables(st: ProviderState) -> Any:
    return (
        {y: dict(t.items()) for y, t in st.lines.items()},
        {y: dict(t.items()) for y, t in st.clients.items()},
        {y: set(t) for y, t in st.events.items()},
    )


def test_worker_and_offline_states_are_in_int64_tables_and_one_keyed_by_identifiers_in_dicts(
    policy, make_line
):
    by_identifiers = Engine(policy)
    by_identifiers.new_state = lambda provider: ProviderState(provider, hashed=False)
    cases = (
        (Engine(policy, journal=True), ("Int64toInt64Map", "Int64Set")),  # the worker
        (Engine(policy), ("Int64toInt64Map", "Int64Set")),  # the offline replay
        (by_identifiers, ("dict", "set")),  # claimwatch explain's one provider
    )
    for engine, types in cases:
        engine.process(orjson.dumps(make_line(diagnosis_group="adhd")), AGB)
        st = engine.providers[AGB]
        assert type(st.lines[2026]).__name__ == types[0]
        assert type(st.clients[2026]).__name__ == types[0]
        assert type(st.events[2026]).__name__ == types[1]


def test_any_changelog_hears_every_change_and_replay_rebuilds_the_state(policy, make_line):
    engine = Engine(policy, journal=True)
    engine.journals = Calls
    debit = make_line(diagnosis_group="adhd", service_date="2025-03-01")
    odd = {**make_line.credit(debit), "service_date": "2024-12-01"}  # its debit is 2025's
    again = {**make_line.credit(debit), "service_date": "2024-12-01"}  # a second credit
    for obj in (debit, debit, odd, odd, again, make_line.credit(make_line())):
        engine.process(orjson.dumps(obj), AGB)
    st = engine.providers[AGB]
    assert isinstance(st.journal, Calls)
    # repeats (same event id) are redeliveries: no call; the second credit of the line
    # and the orphan credit are judged, so their event ids survive a restart
    assert [c[0] for c in st.journal.calls] == ["interned", "debit", "credit", "judged", "judged"]
    assert st.journal.calls[2][3:] == (2024, 2025)
    copy = ProviderState(AGB)
    replay = Replay(copy)
    for name, *args in st.journal.calls:
        getattr(replay, name)(*args)
    assert tables(copy) == tables(st)
    assert {y: ys.to_json() for y, ys in copy.years.items()} == {
        y: ys.to_json() for y, ys in st.years.items()
    }


def test_without_a_changelog_factory_a_persisted_state_records_nothing(policy, make_line):
    engine = Engine(policy, journal=True)
    engine.process(orjson.dumps(make_line()), AGB)
    assert engine.providers[AGB].journal is None


def test_the_domain_imports_no_storage_and_no_kafka():
    for path in Path(streams.domain.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(
                    ("streams.store", "streams.kafka", "faust", "aiokafka")
                ), f"{path.name} imports {name}"


# -- SPEC §8: what the index and the years keep for breakdowns and explain ---------------


def _mismatch(make_line: Any, **fields: Any) -> dict[str, Any]:
    return make_line(care_demand_type=1, setting=5, department="kliniek", **fields)


@pytest.mark.parametrize("journal", [True, False])
def test_mismatching_line_ids_are_kept_in_arrival_order_and_a_credit_removes_its_own(
    policy, make_line, journal
):
    engine = Engine(policy, journal=journal)
    engine.journals = Calls
    debits = [_mismatch(make_line, line_id=f"M{n:02}") for n in range(12)]
    for obj in (*debits, make_line(), make_line.credit(debits[1])):
        engine.process(orjson.dumps(obj), AGB)
    ys = engine.providers[AGB].years[2026]
    want = [f"M{n:02}" for n in range(12) if n != 1]
    assert list(ys.mismatch_ids.values()) == want
    assert ys.mismatch_line_ids() == want[:10]
    assert ys.mismatch_line_ids(3) == ["M00", "M02", "M03"]


def test_a_state_rebuilt_from_its_changelog_has_the_same_dims_clients_and_line_ids(
    policy, make_line
):
    engine = Engine(policy, journal=True)
    engine.journals = Calls
    sent = [
        _mismatch(make_line, prestatie_code="CO1"),
        make_line(department="ambulant", digital=True, client_ref="a"),
        make_line(activity="stay", stay_days=3, detox="clinical", client_ref="a"),
        make_line(diagnosis_group="adhd", client_ref="b", service_date="2025-11-01"),
        _mismatch(make_line, prestatie_code="CO1"),  # a triple already interned
    ]
    for obj in (*sent, make_line.credit(sent[0]), make_line.credit(sent[1])):
        engine.process(orjson.dumps(obj), AGB)
    st = engine.providers[AGB]
    assert st.dims == [
        (0, None, None, None),
        (5, "kliniek", "CO1", None),
        (1, "ambulant", None, None),
        (1, None, None, 3),
        (1, None, None, None),
    ]
    copy = ProviderState(AGB)
    replay = Replay(copy)
    assert isinstance(st.journal, Calls)
    for name, *args in st.journal.calls:
        getattr(replay, name)(*args)
    assert copy.dims == st.dims and tables(copy) == tables(st)
    assert {y: ys.to_json() for y, ys in copy.years.items()} == {
        y: ys.to_json() for y, ys in st.years.items()
    }
    assert list(copy.years[2026].mismatch_ids.values()) == [sent[4]["line_id"]]


def test_a_debit_keeps_its_month_flags_amount_and_dims_in_the_index(policy, make_line):
    engine = Engine(policy, journal=True)
    line = make_line(
        service_date="2026-02-28",
        setting=4,
        department="fact",
        prestatie_code="CO7",
        amount_cents=321,
    )
    engine.process(orjson.dumps(line), AGB)
    st = engine.providers[AGB]
    year, month, flags, amount, dims = st.debit_facts(2025, line["line_id"])  # type: ignore[misc]
    assert (year, month, amount, dims) == (2026, 2, 321, (4, "fact", "CO7", None))
    assert st.debit_of(2026, line["line_id"]) == (2026, 1, flags, 321)
    assert st.debit_facts(2026, "never") is None


def test_the_dims_of_a_provider_share_one_copy_of_each_code(policy, make_line):
    # every line brings its own string objects; tens of thousands of dims (one per
    # stay length) must not keep a copy each, also not once rebuilt from a checkpoint
    engine = Engine(policy, journal=True)
    for stay in (1, 2):
        line = make_line(activity="stay", stay_days=stay, department="kliniek-noord")
        line["prestatie_code"] = "".join(["CO", "7"])  # a string object of its own
        engine.process(orjson.dumps(line), AGB)
    st = engine.providers[AGB]
    (_, a, pa, _), (_, b, pb, _) = st.dims[1:]
    assert a == b == "kliniek-noord" and pa == pb == "CO7"
    assert a is b and pa is pb
    rebuilt = ProviderState(AGB)
    rebuilt.restore_dims([list(t) for t in orjson.loads(orjson.dumps(st.dims))])
    assert rebuilt.dims[1][1] is rebuilt.dims[2][1] and rebuilt.dims[1][2] is rebuilt.dims[2][2]


def test_triples_beyond_the_dims_limit_count_as_other(policy, make_line, monkeypatch):
    monkeypatch.setattr(state, "MAX_DIMS", 3)
    engine = Engine(policy, journal=True)
    for dept in ("a", "b", "c", "a"):
        engine.process(orjson.dumps(make_line(department=dept, amount_cents=10)), AGB)
    st = engine.providers[AGB]
    assert st.dims == [(0, None, None, None), (1, "a", None, None), (1, "b", None, None)]
    # "c" came after the table was full: counted under the "other" triple, no department
    assert breakdown(st, 2026, "all", ["department"]) == [
        {"by": "department", "key": "a", "cents": 20, "lines": 2},
        {"by": "department", "key": "b", "cents": 10, "lines": 1},
        {"by": "department", "key": None, "cents": 10, "lines": 1},
    ]
