"""How many lines of each kind go into every (provider, service month) cell.

The requested total is split into debits, credits, corrections, malformed lines,
redeliveries and three one-off faults (a duplicate line, a duplicate credit, an
orphan credit); debits follow provider size, growth and season.
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


def plan_cells(
    o: GenerateOptions, years: tuple[int, ...], rng: Random, providers: list[Provider]
) -> Plan:
    malformed = round(o.lines * o.malformed_rate)
    redeliveries = min(10, max(1, o.lines // 20_000))
    singles = 3  # duplicate line, duplicate credit, orphan credit
    budget = o.lines - malformed - redeliveries - singles
    debits = int(budget / (1 + CREDIT_RATE * (1 + CORRECTION_RATE)))
    credits = round(debits * CREDIT_RATE)
    corrections = round(credits * CORRECTION_RATE)
    debits = budget - credits - corrections

    cells: list[tuple[int, int, int]] = []
    weights: list[float] = []
    for p in providers:
        for yi, y in enumerate(years):
            for m in range(1, 13):
                cells.append((p.index, y, m))
                weights.append(p.weight * (1 + p.growth) ** yi * SEASON[m - 1])
    n = allocate(debits, weights)
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
    volume: dict[tuple[int, int], int] = {}
    for (pi, y, _), x in zip(cells, n, strict=True):
        volume[(pi, y)] = volume.get((pi, y), 0) + x
    return Plan(plan, volume)
