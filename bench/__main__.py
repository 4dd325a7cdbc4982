"""``python -m bench``: run the benchmark stages, print the table, write the JSON."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.history import SEED, VAR, cached_history

STAGES = ("offline", "streaming", "latency")
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="claimwatch benchmarks: figures and ratios (bench/README.md)",
    )
    p.add_argument("--lines", type=int, help="offline lines (default 1,000,000; --quick 20,000)")
    p.add_argument(
        "--stream-lines", type=int, help="streaming lines (default 200,000; --quick 10,000)"
    )
    p.add_argument(
        "--latency-seconds", type=float, help="latency run length (default 20; --quick 5)"
    )
    p.add_argument("--rate", type=float, default=2_000, help="latency input lines/s (2,000)")
    p.add_argument("--quick", action="store_true", help="small sizes for CI (under a minute)")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--seed", type=int, default=SEED, help="generator seed")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"output file ({RESULTS.name})")
    args = p.parse_args(argv)
    args.stages = STAGES
    if args.only:
        args.stages = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = set(args.stages) - set(STAGES)
        if unknown:
            p.error(
                f"--only: unknown stage(s) {', '.join(sorted(unknown))}; use {','.join(STAGES)}"
            )
    args.lines = args.lines or (20_000 if args.quick else 1_000_000)
    args.stream_lines = args.stream_lines or (10_000 if args.quick else 200_000)
    args.latency_seconds = args.latency_seconds or (5.0 if args.quick else 20.0)
    return args


def git_state() -> dict[str, Any]:
    """The commit measured, and whether streams/ had uncommitted changes at the time."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "--short", "HEAD"),
            "streams_dirty": bool(git("status", "--porcelain", "--", "streams")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "quick": args.quick,
            "seed": args.seed,
            "stages": list(args.stages),
            "git": git_state(),
        }
    }
    failed = False

    def stage(name: str, fn: Any) -> None:
        nonlocal failed
        started = time.monotonic()
        try:
            results[name] = fn()
        except Exception as exc:  # one failing stage must not hide the others' figures
            failed = True
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"{name} done in {time.monotonic() - started:.1f} s")

    if "offline" in args.stages:
        from bench import offline

        def run_offline() -> dict[str, Any]:
            say(f"offline: history of {args.lines:,} lines (cached in {VAR})")
            history = cached_history(args.lines, args.seed)
            say("offline: bare decode and replay, alternating, 3 runs each")
            return offline.run(history, VAR / "run-offline")

        stage("offline", run_offline)

    broker = None
    try:
        if "streaming" in args.stages or "latency" in args.stages:
            from bench.broker import start_broker

            broker = start_broker(VAR)
        if "streaming" in args.stages:
            from bench import streaming

            def run_streaming() -> dict[str, Any]:
                say(f"streaming: history of {args.stream_lines:,} lines (cached in {VAR})")
                history = cached_history(args.stream_lines, args.seed)
                say("streaming: produce, raw consumer x3, then one worker")
                return streaming.run(history, broker.bootstrap, VAR)

            stage("streaming", run_streaming)
        if "latency" in args.stages:
            from bench import latency

            def run_latency() -> dict[str, Any]:
                say(f"latency: {args.rate:,.0f} lines/s for {args.latency_seconds:.0f} s")
                return latency.run(
                    broker.bootstrap, VAR, rate=args.rate, seconds=args.latency_seconds
                )

            stage("latency", run_latency)
    finally:
        if broker is not None:
            broker.stop()

    results["extrapolation"] = report.extrapolate(results)
    report.write_json(results, args.json)
    print(report.table(results))
    print(f"\nJSON: {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
