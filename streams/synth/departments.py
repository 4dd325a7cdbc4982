"""The departments of the generated institutions and their register (SPEC §9).

An institution has the teams the cruciale-ggz note names: a crisis team (acute
care), two FACT teams (outreach), two clinical wards, a secured ward where it does
forensic care, a high-specialist unit (setting 8) at some, and teams outside the
cruciale categories (ambulant, elderly care, addiction care). A line's department
follows from its activity, setting and diagnosis; where a kind of care has two teams
or wards, the client decides (a stable hash of its reference), so a client stays
with one team. No random draw is taken for that: the seeded generator's other
choices stay as they were.

A planted department change (``Provider.moves``) sends the lines of a team to another
from a month on: a crisis team losing most of its clients, a ward that closes, the
only secured ward of a region that closes. ``register`` is the register file
``departments.ndjson``, every institution's departments with their category and the
provider's region.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from streams.synth.tables import ADDICTION, STAY

CRISIS = "crisisdienst"
FACT = ("fact-noord", "fact-zuid")
WARDS = ("kliniek-a", "kliniek-b")
SECURED = "forensisch"
TOP = "topggz"
ADDICTION_TEAM = "verslavingszorg"
# An institution's departments before plants add any: the crisis team, FACT teams,
# wards and the teams outside the cruciale categories.
BASE = ("ambulant", "ouderen", CRISIS, *FACT, *WARDS)
CATEGORIES = {
    CRISIS: "acute",
    FACT[0]: "outreach",
    FACT[1]: "outreach",
    WARDS[0]: "clinical",
    WARDS[1]: "clinical",
    SECURED: "secured",
    TOP: "hs_ggz",
}
CRISIS_SHARE = 2  # one in this many outreach clients is the crisis team's

# A planted move: (year, first month, department the lines go to, share of clients
# kept in tenths): from that month of that year on, a client of the department whose
# hash is at or above the share goes to the other department.
Move = tuple[int, int, str, int]


def client_hash(ref: str) -> int:
    return zlib.crc32(ref.encode())


def assign(
    has_top: bool,
    has_addiction: bool,
    moves: dict[str, Move],
    y: int,
    m: int,
    other: Callable[[], int],
) -> Callable[[int, int, int, str], str]:
    """``department(activity, setting, diagnosis, client_ref)`` of an institution's
    lines of service month ``m`` of ``y``; ``other()`` draws the generator's bit that
    splits the remaining consults between elderly and ambulant care."""

    def department(act: int, setting: int, diag: int, ref: str) -> str:
        h = client_hash(ref)
        if setting in (6, 7):
            dept = SECURED
        elif act == STAY or setting == 5:
            dept = WARDS[h & 1]
        elif setting == 8 and has_top:
            dept = TOP
        elif diag == ADDICTION and has_addiction:
            dept = ADDICTION_TEAM
        elif setting == 4:
            dept = CRISIS if (h >> 1) % CRISIS_SHARE == 0 else FACT[h >> 3 & 1]
        else:
            return "ouderen" if other() == 0 else "ambulant"
        move = moves.get(dept)
        if move is not None and (y, m) >= move[:2] and (h >> 5) % 10 >= move[3]:
            return move[2]
        return dept

    return department


def category(department: str) -> str:
    return CATEGORIES.get(department, "other")


def register(providers: Iterable[Any], first_year: int) -> list[bytes]:
    """The register events of every institution's departments, valid from the start
    of the history, in provider order."""
    updated = f"{first_year}-01-01T00:00:00Z"
    out = []
    for p in providers:
        if not p.institution:
            continue
        for dept in sorted(set(p.departments)):
            event = {
                "schema": "ggz.department/1",
                "provider_agb": p.agb,
                "department": dept,
                "name": f"{p.name} {dept}",
                "category": category(dept),
                "region": p.region,
                "version": 1,
                "updated_at": updated,
            }
            out.append(orjson.dumps(event))
    return out


# The departments before crisis team, FACT teams and wards were told apart: a
# malformed line's truncation is drawn on the length it had with these names
# (writer.py), so the seeded generator's other draws, and its planted cases, stay as
# they were.
_LEGACY = {
    CRISIS: "fact",
    FACT[0]: "fact",
    FACT[1]: "fact",
    WARDS[0]: "kliniek",
    WARDS[1]: "kliniek",
}


def legacy_delta(department: str | None) -> int:
    """Bytes the line would be shorter (negative: longer) under the legacy name."""
    if department is None or department not in _LEGACY:
        return 0
    return len(_LEGACY[department]) - len(department)
