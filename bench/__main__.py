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
from bench.broker import worker_malloc
from bench.history import SEED, VAR, cached_history

STAGES = ("offline", "streaming", "latency", "state", "scaling", "peer", "portal")
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="claimwatch benchmarks: figures and ratios (bench/README.md)",
    )
    p.add_argument("--lines", type=int, help="offline lines (default 1,000,000; --quick 20,000)")
    p.add_argument(
        "--stream-lines", type=int, help="streaming lines (default 1,000,000; --quick 10,000)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help="lines per message on the streaming stage's topic, 1-1000 (500, as claimwatch replay)",
    )
    p.add_argument(
        "--latency-seconds", type=float, help="latency run length (default 20; --quick 5)"
    )
    p.add_argument("--rate", type=float, default=2_000, help="latency input lines/s (2,000)")
    p.add_argument(
        "--state-lines",
        type=int,
        help="lines of state for memory and recovery (default 1,000,000; --quick 20,000)",
    )
    p.add_argument(
        "--rocksdb-lines",
        type=int,
        help="lines of state for the RocksDB store (default 3,000,000; --quick as --state-lines)",
    )
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
    if not 1 <= args.batch_size <= 1000:  # SPEC §2: a batch holds 1-1000 lines
        p.error(f"--batch-size: {args.batch_size} is not between 1 and 1000")
    args.lines = args.lines or (20_000 if args.quick else 1_000_000)
    args.stream_lines = args.stream_lines or (10_000 if args.quick else 1_000_000)
    args.latency_seconds = args.latency_seconds or (5.0 if args.quick else 20.0)
    args.state_lines = args.state_lines or (20_000 if args.quick else 1_000_000)
    args.rocksdb_lines = args.rocksdb_lines or (args.state_lines if args.quick else 3_000_000)
    # --quick: short group joins (tansu answers a join after session / 2), the two
    # stores side by side, one run each; the full run uses the worker's defaults.
    args.session_timeout = 3 if args.quick else None
    args.repeat = 1 if args.quick else 2
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
            "malloc": worker_malloc(),
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
    shared: dict[str, Any] = {}

    def stream_input() -> dict[str, Any]:
        """The streaming stage's input topic, produced here if that stage did not run."""
        if "input" not in shared:
            s = results.get("streaming") or {}
            if "input" in s:
                shared["input"] = s["input"]
            else:
                from bench import streaming
                from bench.broker import stage_cluster

                say(f"producing the streaming input ({args.stream_lines:,} lines)")
                history = cached_history(args.stream_lines, args.seed)
                cluster = stage_cluster(broker.bootstrap, "streaming", VAR, replay=True)
                stats = streaming.produce_input(history, broker.bootstrap, cluster)
                shared["input"] = streaming.input_of(cluster, stats)
        return shared["input"]  # type: ignore[no-any-return]

    def single_worker_rates() -> tuple[list[float], list[float]]:
        """claimwatch's single-worker rates on the shared topic in this run: lines per
        second and lines per CPU-second."""
        sc = results.get("scaling", {})
        if sc.get("all_one_worker_lines_per_s"):  # the streaming stage's one included
            return list(sc["all_one_worker_lines_per_s"]), list(
                sc["all_one_worker_lines_per_cpu_s"]
            )
        s = results.get("streaming", {})
        if s.get("worker_lines_per_s"):
            return [s["worker_lines_per_s"]], [s["worker_lines_per_cpu_s"]]
        return [], []

    try:
        if set(args.stages) & {"streaming", "latency", "state", "scaling", "peer", "portal"}:
            from bench.broker import start_broker

            broker = start_broker(VAR)
        if "streaming" in args.stages:
            from bench import streaming

            def run_streaming() -> dict[str, Any]:
                say(f"streaming: history of {args.stream_lines:,} lines (cached in {VAR})")
                history = cached_history(args.stream_lines, args.seed)
                say("streaming: produce, raw consumer x3, then one worker")
                return streaming.run(
                    history,
                    broker.bootstrap,
                    VAR,
                    session_timeout=args.session_timeout,
                    batch_size=args.batch_size,
                )

            stage("streaming", run_streaming)
        if "latency" in args.stages:
            from bench import latency

            def run_latency() -> dict[str, Any]:
                say(f"latency: {args.rate:,.0f} lines/s for {args.latency_seconds:.0f} s")
                return latency.run(
                    broker.bootstrap,
                    VAR,
                    rate=args.rate,
                    seconds=args.latency_seconds,
                    session_timeout=args.session_timeout,
                )

            stage("latency", run_latency)
        if "scaling" in args.stages:
            from bench import scaling

            def run_scaling() -> dict[str, Any]:
                src = stream_input()
                s = results.get("streaming", {})
                reference = s if "worker_lines_per_s" in s else None
                # --quick: the streaming stage's worker is the one-worker run
                one_runs = 0 if args.quick and reference else args.repeat
                say(f"scaling: {one_runs} x 1 worker, {args.repeat} x 2 workers on {src['topic']}")
                return scaling.run(
                    broker.bootstrap,
                    src["topic"],
                    src["contracts_topic"],
                    {int(p): o for p, o in src["end_offsets"].items()},
                    VAR,
                    repeat=args.repeat,
                    one_worker_runs=one_runs,
                    reference=reference,
                    session_timeout=args.session_timeout,
                )

            stage("scaling", run_scaling)
        if "portal" in args.stages:
            from bench import portal

            def run_portal() -> dict[str, Any]:
                lines = 20_000 if args.quick else 1_000_000
                say(
                    f"portal: follow {lines:,} lines' worth of status updates; render 2,000 providers"
                )
                return portal.run(broker.bootstrap, lines=lines)

            stage("portal", run_portal)
        if "peer" in args.stages:
            from bench import peer

            def run_peer() -> dict[str, Any]:
                if not peer.available():
                    say(peer.MISSING)
                    return {"skipped": peer.MISSING}
                src = stream_input()
                rates, cpu_rates = single_worker_rates()
                # best of as many runs as claimwatch's single worker had in this run
                runs = len(rates) or args.repeat
                say(f"peer: quixstreams on {src['topic']}, {runs} run(s)")
                return peer.run(
                    broker.bootstrap,
                    src["topic"],
                    {int(p): o for p, o in src["end_offsets"].items()},
                    VAR,
                    max(rates) if rates else None,
                    max(cpu_rates) if cpu_rates else None,
                    repeat=runs,
                    session_timeout_s=args.session_timeout or 10,
                )

            stage("peer", run_peer)
        if "state" in args.stages:
            from bench import state

            def run_state() -> dict[str, Any]:
                say(
                    f"state: histories of {args.state_lines:,} (memory://) and"
                    f" {args.rocksdb_lines:,} lines (rocksdb://), cached in {VAR}"
                )
                history = cached_history(args.state_lines, args.seed)
                rocks = (
                    history
                    if args.rocksdb_lines == args.state_lines
                    else cached_history(args.rocksdb_lines, args.seed)
                )
                say("state: memory:// and rocksdb:// workers, RSS at 1/4, 1/2, all; restart")
                return state.run(
                    history,
                    broker.bootstrap,
                    VAR,
                    rocksdb_history=rocks,
                    parallel=args.quick,
                    session_timeout=args.session_timeout,
                )

            stage("state", run_state)
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
