"""Planting anomalies: a few providers are moved across the policy's thresholds.

One provider per anomaly, each in the last year of the history (the structural
share rules in every year). What a plant needs is read from the policy: a share
is planted a margin beyond its threshold, and a provider is chosen only if its
size gives the rule's minimum count with room to spare. Whether a plant really
crossed is not decided here: the domain engine judges the generated lines
(`expected.py`).

The rule names and policy sections below are today's `Policy` fields; once rules
live in a registry (`streams/domain/rules/`), this table of planters is where a
rule's plant hooks in, checked against the registry's names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random

from streams.domain.policy import Policy
from streams.synth.providers import GROUP_SHARES, Provider, consult_diagnoses
from streams.synth.tables import ADHD, CLIENT_TURNOVER, VISITS_PER_MONTH, T

# Generator habits of a planted provider (not thresholds: those come from the policy).
DETOX_ADDICTION = 0.22  # addiction share of a provider planted with clinical detox
DETOX_RATE = 0.3  # share of its addiction lines that are detox
ADHD_RATE = 0.24  # ADHD share of a provider planted with ADHD growth
MIN_VOLUME = 300  # lines a year for a line-driven plant (zvt mismatch, ceiling)

# Margins that make a plant robust against the jitter of a provider's year.
BEYOND = 0.36  # a planted share lies this part of the way from threshold to 1
ROOM = 2.0  # a planted provider has this many times the rule's minimum count
ADHD_GROWTH = 2.8  # planted client growth: this many times the threshold
ADHD_ROOM = 1.4  # base clients: this many times the minimum base
STAFFING_SHARE = 2.4  # planted share of group consults with 4+ practitioners vs min_share
STAFFING_ROOM = 1.32  # expected 4+ group consults vs min_count
GROUP_BELOW = 1 / 1.5  # planted group share vs factor x the lowest normal share
DIGITAL_BELOW = 0.48  # planted digital share vs the target


@dataclass(frozen=True, slots=True)
class Plant:
    rule: str
    provider: Provider
    year: int
    detail: str | None = None  # "Q<n>" for ADHD growth


@dataclass(slots=True)
class Planting:
    """What `plant` decided: the plants, the anomalies it could not plant and why,
    and the provider-year whose ceiling is set to be crossed early."""

    plants: list[Plant] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    early_ceiling: tuple[int, int] | None = None


class _Planter:
    def __init__(
        self,
        rng: Random,
        years: tuple[int, ...],
        providers: list[Provider],
        volume: dict[tuple[int, int], int],
        policy: Policy,
    ) -> None:
        self.rng, self.years, self.providers = rng, years, providers
        self.volume, self.policy = volume, policy
        self.target = years[-1]
        self.used: set[int] = set()
        self.out = Planting()

    def consults(self, p: Provider, y: int) -> float:
        return self.volume[(p.index, y)] * (1 - p.stay) * (1 - p.other)

    def pick(self, rule: str, ok: Callable[[Provider], bool], why: str) -> Provider | None:
        candidates = [p for p in self.providers if p.index not in self.used and ok(p)]
        if not candidates:
            self.skip(rule, f"{why} (one provider per anomaly)")
            return None
        p = candidates[self.rng.randrange(len(candidates))]
        self.used.add(p.index)
        return p

    def skip(self, rule: str, reason: str) -> None:
        self.out.skipped.append({"rule": rule, "reason": reason})

    def add(self, rule: str, p: Provider, year: int, detail: str | None = None) -> None:
        self.out.plants.append(Plant(rule, p, year, detail))

    # Rules that need an institution first: with few providers they are scarce.
    def clinical_detox_high(self) -> None:
        dx, target = self.policy.detox, self.target
        need = ROOM * dx.min_clients

        def ok(p: Provider) -> bool:
            return (
                p.institution
                and self.volume[(p.index, target)] * DETOX_ADDICTION * DETOX_RATE >= need
            )

        p = self.pick("clinical_detox_high", ok, "no institution large enough")
        if p is None:
            return
        p.addiction = DETOX_ADDICTION
        p.consult_diagnoses = consult_diagnoses(DETOX_ADDICTION)
        clinical = dx.threshold + BEYOND * (1 - dx.threshold)
        p.overrides.setdefault(target, {}).update(detox=DETOX_RATE, clinical_detox=clinical)
        if "verslavingszorg" not in p.departments:
            p.departments += ("verslavingszorg",)
        self.add("clinical_detox_high", p, target)

    def zvt_setting_mismatch(self) -> None:
        mm, target = self.policy.mismatch, self.target
        if target < mm.from_year:
            self.skip("zvt_setting_mismatch", f"no year >= {mm.from_year}")
            return
        p = self.pick(
            "zvt_setting_mismatch",
            lambda p: p.institution and self.volume[(p.index, target)] >= MIN_VOLUME,
            f"no institution with {MIN_VOLUME}+ lines",
        )
        if p is None:
            return
        setting = max(mm.settings)
        if setting not in p.consult_settings:
            p.consult_settings = p.consult_settings[: T - 100] + (setting,) * 100
            if setting == 8 and "topggz" not in p.departments:
                p.departments += ("topggz",)
        p.mismatch_years = frozenset({target})
        self.add("zvt_setting_mismatch", p, target)

    def adhd_growth(self) -> None:
        """A quarter of the last year against the same quarter a year before."""
        ad, target = self.policy.adhd, self.target
        base_year = target - 1
        if base_year not in self.years:
            self.skip("adhd_growth", "needs two consecutive years")
            return
        need = ADHD_ROOM * ad.min_base

        def ok(p: Provider) -> bool:
            lines_q = self.volume[(p.index, base_year)] / 4 * (1 - p.stay) * ADHD_RATE
            return (lines_q / 3 / VISITS_PER_MONTH[ADHD]) * (1 + 2 * CLIENT_TURNOVER) >= need

        why = f"no provider large enough for {ad.min_base}+ ADHD clients"
        p = self.pick("adhd_growth", ok, why)
        if p is None:
            return
        q = 1 + self.rng.randrange(4)
        p.adhd = ADHD_RATE
        p.adhd_boost[(target, q)] = 1 + ADHD_GROWTH * ad.threshold
        self.add("adhd_growth", p, target, f"Q{q}")

    def group_consult_staffing(self) -> None:
        st, target = self.policy.staffing, self.target
        share = min(0.9, max(STAFFING_SHARE * st.min_share, 0.02))
        need = STAFFING_ROOM * st.min_count / share
        p = self.pick(
            "group_consult_staffing",
            lambda p: self.consults(p, target) * p.group >= need,
            f"no provider with {need:.0f}+ group consults",
        )
        if p is not None:
            p.overrides.setdefault(target, {})["ge4"] = share
            self.add("group_consult_staffing", p, target)

    def _every_year(self, rule: str, min_consults: int) -> Provider | None:
        need = ROOM * min_consults
        return self.pick(
            rule,
            lambda p: all(self.consults(p, y) >= need for y in self.years),
            f"no provider with {need:.0f}+ consults a year",
        )

    def group_share_low(self) -> None:
        gs = self.policy.group_share
        p = self._every_year("group_share_low", gs.min_consults)
        if p is not None:
            p.group = gs.factor * GROUP_SHARES[0] * GROUP_BELOW
            for y in self.years:
                self.add("group_share_low", p, y)

    def digital_share_low(self) -> None:
        dg = self.policy.digital
        p = self._every_year("digital_share_low", dg.min_clients)
        if p is not None:
            p.digital = dg.target * DIGITAL_BELOW
            for y in self.years:
                self.add("digital_share_low", p, y)

    def ceiling_utilisation(self) -> None:
        """The first ceiling threshold crossed before July (contracts.py sets the ceiling)."""
        p = self.pick(
            "ceiling_utilisation",
            lambda p: self.volume[(p.index, self.target)] >= MIN_VOLUME,
            f"no provider with {MIN_VOLUME}+ lines",
        )
        if p is not None:
            self.out.early_ceiling = (p.index, self.target)
            self.add("ceiling_utilisation", p, self.target)


def plant(
    rng: Random,
    years: tuple[int, ...],
    providers: list[Provider],
    volume: dict[tuple[int, int], int],
    policy: Policy,
) -> Planting:
    """Choose and alter the planted providers, in a fixed order (the rng's order)."""
    planter = _Planter(rng, years, providers, volume, policy)
    planter.clinical_detox_high()
    planter.zvt_setting_mismatch()
    planter.adhd_growth()
    planter.group_consult_staffing()
    planter.group_share_low()
    planter.digital_share_low()
    planter.ceiling_utilisation()
    return planter.out
