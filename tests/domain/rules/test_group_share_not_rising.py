"""group_share_not_rising (streams/domain/rules/group_share_not_rising.py): the
group-consult share against the year before (SPEC §8.4), from covered month 6."""

from __future__ import annotations

import pytest

from streams.domain.engine import Engine
from tests.domain.rules.pace_helpers import opening
from tests.domain.rules.rule_helpers import AGB, NOW, consults, published, tick_ids

ID = f"group_share_not_rising:{AGB}:2026"


def history(
    line, prev: tuple[int, int], now: tuple[int, int], at: str = "2026-07-10T09:00:00Z"
) -> list[dict]:
    """(consults, group consults) of 2025 and of 2026, 2026's submitted at ``at``."""
    (p_all, p_group), (n_all, n_group) = prev, now
    return [
        *consults(line, p_group, consult_mode="group", service_date="2025-05-01"),
        *consults(line, p_all - p_group, service_date="2025-05-01"),
        *consults(line, n_group, consult_mode="group", service_date="2026-03-01", submitted_at=at),
        *consults(line, n_all - n_group, service_date="2026-03-01", submitted_at=at),
    ]


@pytest.mark.parametrize(
    ("prev", "now", "fires"),
    [
        ((200, 50), (200, 49), True),  # falling
        ((200, 50), (200, 50), False),  # equal: a change of 0 is not below min_rise 0.0
        ((200, 50), (200, 51), False),  # rising
        ((200, 50), (400, 80), True),  # 0.2 < 0.25
        ((199, 50), (200, 0), False),  # too few consults in Y-1
        ((200, 50), (199, 0), False),  # too few in Y
    ],
)
def test_fires_when_the_share_does_not_rise_with_min_consults_in_both_years(
    eng, line, send, prev, now, fires
):
    send(eng, *history(line, prev, now))
    fx = send(eng, opening(line, "2026-08-03T08:00:00Z"))  # June covered: M = 6
    got = [(a["alert_id"], a["state"]) for a in published(fx)]
    assert ((ID, "firing") in got) is fires


def test_not_judged_before_six_months_are_covered(eng, line, send):
    # June ended 1 July: covered (M = 6) from 31 July 00:00Z with 30 days' lag
    send(eng, *history(line, (200, 50), (200, 10), at="2026-06-10T09:00:00Z"))
    fx = send(eng, opening(line, "2026-07-31T00:00:00Z"))
    assert [a["alert_id"] for a in published(fx) if a["alert_id"] == ID] == [ID]
    eng2 = Engine(eng.policy, clock=lambda: NOW)
    send(eng2, *history(line, (200, 50), (200, 10), at="2026-06-10T09:00:00Z"))
    fx = send(eng2, opening(line, "2026-07-30T23:59:59Z"))  # M = 5
    assert [a for a in published(fx) if a["alert_id"] == ID] == []


def test_value_is_the_change_and_it_resolves_when_the_share_rises(eng, line, send):
    send(eng, *history(line, (200, 50), (200, 40)))
    fx = send(eng, opening(line, "2026-08-03T08:00:00Z"))
    (event,) = [a for a in published(fx) if a["alert_id"] == ID]
    assert (event["alert_id"], event["severity"]) == (ID, "info")
    assert event["value"] == pytest.approx(-0.05) and event["threshold"] == 0.0
    assert (event["explain"]["numerator"], event["explain"]["denominator"]) == (40, 200)
    assert "20% in 2026 tegen 25% in 2025" in event["message"]
    send(eng, *consults(line, 20, consult_mode="group", submitted_at="2026-08-10T09:00:00Z"))
    assert (ID, "resolved") in tick_ids(eng)  # 60/220 = 0.27 > 0.25
