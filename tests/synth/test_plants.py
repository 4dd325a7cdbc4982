"""Plants are sized from the policy: with thresholds far from the defaults every rule
is still planted past them, and the alert ids and thresholds the engine reports are
the policy's."""

from __future__ import annotations

import tomllib
from pathlib import Path
from random import Random
from typing import Any

import orjson
import pytest

from streams.domain.policy import DEFAULT_POLICY_PATH, Policy, load_policy, parse_policy
from streams.domain.rules import RULES as REGISTRY
from streams.replay.offline import replay_offline
from streams.synth.contracts import expected_net
from streams.synth.generate import GenerateOptions, GenerateSummary, generate
from streams.synth.history import History
from streams.synth.plants import Plant, plant
from streams.synth.providers import build_providers
from streams.synth.tables import weighted_table

RULES = {
    "ceiling_utilisation",
    "group_share_low",
    "group_consult_staffing",
    "clinical_detox_high",
    "adhd_growth",
    "zvt_setting_mismatch",
    "digital_share_low",
    "ceiling_pace_high",
    "ceiling_underrun",
    "group_share_not_rising",
    "department_activity_drop",
    "department_stopped",
    "region_category_gap",  # SPEC §9: not a provider rule, judged over all of them
} & {*REGISTRY.names(), "region_category_gap"}


def _policy(**sections: dict[str, Any]) -> Policy:
    raw = tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    for name, values in sections.items():
        raw[name].update(values)
    if "min_clients" in raw["clinical_detox_high"]:  # the section as of SPEC §8.4
        raw["clinical_detox_high"]["min_clients"] = 30
    return parse_policy(raw, source="test")


# Each threshold moved to where a plant sized for the default policy would miss it.
STRICT = _policy(
    ceiling_utilisation={"thresholds": [1.5, 2.0, 2.5]},
    group_share_low={"factor": 0.2},
    group_consult_staffing={"min_count": 30, "min_share": 0.2},
    clinical_detox_high={"threshold": 0.8},
    adhd_growth={"threshold": 1.0, "min_base": 40},
    zvt_setting_mismatch={"settings": [6], "care_demand_types": [3, 4]},
    digital_share_low={"target": 0.08},
)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    return generate(tmp_path_factory.mktemp("strict"), GenerateOptions(), STRICT)


def test_every_rule_is_planted_past_a_policy_far_from_the_defaults(
    strict: GenerateSummary,
) -> None:
    # A must-not-fire case may be left out at a size; every rule that must fire is planted.
    assert all("this release has no rule" in s or "per-day" in s for s in strict.skipped)
    assert {a.rule for a in strict.planted} == RULES


@pytest.mark.parametrize(
    ("rule", "threshold"),
    [
        ("clinical_detox_high", 0.8),
        ("adhd_growth", 1.0),
        ("digital_share_low", 0.08),
        ("group_consult_staffing", 0.2),
        ("ceiling_utilisation", 1.5),
    ],
)
def test_the_planted_alert_carries_the_policy_threshold(
    strict: GenerateSummary, rule: str, threshold: float
) -> None:
    (anomaly,) = [
        a
        for a in strict.planted
        if a.rule == rule and a.year == 2026 and a.case != "lowered_ceiling"
    ]
    assert anomaly.expected["threshold"] == threshold
    value = anomaly.expected["value"]
    assert value < threshold if rule == "digital_share_low" else value >= threshold


def test_the_planted_counts_clear_the_policy_minimums(strict: GenerateSummary) -> None:
    by_rule = {a.rule: a.expected for a in strict.planted if a.year == 2026}
    assert by_rule["group_consult_staffing"]["group_ge4"] >= 30
    assert by_rule["adhd_growth"]["base_clients"] >= 40
    assert (
        by_rule["group_share_low"]["value"]
        < 0.2 * by_rule["group_share_low"]["peer_group_share_mean"]
    )
    ceiling = next(a for a in strict.planted if a.case == "early_ceiling")
    assert ceiling.alert_id.endswith(":2026:150")
    assert ceiling.expected["event_time"] < "2026-07"


