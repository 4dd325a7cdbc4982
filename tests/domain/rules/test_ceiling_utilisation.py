"""ceiling_utilisation (streams/domain/rules/ceiling_utilisation.py) at its boundaries:
thresholds, hysteresis, contract versions, credits and redeliveries."""

from __future__ import annotations

import pytest

from streams.domain.engine import Engine
from tests.domain.rules.rule_helpers import AGB, contract, ids, published

THRESHOLDS = [(70, 0.70, "warning"), (90, 0.90, "high"), (100, 1.00, "critical")]


@pytest.mark.parametrize(("pct", "threshold", "severity"), THRESHOLDS)
def test_ceiling_alert_fires_exactly_at_its_threshold_not_a_cent_before(
    eng, line, send, pct, threshold, severity
):
    eng.apply_contract(contract(1_000_000))
    below = send(eng, line(amount_cents=pct * 10_000 - 1))
    assert f"ceiling_utilisation:{AGB}:2026:{pct}" not in {a for a, _ in ids(below)}
    crossing = line(amount_cents=1, submitted_at="2026-03-05T10:30:00+01:00")
    fx = send(eng, crossing)
    (event,) = published(fx)
    assert event["alert_id"] == f"ceiling_utilisation:{AGB}:2026:{pct}"
    assert event["state"] == "firing"
    assert event["severity"] == severity
    assert event["value"] == threshold
    assert event["threshold"] == threshold
    assert event["event_time"] == "2026-03-05T09:30:00Z"
    assert event["sequence"] == 1
    assert (event["provider_name"], event["purchaser"], event["region"]) == (
        "GGZ Voorbeeld",
        "Team Midden",
        "Utrecht",
    )
    above = send(eng, line(amount_cents=1))
    assert [a for a in published(above) if a["alert_id"] == event["alert_id"]] == []


def test_one_line_crossing_every_threshold_fires_one_alert_per_threshold(eng, line, send):
    eng.apply_contract(contract(1_000_000))
    fx = send(eng, line(amount_cents=1_000_000))
    assert ids(fx) == [
        (f"ceiling_utilisation:{AGB}:2026:70", "firing"),
        (f"ceiling_utilisation:{AGB}:2026:90", "firing"),
        (f"ceiling_utilisation:{AGB}:2026:100", "firing"),
    ]
    assert send(eng, line(amount_cents=5_000_000)).alerts == []


def test_ceiling_alert_resolves_only_below_threshold_minus_margin_and_fires_again(eng, line, send):
    eng.apply_contract(contract(1_000_000))
    d1, d2, d3 = line(amount_cents=679_999), line(amount_cents=1), line(amount_cents=20_000)
    assert ids(send(eng, d1, d2, d3)) == [(f"ceiling_utilisation:{AGB}:2026:70", "firing")]
    # exactly 0.68 = 0.70 - 0.02: still firing
    assert send(eng, line.credit(d3)).alerts == []
    # 0.679999: below the margin, resolves, with the credit's time and the new value
    undo = line.credit(d2, submitted_at="2026-04-01T08:00:00+02:00")
    (resolved,) = published(send(eng, undo))
    assert resolved["state"] == "resolved"
    assert resolved["sequence"] == 2
    assert resolved["event_time"] == "2026-04-01T06:00:00Z"
    assert resolved["value"] == pytest.approx(0.679999)
    assert resolved["severity"] == "warning"
    # back to exactly 0.70: fires again as the third transition
    (again,) = published(send(eng, line(amount_cents=20_001)))
    assert (again["alert_id"], again["state"], again["sequence"]) == (
        f"ceiling_utilisation:{AGB}:2026:70",
        "firing",
        3,
    )


def test_ceiling_between_threshold_minus_margin_and_threshold_never_fires(eng, line, send):
    eng.apply_contract(contract(1_000_000))
    fx = send(eng, line(amount_cents=690_000), line(amount_cents=9_999))
    assert fx.alerts == []


