"""What the portal serves, in memory: the latest status of every provider-year, every
alert's transitions, and the department register, as read from their topics.

``Model.apply_status``, ``apply_alert`` and ``apply_department`` take one record
(key and value bytes, as a consumer hands them over) and never raise: a value that
is not what the topic carries is skipped and counted per topic in ``malformed``, a
tombstone (``None`` value) deletes its key. Only the fields the pages show are kept,
copied by name, so nothing a producer might add by mistake (a client reference)
reaches a page or the API. Indexes the pages need (open alerts per provider-year,
years, purchasers) are kept up to date per record, so rendering a page of 2,000
providers does no scan of all alerts.

Plain Python; the Kafka side is streams/portal/follow.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from streams.domain.status import REGION_PREFIX

STATUS = "provider-status"
ALERTS = "alerts"
DEPARTMENTS = "departments"
TOPICS = (STATUS, ALERTS, DEPARTMENTS)

# The cruciale-ggz categories of SPEC §9, in the order the region page shows them;
# `other` is never judged and never shown as a category of its own.
CATEGORIES = ("acute", "outreach", "clinical", "secured", "hs_ggz", "hs_hospital")
REGISTER_CATEGORIES = (*CATEGORIES, "other")
SEVERITIES = ("critical", "high", "warning", "info")

# The fields of an alert transition the portal keeps (schemas/alert.v1.json).
ALERT_FIELDS = (
    "alert_id",
    "rule",
    "state",
    "severity",
    "provider_agb",
    "provider_name",
    "year",
    "purchaser",
    "region",
    "department",
    "value",
    "threshold",
    "event_time",
    "detected_at",
    "message",
    "sequence",
)
EXPLAIN_FIELDS = (
    "cause",
    "contract_version",
    "numerator",
    "denominator",
    "breakdown",
    "pace",
    "lines",
    "cents",
    "line_ids",
)
DEPARTMENT_FIELDS = ("clients_by_month", "consults", "stay_days", "net_cents", "category")


class Malformed(ValueError):
    """A record that is not what its topic carries."""


@dataclass(frozen=True, slots=True)
class ContractVersion:
    version: int
    ceiling_cents: int
    seen_at: str  # the status's watermark when this version was first read


@dataclass(slots=True)
class ProviderYear:
    """The latest summary of one provider-year (``ggz.provider-status.v1``)."""

    agb: str
    year: int
    name: str | None
    purchaser: str | None
    region: str | None
    ceiling_cents: int | None
    contract_version: int | None
    indicators: dict[str, Any]
    watermark: str
    covered_month: int
    pace: dict[str, Any]
    open_alerts: list[str]
    departments: dict[str, dict[str, Any]] | None
    versions: list[ContractVersion] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.agb}:{self.year}"

    @property
    def watermark_time(self) -> float:
        return datetime.fromisoformat(self.watermark.replace("Z", "+00:00")).timestamp()


@dataclass(slots=True)
class AlertHistory:
    """Every transition of one alert id read so far, by sequence."""

    alert_id: str
    transitions: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def latest(self) -> dict[str, Any]:
        return self.transitions[max(self.transitions)]

    @property
    def firing(self) -> bool:
        return bool(self.latest["state"] == "firing")

    def ordered(self) -> list[dict[str, Any]]:
        return [self.transitions[s] for s in sorted(self.transitions)]


@dataclass(frozen=True, slots=True)
class Department:
    """A department register entry (``ggz.departments.v1``, SPEC §9)."""

    agb: str
    department: str
    name: str | None
    category: str
    region: str | None
    version: int


class Model:
    def __init__(self) -> None:
        self.statuses: dict[str, ProviderYear] = {}
        self.alerts: dict[str, AlertHistory] = {}
        self.register: dict[tuple[str, str], Department] = {}
        self.records = dict.fromkeys(TOPICS, 0)
        self.malformed = dict.fromkeys(TOPICS, 0)
        # (agb, year) → alert id → severity, for the alerts firing now
        self._open: dict[tuple[str, int], dict[str, str]] = {}
        # (agb, year) → every alert id of that provider-year; region → region alert ids
        self._by_provider_year: dict[tuple[str, int], set[str]] = {}
        self._by_region: dict[str, set[str]] = {}
        self._by_provider: dict[str, set[int]] = {}

    # -- reading the topics -----------------------------------------------------
    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        handler = {
            STATUS: self._status,
            ALERTS: self._alert,
            DEPARTMENTS: self._department,
        }[topic]
        self.records[topic] += 1
        try:
            handler(key.decode() if key is not None else None, value)
        except (ValueError, TypeError, KeyError, AttributeError):
            # Malformed, and whatever else a value of the wrong shape raises on its
            # way in (JSON and UTF-8 errors are ValueErrors): skipped and counted.
            self.malformed[topic] += 1

    def apply_status(self, key: bytes | None, value: bytes | None) -> None:
        self.apply(STATUS, key, value)

    def apply_alert(self, key: bytes | None, value: bytes | None) -> None:
        self.apply(ALERTS, key, value)

    def apply_department(self, key: bytes | None, value: bytes | None) -> None:
        self.apply(DEPARTMENTS, key, value)

    def _status(self, key: str | None, value: bytes | None) -> None:
        if key is not None and key.startswith(REGION_PREFIX):
            return  # a region alert's states (streams/pipeline/regions.py), not a summary
        if value is None:
            if key is None:
                raise Malformed("tombstone without a key")
            gone = self.statuses.pop(key, None)
            if gone is not None:
                years = self._by_provider.get(gone.agb, set())
                years.discard(gone.year)
                if not years:
                    self._by_provider.pop(gone.agb, None)
            return
        py = parse_status(orjson.loads(value))
        if key is not None and key != py.key:
            raise Malformed("key does not name the value's provider-year")
        before = self.statuses.get(py.key)
        py.versions = list(before.versions) if before is not None else []
        new_version = not py.versions or py.versions[-1].version != py.contract_version
        if py.contract_version is not None and py.ceiling_cents is not None and new_version:
            py.versions.append(ContractVersion(py.contract_version, py.ceiling_cents, py.watermark))
        self.statuses[py.key] = py
        self._by_provider.setdefault(py.agb, set()).add(py.year)

    def _alert(self, key: str | None, value: bytes | None) -> None:
        if value is None:
            raise Malformed("the alerts topic has no tombstones")
        obj = orjson.loads(value)
        if not isinstance(obj, dict):
            raise Malformed("not an object")
        if obj.get("replay") is True:
            return  # a replay's transition in the live topic: never shown to purchasers
        t = parse_alert(obj)
        aid = t["alert_id"]
        history = self.alerts.setdefault(aid, AlertHistory(aid))
        history.transitions[t["sequence"]] = t  # a retried copy replaces its twin
        latest = history.latest
        agb, year = latest["provider_agb"], latest["year"]
        if agb is not None:
            self._by_provider_year.setdefault((agb, year), set()).add(aid)
            open_ = self._open.setdefault((agb, year), {})
            if history.firing:
                open_[aid] = latest["severity"]
            else:
                open_.pop(aid, None)
        if latest["region"] is not None and agb is None:
            self._by_region.setdefault(latest["region"], set()).add(aid)

    def _department(self, key: str | None, value: bytes | None) -> None:
        if value is None:
            if key is None or ":" not in key:
                raise Malformed("tombstone without a department key")
            agb, dept = key.split(":", 1)
            self.register.pop((agb, dept), None)
            return
        d = parse_department(orjson.loads(value))
        current = self.register.get((d.agb, d.department))
        if current is not None and current.version > d.version:
            return  # an older version read after a newer one: the newer stands
        self.register[(d.agb, d.department)] = d

    # -- what the pages ask -----------------------------------------------------
    def years(self) -> list[int]:
        return sorted({py.year for py in self.statuses.values()})

    def purchasers(self) -> list[str]:
        return sorted({py.purchaser for py in self.statuses.values() if py.purchaser})

    def provider_years(self, agb: str) -> list[int]:
        return sorted(self._by_provider.get(agb, ()))

    def status(self, agb: str, year: int) -> ProviderYear | None:
        return self.statuses.get(f"{agb}:{year}")

    def open_alerts(self, agb: str, year: int) -> Mapping[str, str]:
        """alert id → severity of the alerts of a provider-year firing now."""
        return self._open.get((agb, year), {})

    def alerts_of(self, agb: str, year: int) -> list[AlertHistory]:
        ids = self._by_provider_year.get((agb, year), ())
        return [self.alerts[a] for a in sorted(ids)]

    def region_alerts(self, region: str) -> list[AlertHistory]:
        return [self.alerts[a] for a in sorted(self._by_region.get(region, ()))]

    def regions(self) -> list[str]:
        names: set[str] = {d.region for d in self.register.values() if d.region}
        names.update(py.region for py in self.statuses.values() if py.region)
        names.update(self._by_region)
        return sorted(names)

    def departments_of(self, agb: str) -> Iterable[Department]:
        return (d for (a, _), d in self.register.items() if a == agb)

    def counts(self) -> dict[str, Any]:
        return {
            "provider_years": len(self.statuses),
            "alerts": len(self.alerts),
            "departments": len(self.register),
            "records": dict(self.records),
            "malformed": dict(self.malformed),
        }


def _int(obj: Mapping[str, Any], name: str, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if type(value) is not int:
        raise Malformed(f"{name} is not a whole number")
    return value


def _str(obj: Mapping[str, Any], name: str, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise Malformed(f"{name} is not a text")
    return value


def _object(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = obj.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"{name} is not an object")
    return value


def parse_status(obj: Any) -> ProviderYear:
    """A provider-status value (streams/domain/status.py), checked where a page
    computes with it."""
    if not isinstance(obj, dict):
        raise Malformed("not an object")
    ind = _object(obj, "indicators")
    by_month = ind.get("net_cents_by_month")
    if not (isinstance(by_month, list) and len(by_month) == 12):
        raise Malformed("net_cents_by_month is not 12 months")
    if not all(type(x) is int for x in by_month):
        raise Malformed("net_cents_by_month holds a value that is no whole number")
    _int(ind, "net_cents")
    contract = obj.get("contract")
    if contract is not None and not isinstance(contract, dict):
        raise Malformed("contract is not an object")
    contract = contract or {}
    pace = obj.get("pace")
    if not isinstance(pace, dict):
        pace = {}
    open_alerts = obj.get("open_alerts", [])
    if not (isinstance(open_alerts, list) and all(isinstance(a, str) for a in open_alerts)):
        raise Malformed("open_alerts is not a list of ids")
    watermark = _str(obj, "watermark")
    try:
        datetime.fromisoformat(watermark.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed("watermark is not a time") from None
    return ProviderYear(
        agb=_str(obj, "provider_agb"),
        year=_int(obj, "year"),
        name=_str(contract, "provider_name", optional=True),
        purchaser=_str(contract, "purchaser", optional=True),
        region=_str(contract, "region", optional=True),
        ceiling_cents=_int(contract, "ceiling_cents", optional=True),
        contract_version=_int(contract, "version", optional=True),
        indicators=ind,
        watermark=watermark,
        covered_month=_int(obj, "covered_month"),
        pace=pace,
        open_alerts=open_alerts,
        departments=_departments(obj.get("departments", ind.get("departments"))),
    )


def _departments(raw: Any) -> dict[str, dict[str, Any]] | None:
    """The status's departments (issue #22, SPEC §9 snapshot shape), or None when the
    value carries none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Malformed("departments is not an object")
    out: dict[str, dict[str, Any]] = {}
    for name, d in raw.items():
        if not isinstance(d, dict) or not isinstance(d.get("clients_by_month", {}), dict):
            raise Malformed("a department is not an object")
        out[str(name)] = {k: d[k] for k in DEPARTMENT_FIELDS if k in d}
    return out