def test_only_the_planted_provider_mismatches_the_policy_types_and_settings(
    strict: GenerateSummary,
) -> None:
    (anomaly,) = [a for a in strict.planted if a.rule == "zvt_setting_mismatch"]
    _, engine = replay_offline([strict.declarations_path], STRICT, contracts=strict.contracts_path)
    mismatching = {
        (st.provider, year)
        for st in engine.providers.values()
        for year, ys in st.years.items()
        if ys.mismatch
    }
    assert mismatching == {(anomaly.provider_agb, 2026)}


def test_the_mismatch_plant_gives_its_provider_a_setting_of_the_policy() -> None:
    providers = build_providers(Random(3), 8)
    for p in providers:  # no provider works in setting 7 of its own
        p.consult_settings = weighted_table({1: 0.5, 3: 0.5})
    volume = {(p.index, y): 10_000 for p in providers for y in (2025, 2026)}
    policy = _policy(zvt_setting_mismatch={"settings": [7]})
    planting = plant(Random(3), (2025, 2026), providers, volume, policy)
    (planted,) = [x for x in planting.plants if x.rule == "zvt_setting_mismatch"]
    assert 7 in planted.provider.consult_settings
    assert planted.provider.mismatch_years == {2026}


def test_a_minimum_no_provider_reaches_is_named_in_the_skip_reason(tmp_path: Path) -> None:
    policy = _policy(group_share_low={"min_consults": 50_000})
    summary = generate(tmp_path, GenerateOptions(providers=12, lines=20_000, seed=7), policy)
    assert "group_share_low: no provider with 100000+ consults a year" in "\n".join(summary.skipped)
    assert "group_share_low" not in {a.rule for a in summary.planted}


def test_the_planted_file_names_the_policy(strict: GenerateSummary) -> None:
    planted = orjson.loads(strict.planted_path.read_bytes())
    assert planted["policy"] == "test"


def _history() -> History:
    return History(GenerateOptions(), load_policy())


def test_the_spend_plants_shape_the_months_and_size_the_ceiling() -> None:
    """The early over-spender crowds its year into the months judged first, against a
    normal year before; the seasonal provider has the same uneven year every year; the
    underrun's ceiling lies well above its spend; the lowered ceiling comes in September."""
    h = _history()
    cases = {pl.case: pl for pl in h.planting.plants}

    def months(pl: Plant, y: int) -> list[int]:
        return [h.plan.cells[(pl.provider.index, y, m)].debits for m in range(1, 13)]

    over = cases["early_overspend"]
    now, before = months(over, 2026), months(over, 2025)
    assert sum(now[:3]) / sum(now) >= 1.3 * sum(before[:3]) / sum(before)
    seasonal = cases["seasonal"]
    a, b = months(seasonal, 2025), months(seasonal, 2026)
    assert abs(sum(a[:3]) / sum(a) - sum(b[:3]) / sum(b)) < 0.01
    assert sum(b[:3]) / sum(b) * 4 * 0.95 >= 1.2  # an even spread would project over 110 %
    ceilings = h.contracts.ceilings
    under = cases["ceiling_underrun"].provider
    net = expected_net(under, 2026, h.plan.volume[(under.index, 2026)], h.choices)
    (ceiling,) = ceilings[(under.index, 2026)]
    assert net / ceiling < 0.8 * 0.90 * 1.02  # well under the underrun threshold
    v1, v2 = ceilings[(cases["lowered_ceiling"].provider.index, 2026)]
    assert v2 < 0.9 * v1


@pytest.mark.skipif(
    "ceiling_pace_high" not in REGISTRY or "ceiling_underrun" not in REGISTRY,
    reason="the pace rules are not in this release",
)
def test_the_pace_plants_fire_in_the_month_they_are_first_judged(
    tmp_path: Path,
) -> None:
    summary = generate(tmp_path, GenerateOptions())
    when = {a.case: a.when for a in summary.planted}
    assert when["early_overspend"] == "2026-05"  # M = 3 once March ended 30 days ago
    assert when["ceiling_underrun"] == "2026-08"  # M = 6
    (seasonal,) = [q for q in summary.must_not_fire if q.case == "seasonal"]
    assert seasonal.seen["previous_year_fired"]  # the even spread of its first year misled
