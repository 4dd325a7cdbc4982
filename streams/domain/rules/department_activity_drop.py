"""department_activity_drop (SPEC §9): a cruciale-ggz department whose clients fall
well below their recent level, the early warning of a team or ward in trouble.

Structural, evaluated on the provider's latest covered month ``m`` (SPEC §8.1; the last
one it declared care in, ``departments.judged_month``): fires
for a department of a category other than ``other`` whose distinct clients in ``m``
are below ``drop_factor`` × its mean over the six calendar months before ``m`` (sum
÷ 6; a month without lines counts 0; months of the previous service year count),
with that mean at least ``min_clients``. One alert per department, ``detail`` its
code, year that of ``m``. Resolves when the condition no longer holds; an alert of
an earlier year resolves once ``m`` has moved into a later year (the judging goes
on under the new year's id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import MONTH_NAMES, Finding, Language, number, pct
from streams.domain.departments import CATEGORY_NAMES, decimal, six_month_mean
from streams.domain.indicators import YearState
from streams.domain.rules.base import Found, Rule, Tick, count, exact, fraction, holds, severity

WINDOW = 6  # months before m whose mean is the department's level


@dataclass(frozen=True, slots=True)
class DropPolicy:
    drop_factor: float = fraction(upper=1.0)
    min_clients: int = count()
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, p: DropPolicy) -> Found:
    factor = exact(p.drop_factor)  # now / mean < factor, in integers
    minimum = WINDOW * max(p.min_clients, 1)

    def judge(view: Any, name: str, category: str, dept_id: int) -> tuple[Finding, dict]:
        year, month = view.latest
        row = view.history(dept_id)  # clients, latest first
        now = row[0]
        total = sum(row[1 : WINDOW + 1])
        level = total >= minimum
        dropped = level and now * WINDOW * factor.denominator < factor.numerator * total
        value = now * WINDOW / total if total else None
        finding = holds(RULE.name, year, name, dropped, value, p.drop_factor, p.severity)
        ctx = {
            "numerator": now,
            "denominator": six_month_mean(total),
            "department": name,
            "category": category,
            "month": month,
        }
        return finding, ctx

    return judge_departments(RULE.name, tick, judge, p.drop_factor, p.severity)


def judge_departments(
    rule: str,
    tick: Tick,
    judge: Callable[[Any, str, str, int], tuple[Finding, dict]],
    threshold: float,
    level: str,
) -> Found:
    """What a department rule finds at one evaluation: ``judge`` of every department
    judged (category not other) when this provider-year judges them (``judge_year``),
    and the clearing of an earlier year's alerts (``closed``)."""
    view = tick.departments
    if view is None:
        return []
    found: Found = []
    if tick.year == view.judge_year:
        found += [judge(view, name, category, dept_id) for name, category, dept_id in view.judged()]
    if tick.year < view.latest[0]:
        found += closed(rule, tick, view, threshold, level)
    return found


def closed(rule: str, tick: Tick, view: Any, threshold: float, level: str) -> Found:
    """Clear findings of an earlier year's department alerts: the latest covered month
    is in a later year, where the department is judged under that year's id."""
    return [
        (
            Finding(rule, tick.year, name, False, True, None, threshold, level),
            {"department": name, "category": category, "closed": True},
        )
        for name, category, _ in view.judged()
    ]


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    dept = ctx.get("department", f.detail)
    kind = CATEGORY_NAMES[language].get(ctx.get("category", "other"), "")
    if ctx.get("closed"):
        if language == "nl":
            return f"{who}: de waarschuwing over afdeling {dept} ({kind}) in {y} is afgesloten; de afdeling wordt verder beoordeeld in het volgende jaar."
        return f"{who}: the {y} warning on department {dept} ({kind}) is closed; the department is judged in the next year from now on."
    month = MONTH_NAMES[language][ctx.get("month", 1) - 1]
    n = number(ctx.get("numerator", 0), language)
    mean = ctx.get("denominator", 0)
    mean_text = decimal(mean, language)
    value = pct(f.value, language)
    if language == "nl":
        if firing:
            return (
                f"{who}: afdeling {dept} ({kind}) had in {month} {y} {n} cliënten, {value} van "
                f"het gemiddelde van {mean_text} per maand over de zes maanden ervoor. Een "
                "vroeg signaal van een mogelijk continuïteitsprobleem."
            )
        return f"{who}: afdeling {dept} ({kind}) is in {month} {y} weer op niveau: {n} cliënten, {value} van het gemiddelde van {mean_text}."
    if firing:
        return (
            f"{who}: department {dept} ({kind}) had {n} clients in {month} {y}, {value} of its "
            f"mean of {mean_text} a month over the six months before: an early sign of a "
            "possible continuity problem."
        )
    return f"{who}: department {dept} ({kind}) is back at its level in {month} {y}: {n} clients, {value} of the mean of {mean_text}."


RULE = Rule(
    name="department_activity_drop",
    kind="structural",
    params=DropPolicy,
    reads="dept_cells",
    message=message,
    evaluate=evaluate,
)
