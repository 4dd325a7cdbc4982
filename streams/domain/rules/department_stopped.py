"""department_stopped (SPEC §9): a cruciale-ggz department that declared for a
steady group of clients and then fell silent: a team or ward that may have closed.

Structural, evaluated on the provider's latest covered month ``m`` (SPEC §8.1; the last
one it declared care in, ``departments.judged_month``): fires
for a department of a category other than ``other`` with no client in any of the
provider's last ``months`` covered months (``m`` and the ones before it), while its
mean clients over the six calendar months before those (sum ÷ 6) was at least
``min_clients``. Clients are distinct and credit-aware. One alert per department,
as ``department_activity_drop``; value 0, threshold 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.alerts import MONTH_NAMES, Finding, Language
from streams.domain.departments import CATEGORY_NAMES, decimal, month_back, six_month_mean
from streams.domain.indicators import YearState
from streams.domain.rules.base import Found, Rule, Tick, count, holds, integer, severity
from streams.domain.rules.department_activity_drop import WINDOW, judge_departments


@dataclass(frozen=True, slots=True)
class StoppedPolicy:
    months: int = integer(1, 12)
    min_clients: int = count()
    severity: str = severity()


def evaluate(ys: YearState, tick: Tick, p: StoppedPolicy) -> Found:
    minimum = WINDOW * max(p.min_clients, 1)

    def judge(view: Any, name: str, category: str, dept_id: int) -> tuple[Finding, dict]:
        year, month = view.latest
        row = view.history(dept_id)  # clients, latest first (months + WINDOW <= VIEW_MONTHS)
        silent = not any(row[: p.months])
        total = sum(row[p.months : p.months + WINDOW])
        stopped = silent and total >= minimum
        finding = holds(RULE.name, year, name, stopped, 0.0, 0.0, p.severity)
        ctx = {
            "numerator": row[0],
            "denominator": six_month_mean(total),
            "department": name,
            "category": category,
            "month": month,
            "since": month_back(year, month, p.months - 1),
        }
        return finding, ctx

    return judge_departments(RULE.name, tick, judge, 0.0, p.severity)


def message(
    who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any], language: Language
) -> str:
    dept = ctx.get("department", f.detail)
    kind = CATEGORY_NAMES[language].get(ctx.get("category", "other"), "")
    if ctx.get("closed"):
        if language == "nl":
            return f"{who}: de melding over afdeling {dept} ({kind}) in {y} is afgesloten; de afdeling wordt verder beoordeeld in het volgende jaar."
        return f"{who}: the {y} notice on department {dept} ({kind}) is closed; the department is judged in the next year from now on."
    names = MONTH_NAMES[language]
    since_year, since_month = ctx.get("since", (y, ctx.get("month", 1)))
    since = f"{names[since_month - 1]} {since_year}"
    month = f"{names[ctx.get('month', 1) - 1]} {y}"
    mean = ctx.get("denominator", 0)
    mean_text = decimal(mean, language)
    if language == "nl":
        if firing:
            return (
                f"{who}: afdeling {dept} ({kind}) declareerde van {since} tot en met {month} "
                f"voor geen enkele cliënt, na gemiddeld {mean_text} cliënten per maand in de "
                "zes maanden ervoor. Is de afdeling gesloten of verhuisd?"
            )
        return f"{who}: afdeling {dept} ({kind}) declareert weer, of wordt niet meer als gestopt beoordeeld ({month})."
    if firing:
        return (
            f"{who}: department {dept} ({kind}) declared for no client from {since} through "
            f"{month}, after a mean of {mean_text} clients a month in the six months before. "
            "Has it closed or moved?"
        )
    return f"{who}: department {dept} ({kind}) declares again, or is no longer judged stopped ({month})."


RULE = Rule(
    name="department_stopped",
    kind="structural",
    params=StoppedPolicy,
    reads="dept_cells",
    message=message,
    evaluate=evaluate,
)
