"""group_consult_staffing (SPEC §5): group consults declared with 4 or more
practitioners.

Structural: fires when a provider-year has at least ``min_count`` such group
consults and they are at least ``min_share`` of its group consults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import Finding, Language, number, pct
from streams.domain.indicators import YearState
from streams.domain.rules.base import (
    Found,
    Rule,
    Tick,
    at_least,
    count,
    fraction,
    holds,
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
    return [(finding, {"numerator": ys.group_ge4, "denominator": ys.group_consults})]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    n, value = number(ctx.get("numerator", 0), language), pct(f.value, language)
    if language == "nl":
        if firing:
            return (
                f"{who} declareerde in {y} {n} groepsconsulten met 4 of meer behandelaars ({value} "
                "van de groepsconsulten); het beleid verwacht hooguit 2 consultregistrerende "
                "behandelaars per groepsconsult."
            )
        return f"De groepsconsulten {y} van {who} met 4 of meer behandelaars zijn weer binnen de norm ({n}, {value} van de groepsconsulten)."
    if firing:
        return f"{who} declared {n} group consults in {y} with 4 or more practitioners ({value} of its group consults); at most 2 are expected."
    return f"{who}'s {y} group consults with 4 or more practitioners are back within bounds ({n}, {value})."


RULE = Rule(
    name="group_consult_staffing",
    kind="structural",
    params=StaffingPolicy,
    reads="group_ge4",
    message=message,
    evaluate=evaluate,
    explains=("consult", ("department",)),
)
