# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The storage and per-line arithmetic of ``YearState`` (streams/domain/indicators.py).

``YearCore.apply`` is the body of ``YearState.apply``, typed: C integers for the
line's facts and the counters, cykhash's C methods or the CPython dict API for the
client counts (a map of any other kind, one Python call an update: ``_count``). What it
counts and why is documented on ``YearState``, which subclasses this type; the flag
bits and field layouts are the domain's (``configure`` takes them at import, so they
have one source: streams/domain/model.py and indicators.py).
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Next
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t
from cpython cimport array
from cykhash.khashmaps cimport Int64toInt64Map, kh_exist_int64toint64map
import array as _array


cdef extern from *:
    """
    #define XXH_INLINE_ALL
    #include "xxhash/xxhash.h"
    """
    unsigned long long XXH3_64bits(const void* data, size_t length) nogil


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

cdef int64_t CONSULT = 0, DIGITAL = 0, GROUP = 0, GROUP_OVER2 = 0, GROUP_GE4 = 0
cdef int64_t DETOX_CLINICAL = 0, DETOX_AMBULANT = 0, MISMATCH = 0, ADHD = 0, TALLY_MASK = 0
cdef int STAY_BITS = 0
cdef int64_t STAY_MASK = 0
cdef uint64_t MIX = 0, KEY_MASK = 0
cdef bint _configured = False


# ``StateCore.accept``'s outcomes and helpers (streams/domain/model.py, state.py)
cdef object ACCEPTED = None, DUPLICATE = None, DUPLICATE_LINE = None, LINE_INDEX_EXPIRED = None
cdef object CLIENT_KEY = None  # state._client_key: a pseudonymised reference's key
cdef Py_ssize_t SHARED = 0  # state._SHARED: entries a state keyed by identifiers shares


def configure_state(*, accepted, duplicate, duplicate_line, line_index_expired, client_key,
                    shared):
    """The outcomes ``StateCore.accept`` returns and what it needs of state.py."""
    global ACCEPTED, DUPLICATE, DUPLICATE_LINE, LINE_INDEX_EXPIRED, CLIENT_KEY, SHARED
    ACCEPTED, DUPLICATE, DUPLICATE_LINE = accepted, duplicate, duplicate_line
    LINE_INDEX_EXPIRED, CLIENT_KEY, SHARED = line_index_expired, client_key, shared


def key_of(str identifier):
    """``state.key_of``: the 60-bit key of an identifier (xxh3 of its UTF-8, >> 4)."""
    return _key(identifier)


cdef inline object _key(str identifier):
    cdef Py_ssize_t size
    cdef const char* data = PyUnicode_AsUTF8AndSize(identifier, &size)
    return <int64_t>(XXH3_64bits(data, <size_t>size) >> 4)


def configure(*, consult, digital, group, group_over2, group_ge4, detox_clinical,
              detox_ambulant, mismatch, adhd, tally_mask, stay_bits, mix, key_mask):
    """The domain's flag bits and layouts (called once, by indicators.py)."""
    global CONSULT, DIGITAL, GROUP, GROUP_OVER2, GROUP_GE4, DETOX_CLINICAL
    global DETOX_AMBULANT, MISMATCH, ADHD, TALLY_MASK, STAY_BITS, STAY_MASK, MIX, KEY_MASK
    global _configured
    CONSULT, DIGITAL, GROUP, GROUP_OVER2, GROUP_GE4 = consult, digital, group, group_over2, group_ge4
    DETOX_CLINICAL, DETOX_AMBULANT, MISMATCH, ADHD = detox_clinical, detox_ambulant, mismatch, adhd
    TALLY_MASK, STAY_BITS, MIX, KEY_MASK = tally_mask, stay_bits, mix, key_mask
    STAY_MASK = (1 << stay_bits) - 1
    _configured = True


cdef inline int _count_c(Int64toInt64Map live, int64_t client, int sign) except? -9:
    """``_count`` in a C table; returns how the number of clients in it moved (-1, 0, 1)."""
    cdef int64_t n
    if live.contains(client):
        n = live.cget(client) + sign
        if n > 0:
            live.cput(client, n)
            return 0
        live.discard(client)
        return -1
    if sign > 0:
        live.cput(client, 1)
        return 1
    return 0


