"""The purchasing policy: thresholds of the alert rules (SPEC §5), read from TOML.

The shipped defaults live in ``streams/policy.default.toml``; operators point
``CLAIMWATCH_POLICY`` (or ``--policy``) at their own copy. A policy file is checked
completely at start: an unknown key, a missing key or a value out of range raises
:class:`PolicyError` naming it, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.domain.errors import PolicyError

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policy.default.toml"
SEVERITIES = ("warning", "high", "critical")


@dataclass(frozen=True, slots=True)
class CeilingPolicy:
    thresholds: tuple[float, ...]
    severities: tuple[str, ...]
    resolve_margin: float
    # Thresholds and margin in basis points, so crossings are decided in exact
    # integers; computed once, the ceiling rule reads them whenever it runs.
    thresholds_bp: tuple[int, ...] = field(init=False, repr=False, compare=False)
    margin_bp: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds_bp", tuple(round(t * 10_000) for t in self.thresholds))
        object.__setattr__(self, "margin_bp", round(self.resolve_margin * 10_000))


@dataclass(frozen=True, slots=True)
class GroupSharePolicy:
    factor: float
    min_consults: int
    severity: str


@dataclass(frozen=True, slots=True)
class StaffingPolicy:
    min_count: int
    min_share: float
    severity: str


@dataclass(frozen=True, slots=True)
class DetoxPolicy:
    threshold: float
    min_lines: int
    severity: str


@dataclass(frozen=True, slots=True)
class AdhdPolicy:
    threshold: float
    min_base: int
    severity: str


@dataclass(frozen=True, slots=True)
class MismatchPolicy:
    care_demand_types: frozenset[int]
    settings: frozenset[int]
    from_year: int
    severity: str


@dataclass(frozen=True, slots=True)
class DigitalPolicy:
    target: float
    min_consults: int
    severity: str


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    # Service years whose line index (line ids, event ids) is kept after the year ends:
    # year Y is dropped when a provider's event-time watermark reaches 1 January of
    # Y + line_index_years + 1 (UTC). See docs/operations.md, "Retention".
    line_index_years: int


@dataclass(frozen=True, slots=True)
class Policy:
    ceiling: CeilingPolicy
    group_share: GroupSharePolicy
    staffing: StaffingPolicy
    detox: DetoxPolicy
    adhd: AdhdPolicy
    mismatch: MismatchPolicy
    digital: DigitalPolicy
    tick_seconds: float
    retention: RetentionPolicy = RetentionPolicy(3)
    source: str = "defaults"


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and check a policy file; ``None`` reads the shipped defaults."""
    file = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {file} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {file} is not valid TOML: {exc}") from None
    return parse_policy(raw, source=str(file))


def parse_policy(raw: dict[str, Any], source: str = "<dict>") -> Policy:
    r = _Reader(raw, source)
    ceiling = r.section("ceiling_utilisation")
    thresholds = tuple(r.fraction_list(ceiling, "thresholds", upper=10.0))
    severities = tuple(r.severity_list(ceiling, "severities"))
    if list(thresholds) != sorted(set(thresholds)):
        r.fail("ceiling_utilisation.thresholds", "must be strictly increasing")
    if len(severities) != len(thresholds):
        r.fail("ceiling_utilisation.severities", "needs one severity per threshold")
    ceiling_policy = CeilingPolicy(
        thresholds=thresholds,
        severities=severities,
        resolve_margin=r.fraction(ceiling, "resolve_margin", upper=1.0),
    )
    r.done(ceiling, "ceiling_utilisation")

    gs = r.section("group_share_low")
    group_share = GroupSharePolicy(
        r.fraction(gs, "factor", upper=1.0), r.count(gs, "min_consults"), r.severity(gs)
    )
    r.done(gs, "group_share_low")

    st = r.section("group_consult_staffing")
    staffing = StaffingPolicy(
        r.count(st, "min_count"), r.fraction(st, "min_share", upper=1.0), r.severity(st)
    )
    r.done(st, "group_consult_staffing")

    dx = r.section("clinical_detox_high")
    detox = DetoxPolicy(
        r.fraction(dx, "threshold", upper=1.0), r.count(dx, "min_lines"), r.severity(dx)
    )
    r.done(dx, "clinical_detox_high")

    ad = r.section("adhd_growth")
    adhd = AdhdPolicy(
        r.fraction(ad, "threshold", upper=100.0), r.count(ad, "min_base"), r.severity(ad)
    )
    r.done(ad, "adhd_growth")

    mm = r.section("zvt_setting_mismatch")
    mismatch = MismatchPolicy(
        frozenset(r.int_list(mm, "care_demand_types", 0, 21)),
        frozenset(r.int_list(mm, "settings", 1, 8)),
        r.integer(mm, "from_year", 2000, 2100),
        r.severity(mm),
    )
    r.done(mm, "zvt_setting_mismatch")

    dg = r.section("digital_share_low")
    digital = DigitalPolicy(
        r.fraction(dg, "target", upper=1.0), r.count(dg, "min_consults"), r.severity(dg)
    )
    r.done(dg, "digital_share_low")

    tick = r.section("tick")
    tick_seconds = r.number(tick, "interval_seconds", 0.05, 86_400)
    r.done(tick, "tick")

    rt = r.section("retention")
    retention = RetentionPolicy(r.integer(rt, "line_index_years", 1, 100))
    r.done(rt, "retention")
    r.done(raw, None)

    return Policy(
        ceiling_policy,
        group_share,
        staffing,
        detox,
        adhd,
        mismatch,
        digital,
        tick_seconds,
        retention,
        source,
    )


