"""Properties of the engine over generated declaration streams (hypothesis).

A debit and its credit cancel out, redelivery of any events changes nothing, and the
interleaving of providers' streams does not change any provider's results. The
histories are drawn by tests/domain/histories.py; the journal's properties are in
tests/store/test_codec.py.
"""

from __future__ import annotations

from fractions import Fraction

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.contracts import parse_contract
from streams.domain.engine import Effects, Engine
from streams.domain.model import parse_time
from streams.domain.policy import load_policy
from tests.conftest import AGB, make_contract
from tests.domain.histories import (
    PROVIDERS,
    SETTINGS,
    Builder,
    encode,
    line_spec,
    new_engine,
    normalised,
    op,
    run,
)

# -- a debit and its credit ----------------------------------------------------------------


@SETTINGS
@given(ops=st.lists(op, max_size=30), extra=line_spec, gap=st.lists(op, max_size=5))
def test_a_debit_followed_by_its_credit_leaves_every_indicator_as_it_was(ops, extra, gap):
    b = Builder()
    history = b.build(ops)
    engine = new_engine()
    run(engine, encode(history), tick=False)
    before = normalised(engine.snapshot())
    debit = b.debit(extra)
    # other providers' or unrelated lines may come between; only this pair is compared
    between = [e for e in b.build(gap) if e["provider_agb"] != extra["provider"]]
    probe = new_engine()
    run(probe, encode(history + between), tick=False)
    expected = normalised(probe.snapshot())
    run(engine, encode([debit, *between, b.credit(debit)]), tick=False)
    assert normalised(engine.snapshot()) == expected
    if not between:
        assert normalised(engine.snapshot()) == before


# -- redelivery -----------------------------------------------------------------------------


@SETTINGS
@given(ops=st.lists(op, min_size=1, max_size=40), data=st.data())
def test_redelivering_any_subset_of_events_later_changes_no_indicator_and_no_alert(ops, data):
    messages = encode(Builder().build(ops))
    if not messages:
        return
    n = len(messages)
    picks = data.draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n)), max_size=n), label="redeliver"
    )
    order: list[tuple[float, int, bytes]] = [(float(i), 0, m) for i, m in enumerate(messages)]
    for r, (i, pos) in enumerate(picks):
        where = max(pos, i + 1) - 0.5  # after the original, before message `where + 0.5`
        order.append((where, r + 1, messages[i]))
    redelivered = [m for _, _, m in sorted(order)]

    once, twice = new_engine(), new_engine()
    alerts_once = run(once, messages)
    alerts_twice = run(twice, redelivered)
    assert alerts_twice == alerts_once
    assert twice.snapshot()["providers"] == once.snapshot()["providers"]
    assert twice.snapshot()["peers"] == once.snapshot()["peers"]
    assert twice.counts().accepted == once.counts().accepted
    # processing the whole stream again publishes nothing at all
    assert run(twice, redelivered) == []


def test_reprocessing_a_credit_that_came_before_its_debit_changes_nothing():
    b = Builder()
    debit = b.debit(
        {
            "provider": PROVIDERS[0],
            "date": "2026-02-10",
            "activity": "other",
            "mode": "group",
            "practitioners": 1,
            "digital": False,
            "detox": "absent",
            "zvt": 3,
            "setting": 1,
            "diagnosis": "depression",
            "client": "k1",
            "amount": 500,
        }
    )
    messages = encode([b.credit(debit), debit])
    engine = new_engine()
    run(engine, messages)
    first = engine.snapshot()["providers"]
    assert first[PROVIDERS[0]]["2026"]["net_cents"] == 500
    run(engine, messages)  # a restart reprocesses both messages
    assert engine.snapshot()["providers"] == first


# -- interleaving of providers ------------------------------------------------------------


@SETTINGS
@given(ops=st.lists(op, max_size=40), data=st.data())
def test_interleaving_of_providers_streams_does_not_change_per_provider_results(ops, data):
    events = Builder().build(ops)
    per_provider = {agb: [e for e in events if e["provider_agb"] == agb] for agb in PROVIDERS}
    # a random merge that keeps each provider's own order
    queues = {agb: list(lines) for agb, lines in per_provider.items()}
    merged = []
    while any(queues.values()):
        agb = data.draw(st.sampled_from([a for a, q in queues.items() if q]))
        merged.append(queues[agb].pop(0))

    original, shuffled = new_engine(), new_engine()
    alerts_a = run(original, encode(events))
    alerts_b = run(shuffled, encode(merged))
    assert shuffled.snapshot() == original.snapshot()
    for agb in PROVIDERS:
        mine = [a for a in alerts_a if a[0].split(":")[1] == agb]
        assert [a for a in alerts_b if a[0].split(":")[1] == agb] == mine


# -- when the structural rules are evaluated (SPEC §8.1) -----------------------------------


def _stays(make_line, n: int, day: str, **fields: object) -> list[bytes]:
    return [
        orjson.dumps(
            make_line(activity="stay", stay_days=1, detox="clinical", submitted_at=day, **fields)
        )
        for _ in range(n)
    ]


