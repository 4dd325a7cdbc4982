"""What a caller asks of the generator and what it gets back: the options, the
summary of a written history, a planted anomaly, one event of a streamed history."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    providers: int = 40
    lines: int = 200_000  # total declaration lines (debits + credits + malformed)
    years: tuple[int, ...] = (2025, 2026)
    seed: int = 1
    gzip: bool = False  # write declarations.ndjson.gz instead of .ndjson
    malformed_rate: float = 0.0005  # share of deliberately bad lines


@dataclass(frozen=True, slots=True)
class PlantedAnomaly:
    """An anomaly planted on purpose; `expected` holds what a correct monitor sees."""

    provider_agb: str
    provider_name: str
    year: int
    rule: str
    case: str  # the planted case: the rule's name unless a rule has several
    alert_id: str
    when: str  # YYYY-MM of the alert's first firing transition
    expected: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlantedQuiet:
    """A case planted so that a rule must NOT fire; `seen` is what the engine saw."""

    provider_agb: str
    provider_name: str
    year: int
    rule: str
    case: str
    alert_id: str
    seen: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    declarations_path: Path
    contracts_path: Path
    planted_path: Path
    providers: int
    lines: int  # lines written to the declarations file
    contracts: int  # contract events written
    counts: dict[str, int]  # lines by kind (see KINDS); sums to `lines`
    acceptance: dict[str, Any]  # expected counts of a correct consumer (SPEC §6 snapshot)
    planted: tuple[PlantedAnomaly, ...]
    must_not_fire: tuple[PlantedQuiet, ...]
    skipped: tuple[str, ...]  # anomalies that could not be planted at this size, with why
    departments_path: Path | None = None  # the department register (SPEC §9)
    departments: int = 0  # register events written

    def describe(self) -> str:
        """A few lines for the command line: what was written and what was planted."""
        kinds = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in self.counts.items() if n)
        out = [
            f"{self.declarations_path}: {self.lines:,} lines ({kinds})",
            f"{self.contracts_path}: {self.contracts:,} contract events "
            f"for {self.providers} providers",
        ]
        if self.departments_path is not None:
            out.append(f"{self.departments_path}: {self.departments:,} department register events")
        out += [
            f"{self.planted_path}: {len(self.planted)} planted anomalies",
        ]
        out += [f"  {a.alert_id}  {a.provider_name}  (from {a.when})" for a in self.planted]
        out += [f"  must not fire: {q.alert_id}  {q.provider_name}" for q in self.must_not_fire]
        out += [f"  not planted: {s}" for s in self.skipped]
        return "\n".join(out)


class HistoryItem(NamedTuple):
    """One event of the history: a declaration line or a contract event."""

    kind: str  # "declaration" | "contract"
    key: str  # provider AGB for declarations, "<agb>:<year>" for contracts
    value: bytes  # one JSON object (or a deliberately malformed line), no newline


# Line kinds counted in GenerateSummary.counts.
KINDS = (
    "debit",  # first declaration of a line
    "correction",  # corrected re-declaration after a credit (a debit with a new line_id)
    "credit",  # reverses an earlier debit
    "redelivery",  # exact copy of an earlier line, same event_id
    "duplicate_line",  # debit resent for an already debited line_id, new event_id
    "duplicate_credit",  # credit resent for an already credited line_id, new event_id
    "orphan_credit",  # credit for a line_id that was never debited
    "malformed_invalid_json",
    "malformed_missing_field",
    "malformed_bsn_client_ref",
)

MIN_LINES = 100


def check_options(o: GenerateOptions) -> None:
    """Refuse options no history can be drawn for, with a `ValueError` saying why."""
    if o.providers < 1:
        raise ValueError("providers must be at least 1")
    if o.lines < MIN_LINES:
        raise ValueError(f"lines must be at least {MIN_LINES}")
    if not o.years or any(not 2001 <= y <= 2099 for y in o.years):
        raise ValueError("years must be a non-empty list of calendar years")
    if not 0.0 <= o.malformed_rate <= 0.5:
        raise ValueError("malformed_rate must lie between 0 and 0.5")
    if math.isnan(o.malformed_rate):
        raise ValueError("malformed_rate must be a number")