def test_raised_ceiling_in_contract_version_2_resolves_with_the_contracts_time(eng, line, send):
    eng.apply_contract(contract(1_000_000))
    send(eng, line(amount_cents=750_000))
    fx = eng.apply_contract(contract(2_000_000, version=2, updated_at="2026-09-30T14:00:00+02:00"))
    (event,) = published(fx)
    assert (event["alert_id"], event["state"], event["sequence"]) == (
        f"ceiling_utilisation:{AGB}:2026:70",
        "resolved",
        2,
    )
    assert event["event_time"] == "2026-09-30T12:00:00Z"
    assert event["value"] == 0.375


def test_contract_of_a_lower_or_equal_version_is_ignored(eng, line, send):
    eng.apply_contract(contract(1_000_000, version=2))
    send(eng, line(amount_cents=500_000))
    assert eng.apply_contract(contract(500_000, version=1)).alerts == []
    assert eng.apply_contract(contract(400_000, version=2)).alerts == []
    assert eng.snapshot()["providers"][AGB]["2026"]["ceiling_utilisation"] == 0.5


def test_lowered_ceiling_fires_with_the_contracts_time(eng, line, send):
    eng.apply_contract(contract(1_000_000))
    send(eng, line(amount_cents=600_000))
    fx = eng.apply_contract(contract(600_000, version=3, updated_at="2026-10-01T00:00:00Z"))
    assert ids(fx) == [
        (f"ceiling_utilisation:{AGB}:2026:70", "firing"),
        (f"ceiling_utilisation:{AGB}:2026:90", "firing"),
        (f"ceiling_utilisation:{AGB}:2026:100", "firing"),
    ]
    assert {a["event_time"] for a in fx.alerts} == {"2026-10-01T00:00:00Z"}


def test_contract_arriving_after_the_lines_fires_with_its_own_time(eng, line, send):
    send(eng, line(amount_cents=800_000))
    fx = eng.apply_contract(contract(1_000_000, updated_at="2026-05-01T09:00:00+02:00"))
    (event,) = published(fx)
    assert event["alert_id"] == f"ceiling_utilisation:{AGB}:2026:70"
    assert event["event_time"] == "2026-05-01T07:00:00Z"


def test_no_ceiling_alert_without_a_contract_or_for_another_year(eng, line, send):
    assert send(eng, line(amount_cents=9_000_000)).alerts == []
    eng.apply_contract(contract(1_000_000, year=2026))
    fx = send(eng, line(amount_cents=900_000, service_date="2025-12-31"))
    assert fx.alerts == []


def test_a_credit_that_crosses_back_resolves_with_the_credits_time(eng, line, send):
    eng.apply_contract(contract(1_000_000))
    big = line(amount_cents=950_000)
    send(eng, big)
    fx = send(eng, line.credit(big, submitted_at="2026-06-01T12:00:00Z"))
    # (the credit opens June: the month boundary judges the pace first, SPEC §8.1)
    assert [i for i in ids(fx) if i[0].startswith("ceiling_utilisation")] == [
        (f"ceiling_utilisation:{AGB}:2026:70", "resolved"),
        (f"ceiling_utilisation:{AGB}:2026:90", "resolved"),
    ]
    assert {a["event_time"] for a in fx.alerts} == {"2026-06-01T12:00:00Z"}


def test_redelivering_the_crossing_line_publishes_nothing(eng, line, send):
    eng.apply_contract(contract(1_000_000))
    crossing = line(amount_cents=700_000)
    assert len(send(eng, crossing).alerts) == 1
    assert send(eng, crossing, crossing).alerts == []
    assert eng.apply_contract(contract(1_000_000)).alerts == []


def test_custom_thresholds_name_the_alert_in_whole_percent(policy_with, line, send):
    eng = Engine(
        policy_with(
            **{
                "ceiling_utilisation.thresholds": [0.5, 0.8],
                "ceiling_utilisation.severities": ["warning", "critical"],
            }
        )
    )
    eng.apply_contract(contract(1_000_000))
    fx = send(eng, line(amount_cents=800_000))
    assert ids(fx) == [
        (f"ceiling_utilisation:{AGB}:2026:50", "firing"),
        (f"ceiling_utilisation:{AGB}:2026:80", "firing"),
    ]
    assert [a["severity"] for a in fx.alerts] == ["warning", "critical"]
