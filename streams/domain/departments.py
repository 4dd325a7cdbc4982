"""The department register (SPEC §9, ``schemas/department.v1.json``) and a department's
cruciale-ggz category.

A provider's departments are the ``department`` field of its lines. The register
topic ``ggz.departments.v1`` (key ``<agb>:<department>``, compacted) names them,
places them in an IZA region and gives their category; the latest version wins, as
for contracts. A department the register does not name gets its category from the
settings of its lines (``category_of_settings``). What a department did per
service month is provider state (``YearState.dept_cells``); this module holds
only the register and the category decision.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from streams.domain import schemas
from streams.domain.indicators import dept_cell
from streams.domain.model import parse_time

if TYPE_CHECKING:
    from streams.domain.state import ProviderState

# SPEC §9, in the order the region view lists them; ``other`` is never judged.
CATEGORIES = ("acute", "outreach", "clinical", "secured", "hs_ggz", "hs_hospital", "other")
CRUCIAL = CATEGORIES[:-1]
OTHER = "other"
# A department without a register entry: the category of its lines' setting. A
# department whose lines have several of these settings takes the first in this order
# (a secured ward's lines may include clinical or outreach settings, a FACT team's
# never a secured one): an order, not a majority, so the category follows from which
# settings occur and no line pays for a count.
_BY_SETTING = ((6, "secured"), (7, "secured"), (8, "hs_ggz"), (5, "clinical"), (4, "outreach"))


@dataclass(frozen=True, slots=True)
class Department:
    provider: str
    department: str
    name: str
    category: str
    region: str
    version: int
    updated_at: float  # unix seconds

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.department}"

    @classmethod
    def from_event(cls, obj: dict[str, Any]) -> Department:
        """Build from a register event already checked against ``department.v1.json``."""
        return cls(
            obj["provider_agb"],
            obj["department"],
            obj["name"],
            obj["category"],
            obj["region"],
            obj["version"],
            parse_time(obj["updated_at"]),
        )


class DepartmentError(ValueError):
    """A register event that does not match ``department.v1.json``."""


def parse_department(obj: Any) -> Department:
    problem = schemas.check(schemas.DEPARTMENT, obj)
    if problem is not None:
        raise DepartmentError(problem)
    try:
        return Department.from_event(obj)
    except ValueError as exc:  # a timestamp the schema's format check let through
        raise DepartmentError(f"updated_at: {exc}") from None


def category_of_settings(settings: int) -> str:
    """The category of a department without a register entry, from the bit set of the
    settings its lines had (bit ``1 << setting``): 4 outreach, 5 clinical, 6 and 7
    secured, 8 hs_ggz, else other (several: see ``_BY_SETTING``)."""
    for setting, category in _BY_SETTING:
        if settings >> setting & 1:
            return category
    return OTHER


class DepartmentBook:
    """The current register entry per (provider, department)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Department] = {}
        self.version = 0  # raised by every change: what a reader's cache is keyed by

    def apply(self, entry: Department) -> bool:
        """Store ``entry`` if it is newer than what we have; True when it changed."""
        key = (entry.provider, entry.department)
        current = self._by_key.get(key)
        if current is not None and current.version >= entry.version:
            return False
        self._by_key[key] = entry
        self.version += 1
        return True

    def remove(self, provider: str, department: str) -> None:
        """A register tombstone: the department has no entry any more."""
        if self._by_key.pop((provider, department), None) is not None:
            self.version += 1

    def get(self, provider: str, department: str) -> Department | None:
        return self._by_key.get((provider, department))

    def category(self, provider: str, department: str, settings: int) -> str:
        """The register's category, else the one its lines' settings give."""
        entry = self._by_key.get((provider, department))
        return entry.category if entry is not None else category_of_settings(settings)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Department]:
        return iter(self._by_key.values())


# -- what a provider's departments did, read from its state ------------------------------


