"""Properties of the engine over generated declaration streams (hypothesis).

A debit and its credit cancel out, redelivery of any events changes nothing, and the
interleaving of providers' streams does not change any provider's results. The
histories are drawn by tests/domain/histories.py; the journal's properties are in
tests/store/test_codec.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

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
