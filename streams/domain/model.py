"""The compact facts of one accepted declaration line, and the outcome counters.

A declaration line arrives as a JSON object of some twenty fields; the indicators
need only a handful of them. ``Line`` keeps exactly those, with the boolean facts
folded into one integer of flag bits, so applying a line (or reversing it) is a few
integer additions and a credit can subtract exactly what its debit added.
"""

from __future__ import annotations

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


class Line(NamedTuple):
    """What an accepted line contributes; everything else of the event is dropped."""

    event_id: str
    line_id: str
    credit: bool
    provider: str
    year: int
    quarter: int  # 1..4 of service_date
    client: str | None  # client_ref, kept only for ADHD lines (distinct counting)
    flags: int
    amount_cents: int
    event_time: float  # submitted_at as unix seconds
    region: str


# Outcome of a line (SPEC §2 acceptance, in order).
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
DUPLICATE_LINE = "duplicate_line"
DUPLICATE_CREDIT = "duplicate_credit"

# Dead-letter reasons.
INVALID_JSON = "invalid_json"
SCHEMA = "schema"
BSN_LIKE = "bsn_like_client_ref"
ORPHAN_CREDIT = "orphan_credit"
PROVIDER_MISMATCH = "batch_provider_mismatch"
INVALID_BATCH = "invalid_batch"
# Not a SPEC §2 code: a line of a service year whose line index the retention policy
# dropped (docs/operations.md, "Retention") cannot be judged, so it is refused.
LINE_INDEX_EXPIRED = "line_index_expired"
REJECT_REASONS = (
    INVALID_JSON,
    SCHEMA,
    BSN_LIKE,
    ORPHAN_CREDIT,
    PROVIDER_MISMATCH,
    INVALID_BATCH,
    LINE_INDEX_EXPIRED,
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

    def add(self, other: Counts) -> None:
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.duplicate_line += other.duplicate_line
        self.duplicate_credit += other.duplicate_credit
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

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


def parse_time(value: str) -> float:
    """RFC 3339 timestamp with offset → unix seconds."""
    return datetime.fromisoformat(value).timestamp()


def year_quarter(service_date: str) -> tuple[int, int]:
    """``YYYY-MM-DD`` (already a valid date) → (year, quarter 1..4)."""
    if not service_date.isascii():  # \d in a date format also matches other scripts' digits
        raise ValueError("service_date must use ASCII digits")
    day = date.fromisoformat(service_date)  # a real calendar day (the format check is lax)
    return day.year, (day.month + 2) // 3


def format_time(ts: float) -> str:
    """Unix seconds → RFC 3339 in UTC with a ``Z`` (the alert event's form)."""
    text = datetime.fromtimestamp(ts, UTC).isoformat()
    return text.replace("+00:00", "Z")
