"""The state codec (streams/store/codec.py): journal segments, checkpoint chunks and
headers written by name, in packed int64 arrays, and read back exactly.

A checkpoint must restore every table whatever order the tables iterate in and however
the chunks are cut; a journal replayed on top of it (or alone) must rebuild the state
that wrote it, which then goes on the same way (retention included); a header of
another state format is refused.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import random
from array import array
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis.strategies import lists

from streams.domain.alerts import AlertState
from streams.domain.contracts import Contract
from streams.domain.engine import Effects, Engine
from streams.domain.model import IMPLAUSIBLE_TIME, LINE_INDEX_EXPIRED, Counts
from streams.domain.rules import register, unregister
from streams.domain.state import CREDITED, MAX_DIMS, ProviderState, Replay, key_of, pack_entry
from streams.store import codec
from streams.store.codec import Credit, Debit, Interned, Journal, Judged
from streams.store.layout import JournalLog
from tests.conftest import AGB
from tests.domain.histories import PROVIDERS, SETTINGS, Builder, encode, new_engine, op, run
from tests.domain.rules import example_digital_setting5 as example


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


def int64s(text: str) -> list[int]:
    packed = array("q")
    packed.frombytes(base64.b64decode(text))
    return packed.tolist()


def b64(values: list[int]) -> str:
    return base64.b64encode(array("Q", values).tobytes()).decode()


def journaled(policy: Any) -> Engine:
    engine = Engine(policy, journal=True)
    engine.journals = Journal
    return engine


@pytest.fixture
def live(policy: Any, make_line: Any) -> ProviderState:
    """A worker's state over three service years: ADHD consults (clients), other
    lines without a client, credits, a redelivered line."""
    engine = journaled(policy)
    sent = []
    for n in range(60):
        debit = make_line(
            service_date=f"{2024 + n % 3}-0{1 + n % 9}-10",
            diagnosis_group="adhd" if n % 4 == 0 else "depression",
            activity="consult" if n % 4 == 0 else "other",
            department=f"d{n % 3}",
            care_demand_type=1 if n % 7 == 0 else 3,  # zvt-mismatching in setting 5
            setting=5,
            amount_cents=1_000 + n,
        )
        sent.append(debit)
        if n % 5 == 0:
            sent.append(make_line.credit(debit))
    sent.append(sent[3])
    for obj in sent:
        engine.process(orjson.dumps(obj), AGB)
    return engine.providers[AGB]


# -- checkpoint chunks --------------------------------------------------------------------


@pytest.mark.parametrize("max_entries", [1, 7, 10_000])
def test_a_checkpoint_restores_every_table_whatever_the_chunks_and_their_order(live, max_entries):
    lines, clients, events = plain(live)
    # every line has a department, so every debit keeps its client (SPEC §9)
    assert len(lines) == 3 and sum(map(len, clients.values())) == 60
    assert any(v & CREDITED for t in lines.values() for v in t.values())
    chunks = codec.checkpoint(live, max_entries)
    assert len(chunks) == codec.checkpoint_chunks(live, max_entries)
    random.Random(max_entries).shuffle(chunks)
    copy = ProviderState(AGB)
    for chunk in chunks:
        codec.restore_checkpoint(copy, orjson.loads(orjson.dumps(chunk)))
    assert plain(copy) == (lines, clients, events)
    assert copy.lines == live.lines and copy.events == live.events  # C tables compare too
    assert {y: ys.to_json() for y, ys in copy.years.items()} == {
        y: ys.to_json() for y, ys in live.years.items()
    }
    assert copy.dims == live.dims and copy._dim_ids == live._dim_ids
    assert any(ys.mismatch_ids for ys in copy.years.values())
    # the department months (SPEC §9) and the clients behind their counts
    assert copy.departments == live.departments == ["d0", "d1", "d2"]
    assert copy.dims_live == live.dims_live and sum(live.dims_live) == 60 - 12  # 12 credited
    assert any(ys.dept_cells for ys in copy.years.values())
    for y, ys in copy.years.items():
        assert type(ys.dept_live).__name__ == "Int64toInt64Map"
        assert dict(ys.dept_live.items()) == dict(live.years[y].dept_live.items())


def test_a_checkpoint_chunk_names_its_fields_and_packs_uint64_arrays(live):
    lines, clients, events = plain(live)
    (chunk,) = codec.checkpoint(live, 10_000)
    assert sorted(chunk) == ["clients", "dims", "dims_live", "distinct", "events", "lines", "years"]
    assert chunk["dims"] == [
        [0, None, None, None],
        [5, "d0", None, None],
        [5, "d1", None, None],
        [5, "d2", None, None],
    ]
    for kind, tables in (("lines", lines), ("clients", clients)):
        for y, part in chunk[kind].items():
            assert sorted(part) == ["keys", "values"]
            got = dict(zip(uint64s(part["keys"]), uint64s(part["values"]), strict=True))
            assert got == tables[int(y)]
    for y, part in chunk["events"].items():
        assert sorted(part) == ["keys"]
        assert sorted(uint64s(part["keys"])) == sorted(events[int(y)])
    # the distinct-client maps travel as packed arrays, the years as counters only
    maps = {
        f"{y}:{name}": dict(live_lines.items())
        for y, ys in live.years.items()
        for name, live_lines in ys.client_maps()
        if live_lines
    }
    assert sorted(maps) == sorted(chunk["distinct"]) and any(k.endswith(":adhd1") for k in maps)
    for label, part in chunk["distinct"].items():
        assert sorted(part) == ["keys", "values"]
        assert dict(zip(uint64s(part["keys"]), uint64s(part["values"]), strict=True)) == maps[label]
    for record in chunk["years"].values():
        assert "adhd" not in record and "clients_consult" not in record
        assert record["adhd_quarters"]


def test_a_chunk_with_the_largest_keys_and_every_flag_bit_restores_exactly():
    top = (1 << 60) - 1  # key_of is below 2**60
    entry = pack_entry(12, 0xFFFF, 123, MAX_DIMS - 1) | CREDITED  # the highest of each field
    assert entry >> 62 == 1  # an int64 still
    chunk = {
        "lines": {"2025": {"keys": b64([top, 0, key_of("l1")]), "values": b64([entry, 1, 2])}},
        "clients": {"2025": {"keys": b64([top]), "values": b64([key_of("c1")])}},
        "events": {"2025": {"keys": b64([top, 7])}},
    }
    st = ProviderState(AGB)
    codec.restore_checkpoint(st, chunk)
    assert plain(st) == (
        {2025: {top: entry, 0: 1, key_of("l1"): 2}},
        {2025: {top: key_of("c1")}},
        {2025: {top, 7}},
    )
    again = ProviderState(AGB)
    codec.restore_checkpoint(again, codec.checkpoint(st, 10_000)[0])
    assert plain(again) == plain(st)


def _many_clients(policy: Any, make_line: Any, clients: int) -> ProviderState:
    """A worker's state with ``clients`` distinct clients in every client map:
    consults (a third digital), ADHD over the quarters, clinical and ambulant detox;
    every fifth line credited."""
    engine = journaled(policy)
    lines = []
    for n in range(clients):
        fields: dict[str, Any] = {"client_ref": f"client-{n}", "amount_cents": 100 + n}
        if n % 2:
            fields.update(activity="consult", digital=n % 3 == 0, diagnosis_group="adhd")
            fields["service_date"] = f"2026-{1 + n % 12:02d}-10"
        else:
            fields.update(activity="stay", stay_days=1, detox="clinical" if n % 4 else "ambulant")
        debit = make_line(**fields)
        lines.append(debit)
        if n % 5 == 0:
            lines.append(make_line.credit(debit))
    for start in range(0, len(lines), 500):
        batch = {"schema": "ggz.declaration-batch/1", "provider_agb": AGB}
        engine.process(orjson.dumps({**batch, "lines": lines[start : start + 500]}), AGB)
    return engine.providers[AGB]


def test_a_provider_with_many_clients_checkpoints_in_chunks_and_restores_exactly(policy, make_line):
    st = _many_clients(policy, make_line, 4_000)
    (ys,) = st.years.values()
    assert [name for name, live in ys.client_maps() if live] == [
        "adhd1", "adhd2", "adhd3", "adhd4",
        "clients_detox", "clients_clinical", "clients_consult", "clients_digital",
    ]  # fmt: skip
    assert ys.consult_clients == 1_600 and ys.detox_clients_all == 1_600  # credits took 400
    distinct = sum(len(live) for _, live in ys.client_maps())
    max_entries = 1_000
    chunks = codec.checkpoint(st, max_entries)
    # the client maps alone fill several chunks: they are counted like index entries
    assert distinct > 3 * max_entries
    assert len(chunks) == codec.checkpoint_chunks(st, max_entries) > 3 + distinct // max_entries
    assert sum(len(uint64s(p["keys"])) for c in chunks for p in c["distinct"].values()) == distinct
    first = len(orjson.dumps(chunks[0]["years"]))
    assert first < 2_000, "the years' counters do not grow with the clients"
    random.Random(7).shuffle(chunks)
    copy = ProviderState(AGB)
    for chunk in chunks:
        codec.restore_checkpoint(copy, orjson.loads(orjson.dumps(chunk)))
    assert copy.years == st.years  # every counter and client map, exactly
    assert plain(copy) == plain(st)


def test_the_years_of_a_checkpoint_do_not_grow_with_the_clients(policy, make_line):
    few = codec.years_json(_many_clients(policy, make_line, 40))
    many = codec.years_json(_many_clients(policy, make_line, 2_000))
    assert len(orjson.dumps(many)) - len(orjson.dumps(few)) < 200  # a few wider counters


def test_a_chunk_whose_keys_and_values_differ_in_number_is_refused():
    chunk = {
        "lines": {"2025": {"keys": b64([1, 2]), "values": b64([1])}},
        "clients": {},
        "events": {},
    }
    with pytest.raises(ValueError, match="keys and values"):
        codec.restore_checkpoint(ProviderState(AGB), chunk)


def test_a_state_keyed_by_identifiers_is_never_checkpointed(policy, make_line):
    engine = Engine(policy)
    engine.new_state = lambda provider: ProviderState(provider, hashed=False)
    engine.process(orjson.dumps(make_line()), AGB)
    with pytest.raises(ValueError, match="never persisted"):
        codec.checkpoint(engine.providers[AGB], 10)


# -- journal segments ---------------------------------------------------------------------


def test_a_segment_names_its_kinds_and_columns():
    journal = Journal()
    journal.interned(1, (5, "kliniek", "CO0045", None))
    journal.debit(11, 21, 2025, pack_entry(4, 1, 500, 1), None, None)
    journal.debit(12, 22, 2024, pack_entry(7, 2, 700), 99, None)
    journal.debit(13, 25, 2025, pack_entry(8, 128, 900, 1), 98, "L-13")
    journal.credit(11, 23, 2024, 2025)
    journal.judged(24, 2025)
    segment = orjson.loads(orjson.dumps(journal.pack()))
    assert segment["interned"] == {"ids": b64([1]), "dims": [[5, "kliniek", "CO0045", None]]}
    assert segment["debits"].keys() == {
        "lines",
        "events",
        "years",
        "entries",
        "clients",
        "mismatch_at",
        "line_ids",
    }
    assert uint64s(segment["debits"]["years"]) == [2025, 2024, 2025]
    assert int64s(segment["debits"]["clients"]) == [-1, 99, 98]
    assert uint64s(segment["debits"]["mismatch_at"]) == [2]
    assert segment["debits"]["line_ids"] == ["L-13"]
    assert segment["credits"].keys() == {"lines", "events", "years", "debit_years"}
    assert uint64s(segment["credits"]["years"]) == [2024]
    assert uint64s(segment["credits"]["debit_years"]) == [2025]
    assert segment["judged"].keys() == {"events", "years"}
    assert codec.records(segment) == [
        Interned(1, (5, "kliniek", "CO0045", None)),
        Debit(11, 21, 2025, 4, None, 1, 500, 1, None),
        Debit(12, 22, 2024, 7, 99, 2, 700, 0, None),
        Debit(13, 25, 2025, 8, 98, 128, 900, 1, "L-13"),
        Credit(11, 23, 2024, 2025),
        Judged(24, 2025),
    ]
    assert len(journal) == 5
    assert Journal().pack() == {}  # a message that changed nothing writes no columns


def test_debits_of_one_year_name_it_once_and_without_clients_carry_no_client_column():
    journal = Journal()
    journal.debit(11, 21, 2025, pack_entry(4, 1, 500), None, None)
    journal.debit(12, 22, 2025, pack_entry(7, 2, 700), None, None)
    segment = orjson.loads(orjson.dumps(journal.pack()))
    assert segment["debits"].keys() == {"lines", "events", "year", "entries"}
    assert segment["debits"]["year"] == 2025
    assert codec.records(segment) == [
        Debit(11, 21, 2025, 4, None, 1, 500, 0, None),
        Debit(12, 22, 2025, 7, None, 2, 700, 0, None),
    ]
    journal.debit(13, 23, 2025, pack_entry(8, 1, 900), 0, None)  # key 0 is a client
    segment = orjson.loads(orjson.dumps(journal.pack()))
    assert int64s(segment["debits"]["clients"]) == [-1, -1, 0]
    assert codec.records(segment)[2] == Debit(13, 23, 2025, 8, 0, 1, 900, 0, None)


def test_a_segment_whose_columns_differ_in_length_is_refused():
    segment = {"debits": {"lines": b64([1, 2]), "events": b64([1]), "entries": b64([1, 2])}}
    with pytest.raises(ValueError, match="differ in length"):
        codec.replay(segment, Journal())


# -- headers, ledgers, contracts -----------------------------------------------------------


def malloc_usable_size(obj: object) -> int:
    """The size of the heap block an object (of more than 512 bytes: malloc, not
    pymalloc) sits in (glibc)."""
    usable = ctypes.CDLL(ctypes.util.find_library("c")).malloc_usable_size
    usable.restype, usable.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    return int(usable(id(obj)))


def test_orjson_output_is_over_allocated_and_dumps_is_not():
    """The defect ``codec.dumps`` works around (orjson 3.13): ``orjson.dumps`` returns
    bytes in a block many times their size, which a held value keeps. When the first
    assertion fails, orjson returns them exact and ``codec.dumps`` can go."""
    value = {"lines": base64.b64encode(random.Random(1).randbytes(20_000)).decode()}
    raw, held = orjson.dumps(value), codec.dumps(value)
    assert held == raw
    assert malloc_usable_size(raw) > 2 * len(raw)
    assert malloc_usable_size(held) < len(held) + 128


def test_a_header_names_its_fields_and_restores_counts_alerts_and_offsets(live):
    live.applied["d3"] = 41
    live.alerts.states[f"ceiling_utilisation:{AGB}:2024:70"] = AlertState(True, 3, "warning", 0.75)
    live.alerts.states[f"adhd_growth:{AGB}:2025"] = AlertState(False, 2, "info", None)
    log = JournalLog(end=5, base=2, generation=1, chunks=3, records=9)
    raw = orjson.loads(orjson.dumps(codec.header(live, log.fields(), 3)))
    assert raw["format"] == codec.STATE_FORMAT and raw["partition"] == 3
    assert raw["log"] == {"end": 5, "base": 2, "generation": 1, "chunks": 3, "records": 9}
    assert JournalLog(**codec.log_of(raw)) == log
    for state in raw["alerts"].values():
        assert state.keys() == {"firing", "sequence", "severity", "value"}
    copy = ProviderState(AGB)
    codec.restore_header(copy, raw)
    assert copy.counts == live.counts and copy.applied == {"d3": 41}
    assert copy.watermark == live.watermark
    assert copy.alerts.states == live.alerts.states


def test_a_header_of_another_format_is_refused_with_a_clear_message():
    for fmt in (None, 5, codec.STATE_FORMAT + 1):
        with pytest.raises(RuntimeError, match="earlier claimwatch version"):
            codec.check_format({"format": fmt}, AGB)
    codec.check_format({"format": codec.STATE_FORMAT}, AGB)


def test_ledgers_and_contracts_are_written_by_name_and_read_back():
    counts = Counts(accepted=0)
    counts.reject("schema")
    raw = codec.encode_ledger(counts, 17)
    assert orjson.loads(raw).keys() == {"counts", "offset"}
    assert codec.decode_ledger(raw) == (counts, 17)
    contract = Contract(AGB, 2026, 1_000_000, "Team", "Praktijk", "Noord", 3, 1.5)
    raw = codec.encode_contract(contract)
    assert orjson.loads(raw)["ceiling_cents"] == 1_000_000
    assert codec.decode_contract(raw) == contract
    assert codec.decode_contract(orjson.loads(raw)) == contract  # as Faust restores it
    targeted = Contract(AGB, 2026, 1_000_000, "Team", "Praktijk", "Noord", 4, 1.5, 0.3)
    assert codec.decode_contract(codec.encode_contract(targeted)) == targeted
    older = orjson.loads(raw)  # written before contracts had a digital_target
    del older["digital_target"]
    assert codec.decode_contract(older) == contract


# -- a rebuilt state decides the same (retention included) --------------------------------


def send(engine: Engine, *objs: Any) -> Effects:
    fx = Effects()
    for obj in objs:
        engine.process(orjson.dumps(obj), None, fx)
    return fx


def reasons(fx: Effects) -> list[str]:
    return [d.reason for d in fx.dead_letters]


def line(make_line: Any, year: int, at: str, **fields: Any) -> dict[str, Any]:
    return make_line(service_date=f"{year}-01-01", submitted_at=at, **fields)


def credit(make_line: Any, debit: dict[str, Any], at: str) -> dict[str, Any]:
    return make_line.credit(debit, submitted_at=at)


def _header(st: ProviderState) -> Any:
    return orjson.loads(orjson.dumps(codec.header(st, JournalLog().fields(), 0)))


def rebuilt(engine: Engine) -> Engine:
    """Provider states from their journal and header only, through JSON."""
    again = journaled(engine.policy)
    for agb, st in engine.providers.items():
        fresh = again.new_state(agb)
        assert isinstance(st.journal, Journal)
        codec.replay(orjson.loads(orjson.dumps(st.journal.pack())), Replay(fresh))
        codec.restore_header(fresh, _header(st))
        fresh.journal = Journal()
        again.providers[agb] = fresh
    return again


def from_checkpoint(engine: Engine, chunk: int) -> Engine:
    """Provider states from a checkpoint (in chunks) and header only, through JSON."""
    again = journaled(engine.policy)
    for agb, st in engine.providers.items():
        fresh = again.new_state(agb)
        for part in codec.checkpoint(st, chunk):
            codec.restore_checkpoint(fresh, orjson.loads(orjson.dumps(part)))
        codec.restore_header(fresh, _header(st))
        fresh.journal = Journal()
        again.providers[agb] = fresh
    return again


def history(make_line: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Lines of 2021-2026 submitted 2024-2026, credits, an ADHD client; then what
    comes after: redeliveries and credits of years dropped meanwhile, and new lines."""
    adhd = {"diagnosis_group": "adhd", "client_ref": "client-x"}
    d21 = line(make_line, 2021, "2024-03-01T00:00:00Z", amount_cents=100, **adhd)
    d22 = line(make_line, 2022, "2024-04-01T00:00:00Z", amount_cents=200, **adhd)
    d23 = line(make_line, 2023, "2024-05-01T00:00:00Z", amount_cents=300)
    d24 = line(make_line, 2024, "2024-12-31T23:00:00Z", amount_cents=400)
    first = [
        d21,
        d22,
        d23,
        credit(make_line, d21, "2024-06-01T00:00:00Z"),
        d24,
        line(make_line, 2025, "2025-01-01T00:00:00Z"),  # drops 2021
        credit(make_line, d22, "2025-02-01T00:00:00Z"),
        line(make_line, 2026, "2026-01-01T00:00:00Z"),  # drops 2022
        d23,  # redelivery, 2023 still open
    ]
    d26 = line(make_line, 2026, "2026-03-01T00:00:00Z", amount_cents=600)
    later = [
        d21,
        d22,
        credit(make_line, d22, "2025-12-01T00:00:00Z"),
        credit(make_line, d22, "2026-03-01T00:00:00Z"),  # implausible: after 2025
        credit(make_line, d23, "2026-03-02T00:00:00Z"),
        d26,
        d26,
        line(make_line, 2024, "2027-01-01T00:00:00Z"),  # drops 2023
        credit(make_line, d23, "2026-12-31T00:00:00Z"),
        credit(make_line, d24, "2027-01-03T00:00:00Z"),
    ]
    return first, later