cdef inline int _count(object table, object client, int sign) except? -9:
    """One more (sign 1) or one fewer (-1) live line of ``client``; at none it leaves.
    Returns how the number of clients in the map moved (-1, 0, 1). A C table through
    its C methods, a dict through the dict API, any other map (the RocksDB worker's
    off-heap tables) in one Python call."""
    if type(table) is Int64toInt64Map:
        return _count_c(<Int64toInt64Map>table, <int64_t>client, sign)
    if type(table) is not dict:
        return _count_other(table, client, sign)
    cdef dict clients = <dict>table
    cdef PyObject* found = PyDict_GetItem(clients, client)
    cdef int64_t live = sign
    if found is not NULL:
        live += <int64_t><object>found
    if live > 0:
        PyDict_SetItem(clients, client, live)
        return 0 if found is not NULL else 1
    if found is not NULL:
        PyDict_DelItem(clients, client)
        return -1
    return 0


cdef int _count_other(object table, object client, int sign) except? -9:
    """``_count`` in a map that is neither a C table nor a dict: its ``count(key,
    sign)`` (``OffHeapMap.count``: one lookup where ``in``, ``[]`` and ``[]=`` would
    each be a Python call), else through the mapping protocol."""
    count = getattr(table, "count", None)
    if count is not None:
        return count(client, sign)
    cdef int64_t n
    if client in table:
        n = table[client] + sign
        if n > 0:
            table[client] = n
            return 0
        del table[client]
        return -1
    if sign > 0:
        table[client] = 1
        return 1
    return 0


cdef inline int64_t _item(list cell, Py_ssize_t at):
    return <int64_t><object>PyList_GET_ITEM(cell, at)


cdef class YearCore:
    """A provider-year's counters and client counts (``YearState``'s storage)."""

    cdef public int64_t net_cents, lines, consults, group_consults, group_ge4, group_over2
    cdef public int64_t digital, detox_clinical, detox_ambulant, mismatch
    # Lines applied (either sign) since the object was made: the engine's test of
    # whether the year changed since it last evaluated it (Engine._evaluate).
    cdef public int64_t changes
    cdef int64_t months[12]
    # client maps: dicts, or tables of int64 in a state keyed by 60-bit keys (C tables,
    # Int64toInt64Map, or the RocksDB worker's off-heap ones; YearState.maps)
    cdef public dict adhd
    cdef public object clients_detox, clients_clinical, clients_consult, clients_digital
    cdef public dict dept_cells
    cdef public object dept_live

    def __cinit__(self, *args, **kwargs):
        self.adhd = {}
        self.clients_detox = {}
        self.clients_clinical = {}
        self.clients_consult = {}
        self.clients_digital = {}
        self.dept_cells = {}
        self.dept_live = None

    @property
    def by_month(self):
        """Net cents by service month, January first (a copy: set it whole)."""
        return [self.months[i] for i in range(12)]

    @by_month.setter
    def by_month(self, values):
        cdef list months = list(values)
        if len(months) != 12:
            raise ValueError(f"by_month holds {len(months)} months, not 12")
        for i in range(12):
            self.months[i] = months[i]

    def month_cents(self, int month):
        """Net cents of service month ``month`` (1..12)."""
        return self.months[month - 1]

    def apply(self, int64_t flags, int64_t amount_cents, int month, object dims,
              object client, int sign, int64_t dept=-1):
        """``YearState.apply``: add (sign 1) or take back (sign -1) one line."""
        self._apply(flags, amount_cents, month, client, sign, dept)

    # cdef, not cpdef: a cpdef method called on a Python subclass's instance looks
    # for an override first, every call
    cdef void _apply(self, int64_t flags, int64_t amount_cents, int month, object client,
                     int sign, int64_t dept) except *:
        cdef int64_t cents = sign * amount_cents
        cdef int64_t key
        cdef list cell
        cdef PyObject* found
        cdef object live, k, pykey
        cdef int quarter, moved
        if not _configured:
            raise RuntimeError("streams.native.kernel.configure was not called")
        self.changes += 1
        self.net_cents += cents
        self.lines += sign
        self.months[month - 1] += cents
        if dept >= 0:  # SPEC §9: one cell lookup, one client-count update
            key = (dept >> STAY_BITS) << 4 | (month - 1)
            pykey = key
            found = PyDict_GetItem(self.dept_cells, pykey)
            if found is NULL:
                cell = [0, 0, 0, 0, {} if self.dept_live is None else None]
                PyDict_SetItem(self.dept_cells, pykey, cell)
            else:
                cell = <list>found
            cell[3] = _item(cell, 3) + cents
            cell[2] = _item(cell, 2) + sign * (dept & STAY_MASK)
            if flags & CONSULT:
                cell[1] = _item(cell, 1) + sign
            if client is not None:
                live = self.dept_live
                if live is None:
                    live, k = cell[4], client
                else:  # indicators.dept_client, inline
                    k = <int64_t>(<uint64_t><int64_t>client ^ (<uint64_t>(key + 1) * MIX & KEY_MASK))
                if type(live) is Int64toInt64Map:
                    cell[0] = _item(cell, 0) + _count_c(<Int64toInt64Map>live, <int64_t>k, sign)
                else:
                    moved = _count(live, k, sign)
                    if moved:
                        cell[0] = _item(cell, 0) + moved
        if flags & CONSULT:
            self.consults += sign
            if client is not None:
                _count(self.clients_consult, client, sign)
            if flags & DIGITAL:
                self.digital += sign
                if client is not None:
                    _count(self.clients_digital, client, sign)
            if flags & GROUP:
                self.group_consults += sign
                if flags & GROUP_OVER2:
                    self.group_over2 += sign
                    if flags & GROUP_GE4:
                        self.group_ge4 += sign
        if flags & (DETOX_CLINICAL | DETOX_AMBULANT):
            if flags & DETOX_CLINICAL:
                self.detox_clinical += sign
            else:
                self.detox_ambulant += sign
            if client is not None:
                _count(self.clients_detox, client, sign)
                if flags & DETOX_CLINICAL:
                    _count(self.clients_clinical, client, sign)
        if flags & MISMATCH:
            self.mismatch += sign
        if flags & ADHD and client is not None:
            quarter = (month + 2) // 3
            found = PyDict_GetItem(self.adhd, quarter)
            if found is NULL:  # a map of the kind the others are (once a quarter)
                by_quarter = self.new_live()
                PyDict_SetItem(self.adhd, quarter, by_quarter)
            else:
                by_quarter = <object>found
            _count(by_quarter, client, sign)
        if flags & TALLY_MASK:  # only when a rule declares a tally
            self._tally(flags, sign)


