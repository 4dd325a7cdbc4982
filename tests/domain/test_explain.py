"""The ``explain`` object of alert events (streams/domain/explain.py, SPEC §8.3):
every shipped rule says the numerator and denominator behind its value, and a
ceiling transition says whether a line or a contract change made it, against which
contract version; its Dutch message names that cause."""

from __future__ import annotations

from typing import Any

import pytest

from streams.domain import explain
from streams.domain.engine import Engine
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
    assert event["explain"] == {
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
    assert event["explain"] == {"numerator": 1, "denominator": 3, "lines": 1}
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
    assert events["group_consult_staffing"]["explain"] == {"numerator": 3, "denominator": 4}
    assert events["clinical_detox_high"]["explain"] == {"numerator": 1, "denominator": 2}
    assert events["digital_share_low"]["explain"] == {"numerator": 0, "denominator": 8}
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
    assert event["explain"] == {"numerator": 2, "denominator": 1}
    assert "in het 1e kwartaal van 2026 2 cliënten met ADHD, 100% meer" in event["message"]