@pytest.mark.parametrize("how", ["journal", "checkpoint", "checkpoint in chunks of 2"])
def test_a_rebuilt_state_equals_the_live_one_and_goes_on_the_same_way(policy, make_line, how):
    first, later = history(make_line)
    live = journaled(policy)
    send(live, *first)
    if how == "journal":
        copy = rebuilt(live)
    else:
        copy = from_checkpoint(live, 2 if "chunks" in how else 1_000)
    assert copy.snapshot() == live.snapshot()
    for agb, st in live.providers.items():
        assert copy.providers[agb].lines == st.lines
        assert copy.providers[agb].events == st.events
        assert copy.providers[agb].open_from == st.open_from == 2023
    fx_live, fx_copy = send(live, *later), send(copy, *later)
    assert reasons(fx_copy) == reasons(fx_live)
    assert reasons(fx_live).count(LINE_INDEX_EXPIRED) == 4
    assert reasons(fx_live).count(IMPLAUSIBLE_TIME) == 1
    assert copy.snapshot() == live.snapshot()


def test_an_offline_run_of_everything_equals_live_and_rebuilt_states(policy, make_line):
    first, later = history(make_line)
    offline = Engine(policy)
    send(offline, *first, *later)
    live = journaled(policy)
    send(live, *first)
    copy = rebuilt(live)
    send(copy, *later)
    assert copy.snapshot() == offline.snapshot()
    snap = offline.snapshot()
    assert snap["counts"]["rejected"] == {LINE_INDEX_EXPIRED: 4, IMPLAUSIBLE_TIME: 1}
    # 2021 and 2022 keep what their lines and credits added before they closed
    assert snap["providers"][AGB]["2021"]["net_cents"] == 0
    assert snap["providers"][AGB]["2022"]["net_cents"] == 0
    assert snap["providers"][AGB]["2023"]["net_cents"] == 0


