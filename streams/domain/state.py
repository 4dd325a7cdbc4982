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
every process, so checkpoints carry them as packed arrays. (``claimwatch explain``,
which replays one provider to list its lines, keeps the identifiers in dicts and
sets: see ``hashed``. A worker with the RocksDB store keeps them off the heap
instead: see ``tables``.) Two
different identifiers of one provider and service year collide with probability
n²/2⁶¹: below 10⁻⁶ for a million lines. That is what makes acceptance idempotent
(SPEC §2 steps 4–7) and credits exact: a credit subtracts the stored contribution of
its debit. Both are kept per service year, and only for the years the retention
policy still holds (``retention.line_index_years``): once a provider's
event-time watermark closes a year, that year's index goes, its indicators stay, and
its later lines are refused as ``line_index_expired``.

For durability the streaming worker needs the changes of one message as a small
record rather than the whole state: ``accept`` tells them to ``journal``, a
``ChangeLog`` (the protocol is the domain's; the packed journal the worker persists
is ``streams/store/codec.py``'s), and ``Replay`` applies such changes to a state
again when the store rebuilds it. Reading and writing a state's tables as checkpoint
chunks and headers is the store's too (``streams/store/``): the domain persists
nothing itself.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, MutableMapping, MutableSet
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from cykhash import Int64Set, Int64toInt64Map

from streams.domain.alerts import AlertBook
from streams.domain.indicators import MISMATCH_IDS_KEPT, STAY_BITS, STAY_MASK, YearState
from streams.domain.model import (
    ACCEPTED,
    COUNTS_CLIENT,
    DUPLICATE,
    DUPLICATE_CREDIT,
    DUPLICATE_LINE,
    LINE_INDEX_EXPIRED,
    MISMATCH,
    ORPHAN_CREDIT,
    Counts,
    Dims,
)
from streams.native import kernel
from streams.native.kernel import StateCore

# A line index entry packs what the debit added into one integer (32 bytes, where a
# tuple of the same facts takes over 100): amount in bits 0-23, flags 24-39 (room for
# the flag bits rules declare, streams/domain/model.py), service month-1 40-43,
# "credited" bit 44, dims id 45-62 (the line's (setting, department, prestatie)
# triple, ``ProviderState.dims``); below 2**63, an int64 of the C tables. The year is
# not in it: the index is per service year, and a journal debit carries its year.
# Below 2**60 (dims ids below 2**15, all a provider has in practice) the int takes 32
# bytes. The client (its key) of a line that counts a distinct client
# (``model.COUNTS_CLIENT``) is kept beside the index, for the count a credit must leave.
CREDITED = 1 << 44
_DIMS_SHIFT = 45
# Dims ids a provider can have (18 bits). Beyond that, new dims are counted under
# id 0, the "other" dims (0, None, None, None): a provider would need 262,144 distinct
# (setting, department, prestatie, stay days) combinations, which none comes near.
MAX_DIMS = 1 << 18
_DIMS_MASK = (1 << 18) - 1  # the field's width, whatever MAX_DIMS allows
OTHER_DIMS: Dims = (0, None, None, None)
_SHARED = 2048  # distinct entries shared per provider (a few dozen are typical)


# A key of the index and event sets: the identifier's 60-bit key (``key_of``) in a
# state that is persisted, the identifier itself in one that never is (``hashed``).
Key = int | str
# Per service year: line key → packed entry, line key → client key, event keys. C
# tables of int64 in a hashed state, dicts and a set in the other (``year_tables``).
Index = MutableMapping[Key, int]
Clients = MutableMapping[Key, Key]
Events = MutableSet[Key]


def _shared(triple: Dims) -> Dims:
    """``triple`` holding the one copy of its department and prestatie code: a line's
    strings are new objects (msgspec, orjson), and a provider's dims repeat the same
    few codes (with every stay length) tens of thousands of times."""
    setting, department, prestatie, stay = triple
    return (
        setting,
        sys.intern(department) if department is not None else None,
        sys.intern(prestatie) if prestatie is not None else None,
        stay,
    )


class Tables(Protocol):
    """Where a hashed state keeps its per-year tables, when not in cykhash tables on
    the heap (``ProviderState.tables``): line index, clients and event ids, and the
    years' distinct-client maps (``live_maps``). A table may also offer ``arrays()``
    (keys and, for a map, values as int64 arrays in one order) and ``fill(keys[,
    values])`` (bulk ``update`` from such arrays), which checkpoints then use; a map
    may offer ``count(key, sign)`` (``YearState.apply``'s read-modify-write of a
    client's live lines, returning how the number of keys moved: -1, 0 or 1), which
    the kernel then calls once per update instead of two or three item operations.
    A year's line clients are made with ``filtered=False`` and their new keys set
    with ``insert(key, value)`` (a key known absent: its debit was just found new in
    the index), so their table needs no filter of the keys it holds."""

    def new_map(self, filtered: bool = True) -> Index: ...

    def new_set(self) -> Events: ...


def key_of(identifier: str) -> int:
    """The 60-bit key of an event id, line id or client ref: stable across processes
    and Python versions (xxh3), and below 2⁶⁰ so the int takes 32 bytes, not 36."""
    return kernel.key_of(identifier)


def _client_key(client: str) -> int:
    """The state key a pseudonymised client_ref stands for (streams/domain/rekey.py:
    NUL + 15 hex digits); any other value starting with NUL is hashed as usual."""
    digits = client[1:]
    if len(digits) == 15 and all(c in "0123456789abcdef" for c in digits):
        return int(digits, 16)
    return key_of(client)


kernel.configure_state(
    accepted=ACCEPTED,
    duplicate=DUPLICATE,
    duplicate_line=DUPLICATE_LINE,
    line_index_expired=LINE_INDEX_EXPIRED,
    client_key=_client_key,
    shared=_SHARED,
)


class ChangeLog(Protocol):
    """What ``ProviderState.accept`` tells of the changes it makes, for a store to
    persist (one call per line; arguments as the state holds them):

    - ``interned``: the provider's dims triple ``dims`` got id ``dims_id`` (told
      before the first debit that uses it; ids count up from 1);
    - ``debit``: a line index entry ``packed`` (``pack_entry``) of service ``year``
      under line key ``key``, with the client key of a line that counts a distinct
      client and the ``line_id`` of a zvt-mismatching line (explain lists those);
    - ``credit``: the entry of ``key`` in ``debit_year``'s index credited by an event
      of service year ``year`` (the two differ when the credit's service date does);
    - ``judged``: an event judged without changing the index (a duplicate line or
      credit, an orphan credit), whose id must still be known after a restart.

    Replaying the same calls in order (``Replay``) rebuilds the line index, the
    event ids and the indicators."""

    def interned(self, dims_id: int, dims: Dims) -> None: ...

    def debit(
        self, key: Key, event: Key, year: int, packed: int, client: Key | None, line_id: str | None
    ) -> None: ...

    def credit(self, key: Key, event: Key, year: int, debit_year: int) -> None: ...

    def judged(self, event: Key, year: int) -> None: ...


def pack_entry(month: int, flags: int, amount: int, dims: int = 0) -> int:
    """A line index entry (layout above ``CREDITED``)."""
    return amount | flags << 24 | (month - 1) << 40 | dims << _DIMS_SHIFT


def unpack_entry(packed: int) -> tuple[int, int, int, int]:
    """(month, flags, amount, dims id)"""
    return (
        (packed >> 40 & 0xF) + 1,
        packed >> 24 & 0xFFFF,
        packed & 0xFFFFFF,
        packed >> _DIMS_SHIFT & _DIMS_MASK,
    )


class ProviderState(StateCore):
    """A provider's state. The fields ``accept`` touches for every line are
    ``StateCore``'s (streams/native/kernel.pyx, compiled), the others this class's:

    - ``provider``: its AGB code;
    - ``years``: service year → ``YearState``;
    - ``lines``: service year → line key → packed entry. A credit carries the service
      date of its debit, so the credit's own year finds the debit; keyed by year, the
      index of a whole year can be dropped at once (retention, below);
    - ``clients``: service year → line key → client key, for the lines of ``lines``
      that count a distinct client (``model.COUNTS_CLIENT``: ADHD, consult, detox) or
      have a department;
    - ``dims``: dims id → the (setting, department, prestatie, stay days) of its lines;
      id 0 is ``OTHER_DIMS``. Provider-wide, never dropped; ``_dim_ids`` is the
      reverse;
    - SPEC §9. ``departments``: the provider's departments, in the order the dims
      table first names them (so a restored dims table gives the same ids), and
      ``_dept_ids`` the reverse; ``dept_of``: dims id → department id << STAY_BITS |
      stay days, -1 without a department (what ``YearState.apply`` counts in a
      department's month); ``dims_live``: dims id → its accepted, uncredited debits
      (all years), and ``dept_dims``: department id → setting → its dims ids; together
      the settings of a department's live lines, whence its category without a
      register entry (``dept_settings``, streams/domain/departments.py): a credited
      line with a wrong setting leaves the category as it was;
    - ``events``: service year → keys of the event ids judged at SPEC §2 steps 5-7
      (accepted, or ignored or dead-lettered there): a repeat of one is a redelivery,
      counted duplicate and otherwise ignored (step 4). A redelivery repeats its line,
      so its year too;
    - ``alerts``, ``counts``; ``watermark``: the latest event time (submitted_at)
      seen, unix seconds;
    - ``next_month_start``: the engine's month boundary (SPEC §8.1), the start of the
      calendar month after the watermark's. Not stored: 0 in a new or rebuilt state,
      worked out again from the watermark by the engine at its next line;
    - ``applied`` (streaming only): "<source><partition>" → offset of the last
      message applied here; ``journal``: the ``ChangeLog`` told of every change (None:
      not recording);
    - ``keep_years`` (retention, policy retention.line_index_years): the index and
      event ids of service year Y are dropped once the watermark reaches 1 January of
      Y + keep_years + 1 (UTC). Event time only, never the wall clock, so a replay
      decides the same. ``open_from``: the first service year whose index is held;
      ``dropped``: years were dropped since the flag was last cleared (streaming);
      ``_roll``: the watermark at which ``open_from`` moves next;
    - ``hashed``: keys are the identifiers' 60-bit keys (``key_of``), stable across
      processes and compact (the worker's and the offline replay's states: the
      compiled ``accept`` is fastest on the C tables); ``claimwatch explain``'s replay
      of one provider keys by the identifiers themselves (False), to name its lines. ``tables``: a hashed state's per-year tables, cykhash tables
      when None, else this factory's (the RocksDB worker's off-heap tables,
      streams/store/offheap.py);
    - ``_cy``, ``_cl``, ``_cc``, ``_ce``, ``_cys``: the year of the last line, and its
      index, clients, event ids and YearState (None until its first debit):
      consecutive lines of one year skip four dict lookups;
    - ``_packs``: entries repeat (a tariff, a triple, a month); in the dicts of a state
      keyed by identifiers, one int object per distinct entry, shared by its lines,
      saves 32 bytes a line (the first ``_SHARED`` distinct entries). The C tables store the value itself.
    """

    __slots__ = (
        "provider",
        "years",
        "lines",
        "clients",
        "dims",
        "departments",
        "_dept_ids",
        "dept_dims",
        "events",
        "alerts",
        "next_month_start",
        "applied",
        "keep_years",
        "tables",
        "dropped",
    )

    def __init__(
        self,
        provider: str,
        *,
        keep_years: int = 3,
        hashed: bool = True,
        tables: Tables | None = None,
    ) -> None:
        self.provider = provider
        self.years: dict[int, YearState] = {}
        self.lines: dict[int, Index] = {}
        self.clients: dict[int, Clients] = {}
        self.dims: list[Dims] = [OTHER_DIMS]
        self._dim_ids = {OTHER_DIMS: 0}
        self.departments: list[str] = []
        self._dept_ids: dict[str, int] = {}
        self.dept_dims: list[dict[int, list[int]]] = []
        self.events: dict[int, Events] = {}
        self.alerts = AlertBook()
        self.counts = Counts()
        self.next_month_start = 0.0
        self.applied: dict[str, int] = {}
        self.journal: ChangeLog | None = None
        self.keep_years = keep_years
        self.hashed = hashed
        self.tables = tables
        self.dropped = False

    def _keep_mismatch(self, ys: YearState, key: Key, line_id: str) -> None:
        """A zvt-mismatching debit's line id, while fewer than MISMATCH_IDS_KEPT are kept."""
        if len(ys.mismatch_ids) < MISMATCH_IDS_KEPT:
            ys.mismatch_ids[key] = line_id

    def _accept_credit(self, event: Key, key: Key, packed: int | None, year: int) -> str:
        """``accept`` of a credit whose event id is new (called by ``StateCore.accept``)."""
        index = self._cl
        if packed is None:
            found = self._elsewhere(key, year)
            if found is None:
                self.counts.reject(ORPHAN_CREDIT)
                if self.journal is not None:
                    self.journal.judged(event, year)
                return ORPHAN_CREDIT
            debit_year, index, packed = found
        else:
            debit_year = year
        if packed & CREDITED:
            return self._ignored(event, year, DUPLICATE_CREDIT)
        self._credit(index, key, packed, debit_year)
        if self.journal is not None:
            # the debit's year differs from the credit's when found elsewhere
            self.journal.credit(key, event, year, debit_year)
        self.counts.accepted += 1
        return ACCEPTED

    def _select(self, year: int) -> None:
        index, clients, events = self.year_tables(year)
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
                del table[year]
                self.dropped = True
        for year, ys in self.years.items():
            # no credit can reach a closed year: its department counts are final
            if year < open_from:
                if ys.dept_live is not None:
                    ys.dept_live = ys.new_live()
                for cell in ys.dept_cells.values():
                    if cell[4]:
                        cell[4] = {}
        self._cy = -1  # the cached year may be among those dropped

    def _elsewhere(self, key: Key, year: int) -> tuple[int, Index, int] | None:
        """(its year, index, entry): the debit of a credit whose service date
        disagrees with it, in another open year (a credit subtracts what its debit
        added, whatever it says)."""
        for y, index in self.lines.items():
            if y != year and key in index:
                return y, index, index[key]
        return None

    def _intern(self, triple: Dims) -> int:
        """The dims id of a triple not seen before (``OTHER_DIMS``'s 0 once full)."""
        dims = self.dims
        if len(dims) >= MAX_DIMS:
            return 0
        dims_id = len(dims)
        triple = _shared(triple)
        dims.append(triple)
        self._dim_ids[triple] = dims_id
        self.dims_live.append(0)
        self._note_department(triple, dims_id)
        if self.journal is not None:
            self.journal.interned(dims_id, triple)
        return dims_id

    def restore_dims(self, triples: list[Dims]) -> None:
        """Take the dims table from a store (ids 0.. in order, ``OTHER_DIMS`` first)."""
        if not triples or tuple(triples[0]) != OTHER_DIMS:
            raise ValueError("a dims table starts with the 'other' dims (0, None, None, None)")
        self.dims = [_shared(tuple(t)) for t in triples]  # type: ignore[arg-type]
        self._dim_ids = {t: i for i, t in enumerate(self.dims)}
        self.departments, self._dept_ids, self.dept_of, self.dept_dims = [], {}, [-1], []
        self.dims_live = [0] * len(self.dims)
        for dims_id, triple in enumerate(self.dims[1:], 1):
            self._note_department(triple, dims_id)

    def _note_department(self, dims: Dims, dims_id: int) -> None:
        """``dept_of`` of dims ``dims_id`` just appended, and its department's dims."""
        setting, department, _, stay = dims
        if department is None:
            self.dept_of.append(-1)
            return
        dept_id = self._dept_ids.get(department)
        if dept_id is None:
            dept_id = self._dept_ids[department] = len(self.departments)
            self.departments.append(department)
            self.dept_dims.append({})
        self.dept_dims[dept_id].setdefault(setting, []).append(dims_id)
        self.dept_of.append(dept_id << STAY_BITS | min(stay or 0, STAY_MASK))

    def dept_settings(self, dept_id: int) -> int:
        """Bit set (``1 << setting``) of the settings of a department's live lines."""
        live = self.dims_live
        bits = 0
        for setting, ids in self.dept_dims[dept_id].items():
            if any(live[dims_id] > 0 for dims_id in ids):  # mostly the first one
                bits |= 1 << setting
        return bits

    def department_id(self, department: str) -> int | None:
        return self._dept_ids.get(department)

    def index_entries(self) -> int:
        """Line index entries held (all open service years)."""
        return sum(len(index) for index in self.lines.values())

    def debit_of(self, year: int, line_id: str) -> tuple[int, int, int, int] | None:
        """(year, quarter, flags, amount) the debit of ``line_id`` added, if known."""
        found = self.debit_facts(year, line_id)
        if found is None:
            return None
        debit_year, month, flags, amount, _ = found
        return debit_year, (month + 2) // 3, flags, amount

    def debit_facts(self, year: int, line_id: str) -> tuple[int, int, int, int, Dims] | None:
        """(year, month, flags, amount, dims triple) the debit of ``line_id`` added,
        looked for in ``year`` first, if known."""
        key = key_of(line_id) if self.hashed else line_id
        index = self.lines.get(year)
        if index is not None and key in index:
            packed = index[key]
        else:
            found = self._elsewhere(key, year)
            if found is None:
                return None
            year, _, packed = found
        month, flags, amount, dims = unpack_entry(packed)
        return year, month, flags, amount, self.dims[dims]

    def _ignored(self, event: Key, year: int, outcome: str) -> str:
        if outcome == DUPLICATE_LINE:
            self.counts.duplicate_line += 1
        else:
            self.counts.duplicate_credit += 1
        if self.journal is not None:  # the event id must survive a restart
            self.journal.judged(event, year)
        return outcome

    def _credit(self, index: Index, key: Key, packed: int, year: int) -> None:
        """Take back what the debit ``packed`` of service ``year`` added."""
        index[key] = packed | CREDITED
        month, flags, amount, dims = unpack_entry(packed)
        client = None
        dept = self.dept_of[dims]
        if flags & COUNTS_CLIENT or dept >= 0:
            clients = self.clients[year]
            client = clients[key] if key in clients else None  # noqa: SIM401 (as in accept)
        ys = self._year(year)
        ys.apply(flags, amount, month, dims, client, -1, dept)
        self.dims_live[dims] -= 1
        if flags & MISMATCH:
            ys.mismatch_ids.pop(key, None)

    def _year(self, year: int) -> YearState:
        ys = self.years.get(year)
        if ys is None:
            ys = self.years[year] = self.new_year()
        return ys

    def new_year(self) -> YearState:
        """An empty provider-year whose distinct-client maps are ``live_maps``'s."""
        return YearState(maps=self.live_maps())

    def live_maps(self) -> Callable[[], Any] | None:
        """What makes a year's distinct-client maps (``YearState.maps``): the same
        kind of table as the line index's in a hashed state (C tables, or the
        ``tables`` factory's), None (dicts) in one keyed by identifiers."""
        if not self.hashed:
            return None
        tables = self.tables
        return Int64toInt64Map if tables is None else tables.new_map

    def year_tables(self, year: int) -> tuple[Index, Clients, Events]:
        """The index, clients and event ids of service ``year``, made when missing."""
        index = self.lines.get(year)
        if index is None:
            index = self.lines[year] = self._new_map()
        clients = self.clients.get(year)
        if clients is None:
            # a map of keys to keys: the same tables as the index (client keys are ints)
            clients = self.clients[year] = cast(Clients, self._new_map(filtered=False))
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

    def _new_map(self, filtered: bool = True) -> Index:
        if not self.hashed:
            return {}
        tables = self.tables
        return Int64toInt64Map() if tables is None else tables.new_map(filtered)

    def reload(self) -> None:
        """Tables or year states are being replaced from outside (a store restoring
        the state): forget the cached year."""
        self._cy = -1

    def settle(self) -> None:
        """After the store restored counters, alerts and watermark (``streams/store/
        codec.py``): what follows from them and is not stored."""
        for ys in self.years.values():  # ceiling bands follow the alert states
            ys.band_low, ys.band_high = math.inf, -math.inf
        # Years the watermark had closed are dropped again (the journal may hold their
        # lines from before they closed); the retention decision is the watermark's.
        self._roll = 0.0
        self._cy = -1
        if self.watermark >= self._roll:
            self._advance()
        self.dropped = False


class Replay:
    """A ``ChangeLog`` that applies the changes it is told to a state, without
    counting or alerting: the store feeds a persisted journal through it to rebuild
    the line index and indicators (streams/store/codec.py, ``replay``)."""

    __slots__ = ("state",)

    def __init__(self, state: ProviderState) -> None:
        self.state = state
        state.reload()

    def interned(self, dims_id: int, dims: Dims) -> None:
        st = self.state
        if dims_id != len(st.dims):
            raise ValueError(f"dims id {dims_id} out of order: {len(st.dims)} are known")
        st.dims.append(dims)
        st._dim_ids[dims] = dims_id
        st.dims_live.append(0)
        st._note_department(dims, dims_id)

    def debit(
        self, key: Key, event: Key, year: int, packed: int, client: Key | None, line_id: str | None
    ) -> None:
        st = self.state
        month, flags, amount, dims = unpack_entry(packed)
        if dims >= len(st.dims):
            raise ValueError(f"debit of dims id {dims}: only {len(st.dims)} are known")
        index, clients, events = st.year_tables(year)
        events.add(event)
        index[key] = packed
        if client is not None:
            clients[key] = client
        ys = st._year(year)
        ys.apply(flags, amount, month, dims, client, 1, st.dept_of[dims])
        st.dims_live[dims] += 1
        if line_id is not None and len(ys.mismatch_ids) < MISMATCH_IDS_KEPT:
            ys.mismatch_ids[key] = line_id

    def credit(self, key: Key, event: Key, year: int, debit_year: int) -> None:
        st = self.state
        st.year_tables(year)[2].add(event)
        index = st.year_tables(debit_year)[0]
        st._credit(index, key, index[key], debit_year)

    def judged(self, event: Key, year: int) -> None:
        self.state.year_tables(year)[2].add(event)
