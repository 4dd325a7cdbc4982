"""zvt_setting_mismatch (SPEC §5): zorgvraagtype 1/2 in a clinical or high-specialist
setting from 2026.

A line rule: the decoder flags a mismatching line (``model.MISMATCH``, from this
rule's policy section), and the engine evaluates the rule after every accepted line
whose debit carries the flag. Fires on the first such line of a provider-year,
resolves when credits bring the count back to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import Finding
from streams.domain.indicators import YearState
from streams.domain.rules.base import Rule, integer, integer_set, severity


@dataclass(frozen=True, slots=True)
class MismatchPolicy:
    care_demand_types: frozenset[int] = integer_set(0, 21)
    settings: frozenset[int] = integer_set(1, 8)
    from_year: int = integer(2000, 2100)
    severity: str = severity()


def finding(ys: YearState, mp: MismatchPolicy, year: int) -> Finding:
    count = ys.mismatch
    return Finding(
        RULE.name,
        year,
        None,
        fire=count > 0,
        clear=count == 0,
        value=float(count),
        threshold=1.0,
        severity=mp.severity,
    )


def message(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    if firing:
        return f"{who} declared care for zorgvraagtype 1 or 2 in a clinical or high-specialist setting in {y}, which is not reimbursed from 2026."
    return f"{who}'s {y} declarations of zorgvraagtype 1 or 2 in a clinical or high-specialist setting have all been credited."


RULE = Rule(
    name="zvt_setting_mismatch",
    kind="line",
    params=MismatchPolicy,
    reads="mismatch",
    message=message,
)