cdef inline void _append(array.array column, int64_t value) except *:
    cdef Py_ssize_t n = len(column)
    array.resize_smart(column, n + 1)
    column.data.as_longlongs[n] = value


cdef class JournalCore:
    """The debit columns of a journal segment (``codec.Journal``, streams/store/, which
    subclasses this type and documents them), and ``debit``, called for every line."""

    cdef public array.array keys, events, years, entries, clients, mismatch_at
    cdef public list line_ids
    cdef public Py_ssize_t with_client

    def __cinit__(self, *args, **kwargs):
        self.keys = _array.array("q")
        self.events = _array.array("q")
        self.years = _array.array("q")
        self.entries = _array.array("q")
        self.clients = _array.array("q")
        self.mismatch_at = _array.array("q")
        self.line_ids = []
        self.with_client = 0

    def debit(self, int64_t key, int64_t event, int64_t year, int64_t packed, object client,
              object line_id):
        """``ChangeLog.debit``, as the columns hold it (-1: no client)."""
        self._debit(key, event, year, packed, client, line_id)

    cdef void _debit(self, int64_t key, int64_t event, int64_t year, int64_t packed,
                     object client, object line_id) except *:
        if client is not None:
            _append(self.clients, <int64_t>client)
            self.with_client += 1
        else:
            _append(self.clients, -1)
        if line_id is not None:
            _append(self.mismatch_at, len(self.keys))
            self.line_ids.append(line_id)
        _append(self.keys, key)
        _append(self.events, event)
        _append(self.years, year)
        _append(self.entries, packed)


# The per-year tables of a persisted state are cykhash's C tables (or the RocksDB
# worker's off-heap ones, or dicts and sets offline): the C tables are used through
# their C methods, the others through Python's protocols.

cdef inline bint _has(object table, object key) except -1:
    if type(table) is Int64toInt64Map:
        return (<Int64toInt64Map>table).contains(<int64_t>key)
    return key in table  # a set's ``in`` is a slot call (a C set's too)


cdef inline void _put(object table, object key, int64_t value) except *:
    if type(table) is Int64toInt64Map:
        (<Int64toInt64Map>table).cput(<int64_t>key, value)
    else:
        table[key] = value


cdef inline void _insert(object table, object key, int64_t value) except *:
    """``_put`` of a key the caller knows is absent (a debit's line client): the
    off-heap map then skips its lookup (``OffHeapMap.insert``)."""
    if type(table) is Int64toInt64Map:
        (<Int64toInt64Map>table).cput(<int64_t>key, value)
    elif type(table) is dict:
        table[key] = value
    else:
        table.insert(key, value)


