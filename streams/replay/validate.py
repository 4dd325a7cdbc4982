"""``claimwatch validate``: check archive files against the schemas, line by line.

Declaration files are judged by the engine's own first steps (``Decoder.check``):
``invalid_json`` (also a line nested deeper than ``nesting.MAX_DEPTH``), ``schema``
(including the engine's reading of the dates and timestamps that the schema's format
checks let through: 29 February of a common year, non-ASCII digits),
``implausible_time``, ``bsn_like_client_ref``, ``batch_provider_mismatch``; contract
files against ``contract.v1.json`` and the engine's reading of ``updated_at``. The
kind is taken from each line's ``schema`` field unless ``--kind`` says otherwise. A
line whose checking raises is reported as ``processing_error`` (the exception's
class) and the files are read on. Client references are never printed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TextIO

import orjson

from streams.domain import schemas
from streams.domain.acceptance import TOO_DEEP, Decoder, Rejection
from streams.domain.contracts import ContractError, parse_contract
from streams.domain.model import INVALID_BATCH, INVALID_JSON, PROCESSING_ERROR, SCHEMA
from streams.domain.nesting import too_deep
from streams.domain.policy import Policy, load_policy
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


@cache
def _default_decoder() -> Decoder:
    return Decoder(load_policy())


def line_problem(obj: object, kind: str, decoder: Decoder | None = None) -> tuple[str, str] | None:
    """(reason, detail) for a decoded line, or None when it is valid.

    ``decoder`` holds the policy (``retention.line_index_years`` decides
    ``implausible_time``); by default the one of ``load_policy()``."""
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
    decoder = decoder if decoder is not None else _default_decoder()
    if kind == "batch":
        problem = schemas.check(schemas.BATCH, obj)
        if problem:
            return INVALID_BATCH, problem
        envelope = obj["provider_agb"]
        for i, line in enumerate(obj["lines"]):
            checked = decoder.check(line, envelope)
            if type(checked) is Rejection:
                return checked.reason, f"lines[{i}]: {checked.detail}"
        return None
    checked = decoder.check(obj, None)
    return (checked.reason, checked.detail) if type(checked) is Rejection else None


def raw_problem(raw: bytes, kind: str, decoder: Decoder | None = None) -> tuple[str, str] | None:
    """``line_problem`` of one line of a file, as bytes; never raises."""
    try:
        if too_deep(raw):
            return INVALID_JSON, TOO_DEEP
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return INVALID_JSON, str(exc)
        return line_problem(obj, kind, decoder)
    except Exception as exc:  # noqa: BLE001 - SPEC §12: reported, and the files go on
        return PROCESSING_ERROR, type(exc).__name__


def validate_files(
    files: Sequence[str | Path],
    *,
    kind: str = "auto",
    max_report: int = 1000,
    out: TextIO,
    policy: Policy | None = None,
) -> ValidationReport:
    report = ValidationReport()
    decoder = Decoder(policy) if policy is not None else _default_decoder()
    for path in files:
        report.files += 1
        for number, raw in iter_lines(path):
            report.lines += 1
            found = raw_problem(raw, kind, decoder)
            if found is None:
                continue
            report.bad += 1
            report.by_reason[found[0]] += 1
            if report.bad <= max_report:
                out.write(f"{path}:{number}: {found[0]}: {found[1]}\n")
            elif report.bad == max_report + 1:
                out.write(f"… more bad lines not shown (--max-report {max_report})\n")
    return report
