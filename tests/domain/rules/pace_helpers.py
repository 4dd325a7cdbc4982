"""Shared by the pace rule tests: findings of a pace at given figures, and a
provider's spending by service month submitted at chosen times."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from streams.domain.pace import Pace
from streams.domain.rules import Tick
from streams.domain.rules.base import Found
from tests.domain.rules.rule_helpers import contract

CEILING = 1_200_000  # an even 100,000 a month


def judged(evaluate: Any, params: Any, projected: int | None, month: int) -> Found:
    """``evaluate`` on a provider-year whose projection at covered month ``month`` is
    ``projected`` cents against ``CEILING`` (even spread)."""
    pace = Pace(month, Fraction(month, 12), projected, CEILING)
    tick = Tick(2026, None, None, 0.0, month, contract(CEILING), pace)
    return evaluate(None, tick, params)


def spend(line: Any, cents_by_month: dict[int, int], submitted: str) -> list[dict[str, Any]]:
    """One line a service month of 2026, each submitted at ``submitted``."""
    return [
        line(service_date=f"2026-{m:02d}-15", amount_cents=cents, submitted_at=submitted)
        for m, cents in cents_by_month.items()
    ]


def opening(line: Any, submitted: str) -> dict[str, Any]:
    """A line that opens a calendar month: a month boundary (SPEC §8.1), judged on the
    state before it. Of service year 2025, so 2026's spending stays as the test set it."""
    return line(service_date="2025-12-31", amount_cents=1, submitted_at=submitted)