def cell(st: ProviderState, dept_id: int, year: int, month: int) -> list[int] | None:
    """[clients, consults, stay days, net cents] of a department's service month, None
    when the month had no accepted line of it."""
    ys = st.years.get(year)
    found = ys.dept_cells.get(dept_cell(dept_id, month)) if ys is not None else None
    return found[:4] if found is not None else None


def clients(st: ProviderState, dept_id: int, year: int, month: int) -> int:
    """Distinct clients of a department in a service month (0 without lines)."""
    ys = st.years.get(year)
    found = ys.dept_cells.get(dept_cell(dept_id, month)) if ys is not None else None
    return found[0] if found is not None else 0


def year_departments(st: ProviderState, year: int, book: DepartmentBook) -> dict[str, Any]:
    """The snapshot's ``departments`` of a provider-year (SPEC §9): per department
    with a line in the year, its category, clients per month that had a line
    (``YYYY-MM``), and the year's consults, stay days and net cents."""
    ys = st.years.get(year)
    if ys is None or not ys.dept_cells:
        return {}
    by_dept: dict[int, dict[str, Any]] = {}
    for key in sorted(ys.dept_cells):
        n, consults, stay_days, cents, _ = ys.dept_cells[key]
        dept_id, month = key >> 4, (key & 15) + 1
        entry = by_dept.get(dept_id)
        if entry is None:
            name = st.departments[dept_id]
            entry = by_dept[dept_id] = {
                "category": book.category(st.provider, name, st.dept_settings(dept_id)),
                "clients_by_month": {},
                "consults": 0,
                "stay_days": 0,
                "net_cents": 0,
            }
        entry["clients_by_month"][f"{year:04d}-{month:02d}"] = n
        entry["consults"] += consults
        entry["stay_days"] += stay_days
        entry["net_cents"] += cents
    return {st.departments[d]: by_dept[d] for d in sorted(by_dept, key=st.departments.__getitem__)}


def month_back(year: int, month: int, back: int) -> tuple[int, int]:
    """The calendar month ``back`` months before (year, month)."""
    index = year * 12 + month - 1 - back
    return index // 12, index % 12 + 1


# How far back ``judged_month`` looks for a month the provider declared care in.
DECLARED_LOOKBACK = 12


def judged_month(
    latest: tuple[int, int], net_by_month: Callable[[int], Sequence[int] | None]
) -> tuple[int, int]:
    """The month the department rules and the region view judge a provider on: its
    latest covered month (SPEC §8.1), or, when the provider declared no care at all
    in that service month (net cents 0), the latest covered month before it in which
    it did, up to ``DECLARED_LOOKBACK`` months back (else ``latest``).

    Why not the latest covered month as such: a provider's watermark also moves on
    late lines and credits of months long past. At the end of a year's archive, or
    while a provider sends only corrections, the latest covered month can be one it
    has declared nothing in yet; judged there, every department would "drop" or
    "stop" at once. A provider that declared nothing in a month is not evidence about
    any one of its departments; a department that falls silent while its provider
    declares other care is. ``net_by_month(year)`` gives a service year's net cents
    per month (None for a year without lines): a provider's state and its
    provider-status values carry the same figures, so a worker reading the status
    topic judges the same month."""
    for back in range(DECLARED_LOOKBACK + 1):
        year, month = month_back(*latest, back)
        months = net_by_month(year)
        if months is not None and months[month - 1] != 0:
            return year, month
    return latest


def state_judged_month(st: ProviderState, latest: tuple[int, int]) -> tuple[int, int]:
    """``judged_month`` of a provider held in state."""
    years = st.years
    return judged_month(latest, lambda y: years[y].by_month if y in years else None)


# The months a view reads at once: department_stopped's silent months (at most 12)
# and the six before them.
VIEW_MONTHS = 18


