"""Offline replay against the floor: reading and orjson-decoding the same file.

The bare loop is what any Python consumer of this file must at least do; the ratio
replay ÷ bare says how much of the budget the domain engine (validation, acceptance,
indicators, rules, alert output) takes on top. Each side runs ``repeat`` times,
alternating, and the best run counts: on a noisy machine the best is the least
disturbed, not the most flattering.

Both sides run in this one thread, so their CPU time (``time.process_time``) is their
work on one core, whatever else the machine runs meanwhile. The ratio of lines per
CPU-second is reported beside the wall-clock ratio: on a shared host a burst of
another process's work lands on one side of the wall-clock ratio and not the other.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import orjson

from bench.history import History
from streams.domain.policy import load_policy
from streams.replay.offline import replay_offline

TARGET = 0.25


def bare_decode(path: Path) -> tuple[int, float, float]:
    """(lines, seconds, CPU seconds) of reading ``path`` line by line and decoding each line."""
    loads = orjson.loads
    bad = orjson.JSONDecodeError
    lines = invalid = 0
    started, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as fh:
        for raw in fh:
            lines += 1
            try:
                loads(raw)
            except bad:  # the generator plants a few malformed lines
                invalid += 1
    return lines, time.perf_counter() - started, time.process_time() - cpu


def replay(history: History, out_dir: Path) -> tuple[int, float, float, dict[str, Any]]:
    """(lines, seconds, CPU seconds, summary) of a full offline replay, outputs written as in production."""
    policy = load_policy()
    out_dir.mkdir(parents=True, exist_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    summary, engine = replay_offline(
        [history.declarations],
        policy,
        contracts=history.contracts,
        alerts_out=out_dir / "alerts.ndjson",
        snapshot_out=out_dir / "snapshot.json",
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    del engine
    return summary.lines, seconds, cpu, {"alerts": summary.alerts, "firing": summary.firing}


def run(history: History, out_dir: Path, repeat: int = 3) -> dict[str, Any]:
    bare: list[float] = []
    full: list[float] = []
    bare_cpu: list[float] = []
    full_cpu: list[float] = []
    lines = 0
    extra: dict[str, Any] = {}
    for _ in range(repeat):
        gc.collect()
        n, s, c = bare_decode(history.declarations)
        bare.append(n / s)
        bare_cpu.append(n / c)
        gc.collect()
        lines, s, c, extra = replay(history, out_dir)
        full.append(lines / s)
        full_cpu.append(lines / c)
    best_bare, best_replay = max(bare), max(full)
    return {
        "lines": lines,
        "providers": history.providers,
        "runs": repeat,
        "bare_lines_per_s": best_bare,
        "replay_lines_per_s": best_replay,
        "ratio": best_replay / best_bare,
        "bare_lines_per_cpu_s": max(bare_cpu),
        "replay_lines_per_cpu_s": max(full_cpu),
        "cpu_ratio": max(full_cpu) / max(bare_cpu),
        "target_ratio": TARGET,
        "all_bare_lines_per_s": bare,
        "all_replay_lines_per_s": full,
        **extra,
    }
