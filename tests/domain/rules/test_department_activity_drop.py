"""department_activity_drop (streams/domain/rules/department_activity_drop.py, SPEC
§9): a department's clients in the provider's latest covered month against its mean
over the six months before."""

from __future__ import annotations

import pytest

from tests.domain.rules.dept_helpers import months, register, steady
from tests.domain.rules.rule_helpers import AGB, published

ID = f"department_activity_drop:{AGB}:2026:crisis"
# July 2026 ended 1 August: with 30 days' lag it is the latest covered month from
# 31 August until 30 September (August's turn).
IN_SEPTEMBER = "2026-09-05T08:00:00Z"


@pytest.mark.parametrize(
    ("level", "july", "fires"),
    [
        (20, 11, True),  # 11 < 0.6 x 20 = 12
        (20, 12, False),  # at the threshold: not below it
        (30, 17, True),
        (30, 18, False),
    ],
)
def test_fires_below_drop_factor_times_the_six_month_mean(eng, line, send, level, july, fires):
    send(eng, *months(line, {**steady(level), "2026-07": july}, IN_SEPTEMBER))
    events = [e for e in published(eng.tick()) if e["alert_id"] == ID]
    assert bool(events) is fires
    if fires:
        (event,) = events
        assert (event["state"], event["severity"], event["department"]) == (
            "firing",
            "warning",
            "crisis",
        )
        assert event["value"] == pytest.approx(july / level)
        assert event["threshold"] == 0.6
        assert event["explain"] == {"numerator": july, "denominator": float(level)}
        assert "juli 2026" in event["message"] and "crisis" in event["message"]
        assert "outreachende zorg" in event["message"]  # setting 4, no register entry


def test_a_mean_below_min_clients_is_not_judged(eng, line, send):
    level = {**steady(20, count=5), "2026-06": 19}  # sum 119: mean 19.83 < 20
    send(eng, *months(line, {**level, "2026-07": 0, "2026-08": 1}, IN_SEPTEMBER))
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []


def test_months_of_the_previous_service_year_count_in_the_mean(eng, line, send):
    # February 2026 judged: its six months before are August 2025 .. January 2026
    history = {**steady(20, first="2025-08"), "2026-02": 5}
    send(eng, *months(line, history, "2026-04-02T08:00:00Z"))
    assert (ID, "firing") in [(e["alert_id"], e["state"]) for e in published(eng.tick())]


def test_a_department_of_category_other_is_never_judged_unless_the_register_says(eng, line, send):
    # setting 1: "other" from its lines; the register makes it an acute team
    send(eng, *months(line, {**steady(20), "2026-07": 2}, IN_SEPTEMBER, setting=1))
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []
    eng.apply_department(register("acute"))
    (event,) = [e for e in published(eng.tick()) if e["alert_id"] == ID]
    assert "acute ggz" in event["message"]


def test_a_register_entry_of_category_other_silences_a_setting_derived_one(eng, line, send):
    eng.apply_department(register("other"))
    send(eng, *months(line, {**steady(20), "2026-07": 2}, IN_SEPTEMBER))  # setting 4
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []


def test_credits_take_clients_out_of_the_month_and_the_alert_follows(eng, line, send):
    july = months(line, {"2026-07": 12}, IN_SEPTEMBER)
    send(eng, *months(line, steady(20), IN_SEPTEMBER), *july)
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []  # 12: at the line
    send(eng, line.credit(july[0], submitted_at="2026-09-06T08:00:00Z"))
    assert [(e["alert_id"], e["state"]) for e in published(eng.tick())] == [(ID, "firing")]
    # a new line of that client in July brings it back: resolved
    send(eng, line(**{**july[0], "event_id": "again", "line_id": "again"}))
    assert [(e["alert_id"], e["state"]) for e in published(eng.tick())] == [(ID, "resolved")]


def test_judged_at_the_month_boundary_on_the_state_before_the_line(eng, line, send):
    send(eng, *months(line, {**steady(20), "2026-07": 3}, "2026-08-30T08:00:00Z"))
    # 30 August: June is the latest covered month, no drop there
    assert [e for e in published(eng.tick()) if e["alert_id"] == ID] == []
    fx = send(eng, line(service_date="2026-08-01", submitted_at="2026-09-02T08:00:00Z"))
    (event,) = [e for e in published(fx) if e["alert_id"] == ID]
    assert event["event_time"] == "2026-09-02T08:00:00Z"


def test_an_alert_of_a_year_resolves_when_the_latest_covered_month_moves_into_the_next(
    eng, line, send
):
    send(eng, *months(line, {**steady(20, first="2026-06"), "2026-12": 2}, "2027-02-05T08:00:00Z"))
    assert (ID, "firing") in [(e["alert_id"], e["state"]) for e in published(eng.tick())]
    # January 2027 covered: still 2 a month against a mean of (5 x 20 + 2) / 6 = 17
    # (the line that moves the watermark into March is judged on the state before it,
    # where January has no lines yet: the provider's January is judged at the tick)
    fx = send(eng, *months(line, {"2027-01": 2}, "2027-03-05T08:00:00Z"))
    got = [(e["alert_id"], e["state"]) for e in (*published(fx), *published(eng.tick()))]
    assert (ID, "resolved") in got
    # the mean of 17 is below min_clients: 2027's is not judged a drop
    assert all(not a.startswith(f"department_activity_drop:{AGB}:2027") for a, _ in got)


def test_a_covered_month_the_provider_declared_nothing_in_is_not_judged(eng, line, send):
    """The end of an archive: late credits move the watermark into March 2027, so
    January 2027 is covered, but the provider has declared no care of 2027 yet. Its
    departments are judged on December 2026, the last month it declared care in,
    not as if every one of them had dropped to nothing."""
    history = months(line, steady(30, first="2026-07"), "2027-01-05T08:00:00Z")
    send(eng, *history)
    assert [e for e in published(eng.tick()) if e["rule"] == "department_activity_drop"] == []
    fx = send(
        eng,
        line.credit(history[0], submitted_at="2027-03-05T08:00:00Z"),
        # a February line already: 2027 has lines, January (covered) still none
        *months(line, {"2027-02": 1}, "2027-03-05T09:00:00Z", department="poli", setting=1),
    )
    judged = [
        (e["alert_id"], e["state"])
        for e in (*published(fx), *published(eng.tick()))
        if e["rule"].startswith("department_")
    ]
    assert judged == []
    # once the provider declares January 2027 care, January is judged
    send(eng, *months(line, {"2027-01": 2}, "2027-03-06T08:00:00Z", department="poli", setting=1))
    fired = [e["alert_id"] for e in published(eng.tick()) if e["state"] == "firing"]
    assert f"department_activity_drop:{AGB}:2027:crisis" in fired
