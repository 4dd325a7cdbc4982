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

import streams.domain
from streams.domain.engine import Engine
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


def test_the_worker_state_is_in_int64_tables_and_the_offline_one_in_dicts(policy, make_line):
    for journal, types in ((True, ("Int64toInt64Map", "Int64Set")), (False, ("dict", "set"))):
        engine = Engine(policy, journal=journal)
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
