"""One summary per provider-year (SPEC §10), and the peer mean of all of them.

A worker publishes ``provider_year_status`` of each provider-year it owns to the
compacted topic ``ggz.provider-status.v1``, keyed ``<agb>:<year>``; every worker
reads the whole topic into a ``StatusBook`` and takes the peer mean of
``group_share_low`` from it, so the mean does not depend on how the partitions are
spread over the workers. The summary carries indicators, contract fields and alert
ids only: no client reference, no declaration line.

The same topic carries the states of the region alerts (``region_category_gap``,
SPEC §9) under keys ``region:<region>:<category>`` (``region_state_key``): the
worker that judges a region publishes them after each transition, and a worker that
takes the region over after a rebalance resumes from them (streams/pipeline/
regions.py). Readers of provider summaries skip those keys.

Plain Python: the Kafka side is streams/pipeline/status.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from xxhash import xxh3_64_intdigest

from streams.domain.alerts import AlertState
from streams.domain.departments import DepartmentBook, year_departments
from streams.domain.model import format_time, parse_time
from streams.domain.months import latest_covered_month
from streams.domain.regions import DepartmentSummary, summaries_from_status
from streams.domain.rules.group_share_low import peer_mean
from streams.domain.snapshot import year_indicators, year_pace

if TYPE_CHECKING:
    from streams.domain.contracts import Contract, ContractBook
    from streams.domain.policy import Policy
    from streams.domain.state import ProviderState

STATUS_SCHEMA = "ggz.provider-status/1"
REGION_PREFIX = "region:"


def region_state_key(region: str, category: str) -> str:
    return f"{REGION_PREFIX}{region}:{category}"


def encode_region_states(states: dict[str, AlertState]) -> bytes:
    """The states of one region and category's gap alerts (one id a year), as the
    status topic carries them."""
    return orjson.dumps(
        {
            "schema": "ggz.region-alerts/1",
            "alerts": {a: [s.firing, s.sequence, s.severity, s.value] for a, s in states.items()},
        }
    )


def status_key(provider: str, year: int) -> str:
    return f"{provider}:{year}"


def provider_year_status(
    st: ProviderState,
    year: int,
    contract: Contract | None,
    open_alerts: list[str],
    policy: Policy,
    departments: DepartmentBook | None = None,
) -> dict[str, Any]:
    """The summary of one provider-year.

    ``indicators`` is exactly the provider-year's entry in the snapshot
    (``build_snapshot``); ``watermark`` and ``updated_at`` are the provider's
    watermark (its latest accepted ``submitted_at``), RFC 3339 in UTC: the summary
    describes the provider as of that event time. ``covered_month`` and ``pace``
    (SPEC §8.2, §10) are at that watermark: ``pace`` is the projection an alert's
    explanation shows (``expected_share`` is what the purchaser page draws as
    "expected by now"). ``open_alerts``: the ids firing for this provider-year, sorted.
    The indicators' ``departments`` (SPEC §9) take their categories from the register
    ``departments`` (None: from the settings of their lines): what a region view
    across workers reads (``regions.summaries_from_status``).
    """
    watermark = format_time(st.watermark)
    ceiling = contract.ceiling_cents if contract is not None else None
    pace = year_pace(st, year, ceiling, policy)
    indicators = year_indicators(st.years[year], st.years.get(year - 1), year, ceiling, pace)
    book = departments if departments is not None else DepartmentBook()
    indicators["departments"] = year_departments(st, year, book)
    return {
        "schema": STATUS_SCHEMA,
        "provider_agb": st.provider,
        "year": year,
        "indicators": indicators,
        "contract": (
            {
                "ceiling_cents": contract.ceiling_cents,
                "purchaser": contract.purchaser,
                "provider_name": contract.provider_name,
                "region": contract.region,
                "version": contract.version,
            }
            if contract is not None
            else None
        ),
        "watermark": watermark,
        "covered_month": pace.covered_month,
        "pace": {**pace.context(), "pace_ratio": pace.pace_ratio},
        "open_alerts": open_alerts,
        "updated_at": watermark,
    }


def provider_statuses(
    st: ProviderState,
    contracts: ContractBook,
    policy: Policy,
    departments: DepartmentBook | None = None,
) -> Iterator[tuple[str, bytes]]:
    """(key, encoded summary) of every provider-year of a provider, by year."""
    firing: dict[str, list[str]] = {}
    for aid, _ in st.alerts.firing():
        # <rule>:<agb>:<year>[:<detail>]
        firing.setdefault(aid.split(":", 3)[2], []).append(aid)
    for year in sorted(st.years):
        status = provider_year_status(
            st,
            year,
            contracts.get(st.provider, year),
            sorted(firing.get(str(year), ())),
            policy,
            departments,
        )
        yield status_key(st.provider, year), orjson.dumps(status)


def digest(value: bytes) -> int:
    """What tells two encoded summaries apart (a publisher skips an unchanged one)."""
    return xxh3_64_intdigest(value)


class Departments(NamedTuple):
    """What the region view needs of one provider-year's summary."""

    provider: str
    year: int
    watermark: float
    contract_region: str | None
    departments: dict[str, Any]
    # the year's net cents by service month: which months the provider declared care
    # in (``departments.judged_month``); None in a summary without them
    net_by_month: list[int] | None = None


