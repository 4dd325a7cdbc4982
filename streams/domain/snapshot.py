"""The indicator snapshot of SPEC §6 (``--snapshot-out``), and merging partial ones.

A streaming worker holds only its partitions' providers, so each produces a partial
snapshot; ``merge_snapshots`` joins them and recomputes the peer means from the
merged providers, which gives exactly the offline replay's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from streams.domain.departments import DepartmentBook, year_departments
from streams.domain.indicators import YearState
from streams.domain.model import Counts
from streams.domain.months import covered_month
from streams.domain.pace import Pace, project
from streams.domain.policy import Policy
from streams.domain.regions import merge_regions, region_view, summaries
from streams.domain.rules import adhd_growth, group_share_low
from streams.domain.rules.adhd_growth import clients_and_base
from streams.domain.rules.group_share_low import peer_mean

if TYPE_CHECKING:
    from streams.domain.contracts import ContractBook
    from streams.domain.state import ProviderState


def year_pace(st: ProviderState, year: int, ceiling_cents: int | None, policy: Policy) -> Pace:
    """The pace of a provider-year at its provider's watermark (SPEC §8.2): the
    covered month the watermark gives, and the projection at it."""
    month = covered_month(year, st.watermark, policy.months.lag_days) if st.watermark > 0 else 0
    return project(st.years[year], st.years.get(year - 1), month, ceiling_cents, policy.pace)


def year_indicators(
    ys: YearState, previous: YearState | None, year: int, ceiling_cents: int | None, pace: Pace
) -> dict[str, Any]:
    clients: dict[str, int] = {}
    growth: dict[str, float | None] = {}
    for q in ys.adhd_quarters():
        now, base = clients_and_base(ys, previous, q)
        clients[f"{year}-Q{q}"] = now
        growth[f"{year}-Q{q}"] = adhd_growth(now, base)
    return {
        "net_cents": ys.net_cents,
        "ceiling_utilisation": ys.net_cents / ceiling_cents if ceiling_cents else None,
        "consults": ys.consults,
        "group_consults": ys.group_consults,
        "group_share": ys.group_share,
        "group_ge4": ys.group_ge4,
        "group_over2_share": ys.group_over2_share,
        "detox_clinical": ys.detox_clinical,
        "detox_ambulant": ys.detox_ambulant,
        "clinical_detox_share": ys.clinical_detox_share,
        "adhd_clients": clients,
        "adhd_growth": growth,
        "digital_share": ys.digital_share,
        "zvt_setting_mismatch": ys.mismatch,
        # SPEC §8.1 and §8.4
        "net_cents_by_month": list(ys.by_month),
        "detox_clients_all": ys.detox_clients_all,
        "detox_clients_clinical": ys.detox_clients_clinical,
        "clinical_detox_client_share": ys.clinical_detox_client_share,
        "consult_clients": ys.consult_clients,
        "digital_clients": ys.digital_clients,
        "digital_client_share": ys.digital_client_share,
        # SPEC §8.2, at the provider's watermark
        "covered_month": pace.covered_month,
        "projected_cents": pace.projected_cents,
        "pace_ratio": pace.pace_ratio,
    }


def build_snapshot(
    providers: Iterable[ProviderState],
    contracts: ContractBook,
    counts: Iterable[Counts],
    policy: Policy,
    departments: DepartmentBook | None = None,
) -> dict[str, Any]:
    """The snapshot of the providers held; ``departments`` is the register (SPEC §9;
    None: an empty one, every category from the settings of the lines)."""
    book = departments if departments is not None else DepartmentBook()
    held = list(providers)
    out: dict[str, dict[str, Any]] = {}
    for st in held:
        if not st.years:
            continue
        years = {}
        for year in sorted(st.years):
            contract = contracts.get(st.provider, year)
            ceiling = contract.ceiling_cents if contract else None
            years[str(year)] = year_indicators(
                st.years[year],
                st.years.get(year - 1),
                year,
                ceiling,
                year_pace(st, year, ceiling, policy),
            )
            years[str(year)]["departments"] = year_departments(st, year, book)
        out[st.provider] = years
    total = Counts()
    for c in counts:
        total.add(c)
    regions = region_view(summaries(held, book, contracts, policy.months.lag_days))
    return finish_snapshot(out, total, policy, regions)


def finish_snapshot(
    providers: dict[str, dict[str, Any]],
    counts: Counts,
    policy: Policy,
    regions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Order providers, compute peer means from them, attach counts and the region
    view (SPEC §9)."""
    ordered = {agb: providers[agb] for agb in sorted(providers)}
    pairs: dict[str, list[tuple[int, int]]] = {}
    for years in ordered.values():
        for year, ind in years.items():
            pairs.setdefault(year, []).append((ind["consults"], ind["group_consults"]))
    peers = {}
    for year in sorted(pairs):
        mean, n = peer_mean(pairs[year], policy.of(group_share_low.RULE).min_consults)
        peers[year] = {
            "group_share_mean": float(mean) if mean is not None else None,
            "providers": n,
        }
    return {
        "providers": ordered,
        "peers": peers,
        "regions": regions if regions is not None else {},
        "counts": counts.as_dict(),
    }


def merge_snapshots(parts: Iterable[dict[str, Any]], policy: Policy) -> dict[str, Any]:
    providers: dict[str, dict[str, Any]] = {}
    counts = Counts()
    views = []
    for part in parts:
        views.append(part.get("regions", {}))
        for agb, years in part["providers"].items():
            if agb in providers:
                raise ValueError(f"provider {agb} appears in two partial snapshots")
            providers[agb] = years
        counts.add(Counts.from_dict(part["counts"]))
    return finish_snapshot(providers, counts, policy, merge_regions(views))
