"""Calendar months in event time (SPEC §8.1): the covered month of a provider-year
and the next month boundary of a watermark.

All calendar arithmetic of part two is in UTC: a month ends at 00:00:00Z of the
first day of the next month, and a timestamp's calendar month is its UTC month.
Timestamps are unix seconds, as ``Line.event_time`` and ``ProviderState.watermark``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_DAY = 86_400.0
_LAST_YEAR = 9999  # the last year a datetime has: its December has no next month


def month_of(t: float) -> tuple[int, int]:
    """(year, month) of the UTC calendar month ``t`` lies in."""
    d = datetime.fromtimestamp(t, UTC)
    return d.year, d.month


def month_index(year: int, month: int) -> int:
    """Months since year 0: consecutive months have consecutive indexes."""
    return year * 12 + month - 1


def month_end(year: int, month: int) -> float:
    """When calendar month ``month`` of ``year`` ends: 00:00Z of the next month's 1st."""
    if month == 12:
        if year >= _LAST_YEAR:
            return math.inf
        return datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()
    return datetime(year, month + 1, 1, tzinfo=UTC).timestamp()


def next_month_start(t: float) -> float:
    """The first instant of the calendar month after the one ``t`` lies in: the
    smallest event time that moves a watermark ``t`` into a later month."""
    return month_end(*month_of(t))


def latest_covered_month(watermark: float, lag_days: int) -> tuple[int, int]:
    """(year, month) of the last calendar month (of any year) that ended at least
    ``lag_days`` days before ``watermark``."""
    year, month = month_of(watermark - lag_days * _DAY)
    # The month holding watermark - lag has not ended that long ago: the one before has.
    return (year - 1, 12) if month == 1 else (year, month - 1)


def covered_month(year: int, watermark: float, lag_days: int) -> int:
    """The covered month ``M`` of service year ``year`` at ``watermark``: how many
    calendar months of ``year`` ended at least ``lag_days`` days before it, 0..12."""
    last_year, last_month = latest_covered_month(watermark, lag_days)
    if last_year < year:
        return 0
    if last_year > year:
        return 12
    return last_month
