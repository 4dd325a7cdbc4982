"""Contract events: version 1 per provider and year in the December before, and a
few version-2 adjustments in Q4.

A ceiling is sized from the provider's expected net amount, so most providers end
their year near it. A planted provider-year (`Planting.ceilings`) gets the ceiling
its case needs: one it reaches (the policy's first threshold) by about mid-May
(early), one it ends the year at 95% of (the spend-pace cases: the early
over-spender and the seasonal provider), one well below the underrun threshold,
and one the purchaser lowers in September, after August's lines are in, to where
the spend so far passes the first threshold (lowered).
"""

from __future__ import annotations

from random import Random
from typing import Any

import orjson

from streams.domain.policy import Policy
from streams.synth.dates import business_day, timestamp
from streams.synth.plan import Plan
from streams.synth.plants import (
    LOWERED_MONTH,
    LOWERED_START,
    PLANTED_UTILISATION,
    UNDERRUN_AT,
    Planting,
    param,
)
from streams.synth.providers import Provider
from streams.synth.tables import CORRECTION_RATE, CREDIT_RATE, Choices, T, mean

EARLY_SHARE = 0.37  # of its year's volume, at which the early plant crosses its first threshold


def round_ceiling(cents: float) -> int:
    step = 100_000 if cents >= 10_000_000 else 10_000  # whole thousands / hundreds of euros
    return max(step, round(cents / step) * step)


def expected_net(p: Provider, y: int, volume: int, choices: Choices) -> float:
    """Expected net cents of a provider-year, from its mix and the tariff tables."""
    t = choices.tariffs[y]
    ov = p.overrides.get(y, {})
    group = p.group_rate(y)
    indiv = sum(a for _, a in t["indiv"]) / T
    grp = sum(a for _, a in t["group"]) / T
    stay = sum(a for _, a in t["stay"]) / T * mean(choices.stay_days)
    other = sum(a for _, a in t["other"]) / T
    consult = group * grp + (1 - group) * indiv
    stay_share = ov.get("stay", p.stay)
    per_line = stay_share * stay + (1 - stay_share) * (p.other * other + (1 - p.other) * consult)
    return per_line * volume * (1 - CREDIT_RATE * (1 - CORRECTION_RATE))


class ContractEvents:
    """The contract events of a history, in `updated_at` order: (epoch, JSON, key)."""

    def __init__(
        self,
        rng: Random,
        years: tuple[int, ...],
        providers: list[Provider],
        plan: Plan,
        choices: Choices,
        planting: Planting,
        policy: Policy,
    ) -> None:
        self.rng = rng
        self.plan = plan
        self.policy = policy
        self.events: list[tuple[int, bytes, str]] = []
        self.ceilings: dict[tuple[int, int], list[int]] = {}
        planted = planting.ceilings
        for y in years:
            # About one contract in eight is adjusted in Q4, three in four of them raised.
            others = [p.index for p in providers if (p.index, y) not in planted]
            adjusted = rng.sample(others, min(len(others), round(len(providers) / 8)))
            lowered = set(adjusted[: len(adjusted) // 4])
            for p in providers:
                net = expected_net(p, y, plan.volume[(p.index, y)], choices)
                case = planted.get((p.index, y))
                if case is not None:
                    versions = self._planted(case, net, p.index, y)
                else:
                    versions = self._versions(net, p.index in adjusted, p.index in lowered)
                self.ceilings[(p.index, y)] = [round_ceiling(v) for v in versions]
                self._add(p, y, lowered_in=LOWERED_MONTH if case == "lowered" else None)
        self.events.sort(key=lambda c: c[0])

    def _planted(self, case: str, net: float, index: int, y: int) -> list[float]:
        """The ceiling versions of a planted provider-year."""
        thresholds = self.policy.ceiling.thresholds
        if case == "early":
            return [net * EARLY_SHARE / thresholds[0]]
        if case == "underrun":
            return [net / (UNDERRUN_AT * param(self.policy, "ceiling_underrun", "threshold"))]
        if case == "lowered":
            # Midway between the first two thresholds, by the spend of the months
            # whose lines are in when the ceiling is lowered.
            nxt = thresholds[1] if len(thresholds) > 1 else thresholds[0] + 0.2
            months = [self.plan.cells[(index, y, m)].debits for m in range(1, 13)]
            spent = sum(months[: LOWERED_MONTH - 1]) / max(1, sum(months))
            return [net / LOWERED_START, spent * net / ((thresholds[0] + nxt) / 2)]
        return [net / PLANTED_UTILISATION]  # pace, seasonal

    def _versions(self, net: float, adjusted: bool, lowered: bool) -> list[float]:
        rng = self.rng
        if adjusted and not lowered:  # heading over: raised
            v2 = net / rng.uniform(0.86, 1.0)
            return [v2 / rng.uniform(1.08, 1.25), v2]
        if lowered:  # realisation far below the ceiling: lowered
            v1 = net / rng.uniform(0.6, 0.72)
            return [v1, v1 * rng.uniform(0.82, 0.9)]
        r = rng.random()
        if r < 0.07:
            u = rng.uniform(0.55, 0.75)
        elif r < 0.14:
            u = rng.uniform(1.05, 1.2)
        else:
            u = rng.uniform(0.76, 1.04)
        return [net / u]

    def _add(self, p: Provider, y: int, lowered_in: int | None = None) -> None:
        """Its contract events; version 2 in Q4, or after mid-month `lowered_in` (once
        the previous month's lines are in: they are submitted by the 14th)."""
        rng = self.rng
        for version, ceiling in enumerate(self.ceilings[(p.index, y)], start=1):
            if version == 1:
                day = business_day(rng, y - 1, 12, 1, 20)
            elif lowered_in is not None:
                day = business_day(rng, y, lowered_in, 16, 28)
            else:
                month = 10 + rng.randrange(3)
                day = business_day(rng, y, month, 1, 10 if month == 12 else 28)
            sec = rng.randrange(9 * 3600, 17 * 3600)
            updated_at, epoch = timestamp(day, sec)
            event: dict[str, Any] = {
                "schema": "ggz.contract/1",
                "provider_agb": p.agb,
                "year": y,
                "ceiling_cents": ceiling,
                "purchaser": p.purchaser,
                "provider_name": p.name,
                "region": p.region,
                "version": version,
                "updated_at": updated_at,
            }
            self.events.append((epoch, orjson.dumps(event), f"{p.agb}:{y}"))
