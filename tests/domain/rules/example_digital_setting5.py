"""digital_setting5_high: providers whose consults in setting 5 are more than 30% digital.

The worked example of docs/adding-a-rule.md, written as a newcomer would write a new
rule: in the product this file would be ``streams/domain/rules/digital_setting5_high.py``
(the registry finds it there), ``POLICY`` would be its section appended to
``streams/policy.default.toml``, and ``test_adding_a_rule.py`` its test. Kept under
tests/ so the shipped rules stay those of SPEC §5; the test registers it.

The rule needs two counts no shipped indicator keeps, so it declares them as tallies:
the registry gives each a flag bit, the decoder sets it on a line that counts, and
``YearState.tally`` is the net count (a credit takes back what its debit added).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from streams.domain.alerts import Finding, Language, pct
from streams.domain.indicators import YearState
from streams.domain.rules.base import (
    Found,
    Rule,
    Tally,
    Tick,
    count,
    exact,
    fraction,
    holds,
    ratio,
    severity,
)

POLICY = """
[digital_setting5_high]
# Fires when more than max_share of a provider's consults in setting 5 are digital.
max_share = 0.30
# Providers with fewer consults in setting 5 are not judged.
min_consults = 10
severity = "warning"
"""


@dataclass(frozen=True, slots=True)
class DigitalSetting5Policy:
    max_share: float = fraction(upper=1.0)
    min_consults: int = count()
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, p: DigitalSetting5Policy) -> Found:
    digital, consults = ys.tally("digital_setting5"), ys.tally("consults_setting5")
    high = (
        consults >= p.min_consults
        and consults > 0
        and Fraction(digital, consults) > exact(p.max_share)
    )
    share = ratio(digital, consults)
    finding = holds(RULE.name, tick.year, None, high, share, p.max_share, p.severity)
    return [(finding, {"numerator": digital, "denominator": consults})]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    value, threshold, n = pct(f.value, language), pct(f.threshold, language), ctx["denominator"]
    if language == "nl":
        if firing:
            return f"{who} leverde in {y} {value} van de {n} consulten in setting 5 digitaal, meer dan {threshold}."
        return f"Het aandeel digitale consulten in setting 5 van {who} in {y} is weer {value}, binnen {threshold}."
    if firing:
        return f"{who} delivered {value} of its {n} consults in setting 5 in {y} digitally, more than {threshold}."
    return f"{who}'s {y} digital share of consults in setting 5 is back at {value}, within {threshold}."


RULE = Rule(
    name="digital_setting5_high",
    kind="structural",
    params=DigitalSetting5Policy,
    reads="digital_setting5",
    message=message,
    evaluate=evaluate,
    tallies=(
        Tally(
            "digital_setting5",
            counts=lambda line: line.activity == "consult" and line.digital and line.setting == 5,
        ),
        Tally(
            "consults_setting5",
            counts=lambda line: line.activity == "consult" and line.setting == 5,
        ),
    ),
)
