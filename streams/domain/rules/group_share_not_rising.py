"""group_share_not_rising (SPEC §8.4): a provider's group-consult share that does
not rise from one year to the next.

The policy asks for group treatment "below the average or not rising over the
years": ``group_share_low`` watches the first, this rule the second. Structural,
severity info: fires when the provider had at least ``min_consults`` consults in
both Y−1 and Y and ``group_share[Y] − group_share[Y−1] < min_rise``, judged from
covered month ``min_months`` of Y on (a year's first months say little about its
mix). Resolves when that no longer holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from streams.domain.alerts import Finding, Language, pct
from streams.domain.indicators import YearState
from streams.domain.rules.base import (
    Found,
    Rule,
    Tick,
    count,
    exact,
    holds,
    integer,
    number,
    severity,
)


@dataclass(frozen=True, slots=True)
class NotRisingPolicy:
    min_consults: int = count()
    min_rise: float = number(-1.0, 1.0)
    min_months: int = integer(1, 12)
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, p: NotRisingPolicy) -> Found:
    prev = tick.previous
    rise: Fraction | None = None
    if (
        prev is not None
        and ys.consults >= max(p.min_consults, 1)
        and prev.consults >= max(p.min_consults, 1)
    ):
        rise = Fraction(ys.group_consults, ys.consults) - Fraction(
            prev.group_consults, prev.consults
        )
    flat = rise is not None and tick.covered_month >= p.min_months and rise < exact(p.min_rise)
    value = float(rise) if rise is not None else None
    finding = holds(RULE.name, tick.year, None, flat, value, p.min_rise, p.severity)
    ctx = {
        "numerator": ys.group_consults,
        "denominator": ys.consults,
        "previous_share": prev.group_share if prev is not None else None,
    }
    return [(finding, ctx)]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    n, total = ctx.get("numerator", 0), ctx.get("denominator", 0)
    share = pct(n / total if total else None, language)
    before = pct(ctx.get("previous_share"), language)
    change = pct(f.value, language)
    if language == "nl":
        if firing:
            return (
                f"Het aandeel groepsconsulten van {who} stijgt niet: {share} in {y} tegen "
                f"{before} in {y - 1} (verschil {change}). Het beleid vraagt om meer "
                "behandeling in groepen."
            )
        return f"Het aandeel groepsconsulten van {who} stijgt weer: {share} in {y} tegen {before} in {y - 1} (verschil {change})."
    if firing:
        return f"{who}'s group-consult share is not rising: {share} in {y} against {before} in {y - 1} (change {change})."
    return f"{who}'s group-consult share is rising again: {share} in {y} against {before} in {y - 1} (change {change})."


RULE = Rule(
    name="group_share_not_rising",
    kind="structural",
    params=NotRisingPolicy,
    reads="group_share",
    message=message,
    evaluate=evaluate,
    explains=("consult", ("department",)),
)
