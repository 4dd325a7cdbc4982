"""The ``explain`` object of alert events (streams/domain/explain.py, SPEC §8.3):
every shipped rule says the numerator and denominator behind its value, and a
ceiling transition says whether a line or a contract change made it, against which
contract version; its Dutch message names that cause."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from streams.domain import explain, rules
from streams.domain import state as state_module
from streams.domain.engine import Engine
from streams.domain.rules import zvt_setting_mismatch
from streams.domain.rules.registry import SHIPPED
from streams.store.codec import Journal
from tests.conftest import LineFactory
from tests.domain.rules.rule_helpers import AGB, NOW, consults, contract, published

CEILING_70 = f"ceiling_utilisation:{AGB}:2026:70"


@pytest.fixture
def eng(policy) -> Engine:
    return Engine(policy, clock=lambda: NOW)


def only(fx: Any, alert_id: str) -> dict[str, Any]:
    (event,) = [a for a in published(fx) if a["alert_id"] == alert_id]
    return event


# -- build ----------------------------------------------------------------------------


def test_build_takes_the_spec_fields_of_the_context_and_nothing_else():
    ctx = {"numerator": 3, "denominator": 4, "peer_mean": 0.3, "cause": "declarations"}
    assert explain.build(ctx) == {"cause": "declarations", "numerator": 3, "denominator": 4}
    assert explain.build({"peer_mean": 0.3}) is None


def test_build_keeps_the_first_ten_line_ids():
    got = explain.build({"line_ids": [f"L{i}" for i in range(12)], "lines": 12})
    assert got == {"lines": 12, "line_ids": [f"L{i}" for i in range(10)]}


# -- the ceiling rule: cause and contract version ------------------------------------


def test_a_line_that_crosses_explains_declarations_against_the_contract_version(
    eng, feed, make_line
):
    eng.apply_contract(contract(1_000_000, version=2))
    event = only(feed(eng, make_line(amount_cents=700_000)), CEILING_70)
    assert event["explain"] == {
        "cause": "declarations",
        "contract_version": 2,
        "numerator": 700_000,
        "denominator": 1_000_000,
        "breakdown": [
            {"by": "setting", "key": 1, "cents": 700_000, "lines": 1},
            {"by": "department", "key": None, "cents": 700_000, "lines": 1},
        ],
        # no month of 2026 covered yet at this line's submission: no projection
        "pace": {
            "covered_month": 0,
            "expected_share": 0.0,
            "projected_cents": None,
            "ceiling_cents": 1_000_000,
        },
    }
    assert event["message"] == (
        "GGZ Voorbeeld (AGB-code 12345678) heeft 70% van het zorgkostenplafond 2026 benut "
        "(€ 7.000 van € 10.000) en is daarmee over de drempel van 70%."
    )


def test_a_lowered_ceiling_is_a_contract_change_and_the_message_says_so(eng, feed, make_line):
    eng.apply_contract(contract(1_000_000))
    feed(eng, make_line(amount_cents=600_000))
    fx = eng.apply_contract(contract(800_000, version=3, updated_at="2026-10-01T00:00:00Z"))
    event = only(fx, CEILING_70)
    assert {k: v for k, v in event["explain"].items() if k not in ("breakdown", "pace")} == {
        "cause": "contract_change",
        "contract_version": 3,
        "numerator": 600_000,
        "denominator": 800_000,
    }
    assert event["message"] == (
        "GGZ Voorbeeld (AGB-code 12345678) is na verlaging van het zorgkostenplafond 2026 "
        "(contractversie 3) over de drempel van 70%: 75% benut (€ 6.000 van € 8.000), "
        "terwijl de declaraties niet zijn gestegen."
    )


def test_a_raised_ceiling_resolves_as_a_contract_change_and_credits_as_declarations(
    eng, feed, make_line
):
    eng.apply_contract(contract(1_000_000))
    big = make_line(amount_cents=750_000)
    feed(eng, big)
    raised = only(eng.apply_contract(contract(2_000_000, version=2)), CEILING_70)
    assert raised["state"] == "resolved"
    assert raised["explain"]["cause"] == "contract_change"
    assert "na verhoging van het zorgkostenplafond 2026 (contractversie 2)" in raised["message"]
    assert "weer onder de drempel van 70%" in raised["message"]
    eng.apply_contract(contract(1_000_000, version=3))  # lowered again: fires
    credited = only(feed(eng, make_line.credit(big)), CEILING_70)
    assert credited["state"] == "resolved"
    assert credited["explain"]["cause"] == "declarations"
    assert credited["explain"]["contract_version"] == 3
    assert "na creditering weer onder de drempel van 70%" in credited["message"]


def test_a_first_contract_after_the_lines_is_named_as_such(eng, feed, make_line):
    feed(eng, make_line(amount_cents=800_000))
    event = only(eng.apply_contract(contract(1_000_000)), CEILING_70)
    assert event["explain"]["cause"] == "contract_change"
    assert "nu het zorgkostenplafond 2026 is vastgelegd (contractversie 1)" in event["message"]
    assert "verlaging" not in event["message"]


def test_english_by_policy(policy_with, feed, make_line):
    eng = Engine(policy_with(**{"messages.language": "en"}), clock=lambda: NOW)
    eng.apply_contract(contract(1_000_000))
    feed(eng, make_line(amount_cents=600_000))
    event = only(eng.apply_contract(contract(800_000, version=3)), CEILING_70)
    assert event["message"] == (
        "GGZ Voorbeeld (12345678) has passed the 70% threshold after its 2026 cost ceiling "
        "was lowered (contract version 3): 75% used (€6,000 of €8,000), while its "
        "declarations did not grow."
    )


# -- numerator and denominator of the other rules ------------------------------------


def test_zvt_mismatch_explains_mismatching_lines_against_the_lines_of_the_year(
    eng, feed, make_line
):
    fx = feed(
        eng,
        make_line(),
        make_line(),
        make_line(activity="stay", setting=5, care_demand_type=1, stay_days=3),
    )
    event = only(fx, f"zvt_setting_mismatch:{AGB}:2026")
    assert {k: v for k, v in event["explain"].items() if k != "breakdown"} == {
        "numerator": 1,
        "denominator": 3,
        "lines": 1,
        "cents": 10_000,
        "line_ids": ["l3"],
    }
    assert "(1 declaratieregel)" in event["message"]


def test_structural_rules_explain_their_value(policy_with, feed, make_line):
    policy = policy_with(
        **{
            "group_consult_staffing.min_count": 1,
            "clinical_detox_high.min_clients": 1,
            "digital_share_low.min_clients": 1,
        }
    )
    eng = Engine(policy, clock=lambda: NOW)
    feed(
        eng,
        *consults(make_line, 3, consult_mode="group", practitioners=4),
        *consults(make_line, 1, consult_mode="group", practitioners=2),
        *consults(make_line, 4),
        make_line(activity="stay", stay_days=2, setting=5, detox="clinical"),
        make_line(activity="other", detox="ambulant"),
    )
    events = {a["rule"]: a for a in published(eng.tick())}
    figures = {
        rule: (e["explain"]["numerator"], e["explain"]["denominator"]) for rule, e in events.items()
    }
    assert figures["group_consult_staffing"] == (3, 4)
    assert figures["clinical_detox_high"] == (1, 2)
    assert figures["digital_share_low"] == (0, 8)
    assert (
        "3 groepsconsulten met 4 of meer behandelaars (75% van de groepsconsulten)"
        in (events["group_consult_staffing"]["message"])
    )


def test_adhd_growth_explains_the_quarters_clients_against_a_year_earlier(
    policy_with, feed, make_line
):
    eng = Engine(policy_with(**{"adhd_growth.min_base": 1}), clock=lambda: NOW)
    adhd = {"diagnosis_group": "adhd"}
    feed(
        eng,
        make_line(client_ref="PSEUDO-CLIENT-a", service_date="2025-02-03", **adhd),
        make_line(client_ref="PSEUDO-CLIENT-a", service_date="2026-02-03", **adhd),
        make_line(client_ref="PSEUDO-CLIENT-b", service_date="2026-02-04", **adhd),
    )
    event = only(eng.tick(), f"adhd_growth:{AGB}:2026:Q1")
    assert event["explain"]["numerator"] == 2 and event["explain"]["denominator"] == 1
    assert "in het 1e kwartaal van 2026 2 cliënten met ADHD, 100% meer" in event["message"]


# -- breakdown (SPEC §8.3): the lines the rule measures, by the dimensions it names ---


def test_every_shipped_rule_declares_the_lines_and_dimensions_spec_names():
    assert {r.name: r.explains for r in rules.RULES if r.name in SHIPPED} == {
        "ceiling_utilisation": ("all", ("setting", "department")),
        "group_share_low": ("consult", ("department",)),
        "group_consult_staffing": ("consult", ("department",)),
        "clinical_detox_high": ("detox", ("department",)),
        "adhd_growth": ("adhd", ("department",)),
        "zvt_setting_mismatch": ("mismatch", ("department", "prestatie_code")),
        "digital_share_low": ("consult", ("department",)),
        "ceiling_pace_high": ("all", ("setting", "department")),
        "ceiling_underrun": ("all", ("setting", "department")),
        "group_share_not_rising": ("consult", ("department",)),
        # SPEC §8.3: department and region rules have no breakdown
        "department_activity_drop": None,
        "department_stopped": None,
    }


@pytest.mark.parametrize(
    ("explains", "why"),
    [(("spent", ("department",)), "unknown subset"), (("all", ("region",)), "unknown dim")],
)
def test_a_rule_cannot_declare_a_subset_or_dimension_the_state_does_not_keep(explains, why):
    with pytest.raises(ValueError, match=why):
        dataclasses.replace(rules.rule("ceiling_utilisation"), explains=explains)


def test_a_ceiling_transition_breaks_down_all_lines_net_of_credits_top_five(eng, feed, make_line):
    eng.apply_contract(contract(1_000_000))
    departments = ["a", "b", "c", "d", "e", "f"]
    lines = [
        make_line(amount_cents=10_000 * (i + 1), department=d, setting=1 + i % 2)
        for i, d in enumerate(departments)
    ]
    credited = make_line(amount_cents=200_000, department="f", setting=3)
    feed(eng, *lines, credited, make_line.credit(credited))  # 210,000: below 70%
    event = only(feed(eng, make_line(amount_cents=490_000, department=..., setting=2)), CEILING_70)
    assert event["explain"]["breakdown"] == [
        {"by": "setting", "key": 2, "cents": 610_000, "lines": 4},
        {"by": "setting", "key": 1, "cents": 90_000, "lines": 3},
        # setting 3 held only the credited line: it is gone, not a row of 0
        {"by": "department", "key": None, "cents": 490_000, "lines": 1},
        {"by": "department", "key": "f", "cents": 60_000, "lines": 1},
        {"by": "department", "key": "e", "cents": 50_000, "lines": 1},
        {"by": "department", "key": "d", "cents": 40_000, "lines": 1},
        {"by": "department", "key": "c", "cents": 30_000, "lines": 1},
    ]


def test_structural_rules_break_down_only_the_lines_they_measure(policy_with, feed, make_line):
    policy = policy_with(
        **{
            "group_consult_staffing.min_count": 1,
            "clinical_detox_high.min_clients": 1,
            "adhd_growth.min_base": 1,
        }
    )
    eng = Engine(policy, clock=lambda: NOW)
    adhd = {"diagnosis_group": "adhd"}
    fx = feed(
        eng,
        *consults(
            make_line,
            2,
            consult_mode="group",
            practitioners=4,
            department="groep",
            amount_cents=5_000,
        ),
        make_line(activity="other", department="balie", amount_cents=99_000),
        make_line(activity="stay", stay_days=2, setting=5, detox="clinical", department="kliniek"),
        make_line(activity="other", detox="ambulant", department="poli", amount_cents=3_000),
        # Q1 2026: two clients against one a year earlier, the second after the May
        # line (so Q1 fires at the end, with Q2's line in the state); Q2 has no base
        make_line(service_date="2025-02-03", department="adhd-team", **adhd),
        make_line(service_date="2026-02-03", department="adhd-team", **adhd),
        make_line(service_date="2026-05-04", department="adhd-laat", **adhd),
        make_line(service_date="2026-02-04", department="adhd-team", **adhd),
    )
    # (the line of May crosses a month boundary: some fire there, the rest at the end)
    fired = published(fx) + published(eng.tick())
    events = {a["alert_id"]: a["explain"]["breakdown"] for a in fired}
    assert events[f"group_consult_staffing:{AGB}:2026"] == [
        # fired at the boundary the May line crosses, before it: a tie, ordered by key
        {"by": "department", "key": "adhd-team", "cents": 10_000, "lines": 1},
        {"by": "department", "key": "groep", "cents": 10_000, "lines": 2},
    ]
    assert events[f"clinical_detox_high:{AGB}:2026"] == [
        {"by": "department", "key": "kliniek", "cents": 10_000, "lines": 1},
        {"by": "department", "key": "poli", "cents": 3_000, "lines": 1},
    ]
    assert events[f"adhd_growth:{AGB}:2026:Q1"] == [
        {"by": "department", "key": "adhd-team", "cents": 20_000, "lines": 2},
    ]


def test_a_breakdown_is_computed_per_transition_not_per_line(eng, feed, make_line, monkeypatch):
    calls = []
    real = explain.breakdown
    monkeypatch.setattr(explain, "breakdown", lambda *a: calls.append(a) or real(*a))
    eng.apply_contract(contract(1_000_000))
    fx = feed(eng, *(make_line(amount_cents=10_000) for _ in range(75)))
    assert [a["alert_id"] for a in published(fx)] == [CEILING_70]
    assert len(calls) == 1


# -- zvt mismatch: net lines, cents, and the first ten line ids ----------------------


def test_zvt_explains_uncredited_mismatching_lines_in_arrival_order(policy):
    eng = Engine(policy, clock=lambda: NOW)
    factory = LineFactory()
    mismatching = [
        factory(
            activity="stay",
            setting=5,
            care_demand_type=2,
            stay_days=1,
            amount_cents=1_000 + i,
            department="kliniek",
            prestatie_code=f"VB{i % 2}",
        )
        for i in range(13)
    ]
    lines = [*mismatching[:5], factory(), *mismatching[5:], factory.credit(mismatching[1])]
    eng.process_lines([orjson.dumps(line) for line in lines])
    st = eng.providers[AGB]
    finding = zvt_setting_mismatch.finding(st.years[2026], policy.mismatch, 2026)
    why = explain.build({}, st, finding, zvt_setting_mismatch.RULE.explains)
    assert why is not None
    kept = [m for i, m in enumerate(mismatching) if i != 1]
    assert why["lines"] == 12
    assert why["cents"] == sum(m["amount_cents"] for m in kept)
    assert why["line_ids"] == [m["line_id"] for m in kept[:10]]
    assert why["breakdown"] == [
        {"by": "department", "key": "kliniek", "cents": why["cents"], "lines": 12},
        {"by": "prestatie_code", "key": "VB0", "cents": 7 * 1_000 + 42, "lines": 7},
        {"by": "prestatie_code", "key": "VB1", "cents": 5 * 1_000 + 35, "lines": 5},
    ]


@pytest.mark.parametrize("journal", [False, True], ids=["offline", "worker"])
def test_zvt_keeps_a_bounded_number_of_line_ids_but_sums_every_mismatching_line(
    policy, monkeypatch, journal
):
    """The kept ids ride in the checkpoint's years record: a provider with a flood of
    mismatching lines keeps the first MISMATCH_IDS_KEPT, while lines and cents count
    every uncredited one."""
    monkeypatch.setattr(state_module, "MISMATCH_IDS_KEPT", 12)
    eng = Engine(policy, clock=lambda: NOW, journal=journal)
    if journal:
        eng.journals = Journal
    factory = LineFactory()
    mismatching = [
        factory(activity="stay", setting=5, care_demand_type=2, stay_days=1, amount_cents=100 + i)
        for i in range(30)
    ]
    eng.process_lines([orjson.dumps(line) for line in mismatching])
    eng.process_lines([orjson.dumps(factory.credit(mismatching[0]))])
    st = eng.providers[AGB]
    ys = st.years[2026]
    assert len(ys.mismatch_ids) == 11  # 12 kept, one of them credited since
    finding = zvt_setting_mismatch.finding(ys, policy.mismatch, 2026)
    why = explain.build({}, st, finding, zvt_setting_mismatch.RULE.explains)
    assert why is not None
    assert why["lines"] == 29
    assert why["cents"] == sum(100 + i for i in range(1, 30))
    assert why["line_ids"] == [m["line_id"] for m in mismatching[1:11]]


def test_a_ceiling_alert_explains_its_pace_at_the_providers_watermark(eng, feed, make_line):
    """SPEC §8.3: ceiling alerts carry ``pace``. Four months of 2,500 euros, submitted
    on 15 June: April ended 45 days before, May only 14 (lag 30), so M = 4; no
    previous year, so E(4) = 4/12 and the year lands at 30,000 euros."""
    eng.apply_contract(contract(1_200_000))
    lines = [
        make_line(
            amount_cents=250_000,
            service_date=f"2026-{month:02d}-10",
            submitted_at="2026-06-15T12:00:00Z",
        )
        for month in (1, 2, 3, 4)
    ]
    event = only(feed(eng, *lines), CEILING_70)
    assert event["explain"]["pace"] == {
        "covered_month": 4,
        "expected_share": pytest.approx(4 / 12),
        "projected_cents": 3_000_000,
        "ceiling_cents": 1_200_000,
    }
