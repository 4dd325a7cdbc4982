"""Figure 7: the same aggregation written with quixstreams, on the same topic.

``bench/peer_quix.py`` (what it computes, and what it leaves out, is in its
docstring) runs as its own process with its own consumer group and RocksDB state
directory on the declarations topic that claimwatch's single worker was timed on in
this run. Its rate is lines between its first processed message and the end of its
final checkpoint (state flushed to RocksDB and the changelog), start-up excluded as
for the worker; its CPU time (all threads, ``time.process_time``) over the same
window gives lines per CPU-second, which moves less with the machine's load. Without quixstreams installed (it is in the optional ``bench``
extra: ``pip install -e '.[bench]'``) the figure is skipped with a line saying so.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
MISSING = "quixstreams is not installed (pip install -e '.[bench]'): peer figure skipped"


def available() -> bool:
    return importlib.util.find_spec("quixstreams") is not None


def run_once(
    bootstrap: str,
    topic: str,
    end_offsets: dict[int, int],
    var: Path,
    name: str,
    session_timeout_s: int = 10,
    timeout: float = 600.0,
) -> dict[str, Any]:
    run_dir = var / "run-peer"
    state_dir = run_dir / f"state-{name}"
    shutil.rmtree(state_dir, ignore_errors=True)
    out = run_dir / f"{name}.json"
    out.unlink(missing_ok=True)
    log = run_dir / f"{name}.log"
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "bench.peer_quix",
        "--broker",
        bootstrap,
        "--topic",
        topic,
        "--group",
        f"bench-peer-{name}",
        "--state-dir",
        str(state_dir),
        "--targets",
        orjson.dumps({str(p): o for p, o in end_offsets.items()}).decode(),
        "--json",
        str(out),
        "--session-timeout-ms",
        str(session_timeout_s * 1000),
        "--timeout",
        str(timeout),
    ]
    try:
        with log.open("wb") as f:
            proc = subprocess.run(
                cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout + 60
            )
        if proc.returncode != 0 or not out.exists():
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(
                f"quixstreams peer exited with {proc.returncode}; see {log}: {' | '.join(tail)}"
            )
        return orjson.loads(out.read_bytes())  # type: ignore[no-any-return]
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def run(
    bootstrap: str,
    topic: str,
    end_offsets: dict[int, int],
    var: Path,
    claimwatch_lines_per_s: float | None,
    claimwatch_lines_per_cpu_s: float | None = None,
    repeat: int = 1,
    session_timeout_s: int = 10,
) -> dict[str, Any]:
    if not available():
        return {"skipped": MISSING}
    runs = [
        run_once(bootstrap, topic, end_offsets, var, f"quix-{i}", session_timeout_s)
        for i in range(repeat)
    ]
    best = max(runs, key=lambda r: r["lines_per_s"])
    result: dict[str, Any] = {
        "lines": best["lines"],
        "quix_lines_per_s": best["lines_per_s"],
        "all_quix_lines_per_s": [r["lines_per_s"] for r in runs],
        "quix_window_s": best["window_s"],
        "quix_lines_per_cpu_s": max(r["lines_per_cpu_s"] for r in runs),
        "all_quix_lines_per_cpu_s": [r["lines_per_cpu_s"] for r in runs],
        "quix_final_checkpoint_s": best["final_checkpoint_s"],
        "quix_startup_s": best["startup_s"],
        "quix_peak_rss": best["peak_rss"],
        "quix_outcomes": best["outcomes"],
        "quixstreams": best["quixstreams"],
        "confluent_kafka": best["confluent_kafka"],
    }
    if claimwatch_lines_per_s:
        result["claimwatch_lines_per_s"] = claimwatch_lines_per_s
        result["ratio"] = claimwatch_lines_per_s / best["lines_per_s"]
        result["target_ratio"] = 1.0
    if claimwatch_lines_per_cpu_s:
        result["claimwatch_lines_per_cpu_s"] = claimwatch_lines_per_cpu_s
        result["cpu_ratio"] = claimwatch_lines_per_cpu_s / result["quix_lines_per_cpu_s"]
    return result
