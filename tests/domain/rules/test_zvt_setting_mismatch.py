"""zvt_setting_mismatch (streams/domain/rules/zvt_setting_mismatch.py): fires on the
first mismatching line, resolves when credits bring the count to 0."""

from __future__ import annotations

from tests.domain.rules.rule_helpers import AGB, ids, published

MISMATCH_ID = f"zvt_setting_mismatch:{AGB}:2026"


def test_zvt_mismatch_fires_on_the_first_mismatching_line_and_resolves_at_zero(eng, line, send):
    m1 = line(
        care_demand_type=1,
        setting=5,
        activity="stay",
        stay_days=3,
        service_date="2026-01-15",
        submitted_at="2026-02-01T09:00:00+01:00",
    )
    m2 = line(care_demand_type=2, setting=8)
    fx = send(eng, line(), m1)
    (fired,) = published(fx)
    assert (fired["alert_id"], fired["state"], fired["severity"]) == (MISMATCH_ID, "firing", "high")
    assert fired["event_time"] == "2026-02-01T08:00:00Z"
    assert fired["value"] == 1.0
    assert fired["region"] is None  # no contract: the line's free-text region is not used
    assert fired["provider_name"] is None
    assert send(eng, m2, line.credit(m1)).alerts == []
    last = line.credit(m2, submitted_at="2026-07-07T07:07:07Z")
    (resolved,) = published(send(eng, last))
    assert (resolved["state"], resolved["sequence"], resolved["value"]) == ("resolved", 2, 0.0)
    assert resolved["event_time"] == "2026-07-07T07:07:07Z"
    (again,) = published(send(eng, line(care_demand_type=1, setting=6)))
    assert (again["state"], again["sequence"]) == ("firing", 3)


def test_zvt_mismatch_before_2026_does_not_fire(eng, line, send):
    assert send(eng, line(care_demand_type=1, setting=5, service_date="2025-12-31")).alerts == []


def test_zvt_mismatch_is_per_provider_year(eng, line, send):
    fx = send(
        eng,
        line(care_demand_type=1, setting=5),
        line(care_demand_type=1, setting=5, service_date="2027-01-02"),
        line(care_demand_type=2, setting=6, provider_agb="87654321"),
    )
    assert ids(fx) == [
        (MISMATCH_ID, "firing"),
        (f"zvt_setting_mismatch:{AGB}:2027", "firing"),
        ("zvt_setting_mismatch:87654321:2026", "firing"),
    ]
