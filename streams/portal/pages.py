"""What each portal page shows, as plain data: the overview, a provider page, an
alert page and the region pages (SPEC §11).

Each function reads the ``Model`` and returns a JSON-ready dict (or ``None`` for an
unknown provider, alert or region); the HTML templates render exactly that dict and
``/api/...`` serves it, so the page and the API cannot disagree. The expected curve
comes from the domain's ``pace.expected_share`` on the previous year's status, the
same function the pace rules and the status use; the region view follows SPEC §9
(active in the provider's latest covered month, gap when the category was active in
the 6 months before and is not now).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from streams.domain.indicators import YearState
from streams.domain.months import latest_covered_month
from streams.domain.pace import expected_share
from streams.domain.policy import Policy
from streams.portal.model import (
    CATEGORIES,
    SEVERITIES,
    AlertHistory,
    Model,
    ProviderYear,
)

RULE_NL = {
    "ceiling_utilisation": "zorgkostenplafond",
    "ceiling_pace_high": "bestedingstempo boven het zorgkostenplafond",
    "ceiling_underrun": "onderbesteding van het zorgkostenplafond",
    "group_share_low": "laag aandeel groepsbehandeling",
    "group_share_not_rising": "aandeel groepsbehandeling stijgt niet",
    "group_consult_staffing": "groepsconsulten met vier of meer behandelaars",
    "clinical_detox_high": "hoog aandeel klinische detox",
    "adhd_growth": "groei van ADHD-cliënten",
    "zvt_setting_mismatch": "zorgvraagtype in een niet vergoede setting",
    "digital_share_low": "laag aandeel cliënten met digitale zorg",
    "department_activity_drop": "afdeling: sterke daling van het aantal cliënten",
    "department_stopped": "afdeling: geen cliënten meer",
    "region_category_gap": "regio: cruciale zorg zonder actieve afdeling",
}
SEVERITY_NL = {
    "critical": "kritiek",
    "high": "hoog",
    "warning": "waarschuwing",
    "info": "ter informatie",
}
CATEGORY_NL = {
    "acute": "acute ggz",
    "outreach": "outreachende ggz (FACT, IHT)",
    "clinical": "klinische ggz",
    "secured": "beveiligde zorg",
    "hs_ggz": "hoogspecialistische ggz",
    "hs_hospital": "hoogspecialistische ggz in het ziekenhuis",
    "other": "overig",
}
# Rules whose numerator and denominator are cents (SPEC §8.3); the others count.
CENTS_RULES = frozenset({"ceiling_utilisation", "ceiling_pace_high", "ceiling_underrun"})
GAP_MONTHS = 6  # SPEC §9: active in any of the 6 months before the latest covered month


def _open_by_severity(model: Model, agb: str, year: int) -> dict[str, int]:
    out = dict.fromkeys(SEVERITIES, 0)
    for severity in model.open_alerts(agb, year).values():
        if severity in out:
            out[severity] += 1
    return out


def _matches(py: ProviderYear, q: str) -> bool:
    return q in py.agb or (py.name is not None and q in py.name.lower())


def overview(
    model: Model, purchaser: str | None = None, year: int | None = None, q: str | None = None
) -> dict[str, Any]:
    """The providers of one purchaser (all when ``purchaser`` is None) in one year
    (the latest when None), filtered on name or AGB by ``q``."""
    years = model.years()
    if year is None and years:
        year = years[-1]
    needle = (q or "").strip().lower()
    rows = []
    totals = dict.fromkeys(SEVERITIES, 0)
    for py in model.statuses.values():
        if py.year != year or (purchaser and py.purchaser != purchaser):
            continue
        if needle and not _matches(py, needle):
            continue
        ind = py.indicators
        open_ = _open_by_severity(model, py.agb, py.year)
        for s, n in open_.items():
            totals[s] += n
        rows.append(
            {
                "agb": py.agb,
                "name": py.name,
                "purchaser": py.purchaser,
                "region": py.region,
                "net_cents": ind["net_cents"],
                "ceiling_cents": py.ceiling_cents,
                "utilisation": ind.get("ceiling_utilisation"),
                "covered_month": py.covered_month,
                "projected_cents": ind.get("projected_cents"),
                "pace_ratio": ind.get("pace_ratio"),
                "open_alerts": open_,
                "watermark": py.watermark,
            }
        )
    rows.sort(key=lambda r: (-(r["utilisation"] or 0.0), r["agb"]))
    return {
        "year": year,
        "years": years,
        "purchaser": purchaser,
        "purchasers": model.purchasers(),
        "q": q or "",
        "providers": rows,
        "open_alerts": totals,
    }


def expected_shares(model: Model, py: ProviderYear, policy: Policy) -> list[Fraction]:
    """E(0)..E(12) of a provider-year (SPEC §8.2), from its previous year's status as
    the domain weighs it (``pace.expected_share``)."""
    prior = model.status(py.agb, py.year - 1)
    previous = (
        YearState(
            net_cents=prior.indicators["net_cents"],
            by_month=list(prior.indicators["net_cents_by_month"]),
        )
        if prior is not None
        else None
    )
    return [expected_share(previous, m, policy.pace.min_prior_cents) for m in range(13)]


def provider(
    model: Model, policy: Policy, agb: str, year: int | None = None
) -> dict[str, Any] | None:
    """A provider-year's page; None when the provider, or that year of it, is unknown."""
    years = model.provider_years(agb)
    if not years:
        return None
    year = years[-1] if year is None else year
    py = model.status(agb, year)
    if py is None:
        return None
    ind = py.indicators
    shares = expected_shares(model, py, policy)
    ceiling = py.ceiling_cents
    cumulative = [0]
    for cents in ind["net_cents_by_month"]:
        cumulative.append(cumulative[-1] + cents)
    return {
        "agb": agb,
        "name": py.name,
        "purchaser": py.purchaser,
        "region": py.region,
        "year": year,
        "years": years,
        "watermark": py.watermark,
        "net_cents": ind["net_cents"],
        "net_cents_by_month": ind["net_cents_by_month"],
        "cumulative_cents": cumulative[1:],
        "ceiling_cents": ceiling,
        "utilisation": ind.get("ceiling_utilisation"),
        "contract_version": py.contract_version,
        "contract_versions": [
            {"version": v.version, "ceiling_cents": v.ceiling_cents, "seen_at": v.seen_at}
            for v in py.versions
        ],
        "covered_month": py.covered_month,
        "expected_share": float(shares[py.covered_month]),
        "expected_cents": [round(s * ceiling) for s in shares[1:]] if ceiling else None,
        "projected_cents": ind.get("projected_cents"),
        "pace_ratio": ind.get("pace_ratio"),
        "indicators": {k: ind.get(k) for k in INDICATORS},
        "open_alerts": _open_by_severity(model, agb, year),
        "alerts": [alert_summary(h) for h in model.alerts_of(agb, year)],
        "departments": provider_departments(model, py),
    }


