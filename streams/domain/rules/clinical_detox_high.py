"""clinical_detox_high (SPEC §5, §8.4): detoxification delivered clinically where
ambulant detox is expected.

Structural: fires when a provider-year has at least ``min_clients`` distinct detox
clients and the clients with a clinical detox line are at least ``threshold`` of
them (``clinical_detox_client_share``). Counted in clients, not lines: a stay
declared per day must not weigh more than a whole stay declared once. Credit-aware
(``YearState.clients_detox``/``clients_clinical``).
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
    min_clients: int = count()
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, dx: DetoxPolicy) -> Found:
    clinical, everyone = ys.detox_clients_clinical, ys.detox_clients_all
    high = everyone >= dx.min_clients and at_least(clinical, everyone, dx.threshold)
    finding = holds(
        RULE.name, tick.year, None, high, ys.clinical_detox_client_share, dx.threshold, dx.severity
    )
    return [(finding, {"numerator": clinical, "denominator": everyone})]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    n, total = (number(ctx.get(k, 0), language) for k in ("numerator", "denominator"))
    value, threshold = pct(f.value, language), pct(f.threshold, language)
    if language == "nl":
        if firing:
            return (
                f"{who} detoxte in {y} {value} van de detoxcliënten klinisch ({n} van {total} "
                "cliënten); het beleid verwacht ambulante detox waar dat kan."
            )
        return f"Het aandeel cliënten met klinische detox {y} bij {who} is weer onder {threshold} ({value})."
    if firing:
        return f"{who} detoxified {value} of its {y} detox clients clinically ({n} of {total} clients); ambulant detox is expected where possible."
    return (
        f"{who}'s {y} share of clinically detoxified clients is back below {threshold} ({value})."
    )


RULE = Rule(
    name="clinical_detox_high",
    kind="structural",
    params=DetoxPolicy,
    reads="clinical_detox_client_share",
    message=message,
    evaluate=evaluate,
    explains=("detox", ("department",)),
)
