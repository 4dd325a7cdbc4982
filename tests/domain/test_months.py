"""Calendar months in event time (SPEC §8.1): covered month, latest covered month,
the next month boundary; UTC throughout."""

from __future__ import annotations

from datetime import datetime

import pytest

from streams.domain.months import (
    covered_month,
    latest_covered_month,
    month_end,
    month_of,
    next_month_start,
)


def t(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_the_specs_example_covers_march():
    # April ended 9 days before 2026-05-10T00:00Z, March 39 days before.
    assert covered_month(2026, t("2026-05-10T00:00:00+00:00"), 30) == 3


def test_a_month_that_ended_exactly_lag_days_before_is_covered():
    # April ended 2026-05-01T00:00Z; 30 days later to the second it counts, a second before not
    assert covered_month(2026, t("2026-05-31T00:00:00+00:00"), 30) == 4
    assert covered_month(2026, t("2026-05-30T23:59:59+00:00"), 30) == 3


def test_covered_month_is_clamped_to_the_service_year():
    early = t("2026-01-20T00:00:00+00:00")  # December 2025 ended 19 days before
    assert covered_month(2026, early, 30) == 0
    assert covered_month(2025, early, 30) == 11  # November 2025 is the last covered
    assert covered_month(2024, early, 30) == 12
    assert covered_month(2025, t("2026-02-15T00:00:00+00:00"), 30) == 12
    assert covered_month(2027, t("2026-12-31T00:00:00+00:00"), 0) == 0


def test_the_latest_covered_month_crosses_years():
    assert latest_covered_month(t("2026-01-20T00:00:00+00:00"), 30) == (2025, 11)
    assert latest_covered_month(t("2026-02-15T00:00:00+00:00"), 30) == (2025, 12)
    assert latest_covered_month(t("2026-03-01T00:00:00+00:00"), 0) == (2026, 2)


def test_months_are_utc_calendar_months():
    # 00:30 on 1 March in Amsterdam is still February in UTC
    late_feb = t("2026-03-01T00:30:00+01:00")
    assert month_of(late_feb) == (2026, 2)
    assert next_month_start(late_feb) == t("2026-03-01T00:00:00+00:00")
    assert next_month_start(t("2026-03-01T00:00:00+00:00")) == t("2026-04-01T00:00:00+00:00")
    assert next_month_start(t("2026-12-31T23:59:59+00:00")) == t("2027-01-01T00:00:00+00:00")
    assert month_end(9999, 12) == float("inf")


@pytest.mark.parametrize("lag", [0, 1, 30, 45, 366])
def test_covered_month_counts_the_months_that_ended_lag_days_before(lag):
    """Against a count by brute force over every month end, for watermarks through
    two years."""
    for day in range(0, 730, 7):
        watermark = t("2026-01-01T00:00:00+00:00") + day * 86_400 + 3_600
        for year in (2025, 2026, 2027):
            ends = [month_end(year, m) for m in range(1, 13)]
            expected = sum(1 for e in ends if e <= watermark - lag * 86_400)
            assert covered_month(year, watermark, lag) == expected, (year, day, lag)
