"""zvt_setting_mismatch (SPEC §5): zorgvraagtype 1/2 in a clinical or high-specialist
setting from 2026.

A line rule: the decoder flags a mismatching line (``model.MISMATCH``, from this
rule's policy section), and the engine evaluates the rule after every accepted line
whose debit carries the flag. Fires on the first such line of a provider-year,
resolves when credits bring the count back to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import Finding, Language, number
from streams.domain.indicators import YearState
from streams.domain.rules.base import Rule, integer, integer_set, severity


@dataclass(frozen=True, slots=True)
class MismatchPolicy:
    care_demand_types: frozenset[int] = integer_set(0, 21)
    settings: frozenset[int] = integer_set(1, 8)
    from_year: int = integer(2000, 2100)
    severity: str = severity()


def finding(ys: YearState, mp: MismatchPolicy, year: int) -> Finding:
    count = ys.mismatch
    return Finding(
        RULE.name,
        year,
        None,
        fire=count > 0,
        clear=count == 0,
        value=float(count),
        threshold=1.0,
        severity=mp.severity,
    )


def context(ys: YearState) -> dict[str, Any]:
    """What the explanation of a transition needs (SPEC §8.3): mismatching lines
    against the lines of the provider-year."""
    return {"numerator": ys.mismatch, "denominator": ys.lines, "lines": ys.mismatch}


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    count = ctx.get("numerator", 0)
    n = number(count, language)
    if language == "nl":
        if firing:
            regels = "declaratieregel" if count == 1 else "declaratieregels"
            return (
                f"{who} declareerde in {y} zorg voor zorgvraagtype 1 of 2 in een klinische of "
                f"hoogspecialistische setting ({n} {regels}); die wordt vanaf 2026 niet meer vergoed."
            )
        return f"Alle declaraties {y} van {who} voor zorgvraagtype 1 of 2 in een klinische of hoogspecialistische setting zijn gecrediteerd."
    if firing:
        return f"{who} declared care for zorgvraagtype 1 or 2 in a clinical or high-specialist setting in {y} ({n} lines), which is not reimbursed from 2026."
    return f"{who}'s {y} declarations of zorgvraagtype 1 or 2 in a clinical or high-specialist setting have all been credited."


RULE = Rule(
    name="zvt_setting_mismatch",
    kind="line",
    params=MismatchPolicy,
    reads="mismatch",
    message=message,
    explains=("mismatch", ("department", "prestatie_code")),
)
