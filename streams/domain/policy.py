"""The purchasing policy: thresholds of the alert rules (SPEC §5), read from TOML.

The shipped defaults live in ``streams/policy.default.toml``; operators point
``CLAIMWATCH_POLICY`` (or ``--policy``) at their own copy. A policy file is checked
completely at start: an unknown section or key, a missing key or a value out of
range raises :class:`PolicyError` naming it, so a typo never silently falls back to
a default. A rule's section is the unit an operator takes over: one left out of an
operator's file is read from the shipped defaults (``Policy.defaulted`` names it,
and the worker says so at start), so a release that adds a rule runs on the
operator's existing file; the defaults file itself must name every rule.

Each rule of the registry (streams/domain/rules/) has a section named after it,
read into the dataclass its module declares (``Rule.params``): its fields say how
each key is read and checked, so a new rule needs nothing here. ``[tick]``,
``[retention]``, ``[months]``, ``[pace]`` and ``[messages]`` belong to the engine; ``[months]``,
``[pace]`` (the spend projection of SPEC §8.2, shared by the snapshot and both pace rules)
and ``[messages]`` (the language of alert messages) are optional in an operator's file as a
rule section is (added in a release: the shipped default applies).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from streams.domain.alerts import LANGUAGES, Language
from streams.domain.errors import PolicyError
from streams.domain.pace import PacePolicy
from streams.domain.rules import RULES, Rule
from streams.domain.rules.adhd_growth import AdhdPolicy
from streams.domain.rules.base import SEVERITIES, Param, ParamError
from streams.domain.rules.ceiling_utilisation import CeilingPolicy
from streams.domain.rules.clinical_detox_high import DetoxPolicy
from streams.domain.rules.digital_share_low import DigitalPolicy
from streams.domain.rules.group_consult_staffing import StaffingPolicy
from streams.domain.rules.group_share_low import GroupSharePolicy
from streams.domain.rules.zvt_setting_mismatch import MismatchPolicy

__all__ = [
    "DEFAULT_POLICY_PATH",
    "SEVERITIES",
    "MonthsPolicy",
    "PacePolicy",
    "Policy",
    "RetentionPolicy",
    "load_policy",
    "parse_policy",
]

P = TypeVar("P")
ENGINE_SECTIONS = ("tick", "retention", "months", "pace", "messages")
# Engine sections an operator's file may leave out: the shipped defaults apply.
OPTIONAL_ENGINE_SECTIONS = ("months", "pace", "messages")

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policy.default.toml"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    # Service years whose line index (line ids, event ids) is kept after the year ends:
    # year Y is dropped when a provider's event-time watermark reaches 1 January of
    # Y + line_index_years + 1 (UTC). See docs/operations.md, "Retention".
    line_index_years: int


@dataclass(frozen=True, slots=True)
class MonthsPolicy:
    # SPEC §8.1: a calendar month of a service year counts as covered once it ended at
    # least this many days before the provider's watermark (late declarations).
    lag_days: int


@dataclass(frozen=True, slots=True)
class Policy:
    # rule name → its section, as the dataclass of ``Rule.params``
    rules: Mapping[str, Any]
    tick_seconds: float
    retention: RetentionPolicy = RetentionPolicy(3)
    source: str = "defaults"
    # rule (and optional engine) sections the file left out, read from the shipped defaults
    defaulted: tuple[str, ...] = ()
    months: MonthsPolicy = MonthsPolicy(30)
    # the language of alert messages and ``claimwatch explain`` ([messages])
    language: Language = "nl"
    # the spend projection (SPEC §8.2 [pace]): one definition for the snapshot, the
    # provider status and both pace rules, so an alert cites the projection they show
    pace: PacePolicy = PacePolicy()

    def of(self, rule: Rule[P]) -> P:
        """The section of ``rule``, typed as its module declares it."""
        return self.rules[rule.name]

    # The sections of the shipped rules that other modules read, by short name.
    @property
    def ceiling(self) -> CeilingPolicy:
        return self.rules["ceiling_utilisation"]

    @property
    def group_share(self) -> GroupSharePolicy:
        return self.rules["group_share_low"]

    @property
    def staffing(self) -> StaffingPolicy:
        return self.rules["group_consult_staffing"]

    @property
    def detox(self) -> DetoxPolicy:
        return self.rules["clinical_detox_high"]

    @property
    def adhd(self) -> AdhdPolicy:
        return self.rules["adhd_growth"]

    @property
    def mismatch(self) -> MismatchPolicy:
        return self.rules["zvt_setting_mismatch"]

    @property
    def digital(self) -> DigitalPolicy:
        return self.rules["digital_share_low"]


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
    shipped = file.resolve() == DEFAULT_POLICY_PATH
    return parse_policy(raw, source=str(file), defaults={} if shipped else None)


def parse_policy(
    raw: dict[str, Any], source: str = "<dict>", *, defaults: dict[str, Any] | None = None
) -> Policy:
    """Check ``raw`` and read it into a Policy. A rule section (or optional engine
    section) it lacks is taken from ``defaults`` (the parsed shipped defaults unless
    given; pass ``{}`` to require every section, as the defaults file itself must hold
    them all)."""
    if defaults is None:
        defaults = _shipped()
    optional = [*RULES.names(), *OPTIONAL_ENGINE_SECTIONS]
    missing = [name for name in optional if name not in raw and name in defaults]
    r = _Reader({**raw, **{name: defaults[name] for name in missing}}, source)
    rules = {rule.name: r.rule_section(rule) for rule in RULES}

    tick = r.section("tick")
    tick_seconds = r.number(tick, "interval_seconds", 0.05, 86_400)
    r.done(tick, "tick")

    rt = r.section("retention")
    retention = RetentionPolicy(r.integer(rt, "line_index_years", 1, 100))
    r.done(rt, "retention")

    mo = r.section("months")
    months = MonthsPolicy(r.integer(mo, "lag_days", 0, 366))
    r.done(mo, "months")

    pc = r.section("pace")
    pace = PacePolicy(
        r.integer(pc, "min_prior_cents", 0, 10**15), r.integer(pc, "min_months", 1, 12)
    )
    r.done(pc, "pace")

    ms = r.section("messages")
    language = _take_language(r, ms)
    r.done(ms, "messages")
    r.done(raw, None)

    return Policy(rules, tick_seconds, retention, source, tuple(missing), months, language, pace)


def _take_language(r: _Reader, table: dict[str, Any]) -> Language:
    value = r._take(table, "language")
    if value not in LANGUAGES:
        r.fail("messages.language", f"must be one of {', '.join(LANGUAGES)}; not {value!r}")
    return value


def _shipped() -> dict[str, Any]:
    """The shipped defaults file, parsed (read each time: tests register rules)."""
    try:
        return tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"shipped policy {DEFAULT_POLICY_PATH} cannot be read: {exc}") from None


class _Reader:
    """Pops keys off the TOML tables, so whatever is left over is an unknown key."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source
        self._path = ""

    def fail(self, key: str, why: str) -> NoReturn:
        raise PolicyError(f"policy {self.source}: {key} {why}")

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name)
        if not isinstance(value, dict):
            self.fail(f"[{name}]", "is missing")
        self._path = name
        return dict(value)

    def rule_section(self, rule: Rule[Any]) -> Any:
        """The section of ``rule``, read field by field as its ``params`` declare."""
        table = self.section(rule.name)
        values = {
            f.name: self._read(table, f.name, f.metadata["param"])
            for f in dataclasses.fields(rule.params)
            if f.init
        }
        self.done(table, rule.name)
        try:
            return rule.params(**values)
        except ParamError as exc:
            self.fail(f"{rule.name}.{exc.key}", exc.why)

    def _read(self, table: dict[str, Any], key: str, p: Param) -> Any:
        if p.kind == "number":
            return self.number(table, key, p.lower, p.upper)
        if p.kind == "integer":
            return self.integer(table, key, int(p.lower), int(p.upper))
        if p.kind == "numbers":
            return tuple(self.fraction_list(table, key, p.upper))
        if p.kind == "integers":
            return frozenset(self.int_list(table, key, int(p.lower), int(p.upper)))
        if p.kind == "severities":
            return tuple(self.severity_list(table, key))
        return self.severity(table, key)

    def done(self, table: dict[str, Any], name: str | None) -> None:
        if name is None:
            known = {*RULES.names(), *ENGINE_SECTIONS}
            unknown = [k for k in self.raw if k not in known]
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

    def integer(self, table: dict[str, Any], key: str, lower: int, upper: int) -> int:
        value = self._take(table, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{self._path}.{key}", f"must be a whole number, not {value!r}")
        if not lower <= value <= upper:
            self.fail(f"{self._path}.{key}", f"must be between {lower} and {upper}, not {value}")
        return int(value)

    def _list(self, table: dict[str, Any], key: str) -> list[Any]:
        value = self._take(table, key)
        if not isinstance(value, list) or not value:
            self.fail(f"{self._path}.{key}", "must be a non-empty list")
        return value

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

    def severity(self, table: dict[str, Any], key: str) -> str:
        value = self._take(table, key)
        if value not in SEVERITIES:
            self.fail(
                f"{self._path}.{key}", f"must be one of {', '.join(SEVERITIES)}; not {value!r}"
            )
        return str(value)
