"""digital_share_low (SPEC §5): too few consults delivered digitally (label S01).

Structural: fires when a provider-year has at least ``min_consults`` consults and
the digital ones are below ``target`` of them.
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
    below,
    count,
    fraction,
    holds,
    pct,
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
    return [(finding, {})]


def message(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    if firing:
        return f"{who} delivered {pct(f.value)} of its {y} consults digitally (label S01), under the {pct(f.threshold)} target."
    return f"{who}'s {y} digital consult share reached {pct(f.value)}, meeting the {pct(f.threshold)} target."


RULE = Rule(
    name="digital_share_low",
    kind="structural",
    params=DigitalPolicy,
    reads="digital_share",
    message=message,
    evaluate=evaluate,
)
