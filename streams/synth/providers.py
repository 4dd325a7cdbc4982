"""The population: providers with their size, mix of care and habits.

A quarter of the providers are institutions (clinics, several departments, stays),
the rest practices; sizes follow a Zipf curve, so a few institutions carry most
lines. Shares that decide whether a rule fires (group, digital, ADHD, detox) are
drawn here for a normal provider; `plants.py` moves a few providers across the
policy's thresholds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from random import Random
from typing import Any

from streams.synth.departments import BASE, SECURED, TOP, Move
from streams.synth.tables import (
    ADDICTION,
    CONSULT_DIAGNOSES,
    DIAGNOSES,
    INSTITUTION_NAMES,
    PLACES,
    PRACTICE_PATTERNS,
    PRACTICE_SETTINGS,
    REGIONS,
    SURNAMES,
    weighted_table,
)

INSTITUTION_SHARE = 0.25  # of the providers
GROUP_SHARES = (0.09, 0.17)  # range of a normal provider's group-consult share


@dataclass(slots=True)
class Provider:
    index: int
    agb: str
    name: str
    region: str
    purchaser: str
    institution: bool
    weight: float
    growth: float
    departments: tuple[str, ...]
    stay: float
    other: float
    group: float
    digital: float
    adhd: float
    addiction: float
    detox: float
    clinical_detox: float
    forensic: float
    consult_settings: tuple[int, ...]
    consult_diagnoses: tuple[int, ...]
    # per year overrides, set by planting: year -> {attribute: value}
    overrides: dict[int, dict[str, Any]] = field(default_factory=dict)
    adhd_boost: dict[tuple[int, int], float] = field(default_factory=dict)
    mismatch_years: frozenset[int] = frozenset()
    # per year: the months' factors on top of the season (planted spend profiles)
    profile: dict[int, tuple[float, ...]] = field(default_factory=dict)
    # clinical detox stays declared as one line per stay day (a planted habit)
    detox_per_day: bool = False
    # planted department changes: department -> its move (streams/synth/departments.py)
    moves: dict[str, Move] = field(default_factory=dict)
    # jittered accumulators of the shares (see lines.py), one per decision
    acc: list[float] = field(default_factory=list)
    # per diagnosis: active clients as (client_ref, care demand type, trajectory,
    # digital, detox 0/1/2): properties of the client, all its lines alike (lines.py)
    pools: list[list[tuple[str, int, str, bool, int]]] = field(default_factory=list)
    clients: int = 0
    lines: int = 0

    def group_rate(self, y: int) -> float:
        # From 2026 insurers expect group treatment: providers move up a bit (a planted
        # provider whose share does not rise overrides it).
        override = self.overrides.get(y, {}).get("group")
        if override is not None:
            return float(override)
        return self.group * (1.1 if y >= 2026 else 1.0)


def consult_diagnoses(addiction: float) -> tuple[int, ...]:
    """The diagnosis table of a provider's consults with this addiction share."""
    diag = {DIAGNOSES.index(k): v for k, v in CONSULT_DIAGNOSES.items()}
    diag[ADDICTION] = addiction / (1 - addiction)
    return weighted_table(diag)


def build_providers(rng: Random, n: int) -> list[Provider]:
    """`n` providers, largest first (`index` is the rank)."""
    weights = [rng.uniform(0.85, 1.15) / (r + 1) for r in range(n)]
    order = sorted(range(n), key=lambda i: -weights[i])
    institutions = max(1, round(n * INSTITUTION_SHARE))
    agbs: set[str] = set()
    names: set[str] = set()
    inst_names = list(INSTITUTION_NAMES)
    rng.shuffle(inst_names)
    providers = []
    for rank, i in enumerate(order):
        inst = rank < institutions
        agb = _agb(rng, inst, agbs)
        name = _name(rng, inst, inst_names, names)
        region, purchaser = REGIONS[rng.randrange(len(REGIONS))]
        settings, depts, forensic = _organisation(rng, inst)
        addiction = rng.uniform(0.04, 0.11) if inst else rng.uniform(0.0, 0.03)
        providers.append(
            Provider(
                index=rank,
                agb=agb,
                name=name,
                region=region,
                purchaser=purchaser,
                institution=inst,
                weight=weights[i],
                growth=rng.uniform(-0.04, 0.06),
                departments=tuple(depts),
                stay=rng.uniform(0.13, 0.21) if inst else 0.0,
                other=rng.uniform(0.05, 0.10),
                group=rng.uniform(*GROUP_SHARES),
                digital=rng.uniform(0.29, 0.40),
                adhd=rng.uniform(0.08, 0.15) if inst else rng.uniform(0.10, 0.20),
                addiction=addiction,
                detox=0.12 if inst else 0.05,
                clinical_detox=rng.uniform(0.12, 0.32) if inst else 0.0,
                forensic=forensic,
                consult_settings=weighted_table({k: v for k, v in settings.items() if v}),
                consult_diagnoses=consult_diagnoses(addiction),
                acc=[rng.random() for _ in range(8)],
                pools=[[] for _ in DIAGNOSES],
            )
        )
    return providers


def _agb(rng: Random, inst: bool, taken: set[str]) -> str:
    """A new AGB code: 06 for institutions, 94 for practices."""
    while True:
        agb = ("06" if inst else "94") + f"{rng.randrange(10**6):06d}"
        if agb not in taken:
            taken.add(agb)
            return agb


def _organisation(rng: Random, inst: bool) -> tuple[dict[int, float], list[str], float]:
    """Consult settings (weights), departments and forensic share of a provider."""
    if not inst:
        return dict(PRACTICE_SETTINGS), [], 0.0
    forensic = 0.25 if rng.random() < 0.4 else 0.0
    topggz = rng.random() < 0.6
    settings = {1: 0.04, 2: 0.14, 3: 0.38, 4: 0.13, 5: 0.12, 8: 0.10 if topggz else 0}
    if forensic:
        settings |= {6: 0.04, 7: 0.05}
    depts = list(BASE)
    depts += [TOP] * topggz + [SECURED] * bool(forensic)
    if rng.random() < 0.6:
        depts.append("verslavingszorg")
    return settings, depts, forensic


def _name(rng: Random, inst: bool, inst_names: list[str], taken: set[str]) -> str:
    for attempt in range(50):
        if inst and inst_names:
            name = inst_names.pop()
        elif inst:
            name = f"GGZ {PLACES[rng.randrange(len(PLACES))]}"
        else:
            pattern = PRACTICE_PATTERNS[rng.randrange(len(PRACTICE_PATTERNS))]
            s, s2 = rng.sample(SURNAMES, 2)
            name = pattern.format(s=s, s2=s2, p=PLACES[rng.randrange(len(PLACES))])
        if attempt > 20:
            name = f"{name} {attempt}"
        if name not in taken:
            taken.add(name)
            return name
    # Thousands of providers exhaust the institution names and the numbered draws
    # collide as well: count on from the last draw, without drawing again (fewer
    # providers never get here, so their seeds give the names they always gave).
    base, number = name.rsplit(" ", 1)
    for n in itertools.count(int(number) + 1):
        if f"{base} {n}" not in taken:
            taken.add(f"{base} {n}")
            return f"{base} {n}"
    raise AssertionError("unreachable: itertools.count is endless")
