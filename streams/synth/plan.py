"""How many lines of each kind go into every (provider, service month) cell.

The requested total is split into debits, credits, corrections, malformed lines,
redeliveries and three one-off faults (a duplicate line, a duplicate credit, an
orphan credit). Debits follow provider size and growth (`year_volume`, which the
plants are chosen by) and then, within a year, the season and a planted provider's
spend profile (`plan_cells`).
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from streams.synth.options import GenerateOptions
from streams.synth.providers import Provider
from streams.synth.tables import CORRECTION_RATE, CREDIT_RATE, SEASON, allocate

# Bit flags of the one-off faults in a cell's plan.
DUP_LINE_FLAG, DUP_CREDIT_FLAG, ORPHAN_FLAG = 1, 2, 4


@dataclass(slots=True)
class CellPlan:
    debits: int
    credits: int
    corrections: int
    malformed: int
    redeliveries: int
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    cells: dict[tuple[int, int, int], CellPlan]  # (provider index, year, month)
    volume: dict[tuple[int, int], int]  # debits per (provider index, year)


def debit_budget(o: GenerateOptions) -> tuple[int, int, int, int, int]:
    """(debits, credits, corrections, malformed, redeliveries) of the requested total."""
    malformed = round(o.lines * o.malformed_rate)
    redeliveries = min(10, max(1, o.lines // 20_000))
    singles = 3  # duplicate line, duplicate credit, orphan credit
    budget = o.lines - malformed - redeliveries - singles
    debits = int(budget / (1 + CREDIT_RATE * (1 + CORRECTION_RATE)))
    credits = round(debits * CREDIT_RATE)
    corrections = round(credits * CORRECTION_RATE)
    return budget - credits - corrections, credits, corrections, malformed, redeliveries


def year_volume(
    o: GenerateOptions, years: tuple[int, ...], providers: list[Provider]
) -> dict[tuple[int, int], int]:
    """Debits per (provider index, year): size, growth and the year's season."""
    debits = debit_budget(o)[0]
    keys = [(p.index, y) for p in providers for y in years]
    season = sum(SEASON)
    weights = [
        p.weight * (1 + p.growth) ** yi * season for p in providers for yi, _ in enumerate(years)
    ]
    return dict(zip(keys, allocate(debits, weights), strict=True))


def plan_cells(
    o: GenerateOptions,
    years: tuple[int, ...],
    rng: Random,
    providers: list[Provider],
    volume: dict[tuple[int, int], int],
) -> Plan:
    """Split each provider-year's debits over its months (season times the provider's
    planted profile), then the credits, corrections, faults over the cells."""
    _, credits, corrections, malformed, redeliveries = debit_budget(o)
    cells: list[tuple[int, int, int]] = []
    n: list[int] = []
    for p in providers:
        for y in years:
            profile = p.profile.get(y, (1.0,) * 12)
            weights = [SEASON[m] * profile[m] for m in range(12)]
            cells += [(p.index, y, m) for m in range(1, 13)]
            n += allocate(volume[(p.index, y)], weights)
    c = allocate(credits, [float(x) for x in n])
    k = allocate(corrections, [float(x) for x in c])
    bad = allocate(malformed, [float(x) for x in n])
    redo = [0] * len(n)
    filled = [i for i, x in enumerate(n) if x]
    for i in rng.choices(filled, weights=[n[i] for i in filled], k=redeliveries):
        redo[i] += 1
    with_room = [i for i in filled if n[i] > c[i]]
    with_credit = [i for i in filled if c[i]]
    plan = {cell: CellPlan(n[i], c[i], k[i], bad[i], redo[i]) for i, cell in enumerate(cells)}
    for flag, pool in (
        (DUP_LINE_FLAG, with_room),
        (DUP_CREDIT_FLAG, with_credit),
        (ORPHAN_FLAG, filled),
    ):
        plan[cells[rng.choice(pool)]].flags |= flag
    return Plan(plan, volume)
