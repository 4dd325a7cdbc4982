"""Dates and times of the history: Amsterdam offsets, business days, timestamps.

Times are written as Europe/Amsterdam local time with their offset (as providers'
systems send them) and carried alongside as UTC epoch seconds for ordering.
"""

from __future__ import annotations

from datetime import date, timedelta
from random import Random

from streams.synth.tables import HOLIDAYS

_EPOCH0 = date(1970, 1, 1)


def utc_offset(d: date) -> str:
    """UTC offset of Europe/Amsterdam on day `d` during working hours."""
    start = date(d.year, 3, 31)
    start -= timedelta(days=(start.weekday() + 1) % 7)
    end = date(d.year, 10, 31)
    end -= timedelta(days=(end.weekday() + 1) % 7)
    return "+02:00" if start <= d < end else "+01:00"


def timestamp(d: date, sec: int) -> tuple[str, int]:
    """Local ISO time `sec` seconds after midnight of `d`, and its UTC epoch seconds."""
    off = utc_offset(d)
    h, rem = divmod(sec, 3600)
    text = f"{d.isoformat()}T{h:02d}:{rem // 60:02d}:{rem % 60:02d}{off}"
    return text, (d - _EPOCH0).days * 86400 + sec - int(off[1:3]) * 3600


def business_days(y: int, m: int, first: int, last: int) -> list[date]:
    """Weekdays of month `m` between day `first` and `last`, holidays left out."""
    return [
        date(y, m, d)
        for d in range(first, last + 1)
        if date(y, m, d).weekday() < 5 and (m, d) not in HOLIDAYS
    ]


def business_day(rng: Random, y: int, m: int, first: int, last: int) -> date:
    days = business_days(y, m, first, last)
    return days[rng.randrange(len(days))]


def days_in_month(y: int, m: int) -> int:
    return (date(y + (m == 12), m % 12 + 1, 1) - date(y, m, 1)).days
