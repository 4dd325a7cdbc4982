"""digital_share_low (SPEC §5, §8.4): too few clients receive digital care (label
S01).

The policy asks that 25% of the target population receives digital or hybrid care:
a share of clients, not of consults. Structural: fires when a provider-year of
service year ``from_year`` or later (the S01 label exists from 2026) has at least
``min_clients`` distinct consult clients and those with a digital consult are
below the target: the contract's ``digital_target`` when it has one, else the
policy's ``target``. Credit-aware (``YearState.clients_consult``/``clients_digital``).
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
    below,
    count,
    fraction,
    holds,
    integer,
    severity,
)


@dataclass(frozen=True, slots=True)
class DigitalPolicy:
    target: float = fraction(upper=1.0)
    min_clients: int = count()
    from_year: int = integer(2000, 2100)
    severity: str = severity()


def target(tick: Tick, dg: DigitalPolicy) -> float:
    """The contract's agreed target, else the policy's."""
    agreed = tick.contract.digital_target if tick.contract is not None else None
    return agreed if agreed is not None else dg.target


def evaluate(ys: YearState, tick: Tick, dg: DigitalPolicy) -> Found:
    digital, clients = ys.digital_clients, ys.consult_clients
    goal = target(tick, dg)
    low = tick.year >= dg.from_year and clients >= dg.min_clients and below(digital, clients, goal)
    finding = holds(RULE.name, tick.year, None, low, ys.digital_client_share, goal, dg.severity)
    return [(finding, {"numerator": digital, "denominator": clients})]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    n, total = (number(ctx.get(k, 0), language) for k in ("numerator", "denominator"))
    value, threshold = pct(f.value, language), pct(f.threshold, language)
    if language == "nl":
        if firing:
            return (
                f"{who} gaf in {y} {value} van de cliënten digitale zorg (label S01; {n} van "
                f"{total} cliënten), onder de doelstelling van {threshold}."
            )
        return f"Het aandeel cliënten met digitale zorg {y} bij {who} is {value} en haalt daarmee de doelstelling van {threshold}."
    if firing:
        return f"{who} gave digital care (label S01) to {value} of its {y} clients ({n} of {total}), under the {threshold} target."
    return f"{who}'s {y} share of clients with digital care reached {value}, meeting the {threshold} target."


RULE = Rule(
    name="digital_share_low",
    kind="structural",
    params=DigitalPolicy,
    reads="digital_client_share",
    message=message,
    evaluate=evaluate,
    explains=("consult", ("department",)),
)