def test_each_provider_year_is_judged_at_the_boundary_with_its_covered_month(make_line):
    """The rules see the line's time and the covered month of each year at it; a
    line in the same month as the watermark evaluates nothing."""
    seen: list[tuple[str, int, float, int]] = []

    def capture(ys, tick, params):
        seen.append((params, tick.year, tick.at, tick.covered_month))
        return []

    eng = Engine(load_policy())
    eng._structural = [(capture, "all")]  # the rules, replaced by a witness
    fx = Effects()
    first = make_line(service_date="2025-11-03", submitted_at="2025-12-01T10:00:00Z")
    eng.process(orjson.dumps(first), None, fx)
    for raw in _stays(make_line, 2, "2026-03-20T10:00:00Z", service_date="2026-03-02"):
        eng.process(raw, None, fx)  # the first: a boundary (December → March)
    assert seen == [("all", 2025, parse_time("2026-03-20T10:00:00Z"), 12)]
    later = make_line(service_date="2026-03-03", submitted_at="2026-05-10T00:00:00Z")
    eng.process(orjson.dumps(later), None, fx)
    at = parse_time("2026-05-10T00:00:00Z")
    assert seen[1:] == [("all", 2025, at, 12), ("all", 2026, at, 3)]  # SPEC: M = 3


def test_the_wall_clock_tick_evaluates_only_the_rules_on_peers(make_line):
    policy = load_policy()
    eng = Engine(policy)
    lines = _stays(make_line, 20, "2026-03-20T10:00:00Z")  # clinical detox: 20 of 20
    for raw in lines:
        eng.process(raw, None)
    assert eng.tick(peers={2026: Fraction(1)}, only_peers=True).alerts == []
    consults = [make_line(submitted_at="2026-03-21T10:00:00Z") for _ in range(200)]
    for obj in consults:
        eng.process(orjson.dumps(obj), None)
    fired = eng.tick(peers={2026: Fraction(1)}, only_peers=True).alerts
    assert [a["rule"] for a in fired] == ["group_share_low"]  # share 0 < 0.5 x 1
    at_end = eng.tick(peers={2026: Fraction(1)}).alerts  # the end of input: all of them
    assert [a["rule"] for a in at_end] == ["clinical_detox_high", "digital_share_low"]


def test_a_rebuilt_state_finds_its_month_from_the_watermark(make_line):
    """``next_month_start`` is not stored: a state rebuilt (0) judges again only when
    a line is in a later month than its watermark."""
    eng = Engine(load_policy())
    for raw in _stays(make_line, 20, "2026-03-20T10:00:00Z"):
        eng.process(raw, None)
    st = eng.providers[AGB]
    st.next_month_start = 0.0  # as in a state just rebuilt from the table
    same = make_line(submitted_at="2026-03-31T23:59:59Z", activity="other")
    assert eng.process(orjson.dumps(same), None).alerts == []
    assert st.next_month_start == parse_time("2026-04-01T00:00:00Z")
    april = make_line(submitted_at="2026-04-01T00:00:00Z", activity="other")
    (fired,) = eng.process(orjson.dumps(april), None).alerts
    assert (fired["rule"], fired["event_time"]) == ("clinical_detox_high", "2026-04-01T00:00:00Z")


def test_offline_month_boundaries_compute_the_peer_means_once_a_month(monkeypatch):
    """Lines of many providers interleave with event times back and forth over a few
    months: the peer means of a month are computed the first time a boundary in it
    needs them, not each time the event time's month changes."""
    from streams.domain.policy import load_policy
    from tests.conftest import LineFactory

    eng = Engine(load_policy())
    calls: list[int] = []
    real = eng.peer_means
    monkeypatch.setattr(eng, "peer_means", lambda *a: calls.append(1) or real(*a))
    make = LineFactory()

    def line(agb: str, month: str) -> None:
        at = f"2026-{month}-20T10:00:00Z"
        eng.process(
            orjson.dumps(make(provider_agb=agb, service_date="2026-01-05", submitted_at=at))
        )

    for agb in ("11111111", "22222222", "33333333"):  # a line each in January
        line(agb, "01")
    # boundaries into February, March, February, March, March
    for agb, month in (("1", "02"), ("2", "03"), ("3", "02"), ("1", "03"), ("3", "03")):
        line(agb * 8, month)
    assert len(calls) == 2  # February's and March's


def _judged_years(make_line):
    """An engine whose structural rules are a witness of the provider-years judged,
    and a function sending one line submitted at ``at`` for ``service_date``."""
    seen: list[tuple[str, int, int]] = []

    def witness(ys, tick, params):
        seen.append((params, tick.year, tick.covered_month))
        return []

    eng = Engine(load_policy())
    eng._structural = [(witness, "all")]  # the rules, replaced by a witness
    eng._peer_rules = [(witness, "peers")]

    def send(at: str, service_date: str, **fields: object) -> None:
        line = make_line(service_date=service_date, submitted_at=at, **fields)
        eng.process(orjson.dumps(line), None)

    return eng, seen, send


