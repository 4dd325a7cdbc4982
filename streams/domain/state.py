"""State of one provider: indicators per year, the line index, alerts, counters.

Everything the product knows about a provider lives in one ``ProviderState``, keyed
by AGB code, which is also the Kafka key of the declarations topic: the streaming
worker keeps exactly the providers of its partitions, the offline replay keeps all.

The line index remembers, per ``line_id``, what its debit added and whether it was
credited; the event set remembers every event judged. Both hold 60-bit keys of the
identifiers (``key_of``), not the identifiers themselves, in C hash tables of int64
(``cykhash``, the khash of pandas): about 16 bytes a line index entry and 8 an event
id plus free buckets, where a dict of int objects takes about 140 a line and a
``line_id`` or UUID ``event_id`` string alone 80 to 96. The keys are the same in
every process, so checkpoints carry them as packed arrays. (The offline replay, which
never persists, keeps the identifiers in dicts and sets: see ``hashed``. A worker
with the RocksDB store keeps them off the heap instead: see ``tables``.) Two
different identifiers of one provider and service year collide with probability
n²/2⁶¹: below 10⁻⁶ for a million lines. That is what makes acceptance idempotent
(SPEC §2 steps 4–7) and credits exact: a credit subtracts the stored contribution of
its debit. Both are kept per service year, and only for the years the retention
policy still holds (``retention.line_index_years``): once a provider's
event-time watermark closes a year, that year's index goes, its indicators stay, and
its later lines are refused as ``line_index_expired``.

For durability the streaming worker needs the changes of one message as a small
record rather than the whole state; ``journal`` (a ``Journal``) collects them column
by column when enabled, and ``replay_journal`` rebuilds the line index and
indicators from such records, on top of a ``checkpoint`` of the whole state.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from collections.abc import Iterable, Iterator, MutableMapping, MutableSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from cykhash import (  # type: ignore[import-untyped]
    Int64Set,
    Int64Set_from_buffer,
    Int64toInt64Map,
    Int64toInt64Map_from_buffers,
)
from xxhash import xxh3_64_intdigest

from streams.domain.alerts import AlertBook
from streams.domain.indicators import YearState
from streams.domain.model import (
    ACCEPTED,
    ADHD,
    DUPLICATE,
    DUPLICATE_CREDIT,
    DUPLICATE_LINE,
    LINE_INDEX_EXPIRED,
    ORPHAN_CREDIT,
    Counts,
    Line,
)

# A line index entry packs what the debit added into one integer (32 bytes, where a
# tuple of the same facts takes over 100): amount in bits 0-23, flags 24-39 (room for
# the flag bits rules declare, streams/domain/model.py), quarter-1 40-41, year 44-57,
# "credited" bit 58; below 2**60, so the int still takes 32 bytes. An ADHD line's client (its key) is kept
# beside the index, for the distinct count a credit must leave.
_CREDITED = 1 << 58
_SHARED = 2048  # distinct entries shared per provider (a few dozen are typical)


# A key of the index and event sets: the identifier's 60-bit key (``key_of``) in a
# state that is persisted, the identifier itself in one that never is (``hashed``).
Key = int | str
# Per service year: line key → packed entry, line key → client key, event keys. C
# tables of int64 in a hashed state, dicts and a set in the other (``_index``).
Index = MutableMapping[Key, int]
Clients = MutableMapping[Key, Key]
Events = MutableSet[Key]


class Tables(Protocol):
    """Where a hashed state keeps its per-year tables, when not in cykhash tables on
    the heap (``ProviderState.tables``). A table may also offer ``arrays()`` (keys and,
    for a map, values as int64 arrays in one order) and ``fill(keys[, values])`` (bulk
    ``update`` from such arrays), which checkpoints then use."""

    def new_map(self) -> Index: ...

    def new_set(self) -> Events: ...


def key_of(identifier: str) -> int:
    """The 60-bit key of an event id, line id or client ref: stable across processes
    and Python versions (xxh3), and below 2⁶⁰ so the int takes 32 bytes, not 36."""
    return xxh3_64_intdigest(identifier.encode()) >> 4


def _client_key(client: str) -> int:
    """The state key a pseudonymised client_ref stands for (streams/domain/rekey.py:
    NUL + 15 hex digits); any other value starting with NUL is hashed as usual."""
    digits = client[1:]
    if len(digits) == 15 and all(c in "0123456789abcdef" for c in digits):
        return int(digits, 16)
    return key_of(client)


def _b64(packed: array[int]) -> str:
    """64-bit integers (all below 2⁶³) as base64 of their little-endian bytes."""
    if sys.byteorder == "big":  # pragma: no cover - x86 and arm64 are little-endian
        packed = array(packed.typecode, packed)
        packed.byteswap()
    return base64.b64encode(packed).decode("ascii")


def _unb64(text: str) -> array[int]:
    """Signed int64, the type of the C tables: the values are all below 2⁶³, so the
    bytes are those of the unsigned array ``checkpoint`` has always written."""
    packed = array("q")
    packed.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return packed


def _int64s(values: Iterable[Any]) -> array[int]:
    # ``extend``, not ``array(typecode, values)``: the constructor asks the iterator of a
    # cykhash table for an iterator again, which it does not provide.
    if type(values) is list:  # from a list the constructor is 3x as fast
        return array("q", values)
    packed = array("q")
    packed.extend(values)
    return packed


class Journal:
    """The line-index changes of one message, column by column, as ``pack`` writes
    them: the worker persists a message's changes as one journal segment.

    Appending a key to a packed array costs less than building a record per line and
    packing the records afterwards (the worker's agent spent 8 % of its time there).
    """

    __slots__ = (
        "keys",
        "events",
        "entries",
        "adhd_at",
        "adhd_clients",
        "credit_keys",
        "credit_events",
        "credit_years",
        "judged_events",
        "judged_years",
    )

    def __init__(self) -> None:
        # Only a hashed state keeps a journal: its keys are ints (``Key`` admits the
        # identifiers of an unhashed one, which ``array`` would refuse).
        # debits: line keys, event keys, entries as ``_pack``; the positions among
        # them of the ADHD debits, and their client keys
        self.keys: array[Any] = array("q")
        self.events: array[Any] = array("q")
        self.entries: array[int] = array("q")
        self.adhd_at: array[int] = array("q")
        self.adhd_clients: array[Any] = array("q")
        # credits: line keys, event keys, year | debit year << 16
        self.credit_keys: array[Any] = array("q")
        self.credit_events: array[Any] = array("q")
        self.credit_years: array[int] = array("q")
        # events judged but not applied: event keys, years
        self.judged_events: array[Any] = array("q")
        self.judged_years: array[int] = array("q")

    def debit(self, key: Key, event: Key, packed: int, client: Key | None) -> None:
        if client is not None:
            self.adhd_at.append(len(self.keys))
            self.adhd_clients.append(client)
        self.keys.append(key)
        self.events.append(event)
        self.entries.append(packed)

    def credit(self, key: Key, event: Key, year: int, debit_year: int) -> None:
        self.credit_keys.append(key)
        self.credit_events.append(event)
        self.credit_years.append(year | debit_year << 16)

    def judged(self, event: Key, year: int) -> None:
        self.judged_events.append(event)
        self.judged_years.append(year)

    def __len__(self) -> int:
        return len(self.keys) + len(self.credit_keys) + len(self.judged_events)

    def pack(self) -> dict[str, list[str]]:
        """The segment: packed 64-bit arrays (``_b64``) by kind, 8 bytes a key where
        JSON spends about 19 digits, so the changelog and a memory store carry about
        half as much. ``d``: debits, ``a``: the ADHD debits among them, ``c``:
        credits, ``e``: events judged but not applied (see ``__init__``).
        ``unpack_journal`` gives the records back debits first, then credits, then
        the rest: a segment's credit follows its debit either way, and the rest only
        adds event keys, so the state replayed is the same."""
        out: dict[str, list[str]] = {}
        if self.keys:
            out["d"] = [_b64(self.keys), _b64(self.events), _b64(self.entries)]
            if self.adhd_at:
                out["a"] = [_b64(self.adhd_at), _b64(self.adhd_clients)]
        if self.credit_keys:
            out["c"] = [_b64(self.credit_keys), _b64(self.credit_events), _b64(self.credit_years)]
        if self.judged_events:
            out["e"] = [_b64(self.judged_events), _b64(self.judged_years)]
        return out

    def records(self) -> list[list[Any]]:
        """The records, in the form ``replay_journal`` takes them (kinds in the
        order ``pack`` keeps)."""
        return unpack_journal(self.pack())


def unpack_journal(segment: dict[str, list[str]]) -> list[list[Any]]:
    """The records of a ``Journal.pack`` segment, as ``replay_journal`` takes them."""

    def columns(kind: str, width: int) -> list[array[int]]:
        cols = [_unb64(text) for text in segment.get(kind, [""] * width)]
        if len(cols) != width or any(len(col) != len(cols[0]) for col in cols):
            raise ValueError(f"journal segment: columns of {kind!r} differ in length")
        return cols

    keys, events, entries = columns("d", 3)
    clients = dict(zip(*columns("a", 2), strict=True))
    records: list[list[Any]] = []
    for i, (key, event, packed) in enumerate(zip(keys, events, entries, strict=True)):
        year, quarter, flags, amount = _unpack(packed)
        records.append([key, event, year, quarter, clients.get(i), flags, amount])
    for key, event, years in zip(*columns("c", 3), strict=True):
        year, debit_year = years & 0xFFFF, years >> 16
        records.append([key, event, year] if debit_year == year else [key, event, year, debit_year])
    records.extend([event, year] for event, year in zip(*columns("e", 2), strict=True))
    return records


def _pack(year: int, quarter: int, flags: int, amount: int) -> int:
    return amount | flags << 24 | (quarter - 1) << 40 | year << 44


def _unpack(packed: int) -> tuple[int, int, int, int]:
    """(year, quarter, flags, amount)"""
    return (
        packed >> 44 & 0x3FFF,
        (packed >> 40 & 3) + 1,
        packed >> 24 & 0xFFFF,
        packed & 0xFFFFFF,
    )


@dataclass(slots=True)
class ProviderState:
    provider: str
    years: dict[int, YearState] = field(default_factory=dict)
    # Service year → line key → packed entry. A credit carries the service date of its
    # debit, so the credit's own year finds the debit; keyed by year, the index of a
    # whole year can be dropped at once (retention, below).
    lines: dict[int, Index] = field(default_factory=dict)
    # Service year → line key → client key, for the ADHD lines of ``lines``.
    clients: dict[int, Clients] = field(default_factory=dict)
    # Service year → keys of the event ids judged at SPEC §2 steps 5-7 (accepted, or
    # ignored or dead-lettered there): a repeat of one is a redelivery, counted
    # duplicate and otherwise ignored (step 4). A redelivery repeats its line, so its
    # year too.
    events: dict[int, Events] = field(default_factory=dict)
    alerts: AlertBook = field(default_factory=AlertBook)
    counts: Counts = field(default_factory=Counts)
    watermark: float = 0.0  # latest event time (submitted_at) seen, unix seconds
    # Streaming only: "<source><partition>" → offset of the last message applied here.
    applied: dict[str, int] = field(default_factory=dict)
    journal: Journal | None = None  # None: not recording
    # Retention (policy retention.line_index_years): the index and event ids of service
    # year Y are dropped once the watermark reaches 1 January of Y + keep_years + 1
    # (UTC). Event time only, never the wall clock, so a replay decides the same.
    keep_years: int = 3
    # Keys are the identifiers' 60-bit keys (``key_of``), stable across processes and
    # compact, in a state the streaming worker persists; an offline replay, which never
    # persists its state, keys by the identifiers themselves and saves hashing them.
    hashed: bool = True
    # A hashed state's per-year tables: cykhash tables when None, else this factory's
    # (the RocksDB worker's off-heap tables, streams/store/offheap.py).
    tables: Tables | None = None
    open_from: int = 0  # first service year whose index is held; earlier ones are dropped
    dropped: bool = False  # years were dropped since the flag was last cleared (streaming)
    _roll: float = 0.0  # the watermark at which open_from moves next
    # The year of the last line, and its index, clients, event ids and YearState (None
    # until its first debit): consecutive lines of one year skip four dict lookups.
    _cy: int = -1
    _cl: Index = field(default_factory=dict)
    _cc: Clients = field(default_factory=dict)
    _ce: Events = field(default_factory=set)
    _cys: YearState | None = None
    # Entries repeat (a tariff, a setting, a quarter): in the dicts of a state keyed by
    # identifiers, one int object per distinct entry, shared by its lines, saves 32
    # bytes a line (_share). The C tables store the value itself.
    _packs: dict[int, int] = field(default_factory=dict)

    def accept(self, line: Line) -> str:
        """Apply SPEC §2 steps 4–7 to a schema-valid line; return the outcome.

        A line of a service year whose index was dropped is refused first
        (``line_index_expired``): without its event ids and line ids, steps 4–7
        cannot tell a redelivery or a credit from a new line.
        """
        event_id, line_id, credit, _, year, quarter, client, flags, amount, event_time = line
        if event_time > self.watermark:
            self.watermark = event_time
            if event_time >= self._roll:
                self._advance()
        if year != self._cy:
            if year < self.open_from:
                self.counts.reject(LINE_INDEX_EXPIRED)
                return LINE_INDEX_EXPIRED
            self._select(year)
        hashed = self.hashed
        event: Key = xxh3_64_intdigest(event_id.encode()) >> 4 if hashed else event_id  # key_of
        events = self._ce
        if event in events:
            self.counts.duplicate += 1
            return DUPLICATE
        events.add(event)
        key: Key = xxh3_64_intdigest(line_id.encode()) >> 4 if hashed else line_id
        index = self._cl
        # ``in`` first: a C table's ``get`` raises and catches KeyError on a miss (1 µs)
        packed = index[key] if key in index else None  # noqa: SIM401
        if not credit:
            if packed is not None:
                return self._ignored(event, year, DUPLICATE_LINE)
            packed = amount | flags << 24 | (quarter - 1) << 40 | year << 44  # _pack
            if hashed:
                index[key] = packed
            else:
                shared = self._packs.get(packed)
                index[key] = shared if shared is not None else self._share(packed)
            ck: Key | None = None
            if client is not None:
                if not hashed:
                    ck = client
                elif client[0] != "\x00":  # rekey.CLIENT_KEY_MARK
                    ck = xxh3_64_intdigest(client.encode()) >> 4  # key_of
                else:
                    ck = _client_key(client)
                self._cc[key] = ck
            ys = self._cys
            if ys is None:
                ys = self._cys = self._year(year)
            ys.apply(flags, amount, quarter, ck, 1)
            journal = self.journal
            if journal is not None:
                journal.debit(key, event, packed, ck)
        else:
            if packed is None:
                found = self._elsewhere(key, year)
                if found is None:
                    self.counts.reject(ORPHAN_CREDIT)
                    if self.journal is not None:
                        self.journal.judged(event, year)
                    return ORPHAN_CREDIT
                index, packed = found
            if packed & _CREDITED:
                return self._ignored(event, year, DUPLICATE_CREDIT)
            self._credit(index, key, packed)
            if self.journal is not None:
                # the debit's year differs from the credit's when found elsewhere
                debit_year = year if index is self._cl else packed >> 44 & 0x3FFF
                self.journal.credit(key, event, year, debit_year)
        self.counts.accepted += 1
        return ACCEPTED

    def _select(self, year: int) -> None:
        index, clients, events = self._index(year)
        self._cy, self._cl, self._cc, self._ce = year, index, clients, events
        self._cys = self.years.get(year)

    def _advance(self) -> None:
        """The watermark entered a new calendar year: drop the years it closes."""
        wm_year = datetime.fromtimestamp(self.watermark, UTC).year
        # (year 9999, the last a timestamp can have, has no next year to roll into)
        self._roll = (
            datetime(wm_year + 1, 1, 1, tzinfo=UTC).timestamp() if wm_year < 9999 else math.inf
        )
        open_from = wm_year - self.keep_years
        if open_from <= self.open_from:
            return
        self.open_from = open_from
        for table in (self.lines, self.clients, self.events):
            for year in [y for y in table if y < open_from]:
                del table[year]  # type: ignore[attr-defined]
                self.dropped = True
        self._cy = -1  # the cached year may be among those dropped

    def _elsewhere(self, key: Key, year: int) -> tuple[Index, int] | None:
        """The debit of a credit whose service date disagrees with it, in another
        open year (a credit subtracts what its debit added, whatever it says)."""
        for y, index in self.lines.items():
            if y != year and key in index:
                return index, index[key]
        return None

    def index_entries(self) -> int:
        """Line index entries held (all open service years)."""
        return sum(len(index) for index in self.lines.values())

    def debit_of(self, year: int, line_id: str) -> tuple[int, int, int, int] | None:
        """(year, quarter, flags, amount) the debit of ``line_id`` added, if known."""
        key = key_of(line_id) if self.hashed else line_id
        index = self.lines.get(year)
        if index is not None and key in index:
            return _unpack(index[key])
        found = self._elsewhere(key, year)
        return None if found is None else _unpack(found[1])

    def _ignored(self, event: Key, year: int, outcome: str) -> str:
        if outcome == DUPLICATE_LINE:
            self.counts.duplicate_line += 1
        else:
            self.counts.duplicate_credit += 1
        if self.journal is not None:  # the event id must survive a restart
            self.journal.judged(event, year)
        return outcome

    def _credit(self, index: Index, key: Key, packed: int) -> None:
        index[key] = packed | _CREDITED
        year, quarter, flags, amount = _unpack(packed)
        client = None
        if flags & ADHD:
            clients = self.clients[year]
            client = clients[key] if key in clients else None  # noqa: SIM401 (as in accept)
        self._year(year).apply(flags, amount, quarter, client, -1)

    def _share(self, packed: int) -> int:
        """The shared int object equal to ``packed`` (up to ``_SHARED`` of them)."""
        shared = self._packs.get(packed)
        if shared is not None:
            return shared
        if len(self._packs) < _SHARED:
            self._packs[packed] = packed
        return packed

    def _year(self, year: int) -> YearState:
        ys = self.years.get(year)
        if ys is None:
            ys = self.years[year] = YearState()
        return ys

    def _index(self, year: int) -> tuple[Index, Clients, Events]:
        index = self.lines.get(year)
        if index is None:
            index = self.lines[year] = self._new_map()
        clients = self.clients.get(year)
        if clients is None:
            # a map of keys to keys: the same tables as the index (client keys are ints)
            clients = self.clients[year] = cast(Clients, self._new_map())
        events = self.events.get(year)
        if events is None:
            tables = self.tables
            if not self.hashed:
                events = set()
            elif tables is None:
                events = Int64Set()
            else:
                events = tables.new_set()
            self.events[year] = events
        return index, clients, events

    def _new_map(self) -> Index:
        if not self.hashed:
            return {}
        tables = self.tables
        return Int64toInt64Map() if tables is None else tables.new_map()

    def replay_journal(self, records: list[list[Any]] | dict[str, Any]) -> None:
        """Re-apply journal records (see ``accept``) without counting or alerting.

        A record is a debit ``[line key, event key, year, quarter, client key or
        null, flags, amount]``, a credit ``[line key, event key, year]`` (``[…, debit
        year]`` when its debit has another service year), or an event judged but not
        applied ``[event key, year]``; or the records of one segment as
        ``Journal.pack`` wrote them.
        """
        if isinstance(records, dict):
            records = unpack_journal(records)
        self._cy = -1
        for rec in records:
            n = len(rec)
            if n == 2:
                self._index(rec[1])[2].add(rec[0])
            elif n <= 4:  # a credit; its debit's year when that differs
                key, event, year = rec[:3]
                self._index(year)[2].add(event)
                index = self._index(rec[3] if n == 4 else year)[0]
                self._credit(index, key, index[key])
            else:
                key, event, year, quarter, client, flags, amount = rec
                index, clients, events = self._index(year)
                events.add(event)
                index[key] = _pack(year, quarter, flags, amount)
                if client is not None:
                    clients[key] = client
                self._year(year).apply(flags, amount, quarter, client, 1)

    def checkpoint(self, max_entries: int) -> list[dict[str, Any]]:
        """All of ``iter_checkpoint``'s chunks at once."""
        return list(self.iter_checkpoint(max_entries))

    def checkpoint_chunks(self, max_entries: int) -> int:
        """How many chunks ``iter_checkpoint(max_entries)`` yields: every chunk but
        the last is full, and there is always one (it carries the indicators)."""
        entries = sum(len(t) for t in self.lines.values())
        entries += sum(len(t) for t in self.clients.values())
        entries += sum(len(t) for t in self.events.values())
        return max(1, -(-entries // max_entries))

    def iter_checkpoint(self, max_entries: int) -> Iterator[dict[str, Any]]:
        """Line index, clients, event ids and indicators as chunks of at most
        ``max_entries`` keys each (the first chunk also holds the indicators), so no
        single record of a large provider outgrows a Kafka message. Keys and entries
        travel as packed 64-bit arrays (``_b64``), 8 bytes each, not as decimal text.

        One chunk at a time: the worker encodes and writes each before the next is
        made, so a large provider's checkpoint never sits in memory whole."""
        if not self.hashed:
            raise ValueError("a state keyed by identifiers (hashed=False) is never persisted")
        chunk: dict[str, Any] = {
            "years": {str(y): ys.to_json() for y, ys in self.years.items()},
            "lines": {},
            "clients": {},
            "events": {},
        }
        room = max_entries
        for kind, year, keys, values in self._arrays():
            start = 0
            while start < len(keys):
                if room == 0:
                    yield chunk
                    chunk, room = {"lines": {}, "clients": {}, "events": {}}, max_entries
                end = start + min(room, len(keys) - start)
                chunk[kind][str(year)] = (
                    _b64(keys[start:end])
                    if values is None
                    else [_b64(keys[start:end]), _b64(values[start:end])]
                )
                room -= end - start
                start = end
        yield chunk

    def _arrays(self) -> Iterator[tuple[str, int, array[int], array[int] | None]]:
        """Each year's tables as arrays of int64, one table at a time: a checkpoint of
        a large provider builds no object per entry (a C table iterates in bucket
        order, the same for its keys and its values)."""
        maps: tuple[tuple[str, dict[int, Any]], ...] = (
            ("lines", self.lines),
            ("clients", self.clients),
        )
        for kind, tables in maps:
            for year in sorted(tables):
                table = tables[year]
                if hasattr(table, "arrays"):  # off-heap: one pass over the table
                    keys, values = table.arrays()
                    yield kind, year, keys, values
                else:
                    yield kind, year, _int64s(table.keys()), _int64s(table.values())
        for year in sorted(self.events):
            events: Any = self.events[year]
            keys = events.arrays() if hasattr(events, "arrays") else _int64s(events)
            yield "events", year, keys, None

    def restore_checkpoint(self, chunk: dict[str, Any]) -> None:
        """Load one chunk of ``checkpoint``; chunks may come in any order."""
        self._cy = -1
        for y, raw in chunk.get("years", {}).items():
            self.years[int(y)] = YearState.from_json(raw)
        for kind, at in (("lines", 0), ("clients", 1)):
            for y, (keys, values) in chunk[kind].items():
                keys, values = _unb64(keys), _unb64(values)
                if len(keys) != len(values):
                    raise ValueError(f"checkpoint {kind} of {y}: keys and values differ in number")
                table: Any = self._index(int(y))[at]
                if hasattr(table, "fill"):
                    table.fill(keys, values)
                else:
                    table.update(Int64toInt64Map_from_buffers(keys, values))
        for y, keys in chunk["events"].items():
            events: Any = self._index(int(y))[2]
            if hasattr(events, "fill"):
                events.fill(_unb64(keys))
            else:
                events.update(Int64Set_from_buffer(_unb64(keys)))

    def header(self) -> dict[str, Any]:
        """Everything not rebuilt from the journal: counters, alerts, offsets."""
        return {
            "counts": self.counts.as_dict(),
            "alerts": self.alerts.to_json(),
            "watermark": self.watermark,
            "applied": dict(self.applied),
        }

    def restore_header(self, raw: dict[str, Any]) -> None:
        self.counts = Counts.from_dict(raw["counts"])
        self.alerts = AlertBook.from_json(raw["alerts"])
        for ys in self.years.values():  # ceiling bands follow the alert states
            ys.band_low, ys.band_high = math.inf, -math.inf
        self.watermark = raw["watermark"]
        self.applied = {str(p): int(o) for p, o in raw["applied"].items()}
        # Years the watermark had closed are dropped again (the journal may hold their
        # lines from before they closed); the retention decision is the watermark's.
        self._roll = 0.0
        if self.watermark >= self._roll:
            self._advance()
        self.dropped = False
