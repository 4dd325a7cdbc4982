"""Per provider-year indicator state (SPEC §4) and its derived ratios.

``YearState`` holds net counters only: applying a line with sign +1 and later with
sign −1 returns every field to what it was, which is what makes credits exact.
Distinct ADHD clients are counted per quarter as client → number of live lines, so
a credit removes a client exactly when its last uncredited ADHD line goes. A client
is its 60-bit key (``state.key_of`` of the ``client_ref``) in a streaming worker's
state, so the reference itself never enters the persisted state or its changelog;
the offline replay, which persists nothing, counts the references themselves.

Besides the indicators of SPEC §4, named fields here, a year keeps the tallies rules
declare (``rules.base.Tally``), by name, from the flag bits the registry allotted
them (``TALLIES``). ``to_json`` writes every field by name, so a field or tally added
later does not shift the others in a checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

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

# Flag bit → name of the tally it counts; the rule registry fills it
# (streams/domain/rules/registry.py). Empty unless some rule declares a tally.
TALLIES: dict[int, str] = {}


@dataclass(slots=True)
class YearState:
    net_cents: int = 0
    lines: int = 0
    consults: int = 0
    group_consults: int = 0
    group_ge4: int = 0
    group_over2: int = 0
    digital: int = 0
    detox_clinical: int = 0
    detox_ambulant: int = 0
    mismatch: int = 0
    # quarter (1..4) → client (key) → live ADHD lines of that client in the quarter
    adhd: dict[int, dict[int | str, int]] = field(default_factory=dict)
    # tally name → net count of the lines it counts (see TALLIES)
    tallies: dict[str, int] = field(default_factory=dict)
    # The engine's cache, not an indicator: the range of net_cents x 10,000 in which
    # no ceiling alert of this year changes state (Engine._band). Empty until the
    # engine first computes it, so the first line takes the full check.
    band_low: float = field(default=math.inf, compare=False, repr=False)
    band_high: float = field(default=-math.inf, compare=False, repr=False)

    def apply(  # noqa: C901 - per line (bench offline): one pass of flat branches, no calls
        self, flags: int, amount_cents: int, quarter: int, client: int | str | None, sign: int
    ) -> None:
        self.net_cents += sign * amount_cents
        self.lines += sign
        if flags & CONSULT:
            self.consults += sign
            if flags & DIGITAL:
                self.digital += sign
            if flags & GROUP:
                self.group_consults += sign
                if flags & GROUP_OVER2:
                    self.group_over2 += sign
                    if flags & GROUP_GE4:
                        self.group_ge4 += sign
        if flags & DETOX_CLINICAL:
            self.detox_clinical += sign
        elif flags & DETOX_AMBULANT:
            self.detox_ambulant += sign
        if flags & MISMATCH:
            self.mismatch += sign
        if flags & ADHD and client is not None:
            clients = self.adhd.get(quarter)
            if clients is None:
                clients = self.adhd[quarter] = {}
            live = clients.get(client, 0) + sign
            if live > 0:
                clients[client] = live
            else:
                clients.pop(client, None)
        if flags & TALLY_MASK:  # only when a rule declares a tally
            self._tally(flags, sign)

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

    def adhd_clients(self, quarter: int) -> int:
        return len(self.adhd.get(quarter, ()))

    def adhd_quarters(self) -> list[int]:
        """Quarters that had ADHD lines (kept even when credits emptied them)."""
        return sorted(self.adhd)

    def to_json(self) -> dict[str, Any]:
        """The year by field name; a tally only while non-zero (absent reads as 0)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        # sorted: the same clients give the same record, whatever order the journal
        # replayed their debits and credits in
        out["adhd"] = {str(q): sorted(clients.items()) for q, clients in self.adhd.items()}
        if self.tallies:
            out["tallies"] = dict(self.tallies)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> YearState:
        """Read ``to_json``'s record. A tally it lacks starts at 0: right for a rule
        added before the state held lines it would count, and wrong otherwise (those
        lines are not counted until the state is rebuilt by replay)."""
        state = cls()
        for name in _COUNTERS:
            setattr(state, name, int(raw[name]))
        state.adhd = {int(q): dict(pairs) for q, pairs in raw["adhd"].items()}
        state.tallies = {str(name): int(n) for name, n in raw.get("tallies", {}).items()}
        return state


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None


# The integer indicators, written and read by name (every compared field but the
# ADHD clients and the tallies).
_COUNTERS = tuple(
    f.name for f in fields(YearState) if f.compare and f.name not in ("adhd", "tallies")
)
