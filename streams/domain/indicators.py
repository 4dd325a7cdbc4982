"""Per provider-year indicator state (SPEC §4) and its derived ratios.

``YearState`` holds net counters only: applying a line with sign +1 and later with
sign −1 returns every field to what it was, which is what makes credits exact.
Distinct ADHD clients are counted per quarter as client → number of live lines, so
a credit removes a client exactly when its last uncredited ADHD line goes. A client
is its 60-bit key (``state.key_of`` of the ``client_ref``) in the worker's and the
offline replay's state, so the reference itself never enters the state or its
changelog; ``claimwatch explain``'s replay of one provider counts the references.

The same holds for the distinct clients of SPEC §8.4 (detox, clinical detox,
consult and digital consult clients, per year) and the net cents per service month
(§8.1). What explain breaks down (§8.3, ``breakdown``) is not kept here: the line
index holds every uncredited line's amount, flags, month and dims, so a breakdown
sums it when asked and no line pays for it.

Besides the indicators of SPEC §4, named fields here, a year keeps the tallies rules
declare (``rules.base.Tally``), by name, from the flag bits the registry allotted
them (``TALLIES``). ``to_json`` writes every field by name, so a field or tally added
later does not shift the others in a checkpoint.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from streams.domain.model import (
    ADHD,
    CONSULT,
    DETOX_AMBULANT,
    DETOX_CLINICAL,
    DIGITAL,
    GROUP,
    GROUP_GE4,
    GROUP_OVER2,
    MISMATCH,
    TALLY_MASK,
)
from streams.native import kernel
from streams.native.kernel import YearCore

if TYPE_CHECKING:
    from streams.domain.state import ProviderState

# Flag bit → name of the tally it counts; the rule registry fills it
# (streams/domain/rules/registry.py). Empty unless some rule declares a tally.
TALLIES: dict[int, str] = {}

# A client as the state holds it: its 60-bit key, or the client_ref (``hashed=False``).
Client = int | str
# The subsets of lines a breakdown can be asked for (SPEC §8.3): every line, the
# zvt-mismatching ones, detox lines, consults, and the ADHD lines of quarter q.
SUBSETS = ("all", "mismatch", "detox", "consult", "adhd1", "adhd2", "adhd3", "adhd4")
_DETOX = DETOX_CLINICAL | DETOX_AMBULANT
# The distinct-client maps (client → live lines), by field name (SPEC §8.4).
CLIENT_MAPS = ("clients_detox", "clients_clinical", "clients_consult", "clients_digital")


# The mismatching line ids a provider-year keeps (up to 64 bytes each): explain shows
# ten; credits of more than MISMATCH_IDS_KEPT - 10 of them leave it fewer to show.
MISMATCH_IDS_KEPT = 1_000


class YearState(YearCore):
    """A provider-year's indicators. The counters, the net cents per service month and
    the distinct-client maps are ``YearCore``'s (streams/native/kernel.pyx, compiled:
    ``apply`` runs for every line), with these meanings:

    - ``net_cents``, ``lines``, ``consults``, ``group_consults``, ``group_ge4``,
      ``group_over2``, ``digital`` (digital consult lines, SPEC §4 digital_share),
      ``detox_clinical``, ``detox_ambulant``, ``mismatch``: net counts;
    - ``by_month``: net cents by service month, January first (SPEC §8.1
      net_cents_by_month; a copy, set whole);
    - ``adhd``: quarter (1..4) → client (key) → live ADHD lines of that client in the
      quarter;
    - ``clients_detox``, ``clients_clinical``, ``clients_consult``,
      ``clients_digital``: client → its live lines among detox lines (clinical or
      ambulant), clinical detox lines, consults, digital consults (SPEC §8.4). A
      client leaves a map when its last such line is credited, as in ``adhd``;
    - ``dept_cells`` (SPEC §9), per department and service month: cell key
      (``dept_cell``: the provider's department id and month) → [distinct clients,
      consults, stay days, net cents, client → its live lines in the cell, or None].
      A client leaves the count when its last line there is credited. A cell is made
      by its month's first accepted line and stays (at 0 once all its lines are
      credited);
    - ``dept_live``: the clients' live lines of every cell in one table of int64 (a
      persisted state, ``ProviderState.new_year``), keyed ``dept_client``: one table a
      year takes a third less memory than one a cell. None: a dict in each cell
      (a state keyed by identifiers, where clients are references);
    - ``maps``: what makes the client maps above (``new_live``) in a persisted state:
      C tables of int64 (``Int64toInt64Map``), or the RocksDB worker's off-heap
      tables (``ProviderState.live_maps``); None: dicts.

    ``apply(flags, amount_cents, month, dims, client, sign, dept=-1)`` adds (sign 1)
    or takes back (sign -1) what one line contributes; ``dims`` is its (setting,
    department, prestatie, stay days) id, ``client`` its key when it counts a distinct
    client (``model.COUNTS_CLIENT``) or has a department; ``dept`` its department id
    and stay days (``ProviderState.dept_of``), -1 without a department. Applying a
    line with sign 1 and later with sign -1 returns every field to what it was.
    """

    __slots__ = ("maps", "mismatch_ids", "tallies", "band_low", "band_high", "settled")

    def __init__(self, maps: Callable[[], Any] | None = None, **fields: Any) -> None:
        # What makes this year's client maps (``new_live``): in a persisted state every
        # one of them, ``dept_live`` included, is a table of int64 from the state's
        # factory (``ProviderState.live_maps``); None: dicts, department clients per cell.
        self.maps = maps
        if maps is not None:
            self.dept_live = maps()
            for name in CLIENT_MAPS:
                setattr(self, name, maps())
        # line key → line_id of the accepted, uncredited zvt-mismatching debits, in
        # arrival order (explain's first ten, SPEC §8.3), at most MISMATCH_IDS_KEPT: the
        # ids ride in the checkpoint's years record, which must stay far below a Kafka
        # record's limit. Line ids are the provider's references, not client data.
        self.mismatch_ids: dict[int | str, str] = {}
        # tally name → net count of the lines it counts (see TALLIES)
        self.tallies: dict[str, int] = {}
        # The engine's cache, not an indicator: the range of net_cents x 10,000 in which
        # no ceiling alert of this year changes state (Engine._band). Empty until the
        # engine first computes it, so the first line takes the full check.
        self.band_low = math.inf
        self.band_high = -math.inf
        # The engine's cache too: what the structural rules last judged this year on
        # (Engine._evaluate); None until they first do.
        self.settled: tuple[Any, ...] | None = None
        for name, value in fields.items():
            if name not in _FIELDS:
                raise TypeError(f"YearState has no field {name!r}")
            setattr(self, name, value)

    def new_live(self) -> Any:
        """An empty client map of the kind this year keeps (``maps``'s, or a dict)."""
        maps = self.maps
        return {} if maps is None else maps()

    def _fields(self) -> tuple[Any, ...]:
        """The compared fields, client maps as dicts (C tables compare by identity)."""
        out = [getattr(self, name) for name in _FIELDS]
        for i, name in enumerate(_FIELDS):
            if name in CLIENT_MAPS:
                out[i] = dict(out[i].items())
            elif name == "adhd":
                out[i] = {q: dict(m.items()) for q, m in out[i].items()}
        return tuple(out)

    def __eq__(self, other: object) -> bool:
        if type(other) is not YearState:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"YearState({shown})"

    def __deepcopy__(self, memo: dict[int, Any]) -> YearState:
        # the copy's client maps come from the same factory, filled pair by pair: tables
        # of int64 (C or off-heap) have no deepcopy
        out = YearState(maps=self.maps)
        if self.dept_live is not None:
            live = out.new_live() if out.dept_live is None else out.dept_live
            out.dept_live = _fill(live, self.dept_live.items())
        for name in _FIELDS:
            if name in CLIENT_MAPS:
                _fill(getattr(out, name), getattr(self, name).items())
            elif name == "adhd":
                out.adhd = {q: _filled(out, m.items()) for q, m in self.adhd.items()}
            else:
                setattr(out, name, copy.deepcopy(getattr(self, name), memo))
        out.band_low, out.band_high = self.band_low, self.band_high
        return out

    def _tally(self, flags: int, sign: int) -> None:
        tallies = self.tallies
        for bit, name in TALLIES.items():
            if flags & bit:
                n = tallies.get(name, 0) + sign
                if n:
                    tallies[name] = n
                else:  # none held at 0: a state and its restored copy compare equal
                    del tallies[name]

    def tally(self, name: str) -> int:
        """The net count of a rule's tally (0 before its first line)."""
        return self.tallies.get(name, 0)

    # Derived ratios: None where the denominator is zero ("undefined" in SPEC §4).
    @property
    def group_share(self) -> float | None:
        return _ratio(self.group_consults, self.consults)

    @property
    def group_over2_share(self) -> float | None:
        return _ratio(self.group_over2, self.group_consults)

    @property
    def group_ge4_share(self) -> float | None:
        return _ratio(self.group_ge4, self.group_consults)

    @property
    def clinical_detox_share(self) -> float | None:
        return _ratio(self.detox_clinical, self.detox_clinical + self.detox_ambulant)

    @property
    def digital_share(self) -> float | None:
        return _ratio(self.digital, self.consults)

    # Distinct clients (SPEC §8.4), credit-aware.
    @property
    def detox_clients_all(self) -> int:
        return len(self.clients_detox)

    @property
    def detox_clients_clinical(self) -> int:
        return len(self.clients_clinical)

    @property
    def consult_clients(self) -> int:
        return len(self.clients_consult)

    @property
    def digital_clients(self) -> int:
        return len(self.clients_digital)

    @property
    def clinical_detox_client_share(self) -> float | None:
        return _ratio(len(self.clients_clinical), len(self.clients_detox))

    @property
    def digital_client_share(self) -> float | None:
        return _ratio(len(self.clients_digital), len(self.clients_consult))

    def mismatch_line_ids(self, first: int = 10) -> list[str]:
        """The line ids of the first ``first`` uncredited mismatching debits."""
        return list(itertools.islice(self.mismatch_ids.values(), first))

    def adhd_clients(self, quarter: int) -> int:
        return len(self.adhd.get(quarter, ()))

    def adhd_quarters(self) -> list[int]:
        """Quarters that had ADHD lines (kept even when credits emptied them)."""
        return sorted(self.adhd)

    def to_json(self, clients: bool = True) -> dict[str, Any]:
        """The year by field name; a tally only while non-zero (absent reads as 0).

        ``clients=False`` leaves out the distinct-client maps (``client_maps``), one
        entry per client, and keeps only which quarters had ADHD lines: a checkpoint
        writes the maps as packed arrays in chunks of their own (streams/store/codec.py),
        since a large provider's would outgrow a Kafka message."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        out["by_month"] = list(self.by_month)
        if clients:
            # sorted: the same clients give the same record, whatever order the journal
            # replayed their debits and credits in
            out["adhd"] = {str(q): sorted(live.items()) for q, live in self.adhd.items()}
            for name in CLIENT_MAPS:
                out[name] = sorted(getattr(self, name).items())
            if self.dept_live is not None:
                out[DEPT_LIVE] = sorted(self.dept_live.items())
            else:
                out["dept_clients"] = {
                    str(k): sorted(cell[4].items()) for k, cell in sorted(self.dept_cells.items())
                }
        else:
            out["adhd_quarters"] = sorted(self.adhd)
        # arrival order is the point: not sorted
        out["mismatch_ids"] = [[key, line_id] for key, line_id in self.mismatch_ids.items()]
        if self.tallies:
            out["tallies"] = dict(self.tallies)
        out["dept_cells"] = [[key, *cell[:4]] for key, cell in sorted(self.dept_cells.items())]
        return out

    def client_maps(self) -> Iterator[tuple[str, dict[Client, int]]]:
        """The distinct-client maps by name: ``adhd1``..``adhd4`` (the quarters that
        had ADHD lines), then ``CLIENT_MAPS``, then the department cells' clients
        (``dept_live``, or each cell's ``dept<cell key>`` keyed by identifiers)."""
        for quarter in sorted(self.adhd):
            yield f"adhd{quarter}", self.adhd[quarter]
        for name in CLIENT_MAPS:
            yield name, getattr(self, name)
        if self.dept_live is not None:
            yield DEPT_LIVE, self.dept_live
        else:
            for key in sorted(self.dept_cells):
                yield f"{DEPT_MAP}{key}", self.dept_cells[key][4]

    def client_map(self, name: str) -> dict[Client, int]:
        """The map ``client_maps`` names ``name`` (an ADHD quarter's or a department
        cell's made if missing)."""
        if name in CLIENT_MAPS:
            live: dict[Client, int] = getattr(self, name)
            return live
        if name == DEPT_LIVE and self.dept_live is not None:
            table: dict[Client, int] = self.dept_live
            return table
        if name.startswith(DEPT_MAP) and name[len(DEPT_MAP) :].isdigit():
            key = int(name[len(DEPT_MAP) :])
            cell = self.dept_cells.get(key)
            if cell is None:
                cell = self.dept_cells[key] = [0, 0, 0, 0, {}]
            found: dict[Client, int] = cell[4]
            return found
        quarter = int(name[4:]) if name.startswith("adhd") and name[4:].isdigit() else 0
        if not 1 <= quarter <= 4:
            raise ValueError(f"no client map {name!r}")
        by_quarter: Any = self.adhd.get(quarter)
        if by_quarter is None:
            by_quarter = self.adhd[quarter] = self.new_live()
        return by_quarter

    @classmethod
    def from_json(cls, raw: dict[str, Any], maps: Callable[[], Any] | None = None) -> YearState:
        """Read ``to_json``'s record (its client maps empty when it was written
        without them) into client maps from ``maps`` (see ``__init__``). A tally it
        lacks starts at 0: right for a rule
        added before the state held lines it would count, and wrong otherwise (those
        lines are not counted until the state is rebuilt by replay)."""
        state = cls(maps=maps)
        if maps is None and DEPT_LIVE in raw:  # a persisted state's, read alone: in dicts
            state.dept_live = {}
        for name in _COUNTERS:
            setattr(state, name, int(raw[name]))
        by_month = [int(c) for c in raw["by_month"]]
        if len(by_month) != 12:
            raise ValueError(f"by_month holds {len(by_month)} months, not 12")
        state.by_month = by_month
        if "adhd" in raw:
            state.adhd = {int(q): _filled(state, pairs) for q, pairs in raw["adhd"].items()}
        else:  # written without its client maps (``to_json(clients=False)``)
            state.adhd = {int(q): state.new_live() for q in raw["adhd_quarters"]}
        for name in CLIENT_MAPS:
            _fill(getattr(state, name), raw.get(name, ()))
        state.mismatch_ids = {key: str(line_id) for key, line_id in raw["mismatch_ids"]}
        state.tallies = {str(name): int(n) for name, n in raw.get("tallies", {}).items()}
        state.dept_cells = {
            int(row[0]): [*(int(n) for n in row[1:5]), {} if state.dept_live is None else None]
            for row in raw["dept_cells"]
        }
        dept = {f"{DEPT_MAP}{key}": pairs for key, pairs in raw.get("dept_clients", {}).items()}
        if DEPT_LIVE in raw:
            dept[DEPT_LIVE] = raw[DEPT_LIVE]
        for name, pairs in dept.items():
            _fill(state.client_map(name), pairs)
        return state


def _filled(ys: YearState, pairs: Iterable[tuple[Any, int]]) -> Any:
    """A new client map of ``ys``'s kind holding ``pairs``."""
    return _fill(ys.new_live(), pairs)


def _fill(live: Any, pairs: Iterable[tuple[Any, int]]) -> Any:
    for client, n in pairs:
        live[client] = n
    return live


# ``ProviderState.dept_of``: a department id above STAY_BITS bits of stay days.
STAY_BITS = 10
STAY_MASK = (1 << STAY_BITS) - 1
DEPT_MAP = "dept"  # ``client_maps`` name of a cell's client map: "dept<cell key>"
DEPT_LIVE = "dept_live"  # ... and of a persisted state's one table of them
_MIX = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads cell keys over 60 bits
_KEY_MASK = (1 << 60) - 1
kernel.configure(
    consult=CONSULT,
    digital=DIGITAL,
    group=GROUP,
    group_over2=GROUP_OVER2,
    group_ge4=GROUP_GE4,
    detox_clinical=DETOX_CLINICAL,
    detox_ambulant=DETOX_AMBULANT,
    mismatch=MISMATCH,
    adhd=ADHD,
    tally_mask=TALLY_MASK,
    stay_bits=STAY_BITS,
    mix=_MIX,
    key_mask=_KEY_MASK,
)


def dept_cell(dept_id: int, month: int) -> int:
    """The key of a department's service month (1..12) in ``YearState.dept_cells``."""
    return dept_id << 4 | month - 1


def dept_client(cell: int, client: int) -> int:
    """A client's key in ``YearState.dept_live``: its 60-bit key XOR the cell's key
    spread over 60 bits (two pairs collide with about the probability that two
    clients' keys do)."""
    return client ^ ((cell + 1) * _MIX & _KEY_MASK)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None


# The integer indicators, written and read by name.
_COUNTERS = (
    "net_cents",
    "lines",
    "consults",
    "group_consults",
    "group_ge4",
    "group_over2",
    "digital",
    "detox_clinical",
    "detox_ambulant",
    "mismatch",
)
# Every compared field (``YearState.__eq__``): not the band (the engine's cache) nor
# ``dept_live`` (the cells' clients, kept apart in one table when persisted) nor
# ``maps`` (where the client maps live, not what they hold).
_FIELDS = (
    *_COUNTERS,
    "by_month",
    "adhd",
    *CLIENT_MAPS,
    "mismatch_ids",
    "tallies",
    "dept_cells",
)


# A subset's lines in a line index entry (``state.pack_entry``): the flag bits any of
# which puts a line in it (0: every line), and for the ADHD quarters the months.
_SUBSET_FLAGS = {"all": 0, "mismatch": MISMATCH, "detox": _DETOX, "consult": CONSULT}
_FLAGS_SHIFT = 24  # state.pack_entry's layout (kernel.dims_cells reads the rest)
_CREDITED = 1 << 44  # state.CREDITED (state imports this module)


def _subset_bits(subset: str) -> tuple[int, int]:
    """(flag bits, months bit set) that put a line index entry in ``subset``."""
    mask = _SUBSET_FLAGS.get(subset)
    if mask is not None:
        return mask << _FLAGS_SHIFT, 0
    # adhd1..adhd4: the ADHD lines of a quarter's months (0-based)
    first = 3 * (int(subset[4:]) - 1)
    return ADHD << _FLAGS_SHIFT, 0b111 << first


def dims_cells(index: Any, subset: str, n_dims: int) -> dict[int, list[int]]:
    """The uncredited entries of ``subset`` (``SUBSETS``) in a year's line index,
    summed by dims id (below ``n_dims``, the provider's) → [cents, lines]. One pass
    over the index (compiled: ``kernel.dims_cells``), at a transition only (never per
    line)."""
    need, months = _subset_bits(subset)
    # every line but a credited one; of a subset, only those with one of its flags
    return kernel.dims_cells(index, _CREDITED, need, months, n_dims)


# Breakdown dimension → its place in a dims triple (``ProviderState.dims``).
DIMENSIONS = {"setting": 0, "department": 1, "prestatie_code": 2}
TOP = 5  # entries per dimension in a breakdown


def breakdown(
    st: ProviderState, year: int, subset: str, dimensions: Iterable[str]
) -> list[dict[str, Any]]:
    """The lines of ``subset`` (``SUBSETS``) of ``st``'s service ``year``, grouped by
    each of ``dimensions`` (``DIMENSIONS``): per dimension the ``TOP`` keys with the
    most net cents (ties by key, a missing field last), each ``{"by", "key",
    "cents", "lines"}``, key None for a line without that field (SPEC §8.3).

    Summed from the year's line index when asked (``kernel.dims_groups``: the pass
    of ``dims_cells`` and the grouping in one call): net of credits, as a credited
    entry is marked. A year whose index the retention policy dropped has no
    breakdown."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; one of {', '.join(SUBSETS)}")
    dimensions = tuple(dimensions)
    index = st.lines.get(year)
    places = tuple(DIMENSIONS[by] for by in dimensions)
    if index is None:
        groups: list[dict[Any, list[int]]] = [{} for _ in places]
    else:  # one compiled pass; a falsy field (setting 0: the overflow dims) is None
        need, months = _subset_bits(subset)
        groups = kernel.dims_groups(index, _CREDITED, need, months, st.dims, places)
    out: list[dict[str, Any]] = []
    for by, sums in zip(dimensions, groups, strict=True):
        ranked = sorted(sums.items(), key=lambda kv: (-kv[1][0], kv[0] is None, kv[0] or 0))
        out += [{"by": by, "key": k, "cents": c, "lines": n} for k, (c, n) in ranked[:TOP]]
    return out
