"""The portal's pages as data, from a model built from a real history: the figures
are the offline snapshot's, the expected curve the domain's."""

from __future__ import annotations

from fractions import Fraction

import orjson

from streams.domain.snapshot import year_pace
from streams.portal import pages
from streams.portal.model import Model
from tests.portal.conftest import Built
from tests.portal.test_model import put, status


def test_the_overview_lists_every_provider_of_the_year_with_the_snapshots_figures(
    built: Built,
) -> None:
    data = pages.overview(built.model, year=2026)
    snap = built.snapshot["providers"]
    want = {agb for agb, years in snap.items() if "2026" in years}
    assert {r["agb"] for r in data["providers"]} == want
    for r in data["providers"]:
        ind = snap[r["agb"]]["2026"]
        assert r["net_cents"] == ind["net_cents"]
        assert r["utilisation"] == ind["ceiling_utilisation"]
        assert r["projected_cents"] == ind["projected_cents"]
        assert r["pace_ratio"] == ind["pace_ratio"]
        assert r["covered_month"] == ind["covered_month"]
    assert data["year"] == 2026 and data["years"] == [2025, 2026]


def test_the_overview_counts_the_open_alerts_by_severity(built: Built) -> None:
    data = pages.overview(built.model, year=2026)
    severity = {a["alert_id"]: a["severity"] for a in built.alerts}
    for r in data["providers"]:
        firing = [a for a in built.firing if a.split(":")[1:3] == [r["agb"], "2026"]]
        want = {s: sum(severity[a] == s for a in firing) for s in pages.SEVERITIES}
        assert r["open_alerts"] == want
    assert sum(data["open_alerts"].values()) == sum(
        a.endswith(":2026") or ":2026:" in a for a in built.firing
    )


def test_the_overview_filters_on_purchaser_and_searches_name_or_agb(built: Built) -> None:
    rows = pages.overview(built.model, year=2026)["providers"]
    some = rows[0]
    only = pages.overview(built.model, purchaser=some["purchaser"], year=2026)["providers"]
    assert only and {r["purchaser"] for r in only} == {some["purchaser"]}
    assert len(only) == sum(r["purchaser"] == some["purchaser"] for r in rows)
    by_agb = pages.overview(built.model, year=2026, q=some["agb"][:6])["providers"]
    assert some["agb"] in {r["agb"] for r in by_agb}
    word = some["name"].split()[-1].upper()
    by_name = pages.overview(built.model, year=2026, q=word)["providers"]
    assert some["agb"] in {r["agb"] for r in by_name}
    assert pages.overview(built.model, year=2026, q="geen-zo-aanbieder")["providers"] == []


def test_the_provider_page_draws_the_domains_expected_curve_and_projection(built: Built) -> None:
    for st in built.engine.providers.values():
        for year in st.years:
            data = pages.provider(built.model, built.policy, st.provider, year)
            assert data is not None
            contract = built.engine.contracts.get(st.provider, year)
            ceiling = contract.ceiling_cents if contract else None
            pace = year_pace(st, year, ceiling, built.policy)
            assert data["covered_month"] == pace.covered_month
            assert data["expected_share"] == float(pace.expected_share)
            assert data["projected_cents"] == pace.projected_cents
            assert data["net_cents_by_month"] == st.years[year].by_month
            assert data["cumulative_cents"][-1] == st.years[year].net_cents
            if ceiling and pace.covered_month:
                share = Fraction(data["expected_cents"][pace.covered_month - 1], ceiling)
                assert abs(share - pace.expected_share) <= Fraction(1, ceiling)


def test_the_provider_page_shows_each_alert_with_its_explanation(built: Built) -> None:
    first = next(a for a in built.alerts if a["rule"] == "ceiling_pace_high")
    pace_alert = [a for a in built.alerts if a["alert_id"] == first["alert_id"]][-1]
    data = pages.provider(built.model, built.policy, pace_alert["provider_agb"], pace_alert["year"])
    assert data is not None
    shown = {a["alert_id"]: a for a in data["alerts"]}
    assert pace_alert["alert_id"] in shown
    assert shown[pace_alert["alert_id"]]["explain"]["pace"] == pace_alert["explain"]["pace"]
    # the departments the status carries, each with the snapshot's monthly clients
    expected = built.snapshot["providers"][pace_alert["provider_agb"]][str(pace_alert["year"])]
    assert [d["department"] for d in data["departments"]] == sorted(expected["departments"])


