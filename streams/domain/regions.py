"""The region view of cruciale ggz and ``region_category_gap`` (SPEC §9).

Per IZA region and category: the departments active in their provider's latest
covered month and their clients; a gap when a region had departments of a category
active in the six months before their providers' latest covered months and none of
them is active in it. Both read every provider's departments, so they are pure
functions over ``DepartmentSummary`` rows, whatever holds them: the offline replay
makes the rows from its providers' state (``summaries``), a streaming worker will
make them from the provider-status topic (SPEC §10), whose values carry the
``departments`` of each provider-year. ``RegionWatch`` keeps the gap alerts' states
and words their events; it is evaluated once per calendar month of event time and at
the end of input (for rules that read other providers only the set firing at the end
is promised, SPEC §8.1).

A region is the register's ``region`` of the department, else the region of the
provider's contract; a department with neither is in no region. ``other`` is not a
cruciale category: it is not shown and never gaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from streams.domain.alerts import MONTH_NAMES, AlertBook, Finding, Language
from streams.domain.departments import (
    CATEGORY_NAMES,
    CRUCIAL,
    DepartmentBook,
    DepartmentView,
    judged_month,
    month_back,
    state_judged_month,
)
from streams.domain.model import format_time
from streams.domain.months import latest_covered_month

if TYPE_CHECKING:
    from streams.domain.contracts import ContractBook
    from streams.domain.state import ProviderState

RULE = "region_category_gap"
SEVERITY = "high"
WINDOW = 6  # months before the latest covered month in which a department counts as had


class DepartmentSummary(NamedTuple):
    """One department as the region view needs it."""

    provider: str
    department: str
    category: str
    region: str | None
    latest: tuple[int, int]  # its provider's latest covered month (year, month)
    clients: tuple[int, ...]  # in latest - WINDOW .. latest, oldest first


def summaries(
    providers: Iterable[ProviderState],
    book: DepartmentBook,
    contracts: ContractBook,
    lag_days: int,
) -> list[DepartmentSummary]:
    """The departments (category not ``other``) of the providers held in state."""
    out = []
    for st in providers:
        if not st.departments or st.watermark <= 0:
            continue
        latest = state_judged_month(st, latest_covered_month(st.watermark, lag_days))
        view = DepartmentView(st, book, latest, WINDOW + 1)
        fallback = _contract_region(contracts, st.provider, latest[0])
        for name, category, dept_id in view.judged():
            entry = book.get(st.provider, name)
            region = entry.region if entry is not None else fallback
            clients = tuple(reversed(view.history(dept_id)))
            out.append(DepartmentSummary(st.provider, name, category, region, latest, clients))
    return out


def _contract_region(contracts: ContractBook, provider: str, year: int) -> str | None:
    """The region of the provider's contract of ``year``, else of its latest year."""
    contract = contracts.get(provider, year)
    if contract is not None:
        return contract.region
    years = [c for c in contracts if c.provider == provider]
    return max(years, key=lambda c: c.year).region if years else None


def summaries_from_status(
    provider: str,
    years: Mapping[str, Mapping[str, Any]],
    latest: tuple[int, int],
    region_of: Mapping[str, str],
    contract_region: str | None,
    *,
    net_by_month: Mapping[int, Sequence[int]],
) -> list[DepartmentSummary]:
    """The same rows from a provider's ``departments`` entries per year (the snapshot's,
    which the provider-status values carry), for a reader of that topic:
    ``region_of`` maps a department to its register region; ``latest`` is the
    provider's latest covered month and ``net_by_month`` its service years'
    ``net_cents_by_month`` (the status values carry both), from which the month judged
    is worked out as for a provider in state (``departments.judged_month``)."""
    latest = judged_month(latest, net_by_month.get)
    merged: dict[str, tuple[str, dict[str, int]]] = {}
    for entries in years.values():
        for name, entry in entries.items():
            category, by_month = merged.setdefault(name, (entry["category"], {}))
            by_month.update(entry["clients_by_month"])
    out = []
    for name, (category, by_month) in sorted(merged.items()):
        if category not in CRUCIAL:
            continue
        clients = tuple(
            by_month.get("{:04d}-{:02d}".format(*month_back(*latest, k)), 0)
            for k in range(WINDOW, -1, -1)
        )
        region = region_of.get(name, contract_region)
        out.append(DepartmentSummary(provider, name, category, region, latest, clients))
    return out


def region_view(rows: Iterable[DepartmentSummary]) -> dict[str, dict[str, dict[str, int]]]:
    """SPEC §9 ``regions``: per region and category with departments, the number
    active in their provider's latest covered month and their clients; sorted."""
    view: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        if row.region is None:
            continue
        cell = view.setdefault(row.region, {}).setdefault(
            row.category, {"active_departments": 0, "clients": 0}
        )
        if row.clients[-1] > 0:
            cell["active_departments"] += 1
            cell["clients"] += row.clients[-1]
    return {
        region: {c: view[region][c] for c in CRUCIAL if c in view[region]}
        for region in sorted(view)
    }


