"""ceiling_underrun (SPEC §8.2): spending on a pace to land well below the cost
ceiling.

The policy adjusts the ceiling in the fourth quarter when realisation falls more
than 10% short; this rule says so in time. Structural, like ``ceiling_pace_high``
(whose ``pace_finding`` it shares, with the projection of ``streams/domain/pace.py``):
fires when ``pace_ratio`` is at most ``threshold`` with at least ``min_months``
months covered (a short year's projection says too little about a shortfall);
resolves above threshold + ``resolve_margin``. Severity info: nothing is wrong yet,
the purchaser has a conversation to plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import Finding, Language, pct
from streams.domain.indicators import YearState
from streams.domain.rules.base import Found, Rule, Tick, fraction, integer, severity
from streams.domain.rules.ceiling_pace_high import figures, pace_finding


@dataclass(frozen=True, slots=True)
class UnderrunPolicy:
    threshold: float = fraction(upper=10.0)
    min_months: int = integer(1, 12)
    resolve_margin: float = fraction(upper=1.0)
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, p: UnderrunPolicy) -> Found:
    return [
        pace_finding(
            RULE.name, tick, p.threshold, p.resolve_margin, p.min_months, p.severity, high=False
        )
    ]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    projected, ceiling, value, month = figures(ctx, f, language)
    threshold = pct(f.threshold, language)
    if language == "nl":
        if firing:
            return (
                f"{who} komt in het huidige tempo uit op {projected} in {y}, maar {value} van het "
                f"zorgkostenplafond van {ceiling} (prognose na {month}). Blijft de realisatie "
                "meer dan 10% achter, dan wordt het plafond in het vierde kwartaal bijgesteld."
            )
        return (
            f"De prognose {y} van {who} ligt weer boven {threshold} van het zorgkostenplafond: "
            f"{projected} van {ceiling} ({value}, na {month})."
        )
    if firing:
        return (
            f"At its current pace {who} will land at {projected} in {y}, only {value} of its cost "
            f"ceiling of {ceiling} (projection after {month}); a shortfall over 10% adjusts the ceiling in Q4."
        )
    return f"{who}'s {y} projection is back above {threshold} of its cost ceiling: {projected} of {ceiling} ({value}, after {month})."


RULE = Rule(
    name="ceiling_underrun",
    kind="structural",
    params=UnderrunPolicy,
    reads="pace_ratio",
    message=message,
    evaluate=evaluate,
    explains=("all", ("setting", "department")),
)
