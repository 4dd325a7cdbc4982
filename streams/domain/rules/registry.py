"""The registry: every rule, in evaluation order, found by looking in this package.

Every module of ``streams/domain/rules/`` other than ``base`` and ``registry`` holds
one rule as ``RULE``. The shipped rules come first in the order of SPEC §5 and §8 (their
alerts are published in that order at a tick, which the golden replay pins); any
other module follows in name order, so a new rule is a new module and nothing here
changes. ``register`` adds a rule defined elsewhere (a test's example rule).

Each ``Tally`` a rule declares gets a flag bit of the line-index entry here, in
registry order (``model.FIRST_TALLY_BIT`` up): the decoder sets it, ``YearState``
counts it by name. The bits are positions in persisted line-index entries, so
adding, removing or reordering tally-declaring rules needs state rebuilt by replay
while the state holds lines counted under the old allotment (docs/adding-a-rule.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

from streams.domain import indicators
from streams.domain.alerts import Finding, Language, who
from streams.domain.model import FIRST_TALLY_BIT, LAST_TALLY_BIT
from streams.domain.rules.base import Rule

# SPEC §5 order; not a list to extend (new modules are found), only the order of these.
SHIPPED = (
    "ceiling_utilisation",
    "group_share_low",
    "group_consult_staffing",
    "clinical_detox_high",
    "adhd_growth",
    "zvt_setting_mismatch",
    "digital_share_low",
    # SPEC §8.2 and §8.4
    "ceiling_pace_high",
    "ceiling_underrun",
    "group_share_not_rising",
    # SPEC §9
    "department_activity_drop",
    "department_stopped",
)
_NOT_RULES = frozenset({"base", "registry"})


class Registry:
    """The rules in order; iterable, and looked up by name (``rule``)."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule[Any]] = {}
        self._counts: dict[int, Callable[[Any], bool]] = {}  # tally flag bit → predicate

    def __iter__(self) -> Iterator[Rule[Any]]:
        return iter(tuple(self._rules.values()))

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, name: object) -> bool:
        return name in self._rules

    def names(self) -> tuple[str, ...]:
        return tuple(self._rules)

    def rule(self, name: str) -> Rule[Any]:
        try:
            return self._rules[name]
        except KeyError:
            raise KeyError(f"no rule named {name!r} (streams/domain/rules/)") from None

    def structural(self) -> tuple[Rule[Any], ...]:
        return tuple(r for r in self._rules.values() if r.kind == "structural")

    def register(self, rule: Rule[Any]) -> Rule[Any]:
        """Add ``rule`` after the others and allot its tallies their flag bits."""
        if rule.name in self._rules:
            raise ValueError(f"rule {rule.name!r} is registered twice")
        if not rule.name.isidentifier() or rule.name != rule.name.lower():
            raise ValueError(f"rule name {rule.name!r}: lower-case letters, digits and _")
        taken = set(indicators.TALLIES.values())
        free = [
            1 << bit
            for bit in range(FIRST_TALLY_BIT, LAST_TALLY_BIT + 1)
            if 1 << bit not in indicators.TALLIES
        ]
        names = [t.name for t in rule.tallies]
        if len(set(names)) != len(names) or taken & set(names):
            raise ValueError(f"rule {rule.name!r}: a tally name is taken: {names}")
        if len(names) > len(free):
            raise ValueError(f"rule {rule.name!r}: no flag bit left for its tallies {names}")
        for tally, bit in zip(rule.tallies, free, strict=False):
            indicators.TALLIES[bit] = tally.name
            self._counts[bit] = tally.counts
        self._rules[rule.name] = rule
        return rule

    def unregister(self, name: str) -> None:
        """Take a rule out again (a test's example rule), with its tallies' bits."""
        rule = self._rules.pop(name)
        for tally in rule.tallies:
            (bit,) = (b for b, n in indicators.TALLIES.items() if n == tally.name)
            del indicators.TALLIES[bit]
            del self._counts[bit]

    def tally_flags(self) -> tuple[tuple[int, Callable[[Any], bool]], ...]:
        """(flag bit, predicate) of every declared tally, for the decoder."""
        return tuple(sorted(self._counts.items()))


RULES = Registry()


def _discover() -> None:
    package = importlib.import_module(__package__ or "streams.domain.rules")
    found = sorted(
        m.name
        for m in pkgutil.iter_modules(package.__path__)
        if m.name not in _NOT_RULES and not m.name.startswith("_")
    )
    for name in [*SHIPPED, *(n for n in found if n not in SHIPPED)]:
        module = importlib.import_module(f"{package.__name__}.{name}")
        rule = getattr(module, "RULE", None)
        if not isinstance(rule, Rule) or rule.name != name:
            raise TypeError(
                f"streams/domain/rules/{name}.py must define RULE, a Rule named {name!r}"
            )
        RULES.register(rule)


_discover()
rule = RULES.rule
register = RULES.register
unregister = RULES.unregister


def message(
    finding: Finding,
    firing: bool,
    provider: str,
    name: str | None,
    ctx: dict[str, Any],
    language: Language = "nl",
) -> str:
    """The sentence a purchaser reads, by the finding's rule, in Dutch (the
    default) or English. Never contains a client reference."""
    named = who(provider, name, language)
    return rule(finding.rule).message(named, finding.year, finding, firing, ctx, language)
