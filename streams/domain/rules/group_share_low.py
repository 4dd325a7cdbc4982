"""group_share_low (SPEC §5): a provider's group-consult share far below its peers'.

Structural: on the tick, a provider-year with at least ``min_consults`` consults
fires when its share of group consults is below ``factor`` × the peer mean of the
year. ``peer_mean`` is the one definition of that mean: the engine, the provider
status book, the snapshot and the metrics all call it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from streams.domain.alerts import Finding, Language, pct
from streams.domain.indicators import YearState
from streams.domain.rules.base import Found, Rule, Tick, count, exact, fraction, severity


@dataclass(frozen=True, slots=True)
class GroupSharePolicy:
    factor: float = fraction(upper=1.0)
    min_consults: int = count()
    severity: str = severity()


def peer_mean(pairs: Iterable[tuple[int, int]], min_consults: int) -> tuple[Fraction | None, int]:
    """Mean group share over providers with >= min_consults consults, exactly, and
    how many providers it is over.

    ``pairs`` are (consults, group_consults) of the providers of one year. The exact
    mean does not depend on the order providers are summed in, so every worker and
    the offline replay agree on it to the last bit.
    """
    total = Fraction(0)
    n = 0
    for consults, group in pairs:
        if consults >= min_consults and consults > 0:
            total += Fraction(group, consults)
            n += 1
    return (total / n if n else None), n


# The last (peer mean, factor, bound, bound as a float): every provider-year of one
# month is judged against the same mean object, whose denominator runs to hundreds of
# digits (hashing it for a cache would cost what the product does).
_last: list[Any] = [None, None, None, None]


def _bound(factor: float, mean: Fraction) -> tuple[Fraction, float]:
    """factor × the peer mean, exactly and as a float: one product per peer mean, not
    one per provider-year and month."""
    last = _last
    if last[0] is not mean or last[1] != factor:
        bound = exact(factor) * mean
        last[:] = [mean, factor, bound, float(bound)]
    return last[2], last[3]


def evaluate(ys: YearState, tick: Tick, gs: GroupSharePolicy) -> Found:
    mean = tick.peer_mean
    bound, threshold = _bound(gs.factor, mean) if mean is not None else (None, None)
    low = (
        bound is not None
        and ys.consults >= gs.min_consults
        and ys.consults > 0
        and ys.group_consults * bound.denominator < bound.numerator * ys.consults
    )
    finding = Finding(
        RULE.name, tick.year, None, low, not low, ys.group_share, threshold, gs.severity
    )
    ctx = {
        "peer_mean": float(mean) if mean is not None else None,
        "factor": gs.factor,
        "numerator": ys.group_consults,
        "denominator": ys.consults,
    }
    return [(finding, ctx)]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    mean, value = pct(ctx.get("peer_mean"), language), pct(f.value, language)
    factor = pct(ctx.get("factor"), language)
    if language == "nl":
        if firing:
            return (
                f"{who} declareerde in {y} {value} van de consulten als groepsconsult; dat is minder "
                f"dan {factor} van het gemiddelde bij vergelijkbare aanbieders ({mean}). Het beleid "
                "vraagt om behandeling in groepen waar dat kan."
            )
        return f"Het aandeel groepsconsulten {y} van {who} ({value}) ligt niet langer ver onder het gemiddelde bij vergelijkbare aanbieders ({mean})."
    if firing:
        return f"{who} declared {value} of its {y} consults as group consults, under {factor} of the peer average of {mean}."
    return f"{who}'s {y} group-consult share ({value}) is no longer far below the peer average of {mean}."


RULE = Rule(
    name="group_share_low",
    kind="structural",
    params=GroupSharePolicy,
    reads="group_share",
    message=message,
    evaluate=evaluate,
    peers=True,
    explains=("consult", ("department",)),
)
