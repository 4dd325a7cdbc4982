"""One synthetic history: the world built from the options and the policy, then
emitted month by month.

Everything derives from one `random.Random(seed)` consumed in a fixed order, so the
same options and policy give byte-identical output.
"""

from __future__ import annotations

from collections.abc import Iterator
from random import Random

from streams.domain.policy import Policy
from streams.synth.contracts import ContractEvents
from streams.synth.lines import CellDrawer, Entry, Pending
from streams.synth.options import GenerateOptions, HistoryItem, check_options
from streams.synth.plan import plan_cells, year_volume
from streams.synth.plants import plant
from streams.synth.providers import build_providers
from streams.synth.tables import build_choices
from streams.synth.writer import Row, Writer


class History:
    """Builds the world from the options and the policy; emits it once."""

    def __init__(self, options: GenerateOptions, policy: Policy) -> None:
        check_options(options)
        self.options = options
        self.policy = policy
        self.years = tuple(sorted(set(options.years)))
        self.rng = rng = Random(options.seed)
        self.choices = build_choices(self.years)
        self.providers = build_providers(rng, options.providers)
        volume = year_volume(options, self.years, self.providers)
        # Plants first: a planted spend profile decides how a year splits into months.
        self.planting = plant(rng, self.years, self.providers, volume, policy)
        self.plan = plan_cells(options, self.years, rng, self.providers, volume)
        self.contracts = ContractEvents(
            rng,
            self.years,
            self.providers,
            self.plan,
            self.choices,
            self.planting,
            policy,
        )
        self.writer = Writer(rng)
        self._started = False

    def items(self) -> Iterator[HistoryItem]:
        """Declarations in file order, contract events merged in by event time."""
        contracts = self.contracts.events
        ci = 0
        for batch in self.batches():
            for epoch, _, value, agb in batch:
                while ci < len(contracts) and contracts[ci][0] <= epoch:
                    yield HistoryItem("contract", contracts[ci][2], contracts[ci][1])
                    ci += 1
                yield HistoryItem("declaration", agb, value[:-1])
        for _, value, key in contracts[ci:]:
            yield HistoryItem("contract", key, value)

    def batches(self) -> Iterator[list[Row]]:
        """Per submission month: (epoch, sequence, line + newline, AGB), in time order.

        Months are generated one after the other, so memory holds one month at a time;
        credits wait in `pending` for the later month they are submitted in.
        """
        if self._started:
            raise RuntimeError("a history is emitted once")
        self._started = True
        drawer = CellDrawer(self.options.seed, self.rng, self.choices, self.policy)
        cells = self.plan.cells
        pending: Pending = {}
        sub = self.years[0] * 12 + 1  # February of the first year: January's lines
        last = self.years[-1] * 12 + 12  # January after the last year
        while sub <= last or pending:
            batch: list[Row] = []
            late = pending.pop(sub, {})
            sy, sm = divmod(sub - 1, 12)  # the service month
            for p in self.providers:
                cell = cells.get((p.index, sy, sm + 1))
                entries: list[Entry] = late.pop(p.index, [])
                if cell and cell.debits:
                    entries += drawer.draw(p, sy, sm + 1, cell, sub, pending)
                if entries:
                    self.writer.emit(p, sub, entries, batch)
            batch.sort()
            yield batch
            sub += 1
