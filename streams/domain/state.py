"""State of one provider: indicators per year, the line index, alerts, counters.

Everything the product knows about a provider lives in one ``ProviderState``, keyed
by AGB code, which is also the Kafka key of the declarations topic: the streaming
worker keeps exactly the providers of its partitions, the offline replay keeps all.

The line index remembers, per ``line_id``, what its debit added and whether it was
credited; the event set remembers every event judged. That is what makes acceptance
idempotent (SPEC §2 steps 4–7) and credits exact: a credit subtracts the stored
contribution of its debit. Both are kept per service year, and only for the years the
retention policy still holds (``retention.line_index_years``): once a provider's
event-time watermark closes a year, that year's index goes, its indicators stay, and
its later lines are refused as ``line_index_expired``.

For durability the streaming worker needs the changes of one message as a small
record rather than the whole state; ``journal`` collects them (when enabled) and
``replay_journal`` rebuilds the line index and indicators from such records, on top
of a ``checkpoint`` of the whole state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.domain.alerts import AlertBook
from streams.domain.indicators import YearState
from streams.domain.model import (
    ACCEPTED,
    DUPLICATE,
    DUPLICATE_CREDIT,
    DUPLICATE_LINE,
    LINE_INDEX_EXPIRED,
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
    # Service year → line_id → entry. A credit carries the service date of its debit,
    # so the credit's own year finds the debit; keyed by year, the index of a whole
    # year can be dropped at once (retention, below).
    lines: dict[int, dict[str, _Entry]] = field(default_factory=dict)
    # Service year → event ids judged at SPEC §2 steps 5-7 (accepted, or ignored or
    # dead-lettered there): a repeat of one is a redelivery, counted duplicate and
    # otherwise ignored (step 4). A redelivery repeats its line, so its year too.
    events: dict[int, set[str]] = field(default_factory=dict)
    alerts: AlertBook = field(default_factory=AlertBook)
    counts: Counts = field(default_factory=Counts)
    region: str | None = None
    watermark: float = 0.0  # latest event time (submitted_at) seen, unix seconds
    # Streaming only: "<source><partition>" → offset of the last message applied here.
    applied: dict[str, int] = field(default_factory=dict)
    journal: list[list[Any]] | None = None  # None: not recording
    # Retention (policy retention.line_index_years): the index and event ids of service
    # year Y are dropped once the watermark reaches 1 January of Y + keep_years + 1
    # (UTC). Event time only, never the wall clock, so a replay decides the same.
    keep_years: int = 3
    open_from: int = 0  # first service year whose index is held; earlier ones are dropped
    dropped: bool = False  # years were dropped since the flag was last cleared (streaming)
    _roll: float = 0.0  # the watermark at which open_from moves next
    # The year of the last line, and its index, event ids and YearState (None until
    # its first debit): consecutive lines of one year skip three dict lookups.
    _cy: int = -1
    _cl: dict[str, _Entry] = field(default_factory=dict)
    _ce: set[str] = field(default_factory=set)
    _cys: YearState | None = None

    def accept(self, line: Line) -> str:
        """Apply SPEC §2 steps 4–7 to a schema-valid line; return the outcome.

        A line of a service year whose index was dropped is refused first
        (``line_index_expired``): without its event ids and line ids, steps 4–7
        cannot tell a redelivery or a credit from a new line.
        """
        event_id, line_id, credit, _, year, quarter, client, flags, amount, event_time, region = (
            line
        )
        if event_time > self.watermark:
            self.watermark = event_time
            if event_time >= self._roll:
                self._advance()
        if year != self._cy:
            if year < self.open_from:
                self.counts.reject(LINE_INDEX_EXPIRED)
                return LINE_INDEX_EXPIRED
            self._select(year)
        events = self._ce
        if event_id in events:
            self.counts.duplicate += 1
            return DUPLICATE
        events.add(event_id)
        index = self._cl
        entry = index.get(line_id)
        if not credit:
            if entry is not None:
                return self._ignored(event_id, year, DUPLICATE_LINE)
            packed = amount | flags << 24 | (quarter - 1) << 33 | year << 35  # _pack, inlined
            index[line_id] = packed if client is None else (packed, client)
            ys = self._cys
            if ys is None:
                ys = self._cys = self._year(year)
            ys.apply(flags, amount, quarter, client, 1)
            if self.journal is not None:
                self.journal.append([line_id, event_id, year, quarter, client, flags, amount])
        else:
            if entry is None:
                found = self._elsewhere(line_id, year)
                if found is None:
                    self.counts.reject(ORPHAN_CREDIT)
                    if self.journal is not None:
                        self.journal.append([event_id, year])
                    return ORPHAN_CREDIT
                index, entry = found
            packed = entry if type(entry) is int else entry[0]
            if packed & _CREDITED:
                return self._ignored(event_id, year, DUPLICATE_CREDIT)
            self._credit(index, line_id, entry)
            if self.journal is not None:
                if index is self._cl:
                    self.journal.append([line_id, event_id, year])
                else:  # the debit's year differs from the credit's
                    self.journal.append([line_id, event_id, year, packed >> 35 & 0x3FFF])
        self.region = region
        self.counts.accepted += 1
        return ACCEPTED

    def _select(self, year: int) -> None:
        index = self.lines.get(year)
        if index is None:
            index = self.lines[year] = {}
        events = self.events.get(year)
        if events is None:
            events = self.events[year] = set()
        self._cy, self._cl, self._ce, self._cys = year, index, events, self.years.get(year)

    def _advance(self) -> None:
        """The watermark entered a new calendar year: drop the years it closes."""
        wm_year = datetime.fromtimestamp(self.watermark, UTC).year
        self._roll = datetime(wm_year + 1, 1, 1, tzinfo=UTC).timestamp()
        open_from = wm_year - self.keep_years
        if open_from <= self.open_from:
            return
        self.open_from = open_from
        for year in [y for y in self.lines if y < open_from]:
            del self.lines[year]
            self.dropped = True
        for year in [y for y in self.events if y < open_from]:
            del self.events[year]
            self.dropped = True
        self._cy = -1  # the cached year may be among those dropped

    def _elsewhere(self, line_id: str, year: int) -> tuple[dict[str, _Entry], _Entry] | None:
        """The debit of a credit whose service date disagrees with it, in another
        open year (a credit subtracts what its debit added, whatever it says)."""
        for y, index in self.lines.items():
            if y != year:
                entry = index.get(line_id)
                if entry is not None:
                    return index, entry
        return None

    def index_entries(self) -> int:
        """Line index entries held (all open service years)."""
        return sum(len(index) for index in self.lines.values())

    def debit_of(self, year: int, line_id: str) -> tuple[int, int, int, int] | None:
        """(year, quarter, flags, amount) the debit of ``line_id`` added, if known."""
        entry = self.lines.get(year, {}).get(line_id)
        if entry is None:
            found = self._elsewhere(line_id, year)
            if found is None:
                return None
            entry = found[1]
        return _unpack(entry if type(entry) is int else entry[0])

    def _ignored(self, event_id: str, year: int, outcome: str) -> str:
        if outcome == DUPLICATE_LINE:
            self.counts.duplicate_line += 1
        else:
            self.counts.duplicate_credit += 1
        if self.journal is not None:  # the event id must survive a restart
            self.journal.append([event_id, year])
        return outcome

    def _credit(self, index: dict[str, _Entry], line_id: str, entry: _Entry) -> None:
        if type(entry) is int:
            packed, client = entry, None
            index[line_id] = packed | _CREDITED
        else:
            packed, client = entry
            index[line_id] = (packed | _CREDITED, client)
        year, quarter, flags, amount = _unpack(packed)
        self._year(year).apply(flags, amount, quarter, client, -1)

    def _year(self, year: int) -> YearState:
        ys = self.years.get(year)
        if ys is None:
            ys = self.years[year] = YearState()
        return ys

    def _index(self, year: int) -> tuple[dict[str, _Entry], set[str]]:
        index = self.lines.get(year)
        if index is None:
            index = self.lines[year] = {}
        events = self.events.get(year)
        if events is None:
            events = self.events[year] = set()
        return index, events

    def replay_journal(self, records: list[list[Any]]) -> None:
        """Re-apply journal records (see ``accept``) without counting or alerting.

        A record is a debit ``[line_id, event_id, year, quarter, client, flags,
        amount]``, a credit ``[line_id, event_id, year]`` (``[…, debit year]`` when its
        debit has another service year), or an event judged but not applied
        ``[event_id, year]``.
        """
        self._cy = -1
        for rec in records:
            n = len(rec)
            if n == 2:
                self._index(rec[1])[1].add(rec[0])
            elif n <= 4:  # a credit; its debit's year when that differs
                line_id, event_id, year = rec[:3]
                self._index(year)[1].add(event_id)
                index = self._index(rec[3] if n == 4 else year)[0]
                self._credit(index, line_id, index[line_id])
            else:
                line_id, event_id, year, quarter, client, flags, amount = rec
                index, events = self._index(year)
                events.add(event_id)
                packed = _pack(year, quarter, flags, amount)
                index[line_id] = packed if client is None else (packed, client)
                self._year(year).apply(flags, amount, quarter, client, 1)

    def checkpoint(self, max_entries: int) -> list[dict[str, Any]]:
        """Line index, event ids and indicators as chunks of at most ``max_entries``
        index entries and event ids each (the first chunk also holds the indicators),
        so no single record of a large provider outgrows a Kafka message."""
        chunks: list[dict[str, Any]] = []
        chunk: dict[str, Any] = {
            "years": {str(y): ys.to_json() for y, ys in self.years.items()},
            "lines": {},
            "events": {},
        }
        room = max_entries

        def flush() -> None:
            nonlocal chunk, room
            chunks.append(chunk)
            chunk, room = {"lines": {}, "events": {}}, max_entries

        for kind, table in (("lines", self.lines), ("events", self.events)):
            for year in sorted(table):
                items = list(table[year].items()) if kind == "lines" else list(table[year])
                start = 0
                while start < len(items):
                    if room == 0:
                        flush()
                    part = items[start : start + room]
                    target = chunk[kind].setdefault(str(year), {} if kind == "lines" else [])
                    if kind == "lines":
                        target.update(part)
                    else:
                        target.extend(part)
                    start += len(part)
                    room -= len(part)
        chunks.append(chunk)
        return chunks

    def restore_checkpoint(self, chunk: dict[str, Any]) -> None:
        """Load one chunk of ``checkpoint``; chunks may come in any order."""
        self._cy = -1
        for y, raw in chunk.get("years", {}).items():
            self.years[int(y)] = YearState.from_json(raw)
        for y, entries in chunk["lines"].items():
            index = self._index(int(y))[0]
            for line_id, entry in entries.items():
                index[line_id] = entry if type(entry) is int else (entry[0], entry[1])
        for y, ids in chunk["events"].items():
            self._index(int(y))[1].update(ids)

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
        for ys in self.years.values():  # ceiling bands follow the alert states
            ys.band_low, ys.band_high = math.inf, -math.inf
        self.region = raw["region"]
        self.watermark = raw["watermark"]
        self.applied = {str(p): int(o) for p, o in raw["applied"].items()}
        # Years the watermark had closed are dropped again (the journal may hold their
        # lines from before they closed); the retention decision is the watermark's.
        self._roll = 0.0
        if self.watermark >= self._roll:
            self._advance()
        self.dropped = False