def table_arrays(object table):
    """(keys, values) of a C map as int64 arrays in one order (bucket order); None for
    anything else (the caller iterates it)."""
    cdef Int64toInt64Map m
    cdef array.array keys, values
    cdef Py_ssize_t n = 0, i
    if type(table) is Int64toInt64Map:
        m = <Int64toInt64Map>table
        keys = array.clone(_array.array("q"), len(m), False)
        values = array.clone(_array.array("q"), len(m), False)
        for i in range(m.table.n_buckets):
            if kh_exist_int64toint64map(m.table, i):
                keys.data.as_longlongs[n] = m.table.keys[i]
                values.data.as_longlongs[n] = m.table.vals[i]
                n += 1
        return keys, values
    return None


cdef inline void _cell(int64_t packed, int64_t skip, int64_t need, int64_t months,
                       int64_t* cents, int64_t* lines, Py_ssize_t n_dims):
    cdef int64_t dims
    if packed & skip or (need and not packed & need):
        return
    if months and not (months >> (packed >> 40 & 0xF)) & 1:
        return
    dims = packed >> 45
    if dims < n_dims:
        cents[dims] += packed & 0xFFFFFF
        lines[dims] += 1


cdef int _sum_cells(object index, int64_t skip, int64_t need, int64_t months,
                    int64_t* cents, int64_t* lines, Py_ssize_t n_dims) except -1:
    """One pass over a year's line index, summing ``_cell`` into the arrays."""
    cdef Int64toInt64Map m
    cdef array.array values
    cdef Py_ssize_t i, pos
    cdef PyObject* k
    cdef PyObject* v
    if type(index) is Int64toInt64Map:
        m = <Int64toInt64Map>index
        for i in range(m.table.n_buckets):
            if kh_exist_int64toint64map(m.table, i):
                _cell(m.table.vals[i], skip, need, months, cents, lines, n_dims)
    else:
        found = index.arrays() if hasattr(index, "arrays") else None
        if found is not None:
            values = found[1]
            for i in range(len(values)):
                _cell(values.data.as_longlongs[i], skip, need, months, cents, lines, n_dims)
        elif type(index) is dict:  # offline: identifiers → entries
            pos = 0
            while PyDict_Next(index, &pos, &k, &v):
                _cell(<int64_t><object>v, skip, need, months, cents, lines, n_dims)
        else:
            for packed in index.values():
                _cell(packed, skip, need, months, cents, lines, n_dims)
    return 0


cdef tuple _summed(object index, int64_t skip, int64_t need, int64_t months,
                   Py_ssize_t n_dims):
    """(cents, lines) by dims id below ``n_dims``: int64 arrays, zeroed, then summed by
    ``_sum_cells``."""
    cdef array.array cents = array.clone(_array.array("q"), n_dims + 1, True)
    cdef array.array lines = array.clone(_array.array("q"), n_dims + 1, True)
    _sum_cells(index, skip, need, months, <int64_t*>cents.data.as_longlongs,
               <int64_t*>lines.data.as_longlongs, n_dims)
    return cents, lines


def dims_cells(object index, int64_t skip, int64_t need, int64_t months, Py_ssize_t n_dims):
    """``indicators.dims_cells``'s pass over a year's line index: dims id → [cents,
    lines] of the entries without a ``skip`` bit, with a ``need`` bit (0: any), in a
    month of the ``months`` bit set (0: any); dims ids below ``n_dims``."""
    cdef array.array cents, lines
    cdef Py_ssize_t i
    cdef dict out = {}
    cents, lines = _summed(index, skip, need, months, n_dims)
    for i in range(n_dims):
        if lines.data.as_longlongs[i]:
            out[i] = [cents.data.as_longlongs[i], lines.data.as_longlongs[i]]
    return out


def dims_groups(object index, int64_t skip, int64_t need, int64_t months, list dims,
                tuple places):
    """``dims_cells`` grouped by a field of the dims: for each place in ``places`` (a
    position in a dims tuple), {field → [cents, lines]}, a falsy field (setting 0, no
    department) under None. ``indicators.breakdown``'s sums, in one call."""
    cdef Py_ssize_t n_dims = len(dims)
    cdef array.array cents_a, lines_a
    cdef int64_t* cents
    cdef int64_t* lines
    cdef Py_ssize_t i, at
    cdef dict sums
    cdef list out = [], total
    cdef PyObject* found
    cents_a, lines_a = _summed(index, skip, need, months, n_dims)
    cents = <int64_t*>cents_a.data.as_longlongs
    lines = <int64_t*>lines_a.data.as_longlongs
    for place in places:
        at = place
        sums = {}
        for i in range(n_dims):
            if lines[i]:
                key = dims[i][at] or None
                found = PyDict_GetItem(sums, key)
                if found is NULL:
                    sums[key] = [cents[i], lines[i]]
                else:
                    total = <list>found
                    total[0] = _item(total, 0) + cents[i]
                    total[1] = _item(total, 1) + lines[i]
        out.append(sums)
    return out


