"""digital_share_low (SPEC §5): too few consults delivered digitally (label S01).

Structural: fires when a provider-year has at least ``min_consults`` consults and
the digital ones are below ``target`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import Finding, Language, pct
from streams.domain.indicators import YearState
from streams.domain.rules.base import (
    Found,
    Rule,
    Tick,
    below,
    count,
    fraction,
    holds,
    severity,
)


@dataclass(frozen=True, slots=True)
class DigitalPolicy:
    target: float = fraction(upper=1.0)
    min_consults: int = count()
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, dg: DigitalPolicy) -> Found:
    low = ys.consults >= dg.min_consults and below(ys.digital, ys.consults, dg.target)
    finding = holds(RULE.name, tick.year, None, low, ys.digital_share, dg.target, dg.severity)
    return [(finding, {"numerator": ys.digital, "denominator": ys.consults})]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    value, threshold = pct(f.value, language), pct(f.threshold, language)
    if language == "nl":
        if firing:
            return f"{who} leverde in {y} {value} van de consulten digitaal (label S01), onder de doelstelling van {threshold}."
        return f"Het aandeel digitale consulten {y} van {who} is {value} en haalt daarmee de doelstelling van {threshold}."
    if firing:
        return f"{who} delivered {value} of its {y} consults digitally (label S01), under the {threshold} target."
    return f"{who}'s {y} digital consult share reached {value}, meeting the {threshold} target."


RULE = Rule(
    name="digital_share_low",
    kind="structural",
    params=DigitalPolicy,
    reads="digital_share",
    message=message,
    evaluate=evaluate,
    explains=("consult", ("department",)),
)
