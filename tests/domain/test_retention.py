"""Retention of the line index (policy ``retention.line_index_years``, default 3).

Service year Y's line ids and event ids are dropped once the provider's event-time
watermark reaches 1 January of Y + line_index_years + 1 (UTC); its indicators stay,
and any later line of year Y is dead-lettered as ``line_index_expired``. Event time
decides, never the wall clock, so a rebuilt or replayed state decides the same.

A line can only meet a dropped year through another line's later event time: one
whose own ``submitted_at`` is past the end of its service year + line_index_years is
``implausible_time`` (SPEC §12) and moves nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.engine import Effects, Engine
from streams.domain.errors import PolicyError
from streams.domain.model import IMPLAUSIBLE_TIME, LINE_INDEX_EXPIRED, REJECT_REASONS
from streams.domain.policy import DEFAULT_POLICY_PATH, load_policy
from streams.domain.state import ProviderState
from tests.conftest import AGB

OTHER = "87654321"
JUST_BEFORE_2026 = "2025-12-31T23:59:59Z"
START_OF_2026 = "2026-01-01T00:00:00Z"


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


def net(engine: Engine, year: int, agb: str = AGB) -> int:
    return engine.snapshot()["providers"][agb][str(year)]["net_cents"]  # type: ignore[no-any-return]


@pytest.fixture
def with_2022(engine: Engine, make_line: Any) -> dict[str, Any]:
    """A provider with a 2022 debit (and a 2023 one) submitted in 2025."""
    debit = line(make_line, 2022, "2025-06-01T10:00:00Z", amount_cents=1_000)
    send(engine, debit, line(make_line, 2023, "2025-06-02T10:00:00Z", amount_cents=500))
    return debit


# -- the policy key ----------------------------------------------------------------------


def test_shipped_policy_keeps_the_line_index_three_years():
    assert load_policy().retention.line_index_years == 3


@pytest.mark.parametrize("value", [0, -1, 101, 2.5, "3", True])
def test_line_index_years_out_of_range_or_not_a_whole_number_is_refused(policy_with, value):
    with pytest.raises(PolicyError, match=r"retention\.line_index_years"):
        policy_with(**{"retention.line_index_years": value})


def test_a_policy_without_the_retention_section_is_refused(tmp_path):
    body = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    cut = body[: body.index("[retention]")]
    path = tmp_path / "policy.toml"
    path.write_text(cut, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"\[retention\] is missing"):
        load_policy(path)


def test_line_index_expired_is_a_dead_letter_reason_counted_in_the_snapshot():
    assert LINE_INDEX_EXPIRED == "line_index_expired"
    assert LINE_INDEX_EXPIRED in REJECT_REASONS


# -- the boundary: 1 January of Y + line_index_years + 1 -----------------------------------


def test_a_year_is_kept_until_the_watermark_reaches_1_january_four_years_on(
    engine, make_line, with_2022
):
    send(engine, line(make_line, 2025, JUST_BEFORE_2026))
    fx = send(engine, credit(make_line, with_2022, JUST_BEFORE_2026))
    assert fx.dead_letters == []
    assert engine.counts().accepted == 4
    assert net(engine, 2022) == 0
    assert 2022 in engine.providers[AGB].lines


def test_a_year_is_dropped_when_the_watermark_reaches_1_january_four_years_on(
    engine, make_line, with_2022
):
    before = engine.snapshot()["providers"][AGB]["2022"]
    send(engine, line(make_line, 2026, START_OF_2026))
    st = engine.providers[AGB]
    assert 2022 not in st.lines and 2022 not in st.events
    assert {2023, 2026} <= st.lines.keys()
    # its indicators stay
    assert engine.snapshot()["providers"][AGB]["2022"] == before
    fx = send(engine, credit(make_line, with_2022, "2025-12-31T12:00:00Z"))  # out of order
    assert reasons(fx) == [LINE_INDEX_EXPIRED]
    assert net(engine, 2022) == 1_000
    assert engine.counts().rejected == {LINE_INDEX_EXPIRED: 1}


def test_the_next_year_is_still_judged_after_a_drop(engine, make_line, with_2022):
    debit_2023 = line(make_line, 2023, START_OF_2026, amount_cents=700)
    fx = send(engine, debit_2023, debit_2023, credit(make_line, debit_2023, START_OF_2026))
    assert fx.dead_letters == []
    assert engine.counts().duplicate == 1
    assert net(engine, 2023) == 500


def test_retention_follows_the_policy(policy_with, make_line):
    engine = Engine(policy_with(**{"retention.line_index_years": 1}))
    debit = line(make_line, 2024, "2025-03-01T00:00:00Z")
    send(engine, debit, line(make_line, 2025, JUST_BEFORE_2026))
    assert send(engine, credit(make_line, debit, JUST_BEFORE_2026)).dead_letters == []
    assert reasons(send(engine, line(make_line, 2024, START_OF_2026))) == [IMPLAUSIBLE_TIME]
    send(engine, line(make_line, 2025, START_OF_2026))  # the watermark enters 2026
    late = line(make_line, 2024, JUST_BEFORE_2026)
    assert reasons(send(engine, late)) == [LINE_INDEX_EXPIRED]


def test_a_line_whose_own_event_time_would_close_its_year_is_implausible_and_moves_nothing(
    engine, make_line, with_2022
):
    before = engine.providers[AGB].watermark
    fx = send(engine, line(make_line, 2022, START_OF_2026))
    assert reasons(fx) == [IMPLAUSIBLE_TIME]
    assert engine.providers[AGB].watermark == before  # its event time counts for nothing
    assert 2022 in engine.providers[AGB].lines  # so no year closes
    assert send(engine, credit(make_line, with_2022, JUST_BEFORE_2026)).dead_letters == []


def test_an_event_time_out_of_order_does_not_reopen_a_year(engine, make_line, with_2022):
    send(engine, line(make_line, 2026, START_OF_2026))
    fx = send(engine, credit(make_line, with_2022, "2025-07-01T00:00:00Z"))
    assert reasons(fx) == [LINE_INDEX_EXPIRED]


def test_the_watermark_is_per_provider(engine, make_line, with_2022):
    send(engine, line(make_line, 2026, "2027-01-01T00:00:00Z", provider_agb=OTHER))
    assert send(engine, credit(make_line, with_2022, "2025-08-01T00:00:00Z")).dead_letters == []
    assert net(engine, 2022) == 0


def test_the_wall_clock_decides_nothing(policy, make_line):
    """An engine whose clock says 2090 keeps 2022 while event time is in 2025."""
    engine = Engine(policy, clock=lambda: 3_786_912_000.0)
    debit = line(make_line, 2022, "2025-06-01T10:00:00Z")
    fx = send(engine, debit, credit(make_line, debit, JUST_BEFORE_2026))
    assert fx.dead_letters == []


# -- what a dropped year refuses ---------------------------------------------------------


def test_a_redelivered_debit_of_a_dropped_year_is_expired_not_counted_twice(
    engine, make_line, with_2022
):
    send(engine, line(make_line, 2026, START_OF_2026))
    before = engine.snapshot()
    fx = send(engine, with_2022)  # the same event again
    assert reasons(fx) == [LINE_INDEX_EXPIRED]
    after = engine.snapshot()
    assert after["providers"] == before["providers"]
    assert after["counts"]["accepted"] == before["counts"]["accepted"]
    assert after["counts"]["duplicate"] == before["counts"]["duplicate"]
    assert after["counts"]["rejected"] == {LINE_INDEX_EXPIRED: 1}


def test_a_new_debit_and_a_credit_of_a_dropped_year_are_expired(engine, make_line, with_2022):
    send(engine, line(make_line, 2026, START_OF_2026))
    fresh = line(make_line, 2022, "2025-11-01T00:00:00Z", amount_cents=9_999)
    fx = send(engine, fresh, credit(make_line, with_2022, "2025-11-02T00:00:00Z"))
    assert reasons(fx) == [LINE_INDEX_EXPIRED, LINE_INDEX_EXPIRED]
    assert net(engine, 2022) == 1_000
    assert engine.counts().rejected == {LINE_INDEX_EXPIRED: 2}


def test_the_dead_letter_says_which_year_and_why(engine, make_line, with_2022):
    send(engine, line(make_line, 2026, START_OF_2026))
    fx = send(engine, credit(make_line, with_2022, "2025-11-02T00:00:00Z"))
    letter = fx.dead_letters[0]
    assert letter.key == AGB
    assert orjson.loads(letter.payload)["kind"] == "credit"
    assert "service year 2022" in letter.detail
    assert "2026-01-01" in letter.detail
    assert "retention.line_index_years = 3" in letter.detail


def test_an_expired_line_in_a_batch_leaves_its_siblings_alone(engine, make_line, with_2022):
    batch = {
        "schema": "ggz.declaration-batch/1",
        "provider_agb": AGB,
        "lines": [
            line(make_line, 2026, START_OF_2026, amount_cents=300),
            line(make_line, 2022, JUST_BEFORE_2026),
            line(make_line, 2026, START_OF_2026, amount_cents=400),
        ],
    }
    fx = Effects()
    engine.process(orjson.dumps(batch), AGB, fx)
    assert reasons(fx) == [LINE_INDEX_EXPIRED]
    assert net(engine, 2026) == 700


def test_alert_state_of_a_dropped_year_is_kept(engine, make_line, contract_event):
    from streams.domain.contracts import parse_contract

    engine.apply_contract(parse_contract(contract_event(year=2022, ceiling_cents=1_000)))
    fx = send(engine, line(make_line, 2022, "2025-06-01T10:00:00Z", amount_cents=800))
    assert [a["alert_id"] for a in fx.alerts] == [f"ceiling_utilisation:{AGB}:2022:70"]
    send(engine, line(make_line, 2026, START_OF_2026))
    firing = [aid for aid, _ in engine.providers[AGB].alerts.firing()]
    # (the 2022 year landed at 80% of its ceiling: its underrun fires at the boundary)
    assert [aid for aid in firing if aid.startswith("ceiling_utilisation")] == [
        f"ceiling_utilisation:{AGB}:2022:70"
    ]


def test_a_credit_whose_service_date_differs_from_its_debit_still_finds_it(engine, make_line):
    debit = line(make_line, 2025, "2025-06-01T00:00:00Z", amount_cents=800)
    odd = {**credit(make_line, debit, "2025-07-01T00:00:00Z"), "service_date": "2024-01-01"}
    assert send(engine, debit, odd).dead_letters == []
    assert net(engine, 2025) == 0


def test_index_entries_count_the_lines_of_open_years(engine, make_line, with_2022):
    st: ProviderState = engine.providers[AGB]
    assert st.index_entries() == 2
    send(engine, line(make_line, 2026, START_OF_2026))
    assert st.index_entries() == 2  # 2022's entry gone, 2026's added
