"""clinical_detox_high (SPEC §5): detoxification delivered clinically where ambulant
detox is expected.

Structural: fires when a provider-year has at least ``min_lines`` detox lines and
the clinical ones are at least ``threshold`` of them.
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
class DetoxPolicy:
    threshold: float = fraction(upper=1.0)
    min_lines: int = count()
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, dx: DetoxPolicy) -> Found:
    detox_lines = ys.detox_clinical + ys.detox_ambulant
    high = detox_lines >= dx.min_lines and at_least(ys.detox_clinical, detox_lines, dx.threshold)
    finding = holds(
        RULE.name, tick.year, None, high, ys.clinical_detox_share, dx.threshold, dx.severity
    )
    return [(finding, {"numerator": ys.detox_clinical, "denominator": detox_lines})]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    n, total = (number(ctx.get(k, 0), language) for k in ("numerator", "denominator"))
    value, threshold = pct(f.value, language), pct(f.threshold, language)
    if language == "nl":
        if firing:
            return (
                f"{who} detoxte in {y} {value} klinisch ({n} van {total} detoxregels); het beleid "
                "verwacht ambulante detox waar dat kan."
            )
        return f"Het aandeel klinische detox {y} van {who} is weer onder {threshold} ({value})."
    if firing:
        return f"{who} delivered {value} of its {y} detoxification clinically ({n} of {total} detox lines); ambulant detox is expected where possible."
    return f"{who}'s {y} clinical detoxification share is back below {threshold} ({value})."


RULE = Rule(
    name="clinical_detox_high",
    kind="structural",
    params=DetoxPolicy,
    reads="clinical_detox_share",
    message=message,
    evaluate=evaluate,
    explains=("detox", ("department",)),
)