def parse_alert(obj: dict[str, Any]) -> dict[str, Any]:
    """One alert transition (schemas/alert.v1.json), the fields the portal shows."""
    t = {k: obj.get(k) for k in ALERT_FIELDS}
    _str(t, "alert_id")
    _str(t, "rule")
    _str(t, "severity")
    _str(t, "event_time")
    _str(t, "message")
    if t["state"] not in ("firing", "resolved"):
        raise Malformed("state is neither firing nor resolved")
    if t["sequence"] is None:
        t["sequence"] = 1  # an alert from before sequences: its only transition known
    _int(t, "sequence")
    _int(t, "year")
    _str(t, "provider_agb", optional=True)
    _str(t, "region", optional=True)
    explain = obj.get("explain")
    if explain is not None and not isinstance(explain, dict):
        raise Malformed("explain is not an object")
    t["explain"] = {k: explain[k] for k in EXPLAIN_FIELDS if k in explain} if explain else None
    return t


def parse_department(obj: Any) -> Department:
    if not isinstance(obj, dict):
        raise Malformed("not an object")
    category = obj.get("category")
    if category not in REGISTER_CATEGORIES:
        raise Malformed("unknown category")
    return Department(
        agb=_str(obj, "provider_agb"),
        department=_str(obj, "department"),
        name=_str(obj, "name", optional=True),
        category=category,
        region=_str(obj, "region", optional=True),
        version=_int(obj, "version"),
    )