# Indicators the provider page lists (SPEC §4, §8.4), in this order.
INDICATORS = (
    "consults",
    "group_consults",
    "group_share",
    "group_ge4",
    "clinical_detox_client_share",
    "digital_client_share",
    "zvt_setting_mismatch",
    "adhd_clients",
    "adhd_growth",
)


def alert_summary(history: AlertHistory) -> dict[str, Any]:
    latest = history.latest
    return {
        **latest,
        "firing": history.firing,
        "transitions": len(history.transitions),
        "rule_nl": RULE_NL.get(latest["rule"], latest["rule"]),
        "cents": latest["rule"] in CENTS_RULES,
    }


def alert(model: Model, alert_id: str) -> dict[str, Any] | None:
    """One alert's history and explanation; None when unknown."""
    history = model.alerts.get(alert_id)
    if history is None:
        return None
    return {**alert_summary(history), "history": history.ordered()}


def provider_departments(model: Model, py: ProviderYear) -> list[dict[str, Any]] | None:
    """The departments of a provider-year with their monthly clients; None when the
    status carries no departments (before issue #22's workers)."""
    if py.departments is None:
        return None
    register = {d.department: d for d in model.departments_of(py.agb)}
    out = []
    for dept in sorted(py.departments):
        d = py.departments[dept]
        entry = register.get(dept)
        out.append(
            {
                "department": dept,
                "name": entry.name if entry else None,
                "category": entry.category if entry else d.get("category", "other"),
                "clients_by_month": [
                    d.get("clients_by_month", {}).get(f"{py.year:04d}-{m:02d}")
                    for m in range(1, 13)
                ],
                "consults": d.get("consults"),
                "stay_days": d.get("stay_days"),
                "net_cents": d.get("net_cents"),
            }
        )
    return out