cdef class StateCore:
    """The line index, watermark and current year of a ``ProviderState`` (state.py,
    which subclasses this type and documents each field), and ``accept``'s path for a
    debit; a credit, a new dims triple, another year or the watermark entering a new
    year call back into the subclass."""

    cdef public double watermark, _roll
    cdef public int64_t _cy, open_from
    cdef public object _cl, _cc, _ce, _cys, journal, counts
    cdef public dict _dim_ids, _packs
    cdef public list dept_of, dims_live
    cdef public bint hashed

    def __cinit__(self, *args, **kwargs):
        self._cy = -1
        self._cl, self._cc, self._ce = {}, {}, set()
        self._dim_ids, self._packs = {}, {}
        self.dept_of, self.dims_live = [-1], [0]
        self.hashed = True

    cpdef object accept(self, object decoded):
        """``ProviderState.accept``: SPEC §2 steps 4-7 for a schema-valid line."""
        if not isinstance(decoded, tuple) or len(<tuple>decoded) != 11:
            raise TypeError("accept takes a model.Line")
        cdef tuple line = <tuple>decoded
        cdef str event_id = line[0], line_id = line[1]
        cdef int64_t year = line[4], month = line[5], flags = line[7], amount = line[8]
        cdef double event_time = line[9]
        cdef object client = line[6], triple = line[10], event, key, found, ck, dims_obj
        cdef int64_t dims, packed
        cdef bint hashed = self.hashed
        cdef PyObject* got
        cdef YearCore ys
        if event_time > self.watermark:
            self.watermark = event_time
            if event_time >= self._roll:
                self._advance()
        if year != self._cy:
            if year < self.open_from:
                self.counts.reject(LINE_INDEX_EXPIRED)
                return LINE_INDEX_EXPIRED
            self._select(year)
        event = _key(event_id) if hashed else event_id
        events = self._ce
        if _has(events, event):
            self.counts.duplicate += 1
            return DUPLICATE
        events.add(event)
        key = _key(line_id) if hashed else line_id
        index = self._cl
        found = index[key] if _has(index, key) else None
        if line[2]:  # a credit
            return self._accept_credit(event, key, found, year)
        if found is not None:
            return self._ignored(event, year, DUPLICATE_LINE)
        got = PyDict_GetItem(self._dim_ids, triple)
        dims_obj = <object>got if got is not NULL else self._intern(triple)
        dims = dims_obj
        packed = amount | flags << 24 | (month - 1) << 40 | dims << 45  # state.pack_entry
        if hashed:
            _put(index, key, packed)
        else:  # one int object per distinct entry, while fewer than SHARED are kept
            got = PyDict_GetItem(self._packs, packed)
            if got is not NULL:
                index[key] = <object>got
            else:
                entry = packed
                if len(self._packs) < SHARED:
                    self._packs[entry] = entry
                index[key] = entry
        ck = None
        if client is not None:  # a client-counting or department line
            if not hashed:
                ck = client
            elif len(<str>client) and (<str>client)[0] != "\x00":  # rekey.CLIENT_KEY_MARK
                ck = _key(<str>client)
            else:
                ck = CLIENT_KEY(client)
            if hashed:  # a new debit's key: the index did not hold it, so neither do they
                _insert(self._cc, key, <int64_t>ck)
            else:
                self._cc[key] = ck
        if self._cys is None:
            self._cys = self._year(year)
        ys = <YearCore>self._cys
        ys._apply(flags, amount, month, ck, 1, <int64_t>self.dept_of[dims])
        self.dims_live[dims] = <int64_t>self.dims_live[dims] + 1
        if flags & MISMATCH:
            self._keep_mismatch(ys, key, line_id)
        journal = self.journal
        if isinstance(journal, JournalCore):
            (<JournalCore>journal)._debit(key, event, year, packed, ck,
                                          line_id if flags & MISMATCH else None)
        elif journal is not None:
            journal.debit(key, event, year, packed, ck, line_id if flags & MISMATCH else None)
        self.counts.accepted += 1
        return ACCEPTED
