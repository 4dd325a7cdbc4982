"""ceiling_utilisation (SPEC §5): net declared care against the contract's cost ceiling.

A line rule: the engine evaluates it after every accepted line that moves a
provider-year's ``net_cents`` out of the band in which no threshold changes state
(``Engine._band``), and on every contract change. One alert per threshold, named by
the threshold in whole percent; a firing one resolves below threshold − margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.domain.alerts import Finding
from streams.domain.contracts import Contract
from streams.domain.indicators import YearState
from streams.domain.rules.base import ParamError, Rule, euros, fraction, fractions, pct, severities


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


def message(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, object]) -> str:
    used = f"{euros(ctx['net_cents'])} of {euros(ctx['ceiling_cents'])}"  # type: ignore[arg-type]
    if firing:
        return f"{who} has reached {pct(f.value)} of its {y} cost ceiling ({used}), passing the {pct(f.threshold)} threshold."
    return f"{who} is back below the {pct(f.threshold)} threshold of its {y} cost ceiling at {pct(f.value)} ({used})."


RULE = Rule(
    name="ceiling_utilisation",
    kind="line",
    params=CeilingPolicy,
    reads="net_cents",
    message=message,
)