# -- regions (SPEC §9) ------------------------------------------------------------


def _clients(model: Model, agb: str, dept: str, year: int, month: int) -> int:
    py = model.status(agb, year)
    if py is None or py.departments is None or dept not in py.departments:
        return 0
    return int(py.departments[dept].get("clients_by_month", {}).get(f"{year:04d}-{month:02d}", 0))


def _months_before(year: int, month: int, n: int) -> Iterable[tuple[int, int]]:
    for _ in range(n):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        yield year, month


def _provider_info(model: Model) -> dict[str, tuple[float, str | None, str | None, bool]]:
    """agb → (watermark, latest contract region, name, has department data)."""
    out: dict[str, tuple[float, str | None, str | None, bool]] = {}
    for py in model.statuses.values():
        wm, region, name, data = out.get(py.agb, (0.0, None, None, False))
        t = py.watermark_time
        if t >= wm:
            wm, region, name = t, py.region or region, py.name or name
        out[py.agb] = (wm, region, name, data or py.departments is not None)
    return out


def department_rows(model: Model, policy: Policy) -> list[dict[str, Any]]:
    """Every department known from the register or a status, with its category,
    region and activity in its provider's latest covered month (None: no data)."""
    info = _provider_info(model)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for py in model.statuses.values():
        for dept, d in (py.departments or {}).items():
            seen.setdefault((py.agb, dept), {"category": d.get("category", "other")})
    for (agb, dept), entry in model.register.items():
        seen[(agb, dept)] = {"category": entry.category, "name": entry.name, "region": entry.region}
    rows = []
    for (agb, dept), known in sorted(seen.items()):
        wm, contract_region, provider_name, has_data = info.get(agb, (0.0, None, None, False))
        row = {
            "agb": agb,
            "provider_name": provider_name,
            "department": dept,
            "name": known.get("name"),
            "category": known["category"],
            "region": known.get("region") or contract_region,
            "month": None,
            "clients": None,
            "active": None,
            "active_before": None,
        }
        if has_data and wm > 0:
            y, m = latest_covered_month(wm, policy.months.lag_days)
            row["month"] = f"{y:04d}-{m:02d}"
            row["clients"] = _clients(model, agb, dept, y, m)
            row["active"] = row["clients"] > 0
            row["active_before"] = any(
                _clients(model, agb, dept, by, bm) > 0
                for by, bm in _months_before(y, m, GAP_MONTHS)
            )
        rows.append(row)
    return rows


def _category_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    judged = [r for r in rows if r["active"] is not None]
    if not judged:
        return {"departments": len(rows), "active_departments": None, "clients": None, "gap": None}
    active = [r for r in judged if r["active"]]
    return {
        "departments": len(rows),
        "active_departments": len(active),
        "clients": sum(r["clients"] for r in active),
        "gap": not active and any(r["active_before"] for r in judged),
    }


def regions(model: Model, policy: Policy) -> dict[str, Any]:
    """Per IZA region the six categories: departments, active ones, gaps."""
    rows = department_rows(model, policy)
    out = []
    for name in model.regions():
        in_region = [r for r in rows if r["region"] == name]
        out.append(
            {
                "region": name,
                "categories": {
                    c: _category_summary([r for r in in_region if r["category"] == c])
                    for c in CATEGORIES
                },
                "open_alerts": sum(h.firing for h in model.region_alerts(name)),
            }
        )
    return {"regions": out, "has_activity_data": any(r["active"] is not None for r in rows)}


def region(model: Model, policy: Policy, name: str) -> dict[str, Any] | None:
    if name not in model.regions():
        return None
    rows = [r for r in department_rows(model, policy) if r["region"] == name]
    categories = []
    for c in CATEGORIES:
        members = [r for r in rows if r["category"] == c]
        categories.append({"category": c, **_category_summary(members), "members": members})
    return {
        "region": name,
        "categories": categories,
        "has_activity_data": any(r["active"] is not None for r in rows),
        "alerts": [alert_summary(h) for h in model.region_alerts(name)],
    }