def test_an_unknown_provider_year_or_alert_is_none(built: Built) -> None:
    agb = next(iter(built.snapshot["providers"]))
    assert pages.provider(built.model, built.policy, "00000000") is None
    assert pages.provider(built.model, built.policy, agb, 1999) is None
    assert pages.alert(built.model, "ceiling_pace_high:00000000:2026") is None
    assert pages.region(built.model, built.policy, "Atlantis") is None


def test_the_alert_page_lists_its_transitions_in_order(built: Built) -> None:
    resolved = next(a for a in built.alerts if a["state"] == "resolved")
    data = pages.alert(built.model, resolved["alert_id"])
    assert data is not None
    want = [a for a in built.alerts if a["alert_id"] == resolved["alert_id"]]
    assert [(t["sequence"], t["state"]) for t in data["history"]] == [
        (a["sequence"], a["state"]) for a in want
    ]
    assert data["firing"] == (want[-1]["state"] == "firing")


def _dept_status(agb: str, clients: dict[str, int], watermark: str) -> dict:
    return status(
        agb=agb,
        watermark=watermark,
        departments={
            "fact": {
                "category": "outreach",
                "clients_by_month": clients,
                "consults": 10,
                "stay_days": 0,
                "net_cents": 1000,
            }
        },
    )


def test_a_region_shows_a_gap_when_its_category_was_active_and_is_no_longer(policy) -> None:
    m = Model()
    # Latest covered month at 2026-07-15 with lag 30: May. Active Jan-Apr, not in May.
    put(
        m,
        _dept_status(
            "12345678", {"2026-01": 5, "2026-04": 3, "2026-05": 0}, "2026-07-15T00:00:00Z"
        ),
    )
    data = pages.region(m, policy, "Utrecht")
    assert data is not None and data["has_activity_data"]
    outreach = next(c for c in data["categories"] if c["category"] == "outreach")
    assert outreach["gap"] is True and outreach["active_departments"] == 0
    assert outreach["members"][0]["month"] == "2026-05"
    put(m, _dept_status("12345678", {"2026-04": 3, "2026-05": 2}, "2026-07-15T00:00:00Z"))
    outreach = next(
        c for c in pages.region(m, policy, "Utrecht")["categories"] if c["category"] == "outreach"
    )
    assert outreach["gap"] is False and outreach["clients"] == 2


def test_regions_without_department_data_say_so_and_judge_nothing(policy) -> None:
    m = Model()
    put(m, status())
    m.apply_department(
        b"12345678:kliniek",
        orjson.dumps(
            {
                "schema": "ggz.department/1",
                "provider_agb": "12345678",
                "department": "kliniek",
                "name": "Kliniek",
                "category": "clinical",
                "region": "Utrecht",
                "version": 1,
                "updated_at": "2026-01-01T00:00:00Z",
            }
        ),
    )
    data = pages.regions(m, policy)
    assert not data["has_activity_data"]
    clinical = data["regions"][0]["categories"]["clinical"]
    assert clinical == {"departments": 1, "active_departments": None, "clients": None, "gap": None}


def test_the_provider_page_lists_the_departments_with_the_snapshots_monthly_clients(
    built: Built,
) -> None:
    shown = 0
    for agb, years in built.snapshot["providers"].items():
        for year, entry in years.items():
            data = pages.provider(built.model, built.policy, agb, int(year))
            assert data is not None
            depts = {d["department"]: d for d in data["departments"]}
            assert sorted(depts) == sorted(entry["departments"])
            for name, d in entry["departments"].items():
                by_month = [d["clients_by_month"].get(f"{year}-{m:02d}") for m in range(1, 13)]
                assert depts[name]["clients_by_month"] == by_month
                assert depts[name]["category"] == d["category"]
                shown += 1
    assert shown > 0  # the generated institutions have departments


def test_the_overview_rows_escape_the_providers_own_texts() -> None:
    """Name, purchaser and region come from contracts: markup in them is shown as text."""
    from streams.portal.web import overview_rows

    row = {
        "agb": "12345678",
        "name": '<script>alert("x")</script>',
        "purchaser": "a&b",
        "region": "<b>",
        "net_cents": 123_456,
        "ceiling_cents": None,
        "utilisation": None,
        "covered_month": 3,
        "projected_cents": None,
        "pace_ratio": 1.2,
        "open_alerts": dict.fromkeys(pages.SEVERITIES, 0) | {"high": 2},
    }
    html = str(overview_rows([row], 2026))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "a&amp;b" in html and "&lt;b&gt;" in html
    assert "€ 1.235" in html and "maart" in html and 'class="num over"' in html
    assert '<td class="num sev-high">2</td>' in html and "nog niet" in html