class StatusBook:
    """The latest summary of every provider-year, as far as the topic has been read.

    Keeps, per key, what the peer mean needs (year, consults, group consults), the
    value's digest, and what the region view needs (``Departments``); and the region
    alerts' states (``region:`` keys). A tombstone (``None`` value) deletes its key;
    so does a value that is not a summary (counted in ``malformed``): the key's
    latest value is what compaction keeps, and an unreadable one cannot stand for the
    provider.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int, int, int]] = {}
        self._departments: dict[str, Departments] = {}
        self._regions: dict[str, dict[str, AlertState]] = {}
        self.malformed = 0
        self._version = 0
        self._means: tuple[int, int, dict[int, Fraction | None]] | None = None
        self._rows: tuple[tuple[int, int, int, int], list[DepartmentSummary]] | None = None

    def apply(self, key: bytes | str | None, value: bytes | None) -> None:
        if key is None:
            self.malformed += 1
            return
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if k.startswith(REGION_PREFIX):
            self._apply_region(k, value)
            return
        self._version += 1
        if value is None:
            self._entries.pop(k, None)
            self._departments.pop(k, None)
            return
        entry, departments = _entry(value)
        if entry is None:
            self.malformed += 1
            self._entries.pop(k, None)
            self._departments.pop(k, None)
            return
        self._entries[k] = entry
        if departments is not None:
            self._departments[k] = departments
        else:
            self._departments.pop(k, None)

    def _apply_region(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._regions.pop(key, None)
            return
        try:
            raw = orjson.loads(value)["alerts"]
            states = {
                str(a): AlertState(bool(v[0]), int(v[1]), str(v[2]), v[3]) for a, v in raw.items()
            }
        except (
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
        ):
            self.malformed += 1
            self._regions.pop(key, None)
            return
        self._regions[key] = states

    def region_states(self) -> dict[str, AlertState]:
        """Every region alert's state as last published, by alert id."""
        return {aid: s for states in self._regions.values() for aid, s in states.items()}

    def watermark(self) -> float:
        """The latest watermark of every provider-year read (0 when none)."""
        return max((d.watermark for d in self._departments.values()), default=0.0)

    def department_rows(self, register: DepartmentBook, lag_days: int) -> list[DepartmentSummary]:
        """The region view's rows (``regions.DepartmentSummary``) of every provider
        read: its departments of every year at its latest covered month, each in its
        register region, else the region of the provider's contract of that month's
        year, else of its latest year with one.

        Kept until the topic or the register changes: a worker asks once per
        partition it judges at every calendar month of event time."""
        stamp = (self._version, id(register), register.version, lag_days)
        if self._rows is not None and self._rows[0] == stamp:
            return self._rows[1]
        rows = self._department_rows(register, lag_days)
        self._rows = (stamp, rows)
        return rows

    def _department_rows(self, register: DepartmentBook, lag_days: int) -> list[DepartmentSummary]:
        by_provider: dict[str, list[Departments]] = {}
        for d in self._departments.values():
            by_provider.setdefault(d.provider, []).append(d)
        rows: list[DepartmentSummary] = []
        for provider in sorted(by_provider):
            entries = sorted(by_provider[provider], key=lambda d: d.year)
            watermark = max(d.watermark for d in entries)
            if watermark <= 0 or not any(d.departments for d in entries):
                continue
            latest = latest_covered_month(watermark, lag_days)
            regions = {d.year: d.contract_region for d in entries if d.contract_region}
            fallback = regions.get(latest[0]) or (regions[max(regions)] if regions else None)
            names = {name for d in entries for name in d.departments}
            region_of = {}
            for name in names:
                entry = register.get(provider, name)
                if entry is not None:
                    region_of[name] = entry.region
            years = {str(d.year): d.departments for d in entries}
            net = {d.year: d.net_by_month for d in entries if d.net_by_month is not None}
            rows += summaries_from_status(
                provider, years, latest, region_of, fallback, net_by_month=net
            )
        return rows

    def digest(self, key: str) -> int | None:
        entry = self._entries.get(key)
        return entry[3] if entry is not None else None

    def pairs(self) -> dict[int, list[tuple[int, int]]]:
        """(consults, group_consults) of every provider-year, per year."""
        out: dict[int, list[tuple[int, int]]] = {}
        for year, consults, group, _ in self._entries.values():
            out.setdefault(year, []).append((consults, group))
        return out

    def means(self, min_consults: int) -> dict[int, Fraction | None]:
        """The peer mean per year (``group_share_low.peer_mean``), recomputed only after
        a change."""
        cached = self._means
        if cached is not None and cached[0] == self._version and cached[1] == min_consults:
            return cached[2]
        means = {year: peer_mean(p, min_consults)[0] for year, p in self.pairs().items()}
        self._means = (self._version, min_consults, means)
        return means

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def _entry(value: bytes) -> tuple[tuple[int, int, int, int] | None, Departments | None]:
    try:
        obj = orjson.loads(value)
        year, ind = obj["year"], obj["indicators"]
        consults, group = ind["consults"], ind["group_consults"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None, None
    if not all(type(x) is int for x in (year, consults, group)):
        return None, None
    return (year, consults, group, digest(value)), _departments(obj, year, ind)


def _departments(obj: dict[str, Any], year: int, ind: dict[str, Any]) -> Departments | None:
    """The summary's departments and what places them, or None when it has none or
    they are not of the snapshot's shape (a summary from before SPEC §9)."""
    departments = ind.get("departments")
    provider, watermark = obj.get("provider_agb"), obj.get("watermark")
    # a year without departments is kept too: its months tell which the provider
    # declared care in, when its departments are judged
    if not isinstance(departments, dict) or not isinstance(provider, str):
        return None
    if not isinstance(watermark, str):
        return None
    try:
        at = parse_time(watermark)
        for entry in departments.values():
            if not isinstance(entry["category"], str) or not isinstance(
                entry["clients_by_month"], dict
            ):
                return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    contract = obj.get("contract")
    region = contract.get("region") if isinstance(contract, dict) else None
    by_month = ind.get("net_cents_by_month")
    if not (
        isinstance(by_month, list) and len(by_month) == 12 and all(type(c) is int for c in by_month)
    ):
        by_month = None
    return Departments(
        provider, year, at, region if isinstance(region, str) else None, departments, by_month
    )
