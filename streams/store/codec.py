"""The state codec: how a provider's state is written to the state table and read back.

Three kinds of value, each a JSON object whose fields are written by name:

- a journal segment (``Journal.pack``): the line-index changes of one message;
- a checkpoint chunk (``iter_checkpoint``): part of a provider's tables (line
  index, clients, event ids, distinct-client maps), the first one with the
  counters of every year (``YearState.to_json(clients=False)``);
- a header (``header``): counters, alert states, watermark, applied offsets, and
  where the provider's journal and checkpoint lie (``streams/store/layout.py``).

Keys, line index entries, client keys and live-line counts travel as packed little-endian int64
arrays in base64 (``_b64``): 8 bytes a key where JSON spends about 19 digits, and
no Python object per entry when a large provider is written or read.

``STATE_FORMAT`` names this layout. Every header records it; a table holding another
format is refused (``check_format``), never guessed at: a change of any field here
or in ``YearState.to_json`` raises it.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import orjson
from cykhash import (
    Int64Set_from_buffer,
    Int64toInt64Map_from_buffers,
)

from streams.domain.alerts import AlertBook, AlertState
from streams.domain.contracts import Contract
from streams.domain.indicators import TALLIES, YearState
from streams.domain.model import Counts
from streams.domain.state import ChangeLog, Dims, Key, ProviderState, unpack_entry
from streams.native.kernel import JournalCore, table_arrays

# 2: journal records and line index per service year, checkpoints; 3: identifiers
# as 60-bit keys, checkpoints as packed arrays; 4: journal segments as packed arrays;
# 5: 16 flag bits in a packed line-index entry; 6: every value's fields by name;
# 7: entries without the year, with month and dims id; journal debits with their
# year, the clients of consult and detox lines, mismatch line ids and dims triples;
# checkpoints with the dims table; YearState's months, client maps and breakdowns;
# 8: the distinct-client maps as packed arrays in checkpoint chunks, not in "years";
# 9: dims with stay days, the clients of department lines, YearState's department
# cells ("dept_cells") and their clients (a distinct part "dept<cell key>" each);
# 10: a journal segment's debits carry one client key a debit (-1: none) instead of
# positions and keys, and their service year once when they share it
STATE_FORMAT = 10
_LOG_FIELDS = ("end", "base", "generation", "chunks", "records")
_CONTRACT_FIELDS = (
    "provider",
    "year",
    "ceiling_cents",
    "purchaser",
    "provider_name",
    "region",
    "version",
    "updated_at",
    "digital_target",
)


def _b64(packed: array[int]) -> str:
    """64-bit integers (all below 2⁶³) as base64 of their little-endian bytes."""
    if sys.byteorder == "big":  # pragma: no cover - x86 and arm64 are little-endian
        packed = array(packed.typecode, packed)
        packed.byteswap()
    return base64.b64encode(packed).decode("ascii")


def _unb64(text: str) -> array[int]:
    """Signed int64, the type of the C tables: the values are all below 2⁶³."""
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


def dumps(obj: Any) -> bytes:
    """``orjson.dumps`` for a value the state table holds: copied into a buffer of its
    own size. orjson (3.13) hands back bytes in the buffer it wrote them into, up to
    about ten times their length (26,676 bytes in 262,128); a memory store holds
    every journal segment as long as the state, so at 1M lines that slack was about
    40 B a line of RSS. The copy costs nothing measurable. Pinned by
    tests/store/test_codec.py::test_orjson_output_is_over_allocated_and_dumps_is_not."""
    return bytes(memoryview(orjson.dumps(obj)))


def decode(value: Any) -> Any:
    """A table value: bytes as written, or already JSON-decoded when Faust restored it
    from the changelog (its changelog reader applies the app's json serializer)."""
    if isinstance(value, bytes | bytearray | memoryview | str):
        return orjson.loads(value)
    return value


# -- journal segments ---------------------------------------------------------------


class Interned(NamedTuple):
    dims_id: int
    dims: Dims


class Debit(NamedTuple):
    key: Key
    event: Key
    year: int
    month: int
    client: Key | None
    flags: int
    amount: int
    dims_id: int
    line_id: str | None


class Credit(NamedTuple):
    key: Key
    event: Key
    year: int
    debit_year: int


class Judged(NamedTuple):
    event: Key
    year: int


Record = Interned | Debit | Credit | Judged


class Journal(JournalCore):
    """The ``ChangeLog`` the worker persists: the line-index changes of one message,
    column by column, as ``pack`` writes them (one journal segment a message).

    Appending a key to a packed array costs less than building a record per line and
    packing the records afterwards (the worker's agent spent 8 % of its time there);
    the debit columns and ``debit`` are compiled (``JournalCore``,
    streams/native/kernel.pyx): line keys, event keys, service years, packed entries,
    client keys (-1 for a debit without one; ``with_client`` counts the others); the
    positions of the zvt-mismatching debits (``mismatch_at``), and their line ids
    (``line_ids``).
    """

    __slots__ = (
        "interned_ids",
        "interned_dims",
        "credit_keys",
        "credit_events",
        "credit_years",
        "credit_debit_years",
        "judged_events",
        "judged_years",
    )

    def __init__(self) -> None:
        # Only a hashed state keeps a journal: its keys are ints (``Key`` admits the
        # identifiers of an unhashed one, which ``array`` would refuse).
        # dims triples the provider interned: their ids, the triples
        self.interned_ids: list[int] = []
        self.interned_dims: list[Dims] = []
        # credits: line keys, event keys, the credit's and its debit's service years
        self.credit_keys: array[Any] = array("q")
        self.credit_events: array[Any] = array("q")
        self.credit_years: array[int] = array("q")
        self.credit_debit_years: array[int] = array("q")
        # events judged but not applied: event keys, service years
        self.judged_events: array[Any] = array("q")
        self.judged_years: array[int] = array("q")

    def interned(self, dims_id: int, dims: Dims) -> None:
        self.interned_ids.append(dims_id)
        self.interned_dims.append(dims)

    def credit(self, key: Key, event: Key, year: int, debit_year: int) -> None:
        self.credit_keys.append(key)
        self.credit_events.append(event)
        self.credit_years.append(year)
        self.credit_debit_years.append(debit_year)

    def judged(self, event: Key, year: int) -> None:
        self.judged_events.append(event)
        self.judged_years.append(year)

    def __len__(self) -> int:
        return len(self.keys) + len(self.credit_keys) + len(self.judged_events)

    def pack(self) -> dict[str, dict[str, Any]]:
        """The segment: one object per kind of change that occurred, its columns by
        name, each a packed int64 array (``_b64``; line ids and dims triples, which
        are text, as JSON lists). ``records`` gives them back dims first, then
        debits, then credits, then the events judged: a dims id is interned before
        a debit uses it, a segment's credit follows its debit either way, and the
        rest only adds event keys, so the state replayed is the same as the one
        recorded."""
        out: dict[str, dict[str, Any]] = {}
        if self.interned_ids:
            out["interned"] = {
                "ids": _b64(array("q", self.interned_ids)),
                "dims": [list(t) for t in self.interned_dims],
            }
        if self.keys:
            debits: dict[str, Any] = {
                "lines": _b64(self.keys),
                "events": _b64(self.events),
                "entries": _b64(self.entries),
            }
            # A segment's debits are mostly of one service year (a message's lines):
            # then that year alone, else a column.
            first = self.years[0]
            if self.years.count(first) == len(self.years):
                debits["year"] = first
            else:
                debits["years"] = _b64(self.years)
            if self.with_client:  # one key a debit, -1 without (the keys are >= 0)
                debits["clients"] = _b64(self.clients)
            if self.mismatch_at:
                debits["mismatch_at"] = _b64(self.mismatch_at)
                debits["line_ids"] = list(self.line_ids)
            out["debits"] = debits
        if self.credit_keys:
            out["credits"] = {
                "lines": _b64(self.credit_keys),
                "events": _b64(self.credit_events),
                "years": _b64(self.credit_years),
                "debit_years": _b64(self.credit_debit_years),
            }
        if self.judged_events:
            out["judged"] = {"events": _b64(self.judged_events), "years": _b64(self.judged_years)}
        return out

    def records(self) -> list[Record]:
        """The records of this journal as ``pack`` would persist them."""
        return records(self.pack())


def _columns(segment: Mapping[str, Any], kind: str, names: tuple[str, ...]) -> list[array[int]]:
    part = segment.get(kind) or {}
    cols = [_unb64(part.get(name, "")) for name in names]
    if any(len(col) != len(cols[0]) for col in cols):
        raise ValueError(f"journal segment: columns of {kind!r} differ in length")
    return cols


def replay(segment: Mapping[str, Any], into: ChangeLog) -> None:
    """Tell ``into`` (a ``state.Replay`` at recovery) the changes of a ``Journal.pack``
    segment: dims interned first, then debits, then credits, then the events judged."""
    interned = segment.get("interned") or {}
    ids = _unb64(interned.get("ids", ""))
    for dims_id, triple in zip(ids, interned.get("dims", []), strict=True):
        into.interned(dims_id, _dims(triple))
    debits = segment.get("debits") or {}
    keys, events, entries = _columns(segment, "debits", ("lines", "events", "entries"))
    n = len(keys)
    years: Iterable[int] = (
        [int(debits["year"])] * n if "year" in debits else _unb64(debits.get("years", ""))
    )
    clients: Iterable[int] = _unb64(debits["clients"]) if "clients" in debits else [-1] * n
    line_ids = dict(
        zip(_unb64(debits.get("mismatch_at", "")), debits.get("line_ids", []), strict=True)
    )
    rows = zip(keys, events, years, entries, clients, strict=True)
    for i, (key, event, year, packed, client) in enumerate(rows):
        into.debit(key, event, year, packed, client if client >= 0 else None, line_ids.get(i))
    credits = _columns(segment, "credits", ("lines", "events", "years", "debit_years"))
    for key, event, year, debit_year in zip(*credits, strict=True):
        into.credit(key, event, year, debit_year)
    for event, year in zip(*_columns(segment, "judged", ("events", "years")), strict=True):
        into.judged(event, year)


def _dims(raw: Any) -> Dims:
    """Dims as JSON wrote them: [setting, department, prestatie, stay days]."""
    setting, department, prestatie, stay = raw
    return int(setting), department, prestatie, None if stay is None else int(stay)


class _Records:
    """A ``ChangeLog`` that lists what it is told, as records."""

    def __init__(self) -> None:
        self.out: list[Record] = []

    def interned(self, dims_id: int, dims: Dims) -> None:
        self.out.append(Interned(dims_id, dims))

    def debit(
        self, key: Key, event: Key, year: int, packed: int, client: Key | None, line_id: str | None
    ) -> None:
        month, flags, amount, dims_id = unpack_entry(packed)
        self.out.append(Debit(key, event, year, month, client, flags, amount, dims_id, line_id))

    def credit(self, key: Key, event: Key, year: int, debit_year: int) -> None:
        self.out.append(Credit(key, event, year, debit_year))

    def judged(self, event: Key, year: int) -> None:
        self.out.append(Judged(event, year))


def records(segment: Mapping[str, Any]) -> list[Record]:
    """The records of a ``Journal.pack`` segment, in the order ``replay`` tells them."""
    into = _Records()
    replay(segment, into)
    return into.out


# -- checkpoint chunks --------------------------------------------------------------

# Per kind, a chunk's parts are keyed by service year; "distinct" parts (the
# distinct-client maps of ``YearState.client_maps``) by "<year>:<map name>".
_KINDS = ("lines", "clients", "events", "distinct")


def checkpoint(st: ProviderState, max_entries: int) -> list[dict[str, Any]]:
    """All of ``iter_checkpoint``'s chunks at once."""
    return list(iter_checkpoint(st, max_entries))


def checkpoint_entries(st: ProviderState) -> int:
    """The keys a checkpoint of ``st`` holds, all kinds counted: line index, line
    clients, event ids and distinct-client maps."""
    entries = sum(len(t) for t in st.lines.values())
    entries += sum(len(t) for t in st.clients.values())
    entries += sum(len(t) for t in st.events.values())
    entries += sum(len(m) for ys in st.years.values() for _, m in ys.client_maps())
    return entries


def checkpoint_chunks(st: ProviderState, max_entries: int) -> int:
    """How many chunks ``iter_checkpoint(st, max_entries)`` yields: every chunk but
    the last is full, and there is always one (it carries the indicators)."""
    return max(1, -(-checkpoint_entries(st) // max_entries))


def years_json(st: ProviderState) -> dict[str, Any]:
    """The indicators of every service year as the first chunk carries them: counters
    only, their size independent of the number of clients (``YearState.to_json``)."""
    return {str(y): ys.to_json(clients=False) for y, ys in st.years.items()}


def iter_checkpoint(st: ProviderState, max_entries: int) -> Iterator[dict[str, Any]]:
    """Line index, clients, event ids, distinct-client maps and indicators as chunks
    of at most ``max_entries`` keys each (the first chunk also holds the indicators),
    so no single record of a large provider outgrows a Kafka message. Per kind and
    part (``_KINDS``): ``{"keys": …, "values": …}`` (``values`` for maps).

    One chunk at a time: the worker encodes and writes each before the next is made,
    so a large provider's checkpoint never sits in memory whole."""
    if not st.hashed:
        raise ValueError("a state keyed by identifiers (hashed=False) is never persisted")
    chunk: dict[str, Any] = {
        "years": years_json(st),
        "dims": [list(t) for t in st.dims],
        "dims_live": list(st.dims_live),
        **{kind: {} for kind in _KINDS},
    }
    room = max_entries
    for kind, label, keys, values in _arrays(st):
        start = 0
        while start < len(keys):
            if room == 0:
                yield chunk
                chunk, room = {kind: {} for kind in _KINDS}, max_entries
            end = start + min(room, len(keys) - start)
            part = {"keys": _b64(keys[start:end])}
            if values is not None:
                part["values"] = _b64(values[start:end])
            chunk[kind][label] = part
            room -= end - start
            start = end
    yield chunk


def _arrays(st: ProviderState) -> Iterator[tuple[str, str, array[int], array[int] | None]]:
    """Each year's tables as arrays of int64, one table at a time, with their kind
    and part label: a checkpoint of a large provider builds no object per entry (a C
    table iterates in bucket order, the same for its keys and its values; so does a
    dict)."""
    maps: tuple[tuple[str, Mapping[int, Any]], ...] = (
        ("lines", st.lines),
        ("clients", st.clients),
    )
    for kind, tables in maps:
        for year in sorted(tables):
            table = tables[year]
            yield kind, str(year), *_map_arrays(table)
    for year in sorted(st.events):
        events: Any = st.events[year]
        keys = events.arrays() if hasattr(events, "arrays") else _int64s(events)
        yield "events", str(year), keys, None
    for year in sorted(st.years):
        for name, live in st.years[year].client_maps():
            if live:
                yield "distinct", f"{year}:{name}", *_map_arrays(live)


def _map_arrays(table: Mapping[Any, int]) -> tuple[array[int], array[int]]:
    """A map's keys and values as int64 arrays in one order, in one pass where the
    table offers it (off-heap: ``arrays``; a C table: ``kernel.table_arrays``)."""
    if hasattr(table, "arrays"):
        keys, values = table.arrays()
        return keys, values
    found = table_arrays(table)
    if found is not None:
        return found
    return _int64s(table.keys()), _int64s(table.values())


def restore_checkpoint(st: ProviderState, chunk: Mapping[str, Any]) -> None:
    """Load one chunk of a checkpoint into ``st``; chunks may come in any order."""
    st.reload()
    _restore_years(st, chunk.get("years", {}))
    if "dims" in chunk:  # the first chunk
        st.restore_dims([_dims(t) for t in chunk["dims"]])
        dims_live = [int(n) for n in chunk["dims_live"]]
        if len(dims_live) != len(st.dims):
            raise ValueError("checkpoint: dims_live and dims differ in length")
        st.dims_live = dims_live
    for kind, at in (("lines", 0), ("clients", 1)):
        for y, part in chunk[kind].items():
            _fill(st.year_tables(int(y))[at], *_pairs(part, kind, y))
    for y, part in chunk["events"].items():
        events: Any = st.year_tables(int(y))[2]
        keys = _unb64(part["keys"])
        if hasattr(events, "fill"):
            events.fill(keys)
        else:
            events.update(Int64Set_from_buffer(keys))
    for label, part in chunk.get("distinct", {}).items():
        y, _, name = label.partition(":")
        keys, values = _pairs(part, "distinct", label)
        ys = st.years.get(int(y))
        if ys is None:  # before the chunk with the year's counters
            ys = st.years[int(y)] = st.new_year()
        _fill(ys.client_map(name), keys, values)


def _fill(table: Any, keys: array[int], values: array[int]) -> None:
    """``table.update`` from a map's key and value arrays, without an object per pair
    where the table takes arrays (off-heap: ``fill``) or a C table (from buffers)."""
    if hasattr(table, "fill"):
        table.fill(keys, values)
    elif isinstance(table, dict):
        table.update(zip(keys.tolist(), values.tolist(), strict=True))
    else:
        table.update(Int64toInt64Map_from_buffers(keys, values))


def _restore_years(st: ProviderState, years: Mapping[str, Any]) -> None:
    """The first chunk's counters of every year, keeping the client maps of a year
    that a chunk read before it filled."""
    for y, raw in years.items():
        restored = YearState.from_json(raw, st.live_maps())  # its maps of the state's kind
        earlier = st.years.get(int(y))
        if earlier is not None:
            for name, live in earlier.client_maps():
                if live:
                    _fill(restored.client_map(name), *_map_arrays(live))
        st.years[int(y)] = restored


def _pairs(part: Mapping[str, Any], kind: str, label: str) -> tuple[array[int], array[int]]:
    keys, values = _unb64(part["keys"]), _unb64(part["values"])
    if len(keys) != len(values):
        raise ValueError(f"checkpoint {kind} of {label}: keys and values differ in number")
    return keys, values


# -- headers, ledgers, contracts ------------------------------------------------------


def header(st: ProviderState, log: Mapping[str, int], partition: int) -> dict[str, Any]:
    """Everything of ``st`` a journal does not rebuild (counters, alerts, watermark,
    applied offsets), where its journal and checkpoint lie, and its partition."""
    return {
        "format": STATE_FORMAT,
        # which flag bit of the packed line-index entries counts which rule tally
        "tallies": tally_bits(),
        "partition": partition,
        "log": {name: log[name] for name in _LOG_FIELDS},
        "counts": st.counts.as_dict(),
        "alerts": {
            aid: {
                "firing": s.firing,
                "sequence": s.sequence,
                "severity": s.severity,
                "value": s.value,
            }
            for aid, s in st.alerts.states.items()
        },
        "watermark": st.watermark,
        "applied": dict(st.applied),
    }


def tally_bits() -> dict[str, int]:
    """Rule tally name → its flag bit in the line-index entries, as allotted now."""
    return {name: bit for bit, name in sorted(TALLIES.items())}


def check_format(raw: Mapping[str, Any], owner: str) -> None:
    """Refuse a header of another state format, or one whose line-index entries carry
    a rule tally under a bit that no longer counts it (a tally-declaring rule was
    removed or reordered: docs/adding-a-rule.md), with what to do about it."""
    if raw.get("format") != STATE_FORMAT:
        raise RuntimeError(
            f"the state table holds provider {owner} in the format of an earlier "
            "claimwatch version; rebuild state under a new CLAIMWATCH_APP_ID "
            "(docs/operations.md, 'Recovering')"
        )
    now = tally_bits()
    moved = sorted(name for name, bit in raw.get("tallies", {}).items() if now.get(name) != bit)
    if moved:
        raise RuntimeError(
            f"the state table holds provider {owner} with rule tallies {', '.join(moved)} "
            "under flag bits that this claimwatch's rules allot otherwise (a rule that "
            "declares tallies was removed or reordered); rebuild state under a new "
            "CLAIMWATCH_APP_ID (docs/operations.md, 'Recovering')"
        )


def restore_header(st: ProviderState, raw: Mapping[str, Any]) -> None:
    """Load a header's state fields into ``st`` (after its checkpoint and journal)."""
    st.counts = Counts.from_dict(raw["counts"])
    st.alerts = AlertBook(
        {
            aid: AlertState(bool(a["firing"]), int(a["sequence"]), str(a["severity"]), a["value"])
            for aid, a in raw["alerts"].items()
        }
    )
    st.watermark = raw["watermark"]
    st.applied = {str(p): int(o) for p, o in raw["applied"].items()}
    st.settle()


def log_of(raw: Mapping[str, Any]) -> dict[str, int]:
    """The journal log fields of a header, by name."""
    return {name: int(raw["log"][name]) for name in _LOG_FIELDS}


def encode_ledger(counts: Counts, offset: int) -> bytes:
    """A partition's ledger: rejections of messages without a provider key."""
    return dumps({"counts": counts.as_dict(), "offset": offset})


def decode_ledger(value: Any) -> tuple[Counts, int]:
    raw = decode(value)
    return Counts.from_dict(raw["counts"]), int(raw["offset"])


def encode_outbox(events: list[Mapping[str, Any]]) -> bytes:
    """A partition's alert outbox: alert transitions as published (SPEC §5)."""
    return dumps(events)


def decode_outbox(value: Any) -> list[dict[str, Any]]:
    """The alert events of an outbox value; anything else in it (the table is ours,
    but a changelog can be written by others) is passed over, never raised on."""
    try:
        events = decode(value) if value is not None else []
    except (orjson.JSONDecodeError, TypeError):
        return []
    if not isinstance(events, list):
        return []
    return [
        e
        for e in events
        if isinstance(e, dict)
        and isinstance(e.get("alert_id"), str)
        and isinstance(e.get("sequence"), int)
        and isinstance(e.get("provider_agb"), str)
    ]


def encode_contract(contract: Contract) -> bytes:
    return dumps({name: getattr(contract, name) for name in _CONTRACT_FIELDS})


def decode_contract(value: Any) -> Contract:
    raw = decode(value)
    # .get: a contract written before digital_target existed has none (the default)
    return Contract(**{name: raw.get(name) for name in _CONTRACT_FIELDS})
