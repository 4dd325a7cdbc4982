"""SPEC §5 alert rules at their boundaries, and the once-per-transition semantics.

Every alert event a test here sees goes through ``published``, which checks it
against ``schemas/alert.v1.json`` and that no client reference appears in it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import fastjsonschema
import orjson
import pytest

from streams.domain import schemas
from streams.domain.contracts import Contract
from streams.domain.engine import Effects, Engine

AGB = "12345678"
ALERT = fastjsonschema.compile(schemas.load_schema(schemas.ALERT))
CLIENT = "PSEUDO-CLIENT-"  # every client_ref in this module starts with it
NOW = 1_780_000_000.0


def published(fx: Effects) -> list[dict[str, Any]]:
    """The alert events of ``fx``, each checked against the alert schema."""
    for event in fx.alerts:
        ALERT(event)
        assert CLIENT not in event["message"]
        assert CLIENT.encode() not in orjson.dumps(event)
    return list(fx.alerts)


def ids(fx: Effects) -> list[tuple[str, str]]:
    return [(a["alert_id"], a["state"]) for a in published(fx)]


@pytest.fixture
def line(make_line):
    """``make_line`` with pseudonymous client references that tests can look for."""
    counter = iter(range(10**6))

    def make(**fields: Any) -> dict[str, Any]:
        fields.setdefault("client_ref", f"{CLIENT}{next(counter)}")
        return make_line(**fields)

    make.credit = make_line.credit  # type: ignore[attr-defined]
    return make


@pytest.fixture
def eng(policy) -> Engine:
    return Engine(policy, clock=lambda: NOW)


@pytest.fixture
def send(feed):
    return feed


def contract(
    ceiling: int = 1_000_000, version: int = 1, updated_at: str = "2026-01-01T00:00:00Z", **kw: Any
) -> Contract:
    return Contract.from_event(
        {
            "schema": "ggz.contract/1",
            "provider_agb": kw.pop("provider", AGB),
            "year": kw.pop("year", 2026),
            "ceiling_cents": ceiling,
            "purchaser": "Team Midden",
            "provider_name": "GGZ Voorbeeld",
            "region": "Utrecht",
            "version": version,
            "updated_at": updated_at,
        }
    )


# -- ceiling_utilisation ----------------------------------------------------------------

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
    assert ids(fx) == [
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


# -- zvt_setting_mismatch ---------------------------------------------------------------

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


# -- tick rules -----------------------------------------------------------------------------


def consults(line, n: int, **fields: Any) -> list[dict[str, Any]]:
    return [line(**fields) for _ in range(n)]


def tick_ids(eng: Engine, **kw: Any) -> list[tuple[str, str]]:
    return ids(eng.tick(**kw))


HALF = {2026: Fraction(1, 2)}  # a peer mean of 0.5: group_share_low fires below 0.25


@pytest.mark.parametrize(
    ("total", "group", "fires"),
    [(200, 49, True), (200, 50, False), (200, 51, False), (199, 0, False), (200, 0, True)],
)
def test_group_share_low_below_half_the_peer_mean_with_min_consults(
    eng, line, send, total, group, fires
):
    send(
        eng,
        *consults(line, group, consult_mode="group"),
        *consults(line, total - group, digital=True),
    )
    got = tick_ids(eng, peers=HALF)
    assert ((f"group_share_low:{AGB}:2026", "firing") in got) is fires
    assert eng.tick(peers=HALF).alerts == []  # a second tick publishes nothing new


def test_group_share_low_uses_the_peer_mean_of_the_providers_held(eng, line, send):
    send(
        eng,
        *consults(line, 10, consult_mode="group", digital=True),
        *consults(line, 190, digital=True),
        *consults(line, 100, consult_mode="group", digital=True, provider_agb="87654321"),
        *consults(line, 100, digital=True, provider_agb="87654321"),
        *consults(line, 199, consult_mode="group", digital=True, provider_agb="11111111"),
    )
    fx = eng.tick()
    (event,) = published(fx)  # mean of 0.05 and 0.5 (the third has too few consults)
    assert event["alert_id"] == f"group_share_low:{AGB}:2026"
    assert event["value"] == 0.05
    assert event["threshold"] == pytest.approx(0.1375)


def test_group_share_low_resolves_when_the_share_recovers(eng, line, send):
    send(eng, *consults(line, 200, digital=True))
    assert tick_ids(eng, peers=HALF) == [(f"group_share_low:{AGB}:2026", "firing")]
    send(eng, *consults(line, 67, consult_mode="group", digital=True))  # 67/267 = 0.2509
    assert tick_ids(eng, peers=HALF) == [(f"group_share_low:{AGB}:2026", "resolved")]
    assert tick_ids(eng, peers=HALF) == []


def group_consults(line, ge4: int, small: int) -> list[dict[str, Any]]:
    return consults(line, ge4, consult_mode="group", practitioners=4) + consults(
        line, small, consult_mode="group", practitioners=2
    )


@pytest.mark.parametrize(
    ("ge4", "small", "fires"),
    [
        (9, 0, False),
        (10, 190, True),
        (10, 191, False),
        (10, 0, True),
        (11, 189, True),
        (20, 100, True),
    ],
)
def test_group_consult_staffing_needs_min_count_and_min_share(eng, line, send, ge4, small, fires):
    send(eng, *group_consults(line, ge4, small))
    got = tick_ids(eng)
    assert ((f"group_consult_staffing:{AGB}:2026", "firing") in got) is fires
    assert tick_ids(eng) == []


def test_group_consult_staffing_resolves_when_credits_bring_it_below_min_count(eng, line, send):
    lines = group_consults(line, 10, 0)
    send(eng, *lines)
    (fired,) = published(eng.tick())
    assert fired["value"] == 1.0
    send(eng, line.credit(lines[0]))
    assert tick_ids(eng) == [(f"group_consult_staffing:{AGB}:2026", "resolved")]


def detox(line, clinical: int, ambulant: int) -> list[dict[str, Any]]:
    return consults(line, clinical, activity="stay", stay_days=1, detox="clinical") + consults(
        line, ambulant, activity="other", detox="ambulant"
    )


@pytest.mark.parametrize(
    ("clinical", "ambulant", "fires"),
    [(19, 0, False), (10, 10, True), (9, 11, False), (11, 9, True), (20, 0, True)],
)
def test_clinical_detox_high_at_half_with_min_20_detox_lines(
    eng, line, send, clinical, ambulant, fires
):
    send(eng, *detox(line, clinical, ambulant))
    got = tick_ids(eng)
    assert ((f"clinical_detox_high:{AGB}:2026", "firing") in got) is fires


def test_clinical_detox_high_resolves_when_ambulant_detox_grows(eng, line, send):
    send(eng, *detox(line, 10, 10))
    assert tick_ids(eng) == [(f"clinical_detox_high:{AGB}:2026", "firing")]
    send(eng, *detox(line, 0, 1))
    assert tick_ids(eng) == [(f"clinical_detox_high:{AGB}:2026", "resolved")]


def adhd_clients(line, n: int, day: str, prefix: str = "") -> list[dict[str, Any]]:
    return [
        line(diagnosis_group="adhd", service_date=day, client_ref=f"{CLIENT}{prefix}{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("base", "now", "fires"),
    [(40, 50, True), (40, 49, False), (30, 38, True), (30, 37, False), (29, 100, False)],
)
def test_adhd_growth_at_a_quarter_of_growth_over_a_base_of_30(eng, line, send, base, now, fires):
    send(
        eng,
        *adhd_clients(line, base, "2025-05-01", "old"),
        *adhd_clients(line, now, "2026-06-01", "new"),
    )
    fx = eng.tick()
    got = [a for a in published(fx) if a["rule"] == "adhd_growth"]
    if fires:
        (event,) = got
        assert event["alert_id"] == f"adhd_growth:{AGB}:2026:Q2"
        assert event["value"] == pytest.approx(now / base - 1)
        assert event["threshold"] == 0.25
    else:
        assert got == []


def test_adhd_growth_resolves_when_credits_remove_clients(eng, line, send):
    now = adhd_clients(line, 50, "2026-04-01")
    send(eng, *adhd_clients(line, 40, "2025-04-01", "old"), *now)
    assert tick_ids(eng) == [(f"adhd_growth:{AGB}:2026:Q2", "firing")]
    send(eng, line.credit(now[0]))
    assert tick_ids(eng) == [(f"adhd_growth:{AGB}:2026:Q2", "resolved")]


@pytest.mark.parametrize(
    ("total", "digital", "fires"),
    [(200, 49, True), (200, 50, False), (199, 0, False), (200, 0, True)],
)
def test_digital_share_low_below_a_quarter_with_min_200_consults(
    eng, line, send, total, digital, fires
):
    send(
        eng,
        *consults(line, digital, digital=True, consult_mode="group"),
        *consults(line, total - digital, consult_mode="group"),
    )
    got = tick_ids(eng)
    assert ((f"digital_share_low:{AGB}:2026", "firing") in got) is fires
    assert tick_ids(eng) == []


def test_digital_share_low_resolves_when_the_target_is_met(eng, line, send):
    send(eng, *consults(line, 200, consult_mode="group"))
    assert tick_ids(eng) == [(f"digital_share_low:{AGB}:2026", "firing")]
    send(eng, *consults(line, 67, digital=True, consult_mode="group"))  # 67/267 > 0.25
    assert tick_ids(eng) == [(f"digital_share_low:{AGB}:2026", "resolved")]


def test_tick_alerts_carry_the_providers_latest_event_time(eng, line, send):
    send(eng, *detox(line, 20, 0), line(submitted_at="2026-08-08T08:00:00+02:00", activity="other"))
    (event,) = published(eng.tick())
    assert event["event_time"] == "2026-08-08T06:00:00Z"


def test_tick_of_some_providers_leaves_the_others_alone(eng, line, send):
    send(eng, *detox(line, 20, 0))
    send(eng, *[{**d, "provider_agb": "87654321"} for d in detox(line, 20, 0)])
    assert tick_ids(eng, providers=["87654321"]) == [
        ("clinical_detox_high:87654321:2026", "firing")
    ]
    assert tick_ids(eng) == [(f"clinical_detox_high:{AGB}:2026", "firing")]


def test_every_rule_fires_and_resolves_once_with_valid_alert_events(policy, line, send):
    """All seven rules on one provider: fire, evaluate again (nothing), resolve."""
    eng = Engine(policy, clock=lambda: NOW)
    eng.apply_contract(contract(100_000))
    history = [
        *consults(line, 10, practitioners=4, consult_mode="group", amount_cents=500),
        *consults(line, 190, amount_cents=500),
        *consults(line, 20, activity="stay", stay_days=1, detox="clinical", amount_cents=1),
        *adhd_clients(line, 30, "2025-02-01", "old"),
        *adhd_clients(line, 40, "2026-02-01", "new"),
        line(care_demand_type=2, setting=8),
    ]
    fired = published(send(eng, *history)) + published(eng.tick(peers={2026: Fraction(1)}))
    assert sorted(a["rule"] for a in fired) == sorted(
        [
            "ceiling_utilisation",
            "ceiling_utilisation",
            "ceiling_utilisation",
            "zvt_setting_mismatch",
            "group_share_low",
            "group_consult_staffing",
            "clinical_detox_high",
            "adhd_growth",
            "digital_share_low",
        ]
    )
    assert {a["state"] for a in fired} == {"firing"}
    assert len({a["alert_id"] for a in fired}) == len(fired)
    # the same state again: nothing is published twice
    assert send(eng, *history).alerts == []
    assert eng.tick(peers={2026: Fraction(1)}).alerts == []
    # undo everything: every alert resolves, once
    undo = [line.credit(h) for h in history]
    resolved = published(send(eng, *undo)) + published(eng.tick(peers={2026: Fraction(1)}))
    assert sorted(a["alert_id"] for a in resolved) == sorted(a["alert_id"] for a in fired)
    assert {a["state"] for a in resolved} == {"resolved"}
    assert {a["sequence"] for a in resolved} == {2}
    assert eng.tick().alerts == []
    assert send(eng, *undo, *history).alerts == []


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


def test_alert_events_mark_replays(policy, line, send):
    live, replay = Engine(policy), Engine(policy, replay=True)
    for eng in (live, replay):
        eng.apply_contract(contract(1_000_000))
    assert "replay" not in published(send(live, line(amount_cents=700_000)))[0]
    assert published(send(replay, line(amount_cents=700_000)))[0]["replay"] is True
