"""The region view and region_category_gap (streams/domain/regions.py, SPEC §9):
pure functions over every provider's departments, from engine state or from the
provider-status values alike."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import orjson
import pytest

from streams.domain import schemas
from streams.domain.contracts import Contract
from streams.domain.departments import parse_department
from streams.domain.engine import Engine
from streams.domain.model import parse_time
from streams.domain.regions import (
    DepartmentSummary,
    RegionWatch,
    gaps,
    merge_regions,
    region_view,
    summaries,
    summaries_from_status,
)
from streams.domain.snapshot import merge_snapshots
from streams.domain.status import provider_year_status
from tests.conftest import make_contract

A, B = "11111111", "22222222"
ALERT = fastjsonschema.compile(schemas.load_schema(schemas.ALERT))
IN_OCTOBER = "2026-10-05T08:00:00Z"  # August 2026 is the latest covered month


def row(provider: str, clients: tuple[int, ...], category: str = "secured", region: Any = "Twente"):
    return DepartmentSummary(provider, "ward", category, region, (2026, 8), clients)


def test_a_region_whose_only_secured_ward_fell_silent_has_a_gap():
    (gap,) = gaps([row(A, (20, 20, 20, 20, 20, 20, 0))])
    assert (gap.region, gap.category, gap.year, gap.had, gap.active, gap.fires) == (
        "Twente",
        "secured",
        2026,
        1,
        0,
        True,
    )


@pytest.mark.parametrize(
    ("rows", "fires"),
    [
        ([row(A, (0, 0, 0, 0, 0, 1, 0)), row(B, (0,) * 7)], True),  # one client in July is "had"
        ([row(A, (20,) * 6 + (0,)), row(B, (0,) * 6 + (1,))], False),  # another one is active
        ([row(A, (0,) * 7)], False),  # never active in the window: nothing was lost
        ([row(A, (20,) * 6 + (0,), category="other")], False),  # other never gaps
        ([row(A, (20,) * 6 + (0,), region=None)], False),  # in no region
    ],
)
def test_a_gap_needs_a_department_active_before_and_none_active_now(rows, fires):
    assert any(g.fires for g in gaps(rows)) is fires


def test_the_region_view_counts_active_departments_and_their_clients():
    rows = [
        row(A, (20,) * 7),
        row(B, (5,) * 6 + (3,)),
        row(B, (5,) * 7, category="acute"),
        row(A, (5,) * 6 + (0,), category="outreach", region="Drenthe"),
    ]
    view = region_view(rows)
    assert view == {
        "Drenthe": {"outreach": {"active_departments": 0, "clients": 0}},
        "Twente": {
            "acute": {"active_departments": 1, "clients": 5},
            "secured": {"active_departments": 2, "clients": 23},
        },
    }
    # disjoint parts (workers' partial snapshots) sum to the whole
    assert merge_regions([region_view(rows[:2]), region_view(rows[2:])]) == view


def test_a_gap_fires_once_resolves_and_moves_to_the_next_year():
    watch = RegionWatch()
    t = parse_time(IN_OCTOBER)
    events = watch.evaluate([row(A, (20,) * 6 + (0,))], t, t)
    assert [(e["alert_id"], e["state"]) for e in events] == [
        ("region_category_gap:Twente:secured:2026", "firing")
    ]
    for event in events:
        ALERT(event)
        assert event["provider_agb"] is None and event["purchaser"] is None
        assert event["region"] == "Twente" and "beveiligde zorg" in event["message"]
    assert watch.evaluate([row(A, (20,) * 6 + (0,))], t, t) == []  # no change, no event
    later = DepartmentSummary(A, "ward", "secured", "Twente", (2027, 1), (20,) * 6 + (0,))
    got = [(e["alert_id"], e["state"]) for e in watch.evaluate([later], t, t)]
    assert got == [
        ("region_category_gap:Twente:secured:2026", "resolved"),
        ("region_category_gap:Twente:secured:2027", "firing"),
    ]
    back = later._replace(clients=(20,) * 7)
    got = [(e["alert_id"], e["state"]) for e in watch.evaluate([back], t, t)]
    assert got == [("region_category_gap:Twente:secured:2027", "resolved")]


def _ward_history(make_line, agb: str, silent: bool) -> list[dict[str, Any]]:
    months = [f"2026-{m:02d}" for m in range(1, 9)]
    out = []
    for month in months:
        n = 0 if silent and month >= "2026-07" else 20
        out += [
            make_line(
                provider_agb=agb,
                department="bw",
                setting=6,
                service_date=f"{month}-10",
                submitted_at=IN_OCTOBER,
            )
            for _ in range(n)
        ]
    # the provider goes on declaring other care (an outpatient clinic, category other)
    # through September: a silent ward is a silent ward, not a provider without data
    for month in (*months, "2026-09"):
        out.append(
            make_line(
                provider_agb=agb,
                department="poli",
                setting=1,
                service_date=f"{month}-15",
                submitted_at=IN_OCTOBER,
            )
        )
    return out


def test_engine_state_status_values_and_snapshot_give_one_region_view(policy, make_line):
    engine = Engine(policy)
    engine.apply_contract(Contract.from_event(make_contract(provider=A, region="Twente")))
    engine.apply_contract(Contract.from_event(make_contract(provider=B, region="Twente")))
    # B's ward is registered in another region than its contract's
    engine.apply_department(
        parse_department(
            {
                "schema": "ggz.department/1",
                "provider_agb": B,
                "department": "bw",
                "name": "Beveiligd wonen",
                "category": "secured",
                "region": "Drenthe",
                "version": 1,
                "updated_at": "2026-01-01T00:00:00Z",
            }
        )
    )
    for obj in (*_ward_history(make_line, A, True), *_ward_history(make_line, B, False)):
        engine.process(orjson.dumps(obj))
    rows = summaries(engine.providers.values(), engine.departments, engine.contracts, 30)
    assert region_view(rows) == {
        "Drenthe": {"secured": {"active_departments": 1, "clients": 20}},
        "Twente": {"secured": {"active_departments": 0, "clients": 0}},
    }
    assert [g.region for g in gaps(rows) if g.fires] == ["Twente"]
    snap = engine.snapshot()
    assert snap["regions"] == region_view(rows)
    dept = snap["providers"][A]["2026"]["departments"]["bw"]
    assert dept["category"] == "secured"  # setting 6
    assert dept["clients_by_month"]["2026-06"] == 20 and "2026-07" not in dept["clients_by_month"]
    # the same rows from what the provider-status values carry
    from_status = []
    for agb, region_of in ((A, {}), (B, {"bw": "Drenthe"})):
        st = engine.providers[agb]
        value = provider_year_status(
            st, 2026, engine.contracts.get(agb, 2026), [], policy, engine.departments
        )
        assert value["indicators"]["departments"] == snap["providers"][agb]["2026"]["departments"]
        from_status += summaries_from_status(
            agb,
            {"2026": value["indicators"]["departments"]},
            (2026, 8),
            region_of,
            "Twente",
            net_by_month={2026: value["indicators"]["net_cents_by_month"]},
        )
    assert sorted(from_status) == sorted(rows)
    # partial snapshots (one a worker) merge into the same view
    one, two = Engine(policy), Engine(policy)
    for e in (one, two):
        e.contracts, e.departments = engine.contracts, engine.departments
    one.providers = {A: engine.providers[A]}
    two.providers = {B: engine.providers[B]}
    assert merge_snapshots([one.snapshot(), two.snapshot()], policy)["regions"] == snap["regions"]


def test_a_provider_is_judged_on_the_last_covered_month_it_declared_care_in(policy, make_line):
    """Late credits move the watermark into March 2027 (January covered) while the
    provider has declared no 2027 care: its ward is judged on December 2026, from
    state and from its status values alike, and the region has no gap."""
    engine = Engine(policy)
    engine.apply_contract(Contract.from_event(make_contract(provider=A, region="Twente")))
    lines = [
        make_line(
            provider_agb=A,
            department="bw",
            setting=6,
            service_date=f"2026-{m:02d}-10",
            submitted_at="2027-01-05T08:00:00Z",
        )
        for m in range(7, 13)
        for _ in range(20)
    ]
    credit = dict(lines[0], kind="credit", event_id="credit-1")
    credit["submitted_at"] = "2027-03-05T08:00:00Z"
    for obj in (*lines, credit):
        engine.process(orjson.dumps(obj))
    (row,) = summaries(engine.providers.values(), engine.departments, engine.contracts, 30)
    assert row.latest == (2026, 12) and row.clients[-1] == 20
    assert [g for g in gaps([row]) if g.fires] == []
    st = engine.providers[A]
    value = provider_year_status(
        st, 2026, engine.contracts.get(A, 2026), [], policy, engine.departments
    )
    (from_status,) = summaries_from_status(
        A,
        {"2026": value["indicators"]["departments"]},
        (2027, 1),  # the latest covered month at that watermark
        {},
        "Twente",
        net_by_month={2026: value["indicators"]["net_cents_by_month"]},
    )
    assert from_status == row


def test_a_gap_that_lapses_after_six_silent_months_says_the_care_is_still_missing() -> None:
    watch = RegionWatch()
    t = 1_790_000_000.0
    fired = watch.evaluate([row(A, (5,) * 6 + (0,))], t, t)
    assert [e["state"] for e in fired] == ["firing"]
    (lapsed,) = watch.evaluate([row(A, (0,) * 7)], t, t)
    assert lapsed["state"] == "resolved"
    assert (
        "ontbreekt nog steeds" in lapsed["message"] and "weer beschikbaar" not in lapsed["message"]
    )
    watch.evaluate([row(A, (5,) * 6 + (0,))], t, t)
    (back,) = watch.evaluate([row(A, (5,) * 7)], t, t)
    assert "weer beschikbaar" in back["message"]
