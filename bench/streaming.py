"""One worker's throughput against the floor: a raw aiokafka consume + decode loop.

The history is produced first (500-line batch envelopes, untimed). The raw loop then
reads the declarations topic from the beginning and decodes every message with
orjson (an envelope's lines are embedded JSON objects, so one ``loads`` decodes them
all); it runs ``raw_repeat`` times and the best counts. Then one ``claimwatch
worker`` starts on the same topic and its ``/status`` is polled every 50 ms: the rate
is lines processed between the last sample that showed none and the first sample
that showed everything, so Python and Faust start-up do not count but nothing of
the processing is left out (the window is at most one poll too wide, which errs
against the worker).

Between them, ``bench.faust_floor`` times Faust alone (the worker's consumer,
decoding and counting), and afterwards ``bench.inmemory`` times decoding alone and
the processor alone on the same messages without a broker: together they bound what
any worker built on this processor could reach.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import inmemory, proc
from bench.broker import stage_cluster
from bench.consumer import from_beginning
from bench.history import History
from streams.local.cluster import Cluster, WorkerProc, free_port
from streams.replay.producer import (
    ProduceStats,
    archive_lines,
    contract_lines,
    produce_history,
)

TARGET = 0.5
BATCH_SIZE = 500
MAX_FETCH = 16 * 1024 * 1024  # as the worker's consumer_max_fetch_size
POLL_SECONDS = 0.05


async def raw_consume(bootstrap: str, topic: str, timeout: float = 300.0) -> tuple[int, float]:
    """(lines, seconds) of consuming ``topic`` from the beginning to its end and decoding it."""
    async with from_beginning(bootstrap, topic, max_partition_fetch_bytes=MAX_FETCH) as (
        consumer,
        ends,
    ):
        remaining = {tp for tp, end in ends.items() if end > 0}
        loads, bad = orjson.loads, orjson.JSONDecodeError
        lines = 0
        started = time.perf_counter()
        deadline = started + timeout
        while remaining and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    try:
                        obj = loads(record.value)
                    except bad:
                        lines += 1
                        continue
                    inner = obj.get("lines") if isinstance(obj, dict) else None
                    lines += len(inner) if isinstance(inner, list) else 1
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        seconds = time.perf_counter() - started
    if remaining:
        raise RuntimeError(f"raw consumer did not reach the end of {topic} in {timeout:.0f} s")
    return lines, seconds


def _sample(cluster: Cluster) -> tuple[float, dict[str, Any] | None]:
    before = time.monotonic()
    sts = cluster.statuses()
    after = time.monotonic()
    return (before + after) / 2, (sts[0] if sts else None)


def time_worker(
    cluster: Cluster, end_offsets: dict[int, int], timeout: float = 600.0
) -> dict[str, Any]:
    """Start one worker on already-produced input; time it until every offset is processed."""
    topic = cluster.settings.topic_declarations
    targets = {f"{topic}:{p}": o for p, o in end_offsets.items()}
    spawned = time.monotonic()
    cluster.add_worker()
    deadline = spawned + timeout
    pid = cluster.workers[0].proc.pid  # type: ignore[union-attr]
    idle: tuple[float, int, float] | None = None  # last sample that had processed nothing
    first: tuple[float, int, float] | None = None  # first sample that answered at all
    while True:
        cluster.check_workers()
        t, st = _sample(cluster)
        if st is not None:
            cpu = proc.cpu_seconds(pid)
            lines = int(st["lines"])
            if first is None:
                first = (t, lines, cpu)
            if lines == 0:
                idle = (t, 0, cpu)
            progress = st["progress"]
            if all(progress.get(k, -1) >= v for k, v in targets.items()):
                done = (t, lines, int(st["messages"]), cpu)
                break
        if t > deadline:
            raise RuntimeError(f"worker did not process the input within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    # Normally `idle` exists; a tiny input may be done before the first answer, in
    # which case the window starts at spawn (start-up included: a lower bound).
    start = idle or (first if first and first[1] < done[1] else None) or (spawned, 0, 0.0)
    window = done[0] - start[0]
    cpu_s = done[3] - start[2]  # the worker's CPU time (all threads) in the window
    return {
        "worker_lines": done[1],
        "worker_messages": done[2],
        "worker_window_s": window,
        "worker_lines_per_s": (done[1] - start[1]) / window,
        "worker_cpu_s": cpu_s,
        "worker_lines_per_cpu_s": (done[1] - start[1]) / cpu_s if cpu_s > 0 else 0.0,
        "worker_startup_s": start[0] - spawned,
        "worker_total_s": done[0] - spawned,
    }


def time_faust_floor(
    cluster: Cluster, end_offsets: dict[int, int], timeout: float = 600.0
) -> dict[str, Any]:
    """Run ``bench.faust_floor`` (Faust decoding and counting, nothing else) on the
    declarations topic from the beginning, in its own consumer group."""
    var = cluster.var_dir
    var.mkdir(parents=True, exist_ok=True)
    out = var / "faust-floor.json"
    out.unlink(missing_ok=True)
    # web_enabled is off in the floor app; the port only satisfies the settings
    w = WorkerProc(99, free_port(), var / "faust-floor", var / "faust-floor.log")
    env = cluster.worker_env(w)
    env.update(
        {
            "FLOOR_APP_ID": f"{cluster.settings.app_id}-faust-floor",
            "FLOOR_TARGETS": orjson.dumps({str(p): o for p, o in end_offsets.items()}).decode(),
            "FLOOR_OUT": str(out),
        }
    )
    with w.log_path.open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.faust_floor"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"Faust floor did not read the input within {timeout:.0f} s (log: {w.log_path})"
            ) from None
        finally:  # a timeout or Ctrl-C: leave no reader behind
            if child.poll() is None:
                child.kill()
                child.wait(10)
    if not out.exists():
        raise RuntimeError(f"Faust floor exited with {child.returncode}; see {w.log_path}")
    r = orjson.loads(out.read_bytes())
    return {
        "floor_lines": r["lines"],
        "floor_messages": r["messages"],
        "floor_s": r["seconds"],
        "floor_lines_per_s": r["lines"] / r["seconds"],
        "floor_lines_per_cpu_s": r["lines"] / r["cpu_s"] if r["cpu_s"] > 0 else 0.0,
    }


def produce_input(
    history: History, bootstrap: str, cluster: Cluster, batch_size: int = BATCH_SIZE
) -> ProduceStats:
    """The history on the cluster's declarations and contracts topics, in batches."""
    s = cluster.settings
    return asyncio.run(
        produce_history(
            bootstrap,
            archive_lines([history.declarations]),
            topic=s.topic_declarations,
            contracts=contract_lines(history.contracts),
            contracts_topic=s.topic_contracts,
            batch_size=batch_size,
        )
    )


