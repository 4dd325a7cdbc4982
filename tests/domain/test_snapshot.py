"""The indicator snapshot (streams/domain/snapshot.py): the shape of SPEC §6 with the
indicators of §4, the peer means, and partial snapshots merged into the whole.

The values of the indicators are tested in test_indicators.py; here, what is in the
snapshot, under which key, of which type, and that merging the partial snapshots of
workers gives the snapshot of one engine that saw everything.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.contracts import Contract
from streams.domain.engine import Engine
from streams.domain.snapshot import merge_snapshots
from tests.conftest import AGB, make_contract

B, C = "22222222", "33333333"

# SPEC §4, as §6 names them in a provider-year's entry
SECTION_4 = {
    "net_cents",
    "ceiling_utilisation",
    "consults",
    "group_consults",
    "group_share",
    "group_ge4",
    "group_over2_share",
    "detox_clinical",
    "detox_ambulant",
    "clinical_detox_share",
    "adhd_clients",
    "adhd_growth",
    "digital_share",
    "zvt_setting_mismatch",
}
# SPEC §8.1, §8.2 and §8.4
PART_TWO = {
    "net_cents_by_month",
    "covered_month",
    "projected_cents",
    "pace_ratio",
    "detox_clients_all",
    "detox_clients_clinical",
    "clinical_detox_client_share",
    "consult_clients",
    "digital_clients",
    "digital_client_share",
    "departments",  # SPEC §9
}
RATIOS = {"ceiling_utilisation", "group_share", "group_over2_share", "clinical_detox_share"}
RATIOS |= {"digital_share", "clinical_detox_client_share", "digital_client_share"}
PACE = {"projected_cents", "pace_ratio"}  # undefined before min_months are covered
COUNTS = {"accepted", "duplicate", "duplicate_line", "duplicate_credit", "rejected"}


def lines(make_line: Any, agb: str, consults: int, group: int, year: int = 2026) -> list[Any]:
    return [
        make_line(
            provider_agb=agb,
            service_date=f"{year}-03-01",
            consult_mode="group" if i < group else "individual",
            practitioners=2 if i < group else 1,
        )
        for i in range(consults)
    ]


def test_snapshot_holds_exactly_the_indicators_of_spec_sections_4_and_8(engine, make_line, feed):
    feed(engine, make_line(), make_line(service_date="2025-06-01"))
    snap = engine.snapshot()
    assert set(snap) == {"providers", "peers", "regions", "counts"}
    for year in ("2025", "2026"):
        assert set(snap["providers"][AGB][year]) == SECTION_4 | PART_TWO


def test_ratios_are_floats_or_null_and_counts_and_cents_integers(engine, make_line, feed):
    engine.apply_contract(Contract.from_event(make_contract(ceiling_cents=40_000)))
    feed(
        engine,
        make_line(amount_cents=10_000, consult_mode="group", practitioners=4, digital=True),
        make_line(amount_cents=5_000, activity="other", detox="clinical"),
    )
    got = engine.snapshot()["providers"][AGB]["2026"]
    for name in RATIOS:
        assert type(got[name]) is float, name
    for name in (
        (SECTION_4 | PART_TWO) - RATIOS - PACE - {"adhd_clients", "adhd_growth", "departments"}
    ):
        if name == "net_cents_by_month":
            assert [type(c) for c in got[name]] == [int] * 12
        else:
            assert type(got[name]) is int, name
    assert got["ceiling_utilisation"] == 15_000 / 40_000
    feed(engine, make_line(service_date="2025-01-01", activity="other"))
    undefined = engine.snapshot()["providers"][AGB]["2025"]  # no contract, no consults
    assert all(undefined[name] is None for name in RATIOS)


def pace_history(make_line: Any) -> list[Any]:
    """2025: 2,000,000 cents, 800,000 of them in January-March; 2026: 600,000 in
    January-March, the last line submitted 2026-05-10T00:00Z (SPEC §8.1's example:
    with lag 30, March is the last covered month)."""

    def at(day: str, cents: int, submitted: str) -> Any:
        return make_line(service_date=day, amount_cents=cents, submitted_at=submitted)

    return [
        at("2025-01-15", 300_000, "2025-02-01T10:00:00Z"),
        at("2025-03-15", 500_000, "2025-04-01T10:00:00Z"),
        at("2025-07-15", 1_200_000, "2025-08-01T10:00:00Z"),
        at("2026-01-15", 100_000, "2026-02-01T10:00:00Z"),
        at("2026-02-15", 200_000, "2026-03-01T10:00:00Z"),
        at("2026-03-15", 300_000, "2026-05-10T00:00:00Z"),
    ]


def test_pace_figures_at_the_watermark_weighted_by_the_previous_year(engine, make_line, feed):
    engine.apply_contract(Contract.from_event(make_contract(ceiling_cents=1_000_000)))
    feed(engine, *pace_history(make_line))
    got = engine.snapshot()["providers"][AGB]
    # E(3) = 800,000 / 2,000,000 = 0.4: 600,000 / 0.4 = 1,500,000 against 1,000,000
    assert (got["2026"]["covered_month"], got["2026"]["projected_cents"]) == (3, 1_500_000)
    assert got["2026"]["pace_ratio"] == 1.5
    # 2025 is over: all twelve months covered, the projection is its net; no contract
    assert (got["2025"]["covered_month"], got["2025"]["projected_cents"]) == (12, 2_000_000)
    assert got["2025"]["pace_ratio"] is None


def test_pace_figures_spread_evenly_below_min_prior_cents(policy_with, make_line, feed):
    engine = Engine(policy_with(**{"pace.min_prior_cents": 2_000_001}), clock=lambda: 0.0)
    feed(engine, *pace_history(make_line))
    got = engine.snapshot()["providers"][AGB]["2026"]
    assert (got["covered_month"], got["projected_cents"], got["pace_ratio"]) == (3, 2_400_000, None)


def test_adhd_figures_are_keyed_by_the_quarters_of_that_year_that_had_adhd_lines(
    engine, make_line, feed
):
    feed(
        engine,
        make_line(diagnosis_group="adhd", client_ref="a", service_date="2025-02-01"),
        make_line(diagnosis_group="adhd", client_ref="a", service_date="2026-02-01"),
        make_line(diagnosis_group="adhd", client_ref="b", service_date="2026-02-02"),
        make_line(diagnosis_group="adhd", client_ref="a", service_date="2026-08-01"),
        make_line(diagnosis_group="depression", service_date="2026-05-01"),
    )
    year = engine.snapshot()["providers"][AGB]["2026"]
    assert year["adhd_clients"] == {"2026-Q1": 2, "2026-Q3": 1}
    assert year["adhd_growth"] == {"2026-Q1": 1.0, "2026-Q3": None}  # no base in 2025-Q3
    assert engine.snapshot()["providers"][AGB]["2025"]["adhd_clients"] == {"2025-Q1": 1}


def test_a_provider_year_appears_once_it_has_an_accepted_line(engine, make_line, feed):
    feed(
        engine,
        make_line(provider_agb=C, amount_cents=0),  # schema rejection
        make_line.credit(make_line(provider_agb=B)),  # orphan credit
    )
    assert engine.snapshot()["providers"] == {}
    feed(engine, make_line(provider_agb=C), make_line(provider_agb=B, service_date="2025-05-01"))
    providers = engine.snapshot()["providers"]
    assert list(providers) == [B, C]  # ordered by AGB
    assert list(providers[B]) == ["2025"] and list(providers[C]) == ["2026"]


def test_counts_hold_the_outcomes_and_rejections_by_reason(engine, make_line, feed):
    debit = make_line()
    credit = make_line.credit(debit)
    feed(engine, debit, debit, make_line(line_id=debit["line_id"]), credit)
    feed(engine, make_line.credit(debit), b"{no json", make_line(amount_cents=0))
    counts = engine.snapshot()["counts"]
    assert set(counts) == COUNTS
    assert counts == {
        "accepted": 2,
        "duplicate": 1,
        "duplicate_line": 1,
        "duplicate_credit": 1,
        "rejected": {"invalid_json": 1, "schema": 1},
    }
    assert list(counts["rejected"]) == sorted(counts["rejected"])


def test_peers_hold_the_mean_group_share_of_providers_with_enough_consults(
    policy_with, make_line, feed
):
    engine = Engine(policy_with(**{"group_share_low.min_consults": 2}), clock=lambda: 0.0)
    feed(
        engine,
        *lines(make_line, AGB, consults=4, group=1),  # 0.25
        *lines(make_line, B, consults=2, group=2),  # 1.0
        *lines(make_line, C, consults=1, group=0),  # too few consults
        *lines(make_line, C, consults=1, group=0, year=2025),  # a year without peers
    )
    assert engine.snapshot()["peers"] == {
        "2025": {"group_share_mean": None, "providers": 0},
        "2026": {"group_share_mean": 0.625, "providers": 2},
    }


def test_a_snapshot_survives_json(engine, make_line, feed):
    feed(engine, make_line(diagnosis_group="adhd"), make_line(activity="stay", stay_days=2))
    snap = engine.snapshot()
    assert orjson.loads(orjson.dumps(snap)) == snap


# -- merging partial snapshots -----------------------------------------------------------------


def test_partial_snapshots_merge_into_the_snapshot_of_one_engine(policy_with, make_line):
    policy = policy_with(**{"group_share_low.min_consults": 2})
    history = [
        *lines(make_line, AGB, consults=4, group=1),
        *lines(make_line, B, consults=3, group=3),
        *lines(make_line, C, consults=5, group=0, year=2025),
        b"not json",
        make_line(provider_agb=B, amount_cents=0),
    ]
    whole, *parts = (Engine(policy, clock=lambda: 0.0) for _ in range(3))
    for obj in history:
        raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        whole.process(raw)
        agb = None if isinstance(obj, bytes) else obj["provider_agb"]
        parts[0 if agb in (AGB, None) else 1].process(raw)
    partial = [p.snapshot() for p in parts]
    assert partial[0]["peers"]["2026"]["providers"] == 1  # each part sees its own providers
    merged = merge_snapshots(partial, policy)
    assert merged == whole.snapshot()
    assert merged["peers"]["2026"] == {"group_share_mean": 0.625, "providers": 2}


def test_a_provider_in_two_partial_snapshots_is_refused(engine, make_line, feed, policy):
    feed(engine, make_line())
    part = engine.snapshot()
    with pytest.raises(ValueError, match=f"provider {AGB} appears in two partial snapshots"):
        merge_snapshots([part, part], policy)
