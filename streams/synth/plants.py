"""Planting anomalies: a few providers are moved across the policy's thresholds.

One provider per anomaly, each in the last year of the history (group_share_low
in every year). What a plant needs is read from the policy: a share is planted a
margin beyond its threshold, and a provider is chosen only if its size gives the
rule's minimum count with room to spare. Whether a plant really crossed is not
decided here: the domain engine judges the generated lines (`expected.py`).

Most plants are cases that must fire; two are cases that must not: a seasonal
provider whose even-spread projection would mislead (ceiling_pace_high, judged on
its own previous-year profile), and clinical detox declared per stay day
(clinical_detox_high, judged on clients, not lines). A plant names its `case`, so
one rule can have several (the ceiling: crossed early, and crossed because the
purchaser lowered it).

Policy sections added with issue #21 (ceiling_pace_high, ceiling_underrun,
group_share_not_rising, and the client keys of clinical_detox_high and
digital_share_low) are read through `param`, which falls back to SPEC §5/§8
defaults while a policy has no such section or key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random

from streams.domain.policy import Policy
from streams.synth.departments import CRISIS, SECURED, WARDS
from streams.synth.providers import GROUP_SHARES, Provider, consult_diagnoses
from streams.synth.tables import ADHD, CLIENT_TURNOVER, SEASON, VISITS_PER_MONTH, T

# Generator habits of a planted provider (not thresholds: those come from the policy).
DETOX_ADDICTION = 0.22  # addiction share of a provider planted with clinical detox
DETOX_RATE = 0.3  # share of its addiction lines that are detox
ADHD_RATE = 0.24  # ADHD share of a provider planted with ADHD growth
MIN_VOLUME = 300  # lines a year for a line-driven plant (zvt mismatch, ceiling)
# Rough lines a year per distinct client, to size a plant judged on clients: a consult
# client has about 7 consults a year (measured on the default history); all lines of an addiction
# client in detox are detox lines.
CONSULTS_PER_CLIENT = 7
DETOX_LINES_PER_CLIENT = 10

# Margins that make a plant robust against the jitter of a provider's year.
BEYOND = 0.36  # a planted share lies this part of the way from threshold to 1
ROOM = 2.0  # a planted provider has this many times the rule's minimum count
ADHD_GROWTH = 2.8  # planted client growth: this many times the threshold
ADHD_ROOM = 1.4  # base clients: this many times the minimum base
STAFFING_SHARE = 2.4  # planted share of group consults with 4+ practitioners vs min_share
STAFFING_ROOM = 1.32  # expected 4+ group consults vs min_count
GROUP_BELOW = 1 / 1.5  # planted group share vs factor x the lowest normal share
DIGITAL_BELOW = 0.48  # planted digital share vs the target
PACE_VOLUME = 1000  # lines a year of a provider planted on its spend (smooth months)
PACE_ABOVE = 1.3  # planted pace ratio at the first judged month vs the threshold
UNDERRUN_AT = 0.8  # planted utilisation vs the underrun threshold
PLANTED_UTILISATION = 0.95  # year-end utilisation of the ceiling of a spend plant
# Months' factors (on top of the season) of the seasonal provider: most care in
# winter and spring, little in summer, the same every year.
SEASONAL = (1.6, 1.5, 1.4, 1.1, 1.0, 0.9, 0.6, 0.5, 0.8, 0.9, 0.9, 0.8)
LOWERED_START = 0.9  # year-end utilisation of version 1 of the lowered ceiling
LOWERED_MONTH = 9  # the month the ceiling is lowered in (after August's lines are in)
PER_DAY_CLINICAL = 0.15  # clinical share of the detox stays declared per day
NOT_RISING_FALL = 0.1  # relative fall of the group share of the not-rising plant
NOT_RISING_FROM = 0.12  # the not-rising plant is chosen among group shares from here
# Department plants (SPEC §9): from this month of the last year the declining crisis
# team keeps this many tenths of its clients, and a ward, and a region's only secured
# ward, close (their clients go to the other ward).
DEPARTMENT_MONTH = 7
CLOSING_MONTH = 6
# The region's only secured ward closes later: a region gap is flagged for the six
# months after the care was last seen, so one that starts in autumn is still firing
# when the archive ends (the case a purchaser must find open), where the ward's
# closure in June is judged stopped and the drop resolved by then.
GAP_MONTH = 9
CRISIS_KEEP = 3
GAP_CLIENTS = 10  # a month's clients of a secured ward worth planting a region gap on
# Distinct clients a month per line a year of an institution, of its crisis team, one
# ward and its secured ward (measured on the default history, rounded down): sizes
# the department plants.
CRISIS_RATE = 0.0035
WARD_RATE = 0.008
SECURED_RATE = 0.008

# Defaults of SPEC §5 and §8 for parameters a policy may not have yet (see `param`).
DEFAULTS: dict[tuple[str, str], float] = {
    ("ceiling_pace_high", "threshold"): 1.10,
    ("ceiling_pace_high", "min_months"): 3,
    ("ceiling_underrun", "threshold"): 0.90,
    ("ceiling_underrun", "min_months"): 6,
    ("group_share_not_rising", "min_consults"): 200,
    ("group_share_not_rising", "min_rise"): 0.0,
    ("clinical_detox_high", "min_clients"): 20,
    ("digital_share_low", "min_clients"): 100,
    ("digital_share_low", "from_year"): 2026,
    ("department_activity_drop", "min_clients"): 20,
    ("department_stopped", "min_clients"): 20,
}


def param(policy: Policy, rule: str, key: str) -> float:
    """A parameter of a rule's policy section; the SPEC default while the policy (or
    the release) has no such section or key yet."""
    section = policy.rules.get(rule)
    value = getattr(section, key, None) if section is not None else None
    return float(value) if value is not None else DEFAULTS[(rule, key)]


@dataclass(frozen=True, slots=True)
class Plant:
    rule: str
    provider: Provider
    year: int
    detail: str | None = None  # "Q<n>" for ADHD growth
    case: str = ""  # which planted case; the rule's name unless a rule has several
    fires: bool = True  # False: planted so that the rule must NOT fire


# How contracts.py sizes a planted provider-year's ceiling.
Ceiling = str  # "early" | "pace" | "seasonal" | "underrun" | "lowered"


@dataclass(slots=True)
class Planting:
    """What `plant` decided: the plants, the anomalies it could not plant and why,
    and the provider-years whose ceiling is sized for a plant (by kind)."""

    plants: list[Plant] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ceilings: dict[tuple[int, int], Ceiling] = field(default_factory=dict)


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
        self.dept_used: set[int] = set()
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

    def add(
        self,
        rule: str,
        p: Provider,
        year: int,
        detail: str | None = None,
        case: str = "",
        fires: bool = True,
    ) -> None:
        self.out.plants.append(Plant(rule, p, year, detail, case or rule, fires))

    # Rules that need an institution first: with few providers they are scarce.
    def clinical_detox_high(self) -> None:
        dx = self.policy.detox
        need = (
            ROOM * DETOX_LINES_PER_CLIENT * param(self.policy, "clinical_detox_high", "min_clients")
        )

        p = self.pick("clinical_detox_high", self._detox_ok(need), "no institution large enough")
        if p is None:
            return
        # A habit of the provider, every year: detox is a property of its clients,
        # and clients of one year are still in care the next.
        self._addiction(p, dx.threshold + BEYOND * (1 - dx.threshold))
        for y in self.years:
            self.add("clinical_detox_high", p, y)

    def _detox_ok(self, need: float) -> Callable[[Provider], bool]:
        def ok(p: Provider) -> bool:
            return p.institution and all(
                self.volume[(p.index, y)] * DETOX_ADDICTION * DETOX_RATE >= need for y in self.years
            )

        return ok

    @staticmethod
    def _addiction(p: Provider, clinical: float) -> None:
        p.addiction = DETOX_ADDICTION
        p.consult_diagnoses = consult_diagnoses(DETOX_ADDICTION)
        p.detox, p.clinical_detox = DETOX_RATE, clinical
        if "verslavingszorg" not in p.departments:
            p.departments += ("verslavingszorg",)

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

    def _every_year(
        self, rule: str, min_consults: int, years: list[int] | None = None
    ) -> Provider | None:
        need = ROOM * min_consults
        return self.pick(
            rule,
            lambda p: all(self.consults(p, y) >= need for y in years or self.years),
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
        """Digital care on clients, judged from the year the S01 label exists."""
        dg = self.policy.digital
        from_year = param(self.policy, "digital_share_low", "from_year")
        judged = [y for y in self.years if y >= from_year]
        if not judged:
            self.skip("digital_share_low", f"no year >= {from_year:.0f}")
            return
        minimum = param(self.policy, "digital_share_low", "min_clients")
        p = self._every_year("digital_share_low", round(minimum * CONSULTS_PER_CLIENT), judged)
        if p is not None:
            p.digital = dg.target * DIGITAL_BELOW
            for y in judged:
                self.add("digital_share_low", p, y)

    def ceiling_utilisation(self) -> None:
        """The first ceiling threshold crossed before July (contracts.py sets the ceiling)."""
        p = self.pick(
            "ceiling_utilisation",
            lambda p: self.volume[(p.index, self.target)] >= MIN_VOLUME,
            f"no provider with {MIN_VOLUME}+ lines",
        )
        if p is not None:
            self.out.ceilings[(p.index, self.target)] = "early"
            self.add("ceiling_utilisation", p, self.target, case="early_ceiling")

    def lowered_ceiling(self) -> None:
        """The purchaser lowers the ceiling in September: the first threshold is
        crossed on the contract event (cause contract_change), not by a line."""
        p = self.pick(
            "ceiling_utilisation",
            lambda p: self.volume[(p.index, self.target)] >= MIN_VOLUME,
            f"no provider with {MIN_VOLUME}+ lines",
        )
        if p is not None:
            self.out.ceilings[(p.index, self.target)] = "lowered"
            self.add("ceiling_utilisation", p, self.target, case="lowered_ceiling")

    def _spender(self, rule: str) -> Provider | None:
        return self.pick(
            rule,
            lambda p: self.volume[(p.index, self.target)] >= PACE_VOLUME,
            f"no provider with {PACE_VOLUME}+ lines",
        )

    def ceiling_pace_high(self) -> None:
        """An early over-spender: the year's care crowded into its first months, so
        the projection passes the threshold as soon as it is judged (M = min_months)."""
        rule, target = "ceiling_pace_high", self.target
        months = int(param(self.policy, rule, "min_months"))
        early = sum(SEASON[:months])
        # Share of the year's care in the first months that gives the planted ratio,
        # against the previous year's (seasonal) profile, at the planted utilisation.
        share = PACE_ABOVE * param(self.policy, rule, "threshold") * early / sum(SEASON)
        share /= PLANTED_UTILISATION
        if not 0 < months < 12 or share >= 0.95:
            self.skip(rule, f"no spend profile reaches the threshold by month {months}")
            return
        p = self._spender(rule)
        if p is None:
            return
        boost = share * (sum(SEASON) - early) / (early * (1 - share))
        p.profile[target] = (boost,) * months + (1.0,) * (12 - months)
        self.out.ceilings[(p.index, target)] = "pace"
        self.add(rule, p, target, case="early_overspend")

    def seasonal(self) -> None:
        """A provider with the same uneven year every year: its projection, weighted
        by the previous year, stays near its utilisation, where an even spread would
        project far over the ceiling. ceiling_pace_high must not fire for it."""
        rule, target = "ceiling_pace_high", self.target
        if target - 1 not in self.years:
            self.skip(rule, "the seasonal case needs two consecutive years")
            return
        p = self._spender(rule)
        if p is None:
            return
        for y in self.years:
            p.profile[y] = SEASONAL
            self.out.ceilings[(p.index, y)] = "seasonal"
        self.add(rule, p, target, case="seasonal", fires=False)

    def ceiling_underrun(self) -> None:
        """A provider spending evenly well below its ceiling."""
        p = self._spender("ceiling_underrun")
        if p is not None:
            self.out.ceilings[(p.index, self.target)] = "underrun"
            self.add("ceiling_underrun", p, self.target)

    def detox_per_day(self) -> None:
        """Clinical detox declared per stay day: many lines for one client. On lines
        the clinical share would pass the threshold; on clients it stays low, so
        clinical_detox_high must not fire."""
        rule, target = "clinical_detox_high", self.target
        need = ROOM * DETOX_LINES_PER_CLIENT * param(self.policy, rule, "min_clients")
        why = "no institution large enough for per-day detox"
        p = self.pick(rule, self._detox_ok(need), why)
        if p is None:
            return
        self._addiction(p, PER_DAY_CLINICAL)
        p.detox_per_day = True
        self.add(rule, p, target, case="detox_per_day", fires=False)

    def group_share_not_rising(self) -> None:
        """A provider whose group share falls a little from the year before."""
        rule, target = "group_share_not_rising", self.target
        if target - 1 not in self.years:
            self.skip(rule, "needs two consecutive years")
            return
        need = ROOM * param(self.policy, rule, "min_consults")
        p = self.pick(
            rule,
            lambda p: (
                p.group >= NOT_RISING_FROM
                and all(self.consults(p, y) >= need for y in (target - 1, target))
            ),
            f"no provider with {need:.0f}+ consults in both years",
        )
        if p is None:
            return
        before = p.group_rate(target - 1)
        rise = param(self.policy, rule, "min_rise")
        p.overrides.setdefault(target, {})["group"] = max(
            0.0, before * (1 - NOT_RISING_FALL) + rise
        )
        self.add(rule, p, target)

    # -- departments (SPEC §9): the largest fitting institution, no random draw ---------
    # A department plant only moves lines between departments of one provider, which
    # no other rule reads: it may share a provider with a plant of another rule, not
    # with another department plant.

    def largest(self, rule: str, ok: Callable[[Provider], bool], why: str) -> Provider | None:
        for p in self.providers:  # largest first
            if p.index not in self.dept_used and ok(p):
                self.dept_used.add(p.index)
                return p
        self.skip(rule, f"{why} (one provider per department anomaly)")
        return None

    def _clients(self, p: Provider, rate: float) -> float:
        return self.volume[(p.index, self.target)] * rate

    def declining_crisis_team(self) -> None:
        rule = "department_activity_drop"
        need = ROOM * param(self.policy, rule, "min_clients")
        p = self.largest(
            rule,
            lambda p: p.institution and self._clients(p, CRISIS_RATE) >= need,
            f"no institution whose crisis team has {need:.0f}+ clients a month",
        )
        if p is None:
            return
        p.moves[CRISIS] = (self.target, DEPARTMENT_MONTH, "ambulant", CRISIS_KEEP)
        self.add(rule, p, self.target, detail=CRISIS, case="declining_crisis_team")

    def closing_ward(self) -> None:
        rule = "department_stopped"
        need = ROOM * param(self.policy, rule, "min_clients")
        p = self.largest(
            rule,
            lambda p: p.institution and self._clients(p, WARD_RATE) >= need,
            f"no institution whose ward has {need:.0f}+ clients a month",
        )
        if p is None:
            return
        p.moves[WARDS[1]] = (self.target, CLOSING_MONTH, WARDS[0], 0)
        self.add(rule, p, self.target, detail=WARDS[1], case="closing_ward")

    def region_loses_secured(self) -> None:
        rule = "region_category_gap"
        secured: dict[str, int] = {}
        for q in self.providers:
            if q.institution and SECURED in q.departments:
                secured[q.region] = secured.get(q.region, 0) + 1
        p = self.largest(
            rule,
            lambda p: (
                p.institution
                and SECURED in p.departments
                and secured[p.region] == 1
                and self._clients(p, SECURED_RATE) >= GAP_CLIENTS
            ),
            "no region with exactly one secured ward of a fitting size",
        )
        if p is None:
            return
        p.moves[SECURED] = (self.target, GAP_MONTH, WARDS[0], 0)
        self.add(rule, p, self.target, detail=p.region, case="region_loses_secured")


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
    planter.lowered_ceiling()
    planter.ceiling_pace_high()
    planter.seasonal()
    planter.ceiling_underrun()
    planter.detox_per_day()
    planter.group_share_not_rising()
    # SPEC §9, last: their picks take no random draw, the plants above stay as they were
    planter.declining_crisis_team()
    planter.closing_ward()
    planter.region_loses_secured()
    return planter.out
