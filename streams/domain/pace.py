"""Spend pace (SPEC §8.2): where a provider-year's spending will land at the
current pace, against its cost ceiling.

One definition of the projection, used by the pace rules (``ceiling_pace_high``,
``ceiling_underrun``), the snapshot, the provider status and the metrics: the net
cents of the covered months divided by the share of a year's spending those months
are expected to hold. The expected share follows the provider's own previous year
when that year is large enough to say something (a seasonal provider spends
unevenly every year), else an even spread. Exact arithmetic throughout (``Fraction``),
rounded once, half to even, so every worker and the offline replay agree to the cent.

Plain Python; the policy section it reads is ``[pace]`` (``PacePolicy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.domain.indicators import YearState

_EVEN = [Fraction(month, 12) for month in range(13)]  # month/12, made once


@dataclass(frozen=True, slots=True)
class PacePolicy:
    # The previous year's monthly profile weighs the projection only when that year's
    # net reached this many cents; a small or partial year says nothing about seasons.
    min_prior_cents: int = 1_000_000
    # The projection is undefined before this many months are covered: one month's
    # spending says too little about a year.
    min_months: int = 3


@dataclass(frozen=True, slots=True)
class Pace:
    """The projection of one provider-year at covered month ``covered_month``."""

    covered_month: int
    expected_share: Fraction  # E(M)
    projected_cents: int | None  # undefined: M < min_months or E(M) <= 0
    ceiling_cents: int | None  # of the current contract; None without one

    @property
    def ratio(self) -> Fraction | None:
        """projected / ceiling, exactly; undefined without a projection or contract."""
        if self.projected_cents is None or not self.ceiling_cents:
            return None
        return Fraction(self.projected_cents, self.ceiling_cents)

    @property
    def pace_ratio(self) -> float | None:
        ratio = self.ratio
        return float(ratio) if ratio is not None else None

    def context(self) -> dict[str, Any]:
        """The ``pace`` object of an alert's explanation (SPEC §8.3)."""
        return {
            "covered_month": self.covered_month,
            "expected_share": float(self.expected_share),
            "projected_cents": self.projected_cents,
            "ceiling_cents": self.ceiling_cents,
        }


def expected_share(previous: YearState | None, month: int, min_prior_cents: int) -> Fraction:
    """E(M): the share of a year's spending expected in its first ``month`` months —
    the previous year's share of those months when its net is at least
    ``min_prior_cents``, else month/12 (even spread)."""
    if previous is not None and previous.net_cents >= max(min_prior_cents, 1):
        return Fraction(sum(previous.by_month[:month]), previous.net_cents)
    return _EVEN[month] if 0 <= month <= 12 else Fraction(month, 12)


def project(
    ys: YearState,
    previous: YearState | None,
    covered_month: int,
    ceiling_cents: int | None,
    pp: PacePolicy,
) -> Pace:
    """The pace of provider-year ``ys`` (``previous``: the same provider's year before)
    at covered month ``covered_month`` (``months.covered_month``)."""
    share = expected_share(previous, covered_month, pp.min_prior_cents)
    projected = None
    # E(M) is 0 when the previous year spent nothing in those months: no projection.
    if covered_month >= pp.min_months and share > 0:
        # round(spent / share), half to even, in integers (a Fraction's round is
        # exact too, at ten times the cost: every provider-year, every month)
        spent = sum(ys.by_month[:covered_month])
        projected, twice = divmod(spent * share.denominator, share.numerator)
        twice *= 2
        if twice > share.numerator or (twice == share.numerator and projected & 1):
            projected += 1
    return Pace(covered_month, share, projected, ceiling_cents)
