"""The compact facts of one accepted declaration line, and the outcome counters.

A declaration line arrives as a JSON object of some twenty fields; the indicators
need only a handful of them. ``Line`` keeps exactly those, with the boolean facts
folded into one integer of flag bits, so applying a line (or reversing it) is a few
integer additions and a credit can subtract exactly what its debit added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import NamedTuple

# Flag bits of a line's contribution to the indicators (SPEC §4).
CONSULT = 1
GROUP = 2  # group consult
GROUP_GE4 = 4  # group consult with >= 4 practitioners
GROUP_OVER2 = 8  # group consult with > 2 practitioners
DIGITAL = 16  # consult with the S01 label
DETOX_CLINICAL = 32
DETOX_AMBULANT = 64
MISMATCH = 128  # zorgvraagtype 1/2 in setting 5/6/8 from 2026
ADHD = 256
# Bits 9..15 are the tallies rules declare (streams/domain/rules/base.py ``Tally``):
# the rule registry allots them, the decoder sets them, ``YearState`` counts them.
# A line-index entry holds 16 flag bits (streams/domain/state.py).
FIRST_TALLY_BIT = 9
LAST_TALLY_BIT = 15
TALLY_MASK = (1 << LAST_TALLY_BIT + 1) - (1 << FIRST_TALLY_BIT)


def is_agb(value: object) -> bool:
    """An AGB code: exactly 8 ASCII digits (a message key, an envelope's provider, a
    line's ``provider_agb``). ``isdigit`` alone admits other scripts' digits."""
    return isinstance(value, str) and len(value) == 8 and value.isdigit() and value.isascii()


# A line's (setting, department, prestatie_code, stay_days): the dimensions of a
# breakdown, and the stay days of a stay line (None otherwise), which a department's
# month counts (SPEC §9) and a credit must take back exactly; the state interns it.
Dims = tuple[int, str | None, str | None, int | None]

# The lines whose client is kept (``Line.client``, ``ProviderState.clients``): those
# that count a distinct client (SPEC §4 ADHD, §8.4 consult and detox clients), and
# every line with a department (SPEC §9: a department's distinct clients per month).
COUNTS_CLIENT = ADHD | CONSULT | DETOX_CLINICAL | DETOX_AMBULANT


class Line(NamedTuple):
    """What an accepted line contributes; everything else of the event is dropped."""

    event_id: str
    line_id: str
    credit: bool
    provider: str
    year: int
    month: int  # 1..12 of service_date (SPEC §8.1 service month)
    client: str | None  # client_ref, kept only for ``COUNTS_CLIENT`` or department lines
    flags: int
    amount_cents: int
    event_time: float  # submitted_at as unix seconds
    # The dimensions of a breakdown (SPEC §8.3): the line's (setting, department,
    # prestatie_code, stay_days), None for a field the line lacks; the state interns it.
    dims: Dims

    @property
    def quarter(self) -> int:
        """1..4 of service_date."""
        return (self.month + 2) // 3

    @property
    def setting(self) -> int:
        return self.dims[0]

    @property
    def department(self) -> str | None:
        return self.dims[1]

    @property
    def prestatie(self) -> str | None:
        return self.dims[2]

    @property
    def stay_days(self) -> int | None:
        return self.dims[3]


# Outcome of a line (SPEC §2 acceptance, in order).
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
DUPLICATE_LINE = "duplicate_line"
DUPLICATE_CREDIT = "duplicate_credit"

# Dead-letter reasons.
INVALID_JSON = "invalid_json"
SCHEMA = "schema"
BSN_LIKE = "bsn_like_client_ref"
IMPLAUSIBLE_TIME = "implausible_time"  # SPEC §12, acceptance step 2b
ORPHAN_CREDIT = "orphan_credit"
PROVIDER_MISMATCH = "batch_provider_mismatch"
INVALID_BATCH = "invalid_batch"
# Not a SPEC §2 code: a line of a service year whose line index the retention policy
# dropped (docs/operations.md, "Retention") cannot be judged, so it is refused.
LINE_INDEX_EXPIRED = "line_index_expired"
# SPEC §12: judging the line (or decoding the message) raised; detail = exception class.
PROCESSING_ERROR = "processing_error"
REJECT_REASONS = (
    INVALID_JSON,
    SCHEMA,
    IMPLAUSIBLE_TIME,
    BSN_LIKE,
    ORPHAN_CREDIT,
    PROVIDER_MISMATCH,
    INVALID_BATCH,
    LINE_INDEX_EXPIRED,
    PROCESSING_ERROR,
)


@dataclass(slots=True)
class Counts:
    """Outcome counters, summed over providers (and workers) for the snapshot."""

    accepted: int = 0
    duplicate: int = 0
    duplicate_line: int = 0
    duplicate_credit: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def uncount(self, outcome: str) -> None:
        """Take back one line counted with ``outcome`` (accepted, a duplicate kind or a
        reason): a line whose processing failed after it was counted is counted again
        as ``processing_error`` instead."""
        if outcome in (ACCEPTED, DUPLICATE, DUPLICATE_LINE, DUPLICATE_CREDIT):
            setattr(self, outcome, getattr(self, outcome) - 1)
        elif self.rejected.get(outcome):
            self.rejected[outcome] -= 1
            if not self.rejected[outcome]:
                del self.rejected[outcome]

    def add(self, other: Counts) -> None:
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.duplicate_line += other.duplicate_line
        self.duplicate_credit += other.duplicate_credit
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def copy(self) -> Counts:
        return Counts(
            self.accepted,
            self.duplicate,
            self.duplicate_line,
            self.duplicate_credit,
            dict(self.rejected),
        )

    def since(self, before: Counts) -> Counts:
        """What was counted after ``before`` (a copy of these counts taken earlier)."""
        was = before.rejected
        return Counts(
            self.accepted - before.accepted,
            self.duplicate - before.duplicate,
            self.duplicate_line - before.duplicate_line,
            self.duplicate_credit - before.duplicate_credit,
            {r: n - was.get(r, 0) for r, n in self.rejected.items() if n != was.get(r, 0)},
        )

    def total(self) -> int:
        """Lines counted, whatever their outcome."""
        return (
            self.accepted
            + self.duplicate
            + self.duplicate_line
            + self.duplicate_credit
            + sum(self.rejected.values())
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "duplicate_line": self.duplicate_line,
            "duplicate_credit": self.duplicate_credit,
            "rejected": {r: self.rejected[r] for r in sorted(self.rejected)},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Counts:
        return cls(
            int(raw.get("accepted", 0)),  # type: ignore[call-overload]
            int(raw.get("duplicate", 0)),  # type: ignore[call-overload]
            int(raw.get("duplicate_line", 0)),  # type: ignore[call-overload]
            int(raw.get("duplicate_credit", 0)),  # type: ignore[call-overload]
            dict(raw.get("rejected", {})),  # type: ignore[call-overload]
        )


# What ``format_time`` can write back: datetime's years 1..9999, in UTC.
_FIRST_TIME = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_END_TIME = datetime(9999, 12, 31, tzinfo=UTC).timestamp() + 86_400.0
# RFC 3339 date-time with an offset, in the spelling the schema's format check admits
# (also an offset without its colon); the calendar is left to ``fromisoformat``.
_DATE_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})"
)


def parse_time(value: str) -> float:
    """RFC 3339 timestamp with offset → unix seconds.

    Takes every timestamp the schema's ``date-time`` format admits, also those
    ``datetime.fromisoformat`` refuses: a lowercase ``t`` or ``z``, and second 60 (a
    leap second), which is read as the second after :59 (unix time has no leap
    seconds, so ``2026-06-30T23:59:60Z`` is ``2026-07-01T00:00:00Z``). Raises
    ValueError for a calendar that does not exist (month 13, hour 24, 29 February of
    a common year), non-ASCII digits, and an instant outside the years 1..9999 in
    UTC, which ``format_time`` could not write into an alert.
    """
    try:
        ts = datetime.fromisoformat(value).timestamp()
    except ValueError:
        ts = _parse_unusual(value)  # rare: only the cases above pay for the expression
    if not _FIRST_TIME <= ts < _END_TIME:
        raise ValueError("the instant is outside the years 0001..9999 in UTC")
    return ts


def _parse_unusual(value: str) -> float:
    """``parse_time`` for the spellings ``fromisoformat`` refuses (or a ValueError)."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time with offset: {value!r}")
    day, hour_minute, second, fraction, offset = match.groups()
    leap = second == "60"
    text = (
        f"{day}T{hour_minute}:{'59' if leap else second}{fraction or ''}"
        f"{'Z' if offset in ('Z', 'z') else offset}"
    )
    ts = datetime.fromisoformat(text).timestamp()  # the calendar: month 13, hour 24, …
    return ts + 1.0 if leap else ts


def service_day(service_date: str) -> date:
    """``YYYY-MM-DD`` (the schema's ``date`` format) → the calendar day, or ValueError."""
    if not service_date.isascii():  # \d in a date format also matches other scripts' digits
        raise ValueError("must use ASCII digits")
    return date.fromisoformat(service_date)  # a real calendar day (the format check is lax)


def format_time(ts: float) -> str:
    """Unix seconds → RFC 3339 in UTC with a ``Z`` (the alert event's form)."""
    text = datetime.fromtimestamp(ts, UTC).isoformat()
    return text.replace("+00:00", "Z")
