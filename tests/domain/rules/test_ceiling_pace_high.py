"""ceiling_pace_high (streams/domain/rules/ceiling_pace_high.py): the projected landing
against the ceiling (SPEC §8.2), judged at month boundaries."""

from __future__ import annotations

import pytest

from streams.domain.policy import load_policy
from streams.domain.rules import ceiling_pace_high
from tests.domain.rules.pace_helpers import CEILING, judged, opening, spend
from tests.domain.rules.rule_helpers import AGB, contract, ids, published

ID = f"ceiling_pace_high:{AGB}:2026"
P = load_policy().of(ceiling_pace_high.RULE)


@pytest.mark.parametrize(
    ("projected", "month", "fire"),
    [
        (1_320_000, 3, True),  # exactly 1.10
        (1_319_999, 3, False),
        (2_400_000, 2, False),  # min_months 3
        (None, 3, False),  # no projection
    ],
)
def test_fires_at_the_threshold_from_min_months(projected, month, fire):
    ((finding, ctx),) = judged(ceiling_pace_high.evaluate, P, projected, month)
    assert finding.fire is fire and finding.severity == "warning"
    assert (ctx["numerator"], ctx["denominator"]) == (projected, CEILING)


@pytest.mark.parametrize(
    ("projected", "clear"), [(1_296_000, False), (1_295_999, True)]
)  # 1.08 = threshold - margin still holds
def test_resolves_below_threshold_minus_the_margin(projected, clear):
    ((finding, _),) = judged(ceiling_pace_high.evaluate, P, projected, 4)
    assert (finding.fire, finding.clear) == (False, clear)


def test_an_early_overspender_is_alerted_in_the_month_it_shows(eng, line, send):
    """330,000 in January-March against 1,200,000 a year: exactly 1.10 once March is
    covered, at the first line of May (30 days' lag); not at April's (two months)."""
    eng.apply_contract(contract(CEILING))
    send(eng, *spend(line, {1: 100_000, 2: 100_000, 3: 130_000}, "2026-03-20T09:00:00Z"))
    assert ids(send(eng, opening(line, "2026-04-02T09:00:00Z"))) == []
    fx = send(eng, opening(line, "2026-05-04T08:00:00Z"))
    (event,) = published(fx)
    assert (event["alert_id"], event["state"]) == (ID, "firing")
    assert (event["event_time"], event["value"], event["threshold"]) == (
        "2026-05-04T08:00:00Z",
        1.1,
        1.1,
    )
    assert {k: v for k, v in event["explain"].items() if k != "breakdown"} == {
        "contract_version": 1,
        "numerator": 1_320_000,
        "denominator": CEILING,
        "pace": {
            "covered_month": 3,
            "expected_share": 0.25,
            "projected_cents": 1_320_000,
            "ceiling_cents": CEILING,
        },
    }
    assert "uit op € 13.200 in 2026" in event["message"] and "€ 12.000" in event["message"]
    assert "110%" in event["message"] and "na maart" in event["message"]
    assert ids(send(eng, opening(line, "2026-05-20T08:00:00Z"))) == []  # same month


def test_a_seasonal_providers_own_profile_weighs_its_projection(eng, line, send):
    """2025 spent 2,000,000, 200,000 of it in January-March: E(3) = 0.1. 140,000 in
    January-March 2026 projects 1,400,000 (1.17: fires); an even spread would have
    said 560,000."""
    eng.apply_contract(contract(CEILING))
    send(
        eng,
        line(service_date="2025-02-15", amount_cents=200_000, submitted_at="2025-03-01T09:00:00Z"),
        line(
            service_date="2025-10-15", amount_cents=1_800_000, submitted_at="2025-11-01T09:00:00Z"
        ),
        *spend(line, {1: 40_000, 2: 50_000, 3: 50_000}, "2026-03-20T09:00:00Z"),
    )
    fx = send(eng, opening(line, "2026-05-04T08:00:00Z"))
    (event,) = [a for a in published(fx) if a["alert_id"] == ID]
    assert event["explain"]["pace"]["expected_share"] == 0.1
    assert (event["explain"]["numerator"], event["value"]) == (1_400_000, 1_400_000 / CEILING)


def test_a_lowered_ceiling_shows_at_the_next_boundary_against_its_version(eng, line, send):
    """The same spending pace (110,000 a month) is 0.66 of a 2,000,000 ceiling; version
    2 lowers it to 1,200,000: 1.10 at the next month boundary, explained against v2."""
    eng.apply_contract(contract(2_000_000))
    months = dict.fromkeys(range(1, 5), 110_000)
    send(eng, *spend(line, months, "2026-04-20T09:00:00Z"))
    assert ids(send(eng, opening(line, "2026-05-04T08:00:00Z"))) == []
    eng.apply_contract(contract(CEILING, version=2, updated_at="2026-05-20T00:00:00Z"))
    (event,) = published(send(eng, opening(line, "2026-06-03T08:00:00Z")))
    assert (event["alert_id"], event["state"], event["value"]) == (ID, "firing", 1.1)
    assert event["explain"]["contract_version"] == 2
    assert event["explain"]["pace"]["covered_month"] == 4
    assert (event["explain"]["numerator"], event["explain"]["denominator"]) == (
        1_320_000,
        CEILING,
    )


def test_credits_bring_the_pace_back_and_it_resolves(eng, line, send):
    eng.apply_contract(contract(CEILING))
    lines = spend(line, {1: 100_000, 2: 100_000, 3: 130_000}, "2026-03-20T09:00:00Z")
    send(eng, *lines)
    assert ids(send(eng, opening(line, "2026-05-04T08:00:00Z"))) == [(ID, "firing")]
    # June: four months covered; 330,000 x 3 = 0.825, and the credit of March's
    # 130,000 brings it lower still: below 1.08
    send(eng, line.credit(lines[2], submitted_at="2026-05-30T08:00:00Z"))
    (event,) = [a for a in published(send(eng, opening(line, "2026-06-02T08:00:00Z")))]
    assert (event["alert_id"], event["state"]) == (ID, "resolved")
    assert event["value"] == 200_000 * 3 / CEILING
    assert "weer onder 110% van het zorgkostenplafond" in event["message"]