def test_a_credit_of_another_service_year_is_journaled_with_its_debits_year(policy, make_line):
    debit = line(make_line, 2025, "2025-06-01T00:00:00Z", amount_cents=800)
    odd = {**credit(make_line, debit, "2025-07-01T00:00:00Z"), "service_date": "2024-01-01"}
    offline, live = Engine(policy), journaled(policy)
    for e in (offline, live):
        assert send(e, debit, odd).dead_letters == []
    st = live.providers[AGB]
    assert isinstance(st.journal, Journal)
    last = st.journal.records()[-1]
    assert isinstance(last, Credit) and (last.year, last.debit_year) == (2024, 2025)
    assert rebuilt(live).snapshot() == offline.snapshot()


def test_a_header_whose_tallies_moved_to_other_bits_is_refused():
    """The line index stores rule tallies as flag bits: state written while a
    tally-declaring rule was registered cannot be read once that rule is gone (its
    bit may count another tally then), but may once a rule is added."""
    register(example.RULE)
    try:
        raw = codec.header(ProviderState(AGB), JournalLog().fields(), 0)
        assert {"digital_setting5", "consults_setting5"} <= set(raw["tallies"])
        codec.check_format(raw, AGB)
    finally:
        unregister(example.RULE.name)
    with pytest.raises(RuntimeError, match="rule tallies consults_setting5, digital_setting5"):
        codec.check_format(raw, AGB)
    older = codec.header(ProviderState(AGB), JournalLog().fields(), 0)
    assert not {"digital_setting5", "consults_setting5"} & set(older["tallies"])
    register(example.RULE)
    try:
        codec.check_format(older, AGB)  # a rule added since: its tallies start at 0
    finally:
        unregister(example.RULE.name)