def test_a_settled_year_is_judged_again_only_once_a_line_changes_it(make_line):
    """An earlier year judged on the same state, covered month and contract finds
    what it found: it is passed over at later boundaries until a line (a debit, or a
    credit of its debit) changes it."""
    eng, seen, send = _judged_years(make_line)
    send("2025-12-01T10:00:00Z", "2025-11-03")
    send("2026-03-20T10:00:00Z", "2026-03-02")  # 2025 still judges the departments
    send("2026-05-10T10:00:00Z", "2026-03-03")  # 2026 does: 2025 is judged, then settled
    assert [year for _, year, _ in seen] == [2025, 2025, 2026]
    send("2026-06-10T10:00:00Z", "2026-04-01")
    assert seen[3:] == [("all", 2026, 4)]  # 2025 passed over
    send("2026-06-15T10:00:00Z", "2025-12-01", line_id="late")  # late, same month
    send("2026-07-10T10:00:00Z", "2026-05-01")
    assert seen[4:] == [("all", 2025, 12), ("all", 2026, 5)]
    credit = make_line(
        service_date="2025-12-01", submitted_at="2026-07-11T10:00:00Z", line_id="late"
    )
    eng.process(orjson.dumps({**credit, "kind": "credit", "event_id": "credit-late"}), None)
    send("2026-08-10T10:00:00Z", "2026-06-01")
    assert seen[6:] == [("all", 2025, 12), ("all", 2026, 6)]
    send("2026-09-10T10:00:00Z", "2026-07-01")
    assert seen[8:] == [("all", 2026, 7)]


def test_a_settled_year_is_judged_again_when_its_contract_peers_or_previous_year_change(
    make_line,
):
    eng, seen, send = _judged_years(make_line)
    send("2025-01-20T10:00:00Z", "2024-12-02")
    send("2025-12-01T10:00:00Z", "2025-11-03")
    send("2026-05-10T10:00:00Z", "2026-03-03")
    send("2026-06-10T10:00:00Z", "2026-04-01")
    assert seen[-1:] == [("all", 2026, 4)]  # 2024 and 2025 settled
    eng.apply_contract(parse_contract(make_contract(year=2025, updated_at="2026-06-11T00:00:00Z")))
    send("2026-07-10T10:00:00Z", "2026-05-01")
    assert [year for _, year, _ in seen[-2:]] == [2025, 2026]
    send("2026-07-12T10:00:00Z", "2024-12-03", line_id="late-2024")  # 2025's previous year
    send("2026-08-10T10:00:00Z", "2026-06-01")
    assert [year for _, year, _ in seen[-3:]] == [2024, 2025, 2026]
    eng.peers = lambda: {2025: Fraction(1, 3)}  # a streaming worker's cluster-wide means
    send("2026-09-10T10:00:00Z", "2026-07-01")
    assert [year for _, year, _ in seen[-2:]] == [2025, 2026]
    send("2026-10-10T10:00:00Z", "2026-08-01")
    assert [year for _, year, _ in seen[-1:]] == [2026]
    eng.peers = lambda: {2025: Fraction(1, 4)}
    send("2026-11-10T10:00:00Z", "2026-09-01")
    assert [year for _, year, _ in seen[-2:]] == [2025, 2026]


def test_a_year_settled_by_the_peer_rules_alone_is_judged_by_all_rules_at_a_boundary(
    make_line,
):
    eng, seen, send = _judged_years(make_line)
    send("2025-12-01T10:00:00Z", "2025-11-03")
    send("2026-05-10T10:00:00Z", "2026-03-03")
    eng.tick(peers={}, only_peers=True)  # the wall clock: the peer rules of 2025 and 2026
    assert [(rules, year) for rules, year, _ in seen[-2:]] == [("peers", 2025), ("peers", 2026)]
    send("2026-06-10T10:00:00Z", "2026-04-01")
    assert [(rules, year) for rules, year, _ in seen[-2:]] == [("all", 2025), ("all", 2026)]


def test_a_late_line_that_tips_a_settled_year_fires_at_the_next_boundary(make_line):
    """With the real rules: 2025's clinical detox share is 10 of 21 clients (under
    0.5) when 2025 is settled; a late clinical line (11 of 22) fires the alert at the
    next month boundary, not only at the end of the input."""
    eng = Engine(load_policy())

    def send(at: str, service_date: str, **fields: object) -> list[str]:
        line = make_line(service_date=service_date, submitted_at=at, **fields)
        return [a["alert_id"] for a in eng.process(orjson.dumps(line), None).alerts]

    for n in range(21):
        detox = "clinical" if n < 10 else "ambulant"
        send("2025-12-01T10:00:00Z", "2025-11-03", detox=detox, client_ref=f"d{n}")
    send("2026-03-20T10:00:00Z", "2026-03-02")
    send("2026-05-10T10:00:00Z", "2026-03-03")  # 2025 judged, then settled
    send("2026-06-10T10:00:00Z", "2026-04-01")
    assert send("2026-06-11T10:00:00Z", "2025-12-01", detox="clinical", client_ref="d21") == []
    assert f"clinical_detox_high:{AGB}:2025" in send("2026-07-10T10:00:00Z", "2026-05-01")