class DepartmentView:
    """What the department rules see of one provider at one evaluation (SPEC §9):
    its latest covered month, its departments judged (category ≠ other) and their
    clients per month. Built once per evaluation of a provider, never per line.

    ``judge_year`` is the provider-year whose evaluation judges the departments:
    the year of the latest covered month, or the provider's last year before it
    when it has no state of that year yet (a provider whose departments all fell
    silent); the findings carry the year of the latest covered month either way.
    ``months`` is how many months up to the latest covered month ``history`` reads
    (the rules need ``VIEW_MONTHS``, the region view seven)."""

    __slots__ = ("_judged", "_months", "book", "judge_year", "latest", "months", "st")

    def __init__(
        self,
        st: ProviderState,
        book: DepartmentBook,
        latest: tuple[int, int],
        months: int = VIEW_MONTHS,
    ) -> None:
        self.st = st
        self.book = book
        self.latest = latest
        self.months = months
        held = [y for y in st.years if y <= latest[0]]
        self.judge_year = max(held) if held else None
        self._judged: list[tuple[str, str, int]] | None = None
        self._months: dict[int, list[int]] = {}  # department id → clients, latest first

    def judged(self) -> list[tuple[str, str, int]]:
        """(department, category, department id) of every department not ``other``;
        worked out once per view (both department rules, every year, ask)."""
        rows = self._judged
        if rows is None:
            st = self.st
            rows = self._judged = []
            for dept_id, name in enumerate(st.departments):
                category = self.book.category(st.provider, name, st.dept_settings(dept_id))
                if category != OTHER:
                    rows.append((name, category, dept_id))
        return rows

    def history(self, dept_id: int) -> list[int]:
        """Clients of a department in the ``months`` months up to the latest covered
        month, latest first: ``history(d)[k]`` is ``clients_back(d, k)``. Both
        department rules read up to 18 months of every department at every
        evaluation: the months are read once per view, and a rule indexes the list."""
        row = self._months.get(dept_id)
        if row is None:
            row = self._months[dept_id] = self._history(dept_id)
        return row

    def clients_back(self, dept_id: int, back: int) -> int:
        """Clients of a department ``back`` months before the latest covered month."""
        row = self.history(dept_id)
        if back < len(row):
            return row[back]
        return clients(self.st, dept_id, *month_back(*self.latest, back))

    def _history(self, dept_id: int) -> list[int]:
        year, month = self.latest
        years = self.st.years
        first = dept_cell(dept_id, 1)  # a month's key is this | (month - 1)
        row: list[int] = []
        index = year * 12 + month - 1
        stop = index - self.months
        while index > stop:  # a service year at a time, its months latest first
            y, m0 = divmod(index, 12)
            ys = years.get(y)
            n = min(m0 + 1, index - stop)
            if ys is None or not ys.dept_cells:
                row += [0] * n
            else:
                cells = ys.dept_cells
                for m in range(m0, m0 - n, -1):
                    found = cells.get(first | m)
                    row.append(found[0] if found is not None else 0)
            index -= n
        return row


def decimal(x: float, language: str = "nl") -> str:
    """A mean with two decimals and grouped thousands: ``1.234,50`` (nl), ``1,234.50``."""
    text = f"{x:,.2f}"
    return text.translate(str.maketrans(",.", ".,")) if language == "nl" else text


@functools.lru_cache(maxsize=4096)
def six_month_mean(total: int) -> float:
    """A six-month sum as the mean an alert's explain shows: half-even, 2 decimals
    (cached: both department rules ask it of every department at every evaluation)."""
    return float(round(Fraction(total, 6), 2))


# Purchaser text: the categories as the sector's note names them.
CATEGORY_NAMES: dict[str, dict[str, str]] = {
    "nl": {
        "acute": "acute ggz",
        "outreach": "outreachende zorg",
        "clinical": "klinische zorg",
        "secured": "beveiligde zorg",
        "hs_ggz": "hoogspecialistische ggz",
        "hs_hospital": "hoogspecialistische ziekenhuisggz",
        "other": "overige zorg",
    },
    "en": {
        "acute": "acute care",
        "outreach": "outreach care",
        "clinical": "clinical care",
        "secured": "secured care",
        "hs_ggz": "high-specialist mental health care",
        "hs_hospital": "high-specialist hospital mental health care",
        "other": "other care",
    },
}
