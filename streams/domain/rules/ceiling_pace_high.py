"""ceiling_pace_high (SPEC §8.2): spending on a pace to land well above the cost
ceiling.

The policy asks providers to spread care evenly over the year; a provider that
spends its ceiling early shows it in the projection (``streams/domain/pace.py``)
months before the 70% mark. Structural: evaluated at each month boundary of the
provider and at the end of input, on the covered months (``Tick.covered_month``).
Fires when ``pace_ratio`` (projected landing ÷ ceiling) reaches ``threshold`` with at
least ``min_months`` months covered; resolves below threshold − ``resolve_margin``.
The projection's own inputs (``min_prior_cents``, the months it needs at least) are
the policy's ``[pace]`` section, shared with the snapshot and ``ceiling_underrun``.

``pace_finding`` and ``context`` serve ``ceiling_underrun`` too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import MONTH_NAMES, Finding, Language, euros, pct
from streams.domain.indicators import YearState
from streams.domain.rules.base import Found, Rule, Tick, exact, fraction, integer, severity


@dataclass(frozen=True, slots=True)
class PaceHighPolicy:
    threshold: float = fraction(upper=10.0)
    min_months: int = integer(1, 12)
    resolve_margin: float = fraction(upper=1.0)
    severity: str = severity()


def pace_finding(
    rule: str, tick: Tick, threshold: float, margin: float, min_months: int, sev: str, high: bool
) -> tuple[Finding, dict[str, Any]]:
    """The finding of a pace rule: ``high`` fires at ratio >= threshold and clears
    below threshold − margin; otherwise (the underrun) fires at ratio <= threshold
    and clears above threshold + margin. Undefined pace (no contract, too few months
    covered) holds nothing and clears."""
    pace = tick.pace
    projected = pace.projected_cents if pace is not None else None
    ceiling = pace.ceiling_cents if pace is not None else None
    fire, clear = False, True
    value = None
    if projected is not None and ceiling:
        value = projected / ceiling  # float(Fraction(projected, ceiling)): both correctly rounded
        if tick.covered_month >= min_months:
            # projected / ceiling against the exact fractions, in integers (ceiling > 0)
            t_num, t_den, c_num, c_den = _bounds(threshold, margin, high)
            if ceiling < 0:  # never in a valid contract; the comparison flips
                projected, ceiling = -projected, -ceiling
            at_t = projected * t_den - t_num * ceiling  # sign of ratio - t
            at_m = projected * c_den - c_num * ceiling  # of ratio - the clearing bound
            fire = at_t >= 0 if high else at_t <= 0
            clear = at_m < 0 if high else at_m > 0
    finding = Finding(rule, tick.year, None, fire, clear, value, threshold, sev)
    return finding, context(tick)


@functools.lru_cache(maxsize=64)
def _bounds(threshold: float, margin: float, high: bool) -> tuple[int, int, int, int]:
    """The exact threshold and clearing bound (threshold ∓ margin) of a pace rule as
    (numerator, denominator) pairs: Fraction arithmetic once per policy, not at every
    provider-year and month."""
    t, m = exact(threshold), exact(margin)
    bound = t - m if high else t + m
    return t.numerator, t.denominator, bound.numerator, bound.denominator


def context(tick: Tick) -> dict[str, Any]:
    """What a pace rule's message and explanation need (SPEC §8.3): projected
    landing over ceiling, the ``pace`` object, the contract version."""
    pace = tick.pace
    ctx: dict[str, Any] = {
        "numerator": pace.projected_cents if pace is not None else None,
        "denominator": pace.ceiling_cents if pace is not None else None,
    }
    if pace is not None:
        ctx["pace"] = pace.context()
    if tick.contract is not None:
        ctx["contract_version"] = tick.contract.version
    return ctx


def evaluate(ys: YearState, tick: Tick, p: PaceHighPolicy) -> Found:
    return [
        pace_finding(
            RULE.name, tick, p.threshold, p.resolve_margin, p.min_months, p.severity, high=True
        )
    ]


def figures(ctx: dict[str, Any], f: Finding, language: Language) -> tuple[str, str, str, str]:
    """(projected landing, ceiling, pace ratio, last covered month) as a message shows them."""
    projected, ceiling = ctx.get("numerator"), ctx.get("denominator")
    month = (ctx.get("pace") or {}).get("covered_month", 0)
    names = MONTH_NAMES[language]
    last = names[month - 1] if 1 <= month <= 12 else "?"
    money = (
        euros(projected, language) if isinstance(projected, int) else "?",
        euros(ceiling, language) if isinstance(ceiling, int) else "?",
    )
    return money[0], money[1], pct(f.value, language), last


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    projected, ceiling, value, month = figures(ctx, f, language)
    threshold = pct(f.threshold, language)
    if language == "nl":
        if firing:
            return (
                f"{who} komt in het huidige tempo uit op {projected} in {y}, {value} van het "
                f"zorgkostenplafond van {ceiling} (prognose na {month}). Het beleid vraagt de "
                "zorg gelijkmatig over het jaar te spreiden."
            )
        return (
            f"De prognose {y} van {who} ligt weer onder {threshold} van het zorgkostenplafond: "
            f"{projected} van {ceiling} ({value}, na {month})."
        )
    if firing:
        return (
            f"At its current pace {who} will land at {projected} in {y}, {value} of its cost "
            f"ceiling of {ceiling} (projection after {month}); care is to be spread evenly over the year."
        )
    return f"{who}'s {y} projection is back below {threshold} of its cost ceiling: {projected} of {ceiling} ({value}, after {month})."


RULE = Rule(
    name="ceiling_pace_high",
    kind="structural",
    params=PaceHighPolicy,
    reads="pace_ratio",
    message=message,
    evaluate=evaluate,
    explains=("all", ("setting", "department")),
)
