"""State of one provider: indicators per year, the line index, alerts, counters.

Everything the product knows about a provider lives in one ``ProviderState``, keyed
by AGB code, which is also the Kafka key of the declarations topic: the streaming
worker keeps exactly the providers of its partitions, the offline replay keeps all.

The line index remembers, per ``line_id``, what its debit added and which events
debited and credited it. That is what makes acceptance idempotent (SPEC §2 steps
4–7) and credits exact: a credit subtracts the stored contribution of its debit.

For durability the streaming worker needs the changes of one message as a small
record rather than the whole state; ``journal`` collects them (when enabled) and
``replay_journal`` rebuilds the line index and indicators from such records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.domain.alerts import AlertBook
from streams.domain.indicators import YearState
from streams.domain.model import (
    ACCEPTED,
    DUPLICATE,
    DUPLICATE_CREDIT,
    DUPLICATE_LINE,
    ORPHAN_CREDIT,
    Counts,
    Line,
)

# Line index entry: (debit event_id, credit event_id | None, year, quarter, client, flags, amount)
_Entry = tuple[str, str | None, int, int, str | None, int, int]
_DEBIT_EID, _CREDIT_EID, _YEAR, _QUARTER, _CLIENT, _FLAGS, _AMOUNT = range(7)


@dataclass(slots=True)
class ProviderState:
    provider: str
    years: dict[int, YearState] = field(default_factory=dict)
    lines: dict[str, _Entry] = field(default_factory=dict)
    alerts: AlertBook = field(default_factory=AlertBook)
    counts: Counts = field(default_factory=Counts)
    region: str | None = None
    watermark: float = 0.0  # latest event time (submitted_at) seen, unix seconds
    # Streaming only: "<source><partition>" → offset of the last message applied here.
    applied: dict[str, int] = field(default_factory=dict)
    journal: list[list[Any]] | None = None  # None: not recording

    def accept(self, line: Line) -> str:
        """Apply SPEC §2 steps 4–7 to a schema-valid line; return the outcome."""
        event_id, line_id, credit, _, year, quarter, client, flags, amount, event_time, region = (
            line
        )
        if event_time > self.watermark:
            self.watermark = event_time
        entry = self.lines.get(line_id)
        if not credit:
            if entry is not None:
                outcome = DUPLICATE if entry[_DEBIT_EID] == event_id else DUPLICATE_LINE
                self._count(outcome)
                return outcome
            # A tuple, not a list: tuples of strings and ints leave the garbage
            # collector's lists, so millions of entries cost no collection time.
            self.lines[line_id] = (event_id, None, year, quarter, client, flags, amount)
            ys = self.years.get(year)
            if ys is None:
                ys = self.years[year] = YearState()
            ys.apply(flags, amount, quarter, client, 1)
            if self.journal is not None:
                self.journal.append([line_id, event_id, year, quarter, client, flags, amount])
        else:
            if entry is None:
                self.counts.reject(ORPHAN_CREDIT)
                return ORPHAN_CREDIT
            if entry[_DEBIT_EID] == event_id or entry[_CREDIT_EID] == event_id:
                self._count(DUPLICATE)
                return DUPLICATE
            if entry[_CREDIT_EID] is not None:
                self._count(DUPLICATE_CREDIT)
                return DUPLICATE_CREDIT
            self._credit(line_id, entry, event_id)
            if self.journal is not None:
                self.journal.append([line_id, event_id])
        self.region = region
        self.counts.accepted += 1
        return ACCEPTED

    def credited_year(self, line: Line) -> int:
        """Year a credit affected: the year of the debit it reversed."""
        entry = self.lines.get(line.line_id)
        return entry[_YEAR] if entry is not None else line.year  # type: ignore[no-any-return]

    def _credit(self, line_id: str, entry: _Entry, event_id: str) -> None:
        self.lines[line_id] = (entry[_DEBIT_EID], event_id, *entry[_YEAR:])
        self._year(entry[_YEAR]).apply(
            entry[_FLAGS], entry[_AMOUNT], entry[_QUARTER], entry[_CLIENT], -1
        )

    def _count(self, outcome: str) -> None:
        if outcome == DUPLICATE:
            self.counts.duplicate += 1
        elif outcome == DUPLICATE_LINE:
            self.counts.duplicate_line += 1
        else:
            self.counts.duplicate_credit += 1

    def _year(self, year: int) -> YearState:
        ys = self.years.get(year)
        if ys is None:
            ys = self.years[year] = YearState()
        return ys

    def replay_journal(self, records: list[list[Any]]) -> None:
        """Re-apply journal records (see ``accept``) without counting or alerting."""
        for rec in records:
            if len(rec) == 2:
                self._credit(rec[0], self.lines[rec[0]], rec[1])
            else:
                line_id, event_id, year, quarter, client, flags, amount = rec
                self.lines[line_id] = (event_id, None, year, quarter, client, flags, amount)
                self._year(year).apply(flags, amount, quarter, client, 1)

    def header(self) -> dict[str, Any]:
        """Everything not rebuilt from the journal: counters, alerts, offsets."""
        return {
            "counts": self.counts.as_dict(),
            "alerts": self.alerts.to_json(),
            "region": self.region,
            "watermark": self.watermark,
            "applied": dict(self.applied),
        }

    def restore_header(self, raw: dict[str, Any]) -> None:
        self.counts = Counts.from_dict(raw["counts"])
        self.alerts = AlertBook.from_json(raw["alerts"])
        self.region = raw["region"]
        self.watermark = raw["watermark"]
        self.applied = {str(p): int(o) for p, o in raw["applied"].items()}
