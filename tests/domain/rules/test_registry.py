"""The registry of rules (streams/domain/rules/registry.py), and what must agree with it:
the policy files' sections, the alert schema, the engine's tick over every rule.
"""

from __future__ import annotations

import re
import tomllib
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from streams.domain import schemas
from streams.domain.engine import Engine
from streams.domain.errors import PolicyError
from streams.domain.policy import (
    DEFAULT_POLICY_PATH,
    ENGINE_SECTIONS,
    OPTIONAL_SECTIONS,
    load_policy,
    parse_policy,
)
from streams.domain.rules import RULES, rule
from streams.domain.rules.base import Rule
from tests.domain.rules.rule_helpers import (
    AGB,
    NOW,
    adhd_clients,
    consults,
    contract,
    detox,
    published,
    tick_ids,
)

REPO = Path(__file__).resolve().parents[3]


def _configmap_policy() -> str:
    docs = yaml.safe_load_all((REPO / "deploy" / "k8s" / "configmap.yaml").read_text("utf-8"))
    (text,) = [d["data"]["policy.toml"] for d in docs if d and "policy.toml" in d.get("data", {})]
    return str(text)


POLICY_FILES = {
    "streams/policy.default.toml": lambda: DEFAULT_POLICY_PATH.read_text("utf-8"),
    "tests/golden/policy.toml": lambda: (REPO / "tests/golden/policy.toml").read_text("utf-8"),
    "deploy/k8s/configmap.yaml": _configmap_policy,
}


def test_the_registry_holds_the_rules_of_spec_section_5_in_their_order():
    assert RULES.names() == (
        "ceiling_utilisation",
        "group_share_low",
        "group_consult_staffing",
        "clinical_detox_high",
        "adhd_growth",
        "zvt_setting_mismatch",
        "digital_share_low",
    )
    assert [r.name for r in RULES.structural()] == [
        "group_share_low",
        "group_consult_staffing",
        "clinical_detox_high",
        "adhd_growth",
        "digital_share_low",
    ]
    assert rule("adhd_growth").reads == "adhd"
    with pytest.raises(KeyError, match="no rule named"):
        rule("no_such_rule")


def test_the_shipped_defaults_have_exactly_a_section_per_rule_and_the_engines():
    sections = set(tomllib.loads(DEFAULT_POLICY_PATH.read_text("utf-8")))
    expected = {*RULES.names(), *ENGINE_SECTIONS}
    assert sections == expected, (
        f"streams/policy.default.toml: sections missing {sorted(expected - sections)}, "
        f"unknown {sorted(sections - expected)}; a rule's defaults are its section there "
        "(docs/adding-a-rule.md)"
    )


@pytest.mark.parametrize("name", list(POLICY_FILES))
def test_every_policy_file_loads_and_names_only_known_sections(name, tmp_path):
    """An operator's copy may leave a rule out (it then runs on the shipped
    defaults); whatever it names must be a rule or an engine section."""
    text = POLICY_FILES[name]()
    sections = set(tomllib.loads(text))
    assert sections <= {*RULES.names(), *ENGINE_SECTIONS}
    assert set(ENGINE_SECTIONS) - set(OPTIONAL_SECTIONS) <= sections
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    assert load_policy(path).source == str(path)


def test_a_rule_section_an_operators_file_leaves_out_is_the_shipped_default(tmp_path):
    body = DEFAULT_POLICY_PATH.read_text("utf-8")
    start = body.index("[digital_share_low]")
    end = body.index("\n[", start + 1)
    changed = body.replace("\nfactor = 0.5\n", "\nfactor = 0.4\n")
    assert changed != body
    path = tmp_path / "policy.toml"
    path.write_text(changed[:start] + changed[end + 1 :], encoding="utf-8")
    ours, shipped = load_policy(path), load_policy()
    assert ours.defaulted == ("digital_share_low",) and shipped.defaulted == ()
    assert ours.digital == shipped.digital
    assert ours.group_share.factor == 0.4  # what the file does say still counts
    # the defaults file itself must name every rule
    path.write_text(body[:start] + body[end + 1 :], encoding="utf-8")
    with pytest.raises(PolicyError, match=r"\[digital_share_low\] is missing"):
        parse_policy(tomllib.loads(path.read_text("utf-8")), defaults={})


def test_the_alert_schema_admits_every_rule_name_without_listing_them():
    rule_schema = schemas.load_schema(schemas.ALERT)["properties"]["rule"]
    assert "enum" not in rule_schema  # a new rule needs no schema edit
    for name in RULES.names():
        assert re.fullmatch(rule_schema["pattern"], name), name


def test_a_rule_is_registered_once_and_a_structural_rule_has_an_evaluation():
    with pytest.raises(ValueError, match="twice"):
        RULES.register(rule("adhd_growth"))
    with pytest.raises(ValueError, match="evaluate"):
        Rule("x", "structural", dict, "consults", rule("adhd_growth").message)


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


# -- the engine's tick over the registry's rules -----------------------------------------


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


def test_alert_events_mark_replays(policy, line, send):
    live, replay = Engine(policy), Engine(policy, replay=True)
    for eng in (live, replay):
        eng.apply_contract(contract(1_000_000))
    assert "replay" not in published(send(live, line(amount_cents=700_000)))[0]
    assert published(send(replay, line(amount_cents=700_000)))[0]["replay"] is True
