"""``claimwatch validate``: check archive files against the schemas, line by line.

Declaration files are judged by the same checks as the pipeline's first steps
(``invalid_json``, ``schema``, ``bsn_like_client_ref``, ``batch_provider_mismatch``),
including the engine's own reading of the dates and timestamps that the schema's
format checks let through (29 February of a common year, non-ASCII digits); contract
files against ``contract.v1.json`` and the engine's reading of ``updated_at``. The kind is taken from each line's ``schema`` field unless
``--kind`` says otherwise. Client references are never printed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson

from streams.domain import schemas
from streams.domain.acceptance import is_bsn_like
from streams.domain.contracts import ContractError, parse_contract
from streams.domain.model import (
    BSN_LIKE,
    INVALID_BATCH,
    INVALID_JSON,
    PROVIDER_MISMATCH,
    SCHEMA,
    parse_time,
    year_quarter,
)
from streams.replay.files import iter_lines


@dataclass(slots=True)
class ValidationReport:
    files: int = 0
    lines: int = 0
    bad: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        if not self.bad:
            return f"{self.lines:,} lines in {self.files} file(s): all valid"
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(self.by_reason.items()))
        return (
            f"{self.bad:,} of {self.lines:,} lines in {self.files} file(s) are invalid ({reasons})"
        )


def line_problem(obj: object, kind: str) -> tuple[str, str] | None:
    """(reason, detail) for a decoded line, or None when it is valid."""
    if not isinstance(obj, dict):
        return INVALID_JSON, f"a JSON {type(obj).__name__}, not an object"
    if kind == "auto":
        tag = obj.get("schema")
        kind = (
            "contract"
            if tag == "ggz.contract/1"
            else "batch"
            if tag == "ggz.declaration-batch/1"
            else "declaration"
        )
    if kind == "contract":
        try:
            parse_contract(obj)
        except ContractError as exc:
            return SCHEMA, str(exc)
        return None
    if kind == "batch":
        problem = schemas.check(schemas.BATCH, obj)
        if problem:
            return INVALID_BATCH, problem
        envelope = obj["provider_agb"]
        for i, line in enumerate(obj["lines"]):
            sub = line_problem(line, "declaration")
            if sub is None and line["provider_agb"] != envelope:
                agb = line["provider_agb"]
                sub = PROVIDER_MISMATCH, f"line of provider {agb} in a message of {envelope}"
            if sub:
                return sub[0], f"lines[{i}]: {sub[1]}"
        return None
    problem = schemas.check(schemas.DECLARATION, obj)
    if problem:
        return SCHEMA, problem
    # What the schema's format checks let through but the engine refuses as `schema`
    # (acceptance.Decoder.check reads both fields with these functions).
    try:
        year_quarter(obj["service_date"])
    except ValueError as exc:
        return SCHEMA, f"service_date: {exc}"
    try:
        parse_time(obj["submitted_at"])
    except ValueError as exc:
        return SCHEMA, f"submitted_at: {exc}"
    if is_bsn_like(obj["client_ref"]):
        return BSN_LIKE, "client_ref has the shape of a BSN (9 digits)"
    return None


def validate_files(
    files: Sequence[str | Path], *, kind: str = "auto", max_report: int = 1000, out: TextIO
) -> ValidationReport:
    report = ValidationReport()
    for path in files:
        report.files += 1
        for number, raw in iter_lines(path):
            report.lines += 1
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                found: tuple[str, str] | None = (INVALID_JSON, str(exc))
            else:
                found = line_problem(obj, kind)
            if found is None:
                continue
            report.bad += 1
            report.by_reason[found[0]] += 1
            if report.bad <= max_report:
                out.write(f"{path}:{number}: {found[0]}: {found[1]}\n")
            elif report.bad == max_report + 1:
                out.write(f"… more bad lines not shown (--max-report {max_report})\n")
    return report