def merge_regions(parts: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """The region views of disjoint sets of providers (partial snapshots), summed:
    a department belongs to one provider, a provider to one part."""
    total: dict[str, dict[str, dict[str, int]]] = {}
    for part in parts:
        for region, categories in part.items():
            for category, cell in categories.items():
                into = total.setdefault(region, {}).setdefault(
                    category, {"active_departments": 0, "clients": 0}
                )
                into["active_departments"] += cell["active_departments"]
                into["clients"] += cell["clients"]
    return {
        region: {c: total[region][c] for c in CRUCIAL if c in total[region]}
        for region in sorted(total)
    }


class Gap(NamedTuple):
    """One region and category, judged: ``fires`` when departments ``had`` (active in
    the window before their latest covered month) and none is ``active`` in it."""

    region: str
    category: str
    year: int  # of the latest of the involved providers' latest covered months
    month: int
    had: int
    active: int
    fires: bool


def gaps(rows: Iterable[DepartmentSummary]) -> list[Gap]:
    """Every region and category with departments, judged (SPEC §9), sorted."""
    groups: dict[tuple[str, str], list[DepartmentSummary]] = {}
    for row in rows:
        if row.region is not None and row.category in CRUCIAL:
            groups.setdefault((row.region, row.category), []).append(row)
    out = []
    for (region, category), members in sorted(groups.items()):
        had = [r for r in members if any(r.clients[:-1])]
        active = sum(1 for r in members if r.clients[-1] > 0)
        involved = had or members
        year, month = max(r.latest for r in involved)
        out.append(Gap(region, category, year, month, len(had), active, bool(had) and not active))
    return out


def gap_id(region: str, category: str, year: int) -> str:
    return f"{RULE}:{region}:{category}:{year}"


class RegionWatch:
    """The states of the region gap alerts, and their events at transitions."""

    def __init__(self, language: Language = "nl", replay: bool = False) -> None:
        self.alerts = AlertBook()
        self.language: Language = language
        self.replay = replay

    def evaluate(
        self, rows: Iterable[DepartmentSummary], event_time: float, detected_at: float
    ) -> list[dict[str, Any]]:
        """The transitions of judging ``rows`` now: a gap fires or resolves; an alert of
        a region and category firing under another year's id resolves."""
        events = []
        for gap in gaps(rows):
            aid = gap_id(gap.region, gap.category, gap.year)
            prefix = aid.rsplit(":", 1)[0] + ":"
            for other, state in list(self.alerts.states.items()):
                if other.startswith(prefix) and other != aid and state.firing:
                    old = Finding(RULE, int(other.rsplit(":", 1)[1]), None, False, True, 0, 0, "")
                    new = self.alerts.observe(other, old)
                    if new is not None:
                        events.append(self._event(other, gap, new, event_time, detected_at))
            value = float(gap.active)
            finding = Finding(RULE, gap.year, None, gap.fires, not gap.fires, value, 0.0, SEVERITY)
            new = self.alerts.observe(aid, finding)
            if new is not None:
                events.append(self._event(aid, gap, new, event_time, detected_at))
        return events

    def firing(self) -> list[str]:
        return sorted(aid for aid, _ in self.alerts.firing())

    def _event(
        self, aid: str, gap: Gap, state: Any, event_time: float, detected_at: float
    ) -> dict[str, Any]:
        year = int(aid.rsplit(":", 1)[1])
        event: dict[str, Any] = {
            "schema": "ggz.alert/1",
            "alert_id": aid,
            "rule": RULE,
            "state": "firing" if state.firing else "resolved",
            "severity": state.severity,
            "provider_agb": None,
            "provider_name": None,
            "year": year,
            "purchaser": None,
            "region": gap.region,
            "value": state.value,
            "threshold": 0.0,
            "event_time": format_time(event_time),
            "detected_at": format_time(detected_at),
            "message": message(gap, state.firing, year, self.language),
            "sequence": state.sequence,
        }
        if self.replay:
            event["replay"] = True
        return event


def message(gap: Gap, firing: bool, year: int, language: Language = "nl") -> str:
    """The sentence of a gap's transition, naming region, category and month."""
    kind = CATEGORY_NAMES[language][gap.category]
    month = f"{MONTH_NAMES[language][gap.month - 1]} {gap.year}"
    if language == "nl":
        if firing:
            return (
                f"Regio {gap.region}: geen enkele afdeling voor {kind} had cliënten in {month}, "
                f"terwijl {gap.had} afdeling(en) dat in de zes maanden ervoor wel hadden. "
                "Is deze zorg in de regio nog beschikbaar?"
            )
        if gap.year != year:
            return f"Regio {gap.region}: de melding over {kind} in {year} is afgesloten; de regio wordt verder beoordeeld in {gap.year}."
        if gap.active == 0:  # no department of it seen for six months: the notice lapses
            return (
                f"Regio {gap.region}: de melding over {kind} vervalt, want geen afdeling voor "
                f"{kind} had in de zes maanden tot en met {month} nog cliënten; de zorg "
                "ontbreekt nog steeds in de regio, tenzij ze elders wordt geboden."
            )
        return f"Regio {gap.region}: {kind} is weer beschikbaar ({gap.active} actieve afdeling(en) in {month})."
    if firing:
        return (
            f"Region {gap.region}: no department of {kind} had clients in {month}, while "
            f"{gap.had} did in the six months before. Is this care still available in the region?"
        )
    if gap.year != year:
        return f"Region {gap.region}: the {year} notice on {kind} is closed; the region is judged in {gap.year} from now on."
    if gap.active == 0:
        return (
            f"Region {gap.region}: the notice on {kind} lapses, as no department of {kind} "
            f"had clients in the six months up to {month}; the care is still missing in the "
            "region unless it is offered elsewhere."
        )
    return f"Region {gap.region}: {kind} is available again ({gap.active} active department(s) in {month})."