def input_of(cluster: Cluster, stats: ProduceStats) -> dict[str, Any]:
    """Where the produced input is, for the stages that read the same topic again."""
    return {
        "topic": cluster.settings.topic_declarations,
        "contracts_topic": cluster.settings.topic_contracts,
        "end_offsets": {str(p): o for p, o in stats.end_offsets.items()},
    }


def run(
    history: History,
    bootstrap: str,
    var: Path,
    raw_repeat: int = 3,
    session_timeout: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    cluster = stage_cluster(
        bootstrap, "streaming", var, replay=True, session_timeout=session_timeout
    )
    s = cluster.settings
    try:
        stats = produce_input(history, bootstrap, cluster, batch_size)
        raw_rates = []
        raw_lines = 0
        for _ in range(raw_repeat):
            raw_lines, seconds = asyncio.run(raw_consume(bootstrap, s.topic_declarations))
            raw_rates.append(raw_lines / seconds)
        floor = time_faust_floor(cluster, stats.end_offsets)
        worker = time_worker(cluster, stats.end_offsets)
        alone = inmemory.run(bootstrap, s.topic_declarations, s.topic_contracts, s.partitions)
    finally:
        cluster.stop()
    raw_best = max(raw_rates)
    return {
        "lines": stats.lines,
        "messages": stats.messages,
        "batch_size": batch_size,
        "partitions": s.partitions,
        "produce_s": stats.seconds,
        "raw_lines": raw_lines,
        "raw_lines_per_s": raw_best,
        "all_raw_lines_per_s": raw_rates,
        **floor,
        "floor_ratio": floor["floor_lines_per_s"] / raw_best,
        **worker,
        "ratio": worker["worker_lines_per_s"] / raw_best,
        "worker_of_floor": worker["worker_lines_per_s"] / floor["floor_lines_per_s"],
        **alone,
        **inmemory.budget(
            raw_best,
            floor["floor_lines_per_s"],
            alone["decode_lines_per_s"],
            alone["processor_lines_per_s"],
            TARGET,
        ),
        "target_ratio": TARGET,
        "input": input_of(cluster, stats),
    }
