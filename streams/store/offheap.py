"""The line index of a RocksDB worker, off the Python heap.

With ``CLAIMWATCH_STORE=rocksdb://`` the worker keeps each provider's per-year line
index, line clients and event ids (``ProviderState.lines``/``clients``/``events``)
and its years' distinct-client maps (``YearState``'s ADHD quarters, detox, consult,
digital and department clients: ``ProviderState.live_maps``) here instead of in
cykhash tables, so its RSS does not grow with the state.

This is a *cache* of what the state table holds, not a second copy to keep
consistent: one local RocksDB per worker process (``<data dir>/line-index``), wiped
when the worker starts and when it exits, filled at recovery from each owner's
checkpoint and journal exactly as the C tables are. Crash consistency and the
changelog format do not depend on it, so it writes no WAL and is never synced.

Layout: one key space; a table (one service year of one kind of one provider) is a
4-byte table id followed by the 8-byte big-endian key, so a whole table is one key
range (``delete_range`` when the year is dropped or the state let go). Map values
are 8-byte little-endian int64, set members have an empty value.

Cost per operation matters (a line does two lookups and two or three writes, and a
read-modify-write, ``OffHeapMap.count``, per distinct-client map it counts in). New
writes go to a small cykhash *front* per table, spilled to RocksDB in one
``WriteBatch`` once the worker's fronts hold ``FRONT_ENTRIES`` keys together. A
lookup asks the front, then the table's Bloom filter in Python (new line ids and
event ids, the usual lookup, end there), then RocksDB. A year's line clients keep no
filter: a debit's client is new to them (its line was just found new in the index)
and is ``insert``-ed without a lookup, and a credit's lookup finds its key, which a
filter would have let through to RocksDB anyway. ``in`` followed by ``[]``,
``[]=`` or ``add`` of the same key, the pattern of ``ProviderState.accept``, reads
RocksDB once: the last answer is kept. Still, every operation is a Python method
where cykhash's are C: the worker is slower with this store (bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import shutil
import struct
from array import array
from collections.abc import Iterable, Iterator, MutableMapping, MutableSet
from pathlib import Path
from typing import Any

from cykhash import Int64Set, Int64Set_from_buffer, Int64toInt64Map
from rocksdict import (
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

FRONT_ENTRIES = 100_000  # keys in the fronts of all tables before they go to RocksDB
WRITE_BUFFER_BYTES = 2 << 20  # per memtable, two at most
BLOCK_CACHE_BYTES = 4 << 20
# Each table's own filter in Python: 6 to 24 bits a key, rebuilt 4x as large when full:
# growing 8x costs half as much memory again at the same speed, doubling is slower
# (more rebuilds) for a third less. The filters are most of what the worker's heap
# grows by a line (a line index, line clients and event ids key each, department
# clients most): 6 bits take a quarter less than 8 at the same speed; at 4 the
# false positives, each a RocksDB read, cost a tenth more CPU.
FILTER_BITS_PER_KEY = 6
_FILTER_WORDS = 8  # 64-bit words of a new table's filter
_MIX = 0x9E3779B97F4A7C15  # odd: key * _MIX mod 2**64 spreads any keys over the bits
_M64 = (1 << 64) - 1

_KEY = struct.Struct(">Iq")  # table id, key
_VALUE = struct.Struct("<q")
_NOTHING = object()  # no key remembered
_TABLE_IDS = 1 << 32
_UNFILTERED = 1 << 62  # the capacity of a table without a filter: never grown


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or a no-op elsewhere (musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else lambda _pad: 0
    except (OSError, AttributeError):
        return lambda _pad: 0


_trim = _malloc_trim()


class OffHeapTables:
    """The worker's off-heap tables: a ``ProviderState.tables`` factory over one
    local RocksDB (see the module docstring)."""

    def __init__(self, path: Path, front_entries: int = FRONT_ENTRIES) -> None:
        self.path = path
        shutil.rmtree(path, ignore_errors=True)  # a cache: what a crash left is stale
        path.mkdir(parents=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
        opts.set_max_write_buffer_number(2)
        opts.set_compression_type(DBCompressionType.none())  # keys are hashes
        table = BlockBasedOptions()
        # No RocksDB Bloom filter: a lookup reaches RocksDB only once the table's
        # own filter (below) has passed it, so the key is mostly there, where a
        # filter does not help. RocksDB keeps its filter blocks outside the block
        # cache, 10 bits a key: without them, 5 MB less at a million lines and a
        # peak 12 MB lower, at the same speed.
        table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
        opts.set_block_based_table_factory(table)
        self.db = Rdict(str(path), options=opts)
        no_wal = WriteOptions()
        # a property at runtime, a method in rocksdict's stub
        no_wal.disable_wal = True  # type: ignore[method-assign,assignment]
        self.db.set_write_options(no_wal)
        self.front_entries = front_entries
        self.pending = 0  # keys in the fronts
        self.closed = False
        self._dirty: dict[int, _Table] = {}  # tables with a non-empty front
        self._next_id = 0

    def new_map(self, filtered: bool = True) -> OffHeapMap:
        """A map; ``filtered=False`` for one whose lookups mostly find their key or
        whose new keys come through ``insert`` (a year's line clients): it keeps
        no filter, and every lookup the front cannot answer reads RocksDB."""
        return OffHeapMap(self, self._take_id(), filtered)

    def new_set(self) -> OffHeapSet:
        return OffHeapSet(self, self._take_id())

    def _take_id(self) -> int:
        if self._next_id >= _TABLE_IDS:  # pragma: no cover - 4 billion tables
            raise RuntimeError("off-heap tables: table ids exhausted; restart the worker")
        self._next_id += 1
        return self._next_id - 1

    def flush(self) -> None:
        """Move every front to RocksDB, in one write."""
        if not self._dirty:
            return
        batch = WriteBatch(raw_mode=True)
        for table in self._dirty.values():
            table._spill(batch)  # noqa: SLF001
        self.db.write(batch)
        self._dirty.clear()
        self.pending = 0
        # The fronts, the batch and RocksDB's memtables come and go between the
        # long-lived objects of the heap; glibc keeps the pages they freed. Measured
        # on a million lines (broker-free): 25 B a line of RSS growth without this,
        # 7 with it; it takes a few ms, once per FRONT_ENTRIES keys.
        _trim(0)

    def close(self) -> None:
        """Close and delete the database (it is rebuilt from the changelog anyway)."""
        if self.closed:
            return
        self.closed = True
        self._dirty.clear()
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)


class _Table:
    """What maps and sets share: a key range of the database, a front, a count."""

    __slots__ = (
        "_bits",
        "_cap",
        "_db",
        "_front",
        "_lo",
        "_mk",
        "_mm",
        "_mv",
        "_mw",
        "_n",
        "_tables",
        "_wmask",
        "id",
    )

    def __init__(self, tables: OffHeapTables, table_id: int, filtered: bool = True) -> None:
        self._tables = tables
        self._db = tables.db
        self.id = table_id
        self._lo = _KEY.pack(table_id, 0)[:4]
        self._n = 0  # keys in the front and the database together
        self._mk: Any = _NOTHING  # the key last looked up in the database...
        self._mv: bytes | None = None  # ...and the value found (None: absent),
        self._mw = self._mm = 0  # ...and its filter word and bits
        self._front: Any = self._new_front()
        # A blocked Bloom filter of the keys ever held (front and database): three
        # bits in one 64-bit word per key. A key it has not seen, the usual lookup
        # (new line ids and event ids), is answered without asking RocksDB. None in a
        # table made without one (``OffHeapTables.new_map``).
        self._bits: array[int] | None = None
        self._wmask = 0
        self._cap = _UNFILTERED
        if filtered:
            self._bits = array("Q", bytes(8 * _FILTER_WORDS))
            self._wmask = _FILTER_WORDS - 1
            self._cap = _FILTER_WORDS * 64 // FILTER_BITS_PER_KEY

    def _mark(self) -> None:
        """Add the key ``_stored`` just found absent to the filter (growing it when full)."""
        if self._bits is None:
            return
        if self._n > self._cap:
            self._grow()  # from the keys held, which do not include this one yet
            self._mw = (self._mk * _MIX & _M64) & self._wmask
        self._bits[self._mw] |= self._mm

    def _grow(self) -> None:
        """A filter 4x as large, from the keys in the database and the front (the
        smallest power of two with room for twice the keys held, which the count has
        just passed: 24 bits a key, down to 6 at the next growth)."""
        words = _FILTER_WORDS
        while words * 64 < self._n * 2 * FILTER_BITS_PER_KEY:
            words *= 2
        bits, mask = array("Q", bytes(8 * words)), words - 1
        keys = self._scan(values=False, flush=False)[0]
        for source in (keys, self._front):
            for key in source:
                h = key * _MIX & _M64
                bits[h & mask] |= 1 << (h >> 58) | 1 << (h >> 52 & 63) | 1 << (h >> 46 & 63)
        self._bits, self._wmask, self._cap = bits, mask, words * 64 // FILTER_BITS_PER_KEY

    def _new_front(self) -> Any:
        raise NotImplementedError

    def _spill(self, batch: Any) -> None:
        raise NotImplementedError

    def _stored(self, key: int) -> bytes | None:
        """The database's value of ``key`` (None: absent), remembered."""
        if key == self._mk:
            return self._mv
        bits = self._bits
        if bits is None:
            self._mk = key
        else:
            h = key * _MIX & _M64
            w = h & self._wmask
            m = 1 << (h >> 58) | 1 << (h >> 52 & 63) | 1 << (h >> 46 & 63)
            self._mk, self._mw, self._mm = key, w, m
            if bits[w] & m != m:  # never held
                self._mv = None
                return None
        raw: bytes | None = self._db.get(_KEY.pack(self.id, key))
        self._mv = raw
        return raw

    def __len__(self) -> int:
        return self._n

    def _scan(self, values: bool, flush: bool = True) -> tuple[array[int], array[int] | None]:
        """The table's keys (and values) in the database as int64 arrays, in key order,
        fronts first moved there (unless not ``flush``). No object is kept per entry: a
        checkpoint of a large table would otherwise leave the heap fragmented."""
        if flush:
            self._tables.flush()
        hi = _KEY.pack(self.id + 1, 0)[:4] if self.id + 1 < _TABLE_IDS else b"\xff" * 5
        read = ReadOptions()
        read.set_iterate_upper_bound(hi)
        it = self._db.iter(read)
        it.seek(self._lo)
        kbuf, vbuf = bytearray(), bytearray()
        while it.valid():
            kbuf += it.key()[4:]
            if values:
                vbuf += it.value()
            it.next()
        del it
        keys = array("q")
        keys.frombytes(kbuf)
        keys.byteswap()  # big-endian in the database (x86 and arm64 are little-endian)
        if not values:
            return keys, None
        vals = array("q")
        vals.frombytes(vbuf)
        return keys, vals

    def _drop_all(self) -> None:
        """Delete the table's keys from the database."""
        if not self._tables.closed:
            self._tables._dirty.pop(self.id, None)  # noqa: SLF001
            hi = _KEY.pack(self.id + 1, 0)[:4] if self.id + 1 < _TABLE_IDS else b"\xff" * 5
            self._db.delete_range(self._lo, hi)

    def _entered(self) -> None:
        """A key entered the front: the table has something to spill, and the
        fronts of all tables are spilled once they hold ``front_entries`` keys."""
        self._mk = _NOTHING  # the database no longer has the last word on it
        tables = self._tables
        tables._dirty[self.id] = self  # noqa: SLF001
        tables.pending += 1
        if tables.pending >= tables.front_entries:
            tables.flush()

    def _drop(self, key: int) -> None:
        """Delete a key held (from the front, the database or both)."""
        self._front.discard(key)
        self._db.delete(_KEY.pack(self.id, key))
        self._mk = _NOTHING
        self._n -= 1

    def __del__(self) -> None:
        # A table is let go when its year is dropped (retention) or its state is
        # (rebalance, recovery): its keys go with it. Tables in a front are still
        # referenced from ``OffHeapTables._dirty``, so this runs after their spill.
        with contextlib.suppress(Exception):  # at interpreter exit the database may be gone
            self._drop_all()


class OffHeapMap(_Table, MutableMapping[int, int]):
    """int64 → int64, as ``Int64toInt64Map``: a year's line index or line clients,
    or one of its distinct-client maps (client → live lines, updated by ``count``)."""

    __slots__ = ()

    def count(self, key: int, sign: int) -> int:
        """One more (sign 1) or one fewer (-1) live line of client ``key``, which leaves
        at none: how the number of keys moved (-1, 0, 1). ``YearState.apply``'s update
        of a distinct-client map (streams/native/kernel.pyx ``_count``), one Python call
        and at most one database read where ``in``, ``[]`` and ``[]=`` take three."""
        front = self._front
        if key in front:
            n = front[key] + sign
            if n > 0:
                front[key] = n
                return 0
            self._drop(key)
            return -1
        raw = self._stored(key)
        if raw is None:
            if sign <= 0:
                return 0
            self._n += 1
            self._mark()  # the key ``_stored`` just found absent
            self._to_front(key, 1)
            return 1
        n = _VALUE.unpack(raw)[0] + sign
        if n > 0:
            self._to_front(key, n)
            return 0
        self._drop(key)
        return -1

    def insert(self, key: int, value: int) -> None:
        """Set a key the caller knows the map does not hold, without looking it up: a
        year's line client, written once, when its debit was just found new in the
        line index (the kernel's accept). A key it does hold would be counted twice."""
        self._n += 1
        if self._bits is not None:  # what ``_stored`` would have left ``_mark``
            h = key * _MIX & _M64
            self._mk, self._mw = key, h & self._wmask
            self._mm = 1 << (h >> 58) | 1 << (h >> 52 & 63) | 1 << (h >> 46 & 63)
            self._mark()
        self._to_front(key, value)  # and forgets ``_mk``: the front holds the key now

    def _to_front(self, key: int, value: int) -> None:
        """Set a key the front does not hold yet (``_n`` already counts it)."""
        self._front[key] = value
        self._entered()

    def _new_front(self) -> Any:
        return Int64toInt64Map()

    def __contains__(self, key: object) -> bool:
        if key in self._front:
            return True
        return isinstance(key, int) and self._stored(key) is not None

    def __getitem__(self, key: int) -> int:
        front = self._front
        if key in front:
            return front[key]
        raw = self._stored(key)
        if raw is None:
            raise KeyError(key)
        return _VALUE.unpack(raw)[0]

    def __setitem__(self, key: int, value: int) -> None:
        front = self._front
        if key not in front:
            if self._stored(key) is None:
                self._n += 1
                self._mark()
            front[key] = value
            self._entered()
        else:
            front[key] = value

    def __delitem__(self, key: int) -> None:
        if key not in self:
            raise KeyError(key)
        self._drop(key)

    def __iter__(self) -> Iterator[int]:
        return iter(self.arrays()[0])

    def arrays(self) -> tuple[array[int], array[int]]:
        """Keys and values as int64 arrays, in the same order (a checkpoint's)."""
        keys, values = self._scan(values=True)
        assert values is not None
        return keys, values

    def fill(self, keys: array[int], values: array[int]) -> None:
        """``update`` from two arrays (a checkpoint's), without an object per key."""
        if len(keys) != len(values):
            raise ValueError("fill: keys and values differ in number")
        self._fill(keys, values)

    def _fill(self, keys: array[int], values: array[int] | None) -> None:
        self._tables.flush()
        self._mk = _NOTHING
        table_id, db = self.id, self._db
        distinct = len(Int64Set_from_buffer(keys))
        raw_keys: list[Any] = [_KEY.pack(table_id, k) for k in keys]
        if distinct < len(keys):  # a key twice: one at a time, as ``update`` would
            for i, k in enumerate(keys):
                if values is None:
                    OffHeapSet.add(self, k)  # type: ignore[arg-type]
                else:
                    OffHeapMap.__setitem__(self, k, values[i])
            self._tables.flush()
            return
        if self._n:  # keys already held are not counted again
            stored: list[Any] = db.get(raw_keys) or []  # a list asked, a list answered
            self._n += sum(1 for found in stored if found is None)
        else:
            self._n = distinct
        batch = WriteBatch(raw_mode=True)
        if values is None:
            for raw in raw_keys:
                batch.put(raw, b"")
        else:
            pack = _VALUE.pack
            for raw, value in zip(raw_keys, values, strict=True):
                batch.put(raw, pack(value))
        db.write(batch)
        if self._bits is None:
            return
        if self._n > self._cap:
            self._grow()
        else:
            bits, mask = self._bits, self._wmask
            for key in keys:
                h = key * _MIX & _M64
                bits[h & mask] |= 1 << (h >> 58) | 1 << (h >> 52 & 63) | 1 << (h >> 46 & 63)

    def _spill(self, batch: Any) -> None:
        pack_key, pack, table_id = _KEY.pack, _VALUE.pack, self.id
        for key, value in self._front.items():
            batch.put(pack_key(table_id, key), pack(value))
        self._front = Int64toInt64Map()  # a cleared khash keeps its buckets


class OffHeapSet(_Table, MutableSet[int]):
    """A set of int64, as ``Int64Set``."""

    __slots__ = ()

    def _new_front(self) -> Any:
        return Int64Set()

    def __contains__(self, key: object) -> bool:
        if key in self._front:
            return True
        return isinstance(key, int) and self._stored(key) is not None

    def add(self, key: int) -> None:
        front = self._front
        if key in front or self._stored(key) is not None:
            return
        self._n += 1
        self._mark()
        front.add(key)
        self._entered()

    def discard(self, key: int) -> None:
        if key not in self:
            return
        self._drop(key)

    def __iter__(self) -> Iterator[int]:
        return iter(self.arrays())

    def arrays(self) -> array[int]:
        """The members as an int64 array (a checkpoint's)."""
        return self._scan(values=False)[0]

    def fill(self, keys: array[int]) -> None:
        """``update`` from an array (a checkpoint's)."""
        OffHeapMap._fill(self, keys, None)  # type: ignore[arg-type]

    def update(self, keys: Iterable[int]) -> None:
        for key in keys:
            self.add(key)

    def _spill(self, batch: Any) -> None:
        pack_key, table_id = _KEY.pack, self.id
        for key in self._front:
            batch.put(pack_key(table_id, key), b"")
        self._front = Int64Set()
