"""adhd_growth (SPEC §5): distinct ADHD clients of a quarter against the same quarter
a year earlier.

Structural: one alert per quarter (detail ``Q1``..``Q4``); fires when the base (the
clients of the quarter a year earlier) is at least ``min_base`` and the growth at
least ``threshold``. ``growth`` is the one definition of the figure: the snapshot,
the provider status and the metrics call it.
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
class AdhdPolicy:
    threshold: float = fraction(upper=100.0)
    min_base: int = count()
    severity: str = severity()


def clients_and_base(ys: YearState, previous: YearState | None, quarter: int) -> tuple[int, int]:
    """(distinct ADHD clients of the quarter, those of the same quarter a year earlier)."""
    return ys.adhd_clients(quarter), previous.adhd_clients(quarter) if previous is not None else 0


def growth(clients: int, base: int) -> float | None:
    """Growth against the same quarter a year earlier; undefined without a base."""
    return clients / base - 1 if base > 0 else None


def evaluate(ys: YearState, tick: Tick, ad: AdhdPolicy) -> Found:
    out: Found = []
    for quarter in ys.adhd_quarters():
        clients, base = clients_and_base(ys, tick.previous, quarter)
        # clients / base - 1 >= threshold, in integers (base > 0)
        grows = base >= ad.min_base and at_least(clients - base, base, ad.threshold)
        finding = holds(
            RULE.name,
            tick.year,
            f"Q{quarter}",
            grows,
            growth(clients, base),
            ad.threshold,
            ad.severity,
        )
        out.append((finding, {"numerator": clients, "denominator": base}))
    return out


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    q = (f.detail or "Q?").removeprefix("Q")
    clients, base = (number(ctx.get(k, 0), language) for k in ("numerator", "denominator"))
    value, threshold = pct(f.value, language), pct(f.threshold, language)
    if language == "nl":
        if firing:
            return (
                f"{who} behandelde in het {q}e kwartaal van {y} {clients} cliënten met ADHD, "
                f"{value} meer dan in hetzelfde kwartaal een jaar eerder ({base})."
            )
        return f"De groei van het aantal cliënten met ADHD bij {who} in het {q}e kwartaal van {y} is weer onder {threshold} ({value})."
    if firing:
        return f"{who} treated {clients} ADHD clients in {y}-Q{q}, {value} more than in the same quarter a year earlier ({base})."
    return f"{who}'s ADHD client growth in {y}-Q{q} is back below {threshold} ({value})."


RULE = Rule(
    name="adhd_growth",
    kind="structural",
    params=AdhdPolicy,
    reads="adhd",
    message=message,
    evaluate=evaluate,
    explains=("adhd", ("department",)),
)
