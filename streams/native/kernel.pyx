# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The storage and per-line arithmetic of ``YearState`` (streams/domain/indicators.py).

``YearCore.apply`` is the body of ``YearState.apply``, typed: C integers for the
line's facts and the counters, the CPython dict API for the client counts. What it
counts and why is documented on ``YearState``, which subclasses this type; the flag
bits and field layouts are the domain's (``configure`` takes them at import, so they
have one source: streams/domain/model.py and indicators.py).
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

cdef int64_t CONSULT = 0, DIGITAL = 0, GROUP = 0, GROUP_OVER2 = 0, GROUP_GE4 = 0
cdef int64_t DETOX_CLINICAL = 0, DETOX_AMBULANT = 0, MISMATCH = 0, ADHD = 0, TALLY_MASK = 0
cdef int STAY_BITS = 0
cdef int64_t STAY_MASK = 0
cdef uint64_t MIX = 0, KEY_MASK = 0
cdef bint _configured = False


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


cdef inline void _count(dict clients, object client, int sign) except *:
    """One more (sign 1) or one fewer (-1) live line of ``client``; at none it leaves."""
    cdef PyObject* found = PyDict_GetItem(clients, client)
    cdef int64_t live = sign
    if found is not NULL:
        live += <int64_t><object>found
    if live > 0:
        PyDict_SetItem(clients, client, live)
    elif found is not NULL:
        PyDict_DelItem(clients, client)


cdef inline int64_t _item(list cell, Py_ssize_t at):
    return <int64_t><object>PyList_GET_ITEM(cell, at)


cdef class YearCore:
    """A provider-year's counters and client counts (``YearState``'s storage)."""

    cdef public int64_t net_cents, lines, consults, group_consults, group_ge4, group_over2
    cdef public int64_t digital, detox_clinical, detox_ambulant, mismatch
    cdef int64_t months[12]
    cdef public dict adhd, clients_detox, clients_clinical, clients_consult, clients_digital
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

    cpdef apply(self, int64_t flags, int64_t amount_cents, int month, object dims,
                object client, int sign, int64_t dept=-1):
        """``YearState.apply``: add (sign 1) or take back (sign -1) one line."""
        cdef int64_t cents = sign * amount_cents
        cdef int64_t key
        cdef list cell
        cdef PyObject* found
        cdef object live, k, pykey
        cdef int quarter
        if not _configured:
            raise RuntimeError("streams.native.kernel.configure was not called")
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
                if sign > 0:
                    if k in live:
                        live[k] += 1
                    else:
                        live[k] = 1
                        cell[0] = _item(cell, 0) + 1
                elif k in live:
                    n = live[k] - 1
                    if n:
                        live[k] = n
                    else:
                        del live[k]
                        cell[0] = _item(cell, 0) - 1
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
            if found is NULL:
                by_quarter = {}
                PyDict_SetItem(self.adhd, quarter, by_quarter)
            else:
                by_quarter = <dict>found
            _count(by_quarter, client, sign)
        if flags & TALLY_MASK:  # only when a rule declares a tally
            self._tally(flags, sign)
