"""department_stopped (streams/domain/rules/department_stopped.py, SPEC §9): a
department without clients in the provider's last two covered months after a mean of
at least min_clients in the six months before."""

from __future__ import annotations

import pytest

from tests.domain.rules.dept_helpers import months, register, steady
from tests.domain.rules.rule_helpers import AGB, published

ID = f"department_stopped:{AGB}:2026:ward"
# August 2026 is the latest covered month from 1 October (30 days' lag) on.
IN_OCTOBER = "2026-10-05T08:00:00Z"


def ward(line, clients: dict[str, int]) -> list[dict]:
    """A clinical ward (setting 5), and another department that keeps the provider
    declaring (its watermark moves on while the ward is silent)."""
    return [
        *months(line, clients, IN_OCTOBER, department="ward", setting=5),
        *months(
            line,
            dict.fromkeys(("2026-07", "2026-08", "2026-09"), 1),
            IN_OCTOBER,
            department="poli",
            setting=1,
        ),
    ]


@pytest.mark.parametrize(
    ("clients", "fires"),
    [
        ({**steady(20), "2026-07": 0, "2026-08": 0}, True),
        ({**steady(20), "2026-07": 1, "2026-08": 0}, False),  # July still had a client
        ({**steady(20), "2026-07": 0, "2026-08": 1}, False),
        ({**steady(20, count=5), "2026-06": 19}, False),  # mean 19.83 < min_clients
    ],
)
def test_fires_when_silent_for_the_last_two_covered_months_after_a_steady_level(
    eng, line, send, clients, fires
):
    send(eng, *ward(line, clients))
    events = [e for e in published(eng.tick()) if e["alert_id"] == ID]
    assert bool(events) is fires
    if fires:
        (event,) = events
        assert (event["severity"], event["value"], event["threshold"]) == ("high", 0.0, 0.0)
        assert event["explain"] == {"numerator": 0, "denominator": 20.0}
        assert "klinische zorg" in event["message"]
        assert "van juli 2026 tot en met augustus 2026" in event["message"]


def test_a_ward_whose_last_lines_are_credited_has_stopped(eng, line, send):
    july = months(line, {"2026-07": 3}, IN_OCTOBER, department="ward", setting=5)
    send(eng, *ward(line, steady(20)), *july)
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []
    send(eng, *[line.credit(obj, submitted_at="2026-10-06T08:00:00Z") for obj in july])
    assert [(e["alert_id"], e["state"]) for e in published(eng.tick())] == [(ID, "firing")]


def test_the_register_decides_what_is_judged(eng, line, send):
    eng.apply_department(register("other", department="ward"))
    send(eng, *ward(line, steady(20)))
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []
    eng.apply_department(register("secured", department="ward", version=2))
    (event,) = [e for e in published(eng.tick()) if e["alert_id"] == ID]
    assert "beveiligde zorg" in event["message"]


def test_months_is_a_policy_parameter(policy_with, line, send):
    from streams.domain.engine import Engine

    eng = Engine(policy_with(**{"department_stopped.months": 3}))
    send(eng, *ward(line, {**steady(20, first="2026-01"), "2026-06": 0}))  # Jul, Aug: 0 too
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []  # Jan-May: 5 x 20
    eng = Engine(policy_with(**{"department_stopped.months": 3}))
    send(eng, *ward(line, {**steady(20, first="2025-12")}))  # Dec-May: mean 20
    assert [e["alert_id"] for e in published(eng.tick()) if e["alert_id"] == ID] == [ID]