class _Reader:
    """Pops keys off the TOML tables, so whatever is left over is an unknown key."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source
        self._path = ""

    def fail(self, key: str, why: str) -> None:
        raise PolicyError(f"policy {self.source}: {key} {why}")

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name)
        if not isinstance(value, dict):
            self.fail(f"[{name}]", "is missing")
        self._path = name
        return dict(value)  # type: ignore[arg-type]

    def done(self, table: dict[str, Any], name: str | None) -> None:
        if name is None:
            unknown = [k for k in self.raw if k not in _SECTIONS]
            if unknown:
                self.fail(f"[{unknown[0]}]", "is not a known section")
            return
        if table:
            self.fail(f"{name}.{next(iter(table))}", "is not a known key")

    def _take(self, table: dict[str, Any], key: str) -> Any:
        if key not in table:
            self.fail(f"{self._path}.{key}", "is missing")
        return table.pop(key)

    def number(self, table: dict[str, Any], key: str, lower: float, upper: float) -> float:
        value = self._take(table, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{self._path}.{key}", f"must be a number, not {value!r}")
        if not lower <= value <= upper:
            self.fail(f"{self._path}.{key}", f"must be between {lower} and {upper}, not {value}")
        return float(value)

    def fraction(self, table: dict[str, Any], key: str, upper: float) -> float:
        return self.number(table, key, 0.0, upper)

    def integer(self, table: dict[str, Any], key: str, lower: int, upper: int) -> int:
        value = self._take(table, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{self._path}.{key}", f"must be a whole number, not {value!r}")
        if not lower <= value <= upper:
            self.fail(f"{self._path}.{key}", f"must be between {lower} and {upper}, not {value}")
        return int(value)

    def count(self, table: dict[str, Any], key: str) -> int:
        return self.integer(table, key, 0, 10**9)

    def _list(self, table: dict[str, Any], key: str) -> list[Any]:
        value = self._take(table, key)
        if not isinstance(value, list) or not value:
            self.fail(f"{self._path}.{key}", "must be a non-empty list")
        return value  # type: ignore[no-any-return]

    def fraction_list(self, table: dict[str, Any], key: str, upper: float) -> list[float]:
        values = self._list(table, key)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= upper:
                self.fail(f"{self._path}.{key}", f"must hold numbers in (0, {upper}], not {v!r}")
        return [float(v) for v in values]

    def int_list(self, table: dict[str, Any], key: str, lower: int, upper: int) -> list[int]:
        values = self._list(table, key)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not lower <= v <= upper:
                self.fail(
                    f"{self._path}.{key}", f"must hold whole numbers {lower}..{upper}, not {v!r}"
                )
        return [int(v) for v in values]

    def severity_list(self, table: dict[str, Any], key: str) -> list[str]:
        values = self._list(table, key)
        for v in values:
            if v not in SEVERITIES:
                self.fail(f"{self._path}.{key}", f"must hold {', '.join(SEVERITIES)}; not {v!r}")
        return [str(v) for v in values]

    def severity(self, table: dict[str, Any]) -> str:
        value = self._take(table, "severity")
        if value not in SEVERITIES:
            self.fail(
                f"{self._path}.severity", f"must be one of {', '.join(SEVERITIES)}; not {value!r}"
            )
        return str(value)


_SECTIONS = (
    "ceiling_utilisation",
    "group_share_low",
    "group_consult_staffing",
    "clinical_detox_high",
    "adhd_growth",
    "zvt_setting_mismatch",
    "digital_share_low",
    "tick",
    "retention",
)
