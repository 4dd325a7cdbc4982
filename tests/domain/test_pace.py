"""The spend projection (streams/domain/pace.py, SPEC §8.2) and its policy section."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from streams.domain.errors import PolicyError
from streams.domain.indicators import YearState
from streams.domain.pace import Pace, PacePolicy, expected_share, project
from streams.domain.policy import DEFAULT_POLICY_PATH, load_policy

DEFAULTS = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
PP = PacePolicy(min_prior_cents=1_000_000, min_months=3)


def year(by_month: list[int]) -> YearState:
    ys = YearState(by_month=[*by_month, *[0] * (12 - len(by_month))])
    ys.net_cents = sum(ys.by_month)
    return ys


def test_even_spread_without_a_previous_year():
    assert expected_share(None, 3, 1_000_000) == Fraction(1, 4)
    assert expected_share(None, 12, 1_000_000) == 1


def test_the_previous_years_profile_from_min_prior_cents_on():
    prior = year([400_000, 100_000, 0, 500_000])  # net exactly 1,000,000
    assert expected_share(prior, 2, 1_000_000) == Fraction(1, 2)
    assert expected_share(prior, 2, 1_000_001) == Fraction(2, 12)  # one cent short: even


def test_projection_rounds_half_to_even_in_exact_arithmetic():
    # E(3) = 1/4 of an even spread; 3 months of x: projected 4x. With a profile of
    # thirds the division is inexact: 1 / (2/3) = 1.5 -> 2, 3 / (2/3) = 4.5 -> 4
    prior = year([1_000_000, 1_000_000, 1_000_000])
    assert project(year([0, 0, 1]), prior, 2, None, PacePolicy(1, 2)).projected_cents == 0
    assert project(year([1, 0, 0]), prior, 2, None, PacePolicy(1, 2)).projected_cents == 2
    assert project(year([3, 0, 0]), prior, 2, None, PacePolicy(1, 2)).projected_cents == 4
    assert project(year([5, 0, 0]), prior, 2, None, PacePolicy(1, 2)).projected_cents == 8


def test_undefined_before_min_months_or_with_no_expected_share():
    ys = year([100, 100, 100])
    assert project(ys, None, 2, 1_000, PP).projected_cents is None
    assert project(ys, None, 3, 1_000, PP).projected_cents == 1_200
    quiet_start = year([0, 0, 0, 2_000_000])  # spent nothing in January-March
    got = project(ys, quiet_start, 3, 1_000, PP)
    assert (got.expected_share, got.projected_cents, got.ratio) == (0, None, None)


def test_pace_ratio_against_the_ceiling_and_undefined_without_a_contract():
    ys = year([110_000, 110_000, 110_000])
    assert project(ys, None, 3, 1_200_000, PP).ratio == Fraction(11, 10)
    assert project(ys, None, 3, 1_200_000, PP).pace_ratio == 1.1
    assert project(ys, None, 3, None, PP).pace_ratio is None


def test_the_explain_object_of_a_pace():
    assert Pace(3, Fraction(1, 4), 1_320_000, 1_200_000).context() == {
        "covered_month": 3,
        "expected_share": 0.25,
        "projected_cents": 1_320_000,
        "ceiling_cents": 1_200_000,
    }


def test_the_pace_section_defaults_and_may_be_left_out(tmp_path):
    assert load_policy().pace == PacePolicy(1_000_000, 3)
    start = DEFAULTS.index("[pace]")
    end = DEFAULTS.index("\n[", start + 1) + 1
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULTS[:start] + DEFAULTS[end:], encoding="utf-8")
    ours = load_policy(path)
    assert ours.pace == PacePolicy(1_000_000, 3) and ours.defaulted == ("pace",)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("min_prior_cents = 1000000", "min_prior_cents = -1", "pace.min_prior_cents"),
        ("min_prior_cents = 1000000", "min_prior = 1000000", "pace.min_prior_cents is missing"),
    ],
)
def test_a_bad_or_renamed_pace_key_is_one_error_naming_it(tmp_path, old, new, error):
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULTS.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=error):
        load_policy(path)


MONTHS = hs.lists(hs.integers(-(10**9), 10**10), min_size=12, max_size=12)


@given(MONTHS, MONTHS, hs.integers(1, 12), hs.sampled_from([1, 10**7]))
def test_the_projection_is_spent_over_share_rounded_half_to_even(spent, prior, month, floor):
    # the integer arithmetic of ``project`` against the definition in exact fractions
    # (halves included: a prior year whose share is a power of two's divisor makes them)
    ys, previous = year(spent), year(prior)
    got = project(ys, previous, month, 1, PacePolicy(min_prior_cents=floor, min_months=1))
    share = expected_share(previous, month, floor)
    want = round(Fraction(sum(spent[:month])) / share) if share > 0 else None
    assert got.projected_cents == want
