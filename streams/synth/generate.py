"""A realistic, seeded synthetic history of GGZ declarations and contracts.

`generate()` writes three files that the demo, the replay command and the tests share:

- ``declarations.ndjson`` (or ``.ndjson.gz``): one declaration (SPEC §2) per line, in
  ``submitted_at`` order. Providers submit each service month's lines in a few files a
  few business days after month end, so the lines of one provider come in runs.
- ``contracts.ndjson``: contract events (SPEC §3) in ``updated_at`` order: version 1 per
  provider and year in the December before, plus a few version-2 adjustments in Q4.
- ``departments.ndjson``: the department register (SPEC §9): every institution's
  departments with their category and region (``departments.py``).
- ``planted.json``: the anomalies planted on purpose (provider, year, rule, case, the
  alert id the domain engine raises, the month it first fires and what it sees), the
  cases planted so that a rule must not fire (``expected.py``), the stream faults
  (redelivered events, a duplicate line, a duplicate and an orphan credit, malformed
  lines) and the expected acceptance counts.

`iter_history()` yields the same events (contracts merged in by event time) without
touching the disk, so the demo can stream them live.

Plants are sized from the policy (``--policy``; the shipped defaults otherwise), and
the same options and policy give byte-identical files. Provider names are invented;
any resemblance to a real organisation is a coincidence.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from streams.domain.policy import Policy, load_policy
from streams.synth import departments
from streams.synth.expected import EnginePass, report
from streams.synth.history import History
from streams.synth.options import (
    KINDS,
    MIN_LINES,
    GenerateOptions,
    GenerateSummary,
    HistoryItem,
    PlantedAnomaly,
    PlantedQuiet,
)

__all__ = [
    "KINDS",
    "MIN_LINES",
    "GenerateOptions",
    "GenerateSummary",
    "HistoryItem",
    "PlantedAnomaly",
    "PlantedQuiet",
    "generate",
    "iter_history",
]


def generate(
    out_dir: Path,
    options: GenerateOptions,
    policy: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateSummary:
    """Write declarations, contracts and planted.json into `out_dir`; return a summary.

    ``progress(lines_written, lines_asked)`` is called after each submission month (a
    few dozen times), when given; the count written may end a little off the count
    asked.
    """
    policy = policy if policy is not None else load_policy()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "declarations.ndjson.gz" if options.gzip else "declarations.ndjson"
    declarations_path = out_dir / name
    contracts_path = out_dir / "contracts.ndjson"
    planted_path = out_dir / "planted.json"

    history = History(options, policy)
    contracts = [value for _, value, _ in history.contracts.events]
    register = departments.register(history.providers, history.years[0])
    departments_path = out_dir / "departments.ndjson"
    departments_path.write_bytes(b"".join(d + b"\n" for d in register))
    run = EnginePass(policy, contracts, register)
    lines = 0
    with open(declarations_path, "wb") as raw:
        sink: gzip.GzipFile | io.BufferedWriter = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
            if options.gzip
            else raw
        )
        for batch in history.batches():
            if batch:
                lines += len(batch)
                values = [value for _, _, value, _ in batch]
                sink.write(b"".join(values))
                run.lines(values)
            if progress is not None:
                progress(lines, options.lines)
        if options.gzip:
            sink.close()
    contracts_path.write_bytes(b"".join(c + b"\n" for c in contracts))
    run.finish()

    planted = report(history, run)
    planted_path.write_bytes(orjson.dumps(planted, option=orjson.OPT_INDENT_2) + b"\n")
    summary = _summary(
        options, declarations_path, contracts_path, planted_path, lines, len(contracts), planted
    )
    return replace(summary, departments_path=departments_path, departments=len(register))


def _summary(
    options: GenerateOptions,
    declarations_path: Path,
    contracts_path: Path,
    planted_path: Path,
    lines: int,
    contracts: int,
    planted: dict[str, Any],
) -> GenerateSummary:
    return GenerateSummary(
        declarations_path=declarations_path,
        contracts_path=contracts_path,
        planted_path=planted_path,
        providers=options.providers,
        lines=lines,
        contracts=contracts,
        counts=dict(planted["counts"]),
        acceptance=planted["acceptance"],
        planted=tuple(PlantedAnomaly(**a) for a in planted["anomalies"]),
        must_not_fire=tuple(PlantedQuiet(**q) for q in planted["must_not_fire"]),
        skipped=tuple(f"{s['rule']}: {s['reason']}" for s in planted["skipped"]),
    )


def iter_history(options: GenerateOptions, policy: Policy | None = None) -> Iterator[HistoryItem]:
    """Yield the history `generate()` would write, contracts merged in by event time.

    A contract event comes before every declaration with `submitted_at` ≥ its
    `updated_at`. Declaration values are exactly the lines of the declarations file.
    """
    return History(options, policy if policy is not None else load_policy()).items()
