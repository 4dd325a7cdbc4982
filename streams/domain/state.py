"""State of one provider: indicators per year, the line index, alerts, counters.

Everything the product knows about a provider lives in one ``ProviderState``, keyed
by AGB code, which is also the Kafka key of the declarations topic: the streaming
worker keeps exactly the providers of its partitions, the offline replay keeps all.

The line index remembers, per ``line_id``, what its debit added and whether it was
credited; the event set remembers every event judged. That is what makes acceptance
idempotent (SPEC §2 steps 4–7) and credits exact: a credit subtracts the stored
contribution of its debit.

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

# A line index entry packs what the debit added into one integer (32 bytes, where a
# tuple of the same facts takes over 100): amount in bits 0-23, flags 24-32, quarter-1
# 33-34, year 35-48, "credited" bit 49. An ADHD line also needs its client to leave
# the distinct count when credited: its entry is (packed, client).
_Entry = int | tuple[int, str]
_CREDITED = 1 << 49


def _pack(year: int, quarter: int, flags: int, amount: int) -> int:
    return amount | flags << 24 | (quarter - 1) << 33 | year << 35


def _unpack(packed: int) -> tuple[int, int, int, int]:
    """(year, quarter, flags, amount)"""
    return (
        packed >> 35 & 0x3FFF,
        (packed >> 33 & 3) + 1,
        packed >> 24 & 0x1FF,
        packed & 0xFFFFFF,
    )


@dataclass(slots=True)
class ProviderState:
    provider: str
    years: dict[int, YearState] = field(default_factory=dict)
    lines: dict[str, _Entry] = field(default_factory=dict)
    # event ids judged at SPEC §2 steps 5-7 (accepted, or ignored/dead-lettered there):
    # a repeat of one is a redelivery, counted duplicate and otherwise ignored (step 4)
    events: set[str] = field(default_factory=set)
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
        if event_id in self.events:
            self.counts.duplicate += 1
            return DUPLICATE
        self.events.add(event_id)
        entry = self.lines.get(line_id)
        if not credit:
            if entry is not None:
                return self._ignored(event_id, DUPLICATE_LINE)
            packed = amount | flags << 24 | (quarter - 1) << 33 | year << 35  # _pack, inlined
            self.lines[line_id] = packed if client is None else (packed, client)
            ys = self.years.get(year)
            if ys is None:
                ys = self.years[year] = YearState()
            ys.apply(flags, amount, quarter, client, 1)
            if self.journal is not None:
                self.journal.append([line_id, event_id, year, quarter, client, flags, amount])
        else:
            if entry is None:
                self.counts.reject(ORPHAN_CREDIT)
                if self.journal is not None:
                    self.journal.append([event_id])
                return ORPHAN_CREDIT
            packed = entry if type(entry) is int else entry[0]
            if packed & _CREDITED:
                return self._ignored(event_id, DUPLICATE_CREDIT)
            self._credit(line_id, entry)
            if self.journal is not None:
                self.journal.append([line_id, event_id])
        self.region = region
        self.counts.accepted += 1
        return ACCEPTED

    def debit_of(self, line_id: str) -> tuple[int, int, int, int] | None:
        """(year, quarter, flags, amount) the debit of ``line_id`` added, if known."""
        entry = self.lines.get(line_id)
        if entry is None:
            return None
        return _unpack(entry if type(entry) is int else entry[0])

    def _ignored(self, event_id: str, outcome: str) -> str:
        if outcome == DUPLICATE_LINE:
            self.counts.duplicate_line += 1
        else:
            self.counts.duplicate_credit += 1
        if self.journal is not None:  # the event id must survive a restart
            self.journal.append([event_id])
        return outcome

    def _credit(self, line_id: str, entry: _Entry) -> None:
        if type(entry) is int:
            packed, client = entry, None
            self.lines[line_id] = packed | _CREDITED
        else:
            packed, client = entry
            self.lines[line_id] = (packed | _CREDITED, client)
        year, quarter, flags, amount = _unpack(packed)
        self._year(year).apply(flags, amount, quarter, client, -1)

    def _year(self, year: int) -> YearState:
        ys = self.years.get(year)
        if ys is None:
            ys = self.years[year] = YearState()
        return ys

    def replay_journal(self, records: list[list[Any]]) -> None:
        """Re-apply journal records (see ``accept``) without counting or alerting.

        A record is a debit ``[line_id, event_id, year, quarter, client, flags,
        amount]``, a credit ``[line_id, event_id]``, or an event judged but not
        applied ``[event_id]``.
        """
        for rec in records:
            if len(rec) == 1:
                self.events.add(rec[0])
            elif len(rec) == 2:
                self.events.add(rec[1])
                self._credit(rec[0], self.lines[rec[0]])
            else:
                line_id, event_id, year, quarter, client, flags, amount = rec
                self.events.add(event_id)
                packed = _pack(year, quarter, flags, amount)
                self.lines[line_id] = packed if client is None else (packed, client)
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
