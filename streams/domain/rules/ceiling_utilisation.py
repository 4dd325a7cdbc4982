"""ceiling_utilisation (SPEC §5): net declared care against the contract's cost ceiling.

A line rule: the engine evaluates it after every accepted line that moves a
provider-year's ``net_cents`` out of the band in which no threshold changes state
(``Engine._band``), and on every contract change. One alert per threshold, named by
the threshold in whole percent; a firing one resolves below threshold − margin.

Its explanation (SPEC §8.3) says whether the crossing came from declarations or from
a contract change: with the provider's spending unchanged, a firing on a contract
event can only be a lowered ceiling (or the first contract of a year that already
had lines), and a resolve on one a raised ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from streams.domain.alerts import Finding, Language, euros, pct
from streams.domain.contracts import Contract
from streams.domain.indicators import YearState
from streams.domain.rules.base import ParamError, Rule, fraction, fractions, severities

Cause = Literal["declarations", "contract_change"]


@dataclass(frozen=True, slots=True)
class CeilingPolicy:
    thresholds: tuple[float, ...] = fractions(upper=10.0)
    severities: tuple[str, ...] = severities()
    resolve_margin: float = fraction(upper=1.0)
    # Thresholds and margin in basis points, so crossings are decided in exact
    # integers; computed once, the rule reads them whenever it runs.
    thresholds_bp: tuple[int, ...] = field(init=False, repr=False, compare=False)
    margin_bp: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ParamError("thresholds", "must be strictly increasing")
        if len(self.severities) != len(self.thresholds):
            raise ParamError("severities", "needs one severity per threshold")
        object.__setattr__(self, "thresholds_bp", tuple(round(t * 10_000) for t in self.thresholds))
        object.__setattr__(self, "margin_bp", round(self.resolve_margin * 10_000))


def findings(ys: YearState, contract: Contract, cp: CeilingPolicy, year: int) -> list[Finding]:
    """One finding per ceiling threshold; hysteresis: clears below threshold − margin."""
    net, ceiling = ys.net_cents, contract.ceiling_cents
    value = net / ceiling
    out = []
    for threshold, bp, severity in zip(cp.thresholds, cp.thresholds_bp, cp.severities, strict=True):
        out.append(
            Finding(
                RULE.name,
                year,
                str(bp // 100) if bp % 100 == 0 else f"{bp / 100:g}".replace(".", "-"),
                fire=net * 10_000 >= bp * ceiling,
                clear=net * 10_000 < (bp - cp.margin_bp) * ceiling,
                value=value,
                threshold=threshold,
                severity=severity,
            )
        )
    return out


def context(ys: YearState, contract: Contract, cause: Cause) -> dict[str, Any]:
    """What the message and the explanation of a transition need: the figures of the
    utilisation, the contract version they were computed against, and whether a line
    (``declarations``) or a contract event (``contract_change``) made it."""
    return {
        "numerator": ys.net_cents,
        "denominator": contract.ceiling_cents,
        "cause": cause,
        "contract_version": contract.version,
    }


def _cause_nl(y: int, firing: bool, ctx: dict[str, Any]) -> str:
    """What made the transition, as a Dutch phrase."""
    if ctx.get("cause") != "contract_change":
        return "" if firing else " na creditering"
    version = ctx.get("contract_version")
    if version == 1:
        return f", nu het zorgkostenplafond {y} is vastgelegd (contractversie 1),"
    change = "verlaging" if firing else "verhoging"
    return f" na {change} van het zorgkostenplafond {y} (contractversie {version})"


def _cause_en(y: int, firing: bool, ctx: dict[str, Any]) -> str:
    if ctx.get("cause") != "contract_change":
        return "" if firing else " after credits"
    version = ctx.get("contract_version")
    if version == 1:
        return f" now that its {y} cost ceiling is set (contract version 1)"
    change = "lowered" if firing else "raised"
    return f" after its {y} cost ceiling was {change} (contract version {version})"


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    net, ceiling = ctx["numerator"], ctx["denominator"]
    value, threshold = pct(f.value, language), pct(f.threshold, language)
    used = (
        f"{euros(net, language)} van {euros(ceiling, language)}"
        if language == "nl"
        else f"{euros(net, language)} of {euros(ceiling, language)}"
    )
    lowered = ctx.get("cause") == "contract_change" and ctx.get("contract_version") != 1
    if language == "nl":
        cause = _cause_nl(y, firing, ctx)
        if not firing:
            return f"{who} zit{cause} weer onder de drempel van {threshold} van het zorgkostenplafond {y}: {value} benut ({used})."
        if not cause:
            return f"{who} heeft {value} van het zorgkostenplafond {y} benut ({used}) en is daarmee over de drempel van {threshold}."
        same = ", terwijl de declaraties niet zijn gestegen" if lowered else ""
        return f"{who} is{cause} over de drempel van {threshold}: {value} benut ({used}){same}."
    cause = _cause_en(y, firing, ctx)
    if not firing:
        return f"{who} is back below the {threshold} threshold of its {y} cost ceiling{cause}: {value} used ({used})."
    if not cause:
        return f"{who} has used {value} of its {y} cost ceiling ({used}), passing the {threshold} threshold."
    same = ", while its declarations did not grow" if lowered else ""
    return f"{who} has passed the {threshold} threshold{cause}: {value} used ({used}){same}."


RULE = Rule(
    name="ceiling_utilisation",
    kind="line",
    params=CeilingPolicy,
    reads="net_cents",
    message=message,
    explains=("all", ("setting", "department")),
)
