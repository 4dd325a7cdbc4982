"""group_consult_staffing (SPEC §5): group consults declared with 4 or more
practitioners.

Structural: fires when a provider-year has at least ``min_count`` such group
consults and they are at least ``min_share`` of its group consults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import Finding
from streams.domain.indicators import YearState
from streams.domain.rules.base import (
    Found,
    Rule,
    Tick,
    at_least,
    count,
    fraction,
    holds,
    pct,
    severity,
)


@dataclass(frozen=True, slots=True)
class StaffingPolicy:
    min_count: int = count()
    min_share: float = fraction(upper=1.0)
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, st: StaffingPolicy) -> Found:
    staffed = ys.group_ge4 >= st.min_count and at_least(
        ys.group_ge4, ys.group_consults, st.min_share
    )
    finding = holds(
        RULE.name, tick.year, None, staffed, ys.group_ge4_share, st.min_share, st.severity
    )
    return [(finding, {"group_ge4": ys.group_ge4})]


def message(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    n = ctx.get("group_ge4", 0)
    if firing:
        return f"{who} declared {n} group consults in {y} with 4 or more practitioners ({pct(f.value)} of its group consults); at most 2 are expected."
    return f"{who}'s {y} group consults with 4 or more practitioners are back within bounds ({n}, {pct(f.value)})."


RULE = Rule(
    name="group_consult_staffing",
    kind="structural",
    params=StaffingPolicy,
    reads="group_ge4",
    message=message,
    evaluate=evaluate,
)