# -- journal properties over generated histories (tests/domain/histories.py) ------------


def rebuilt_from_journals(engine: Engine, segments: dict[str, list[Any]] | None = None) -> Engine:
    """A fresh engine whose provider states come only from journals and headers, passed
    through JSON as a store would: the whole journal as one segment, or ``segments``
    (see ``run``)."""
    again = new_engine(journal=True)
    for agb, st_ in engine.providers.items():
        assert st_.journal is not None
        header = orjson.loads(orjson.dumps(codec.header(st_, JournalLog().fields(), 0)))
        fresh = ProviderState(agb)
        if segments is not None:
            for segment in segments.get(agb, []):
                codec.replay(segment, Replay(fresh))
        else:
            codec.replay(orjson.loads(orjson.dumps(st_.journal.pack())), Replay(fresh))
        codec.restore_header(fresh, header)
        fresh.journal = Journal()
        again.providers[agb] = fresh
    return again


@pytest.mark.parametrize("per_message", [False, True], ids=["one segment", "segment a message"])
@SETTINGS
@given(first=lists(op, max_size=30), second=lists(op, max_size=15))
def test_the_journal_rebuilds_a_state_with_the_same_snapshot_and_future(per_message, first, second):
    b = Builder()
    events = b.build(first)
    engine = new_engine(journal=True)
    segments: dict[str, list[Any]] | None = {} if per_message else None
    run(engine, encode(events), segments=segments)
    copy_ = rebuilt_from_journals(engine, segments)
    assert copy_.snapshot() == engine.snapshot()
    for agb, st_ in engine.providers.items():
        assert copy_.providers[agb].years.keys() == st_.years.keys()
        for year, ys in st_.years.items():
            assert copy_.providers[agb].years[year].to_json() == ys.to_json()
        assert copy_.providers[agb].lines == st_.lines
        assert copy_.providers[agb].clients == st_.clients
        assert copy_.providers[agb].events == st_.events
        assert copy_.providers[agb].alerts.to_json() == st_.alerts.to_json()
    # and both go on the same way: same alerts, same snapshot
    more = encode(b.build(second) + events[:3])
    assert run(copy_, more) == run(engine, more)
    assert copy_.snapshot() == engine.snapshot()


def test_the_journal_records_changes_and_events_judged_but_never_redeliveries(make_line):
    engine = new_engine(journal=True)
    debit = {**make_line(), "provider_agb": PROVIDERS[0]}
    credit = make_line.credit(debit)
    for obj in (
        debit,
        debit,
        credit,
        credit,
        {**make_line.credit(make_line()), "provider_agb": PROVIDERS[0]},
    ):
        engine.process(orjson.dumps(obj))
    assert engine.providers[PROVIDERS[0]].journal is not None
    segment = engine.providers[PROVIDERS[0]].journal.pack()
    journal = codec.records(segment)
    # debit, credit, and the orphan credit's event id (so a redelivery of it stays a
    # duplicate after a restart); the redelivered debit and credit leave no record
    assert [type(r).__name__ for r in journal] == ["Interned", "Debit", "Credit", "Judged"]
    year = int(debit["service_date"][:4])
    assert journal[2] == Credit(key_of(debit["line_id"]), key_of(credit["event_id"]), year, year)
    # the rebuilt state judges all five events again exactly as the first one did
    copy_ = new_engine(journal=True)
    copy_.providers[PROVIDERS[0]] = st = type(engine.providers[PROVIDERS[0]])(PROVIDERS[0])
    codec.replay(segment, Replay(st))
    assert st.events == engine.providers[PROVIDERS[0]].events
    assert st.lines == engine.providers[PROVIDERS[0]].lines
