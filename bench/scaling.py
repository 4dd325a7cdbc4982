"""Figure 6: one worker against two workers in one group, on the same topic.

Both read the declarations topic of the streaming stage (the same produced history),
each time as a new application (own consumer group and changelogs), from the
beginning, in replay mode with the memory store. For two workers both processes
are started at once, so that they join the group in the same round; ``/status`` of
every worker is polled every 50 ms and the rate is all their lines between the last
poll that showed none and the first that showed every partition done (as for the
single worker of the streaming stage). One and two workers alternate ``repeat``
times; the best of each counts. ``assignments`` shows how the partitions were split.

The machine has two cores and the broker runs on them too: two workers cannot
double the rate here; the figure shows what a second worker buys on this machine.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from bench import proc
from bench.broker import stage_cluster
from streams.local.cluster import Cluster

POLL_SECONDS = 0.05


def time_group(
    cluster: Cluster, workers: int, targets: dict[str, int], timeout: float = 600.0
) -> dict[str, Any]:
    spawned = time.monotonic()
    for _ in range(workers):
        cluster.add_worker()
    pids = [w.proc.pid for w in cluster.workers if w.proc is not None]
    idle: float | None = None
    idle_cpu = 0.0
    while True:
        cluster.check_workers()
        before = time.monotonic()
        sts = cluster.statuses()
        t = (before + time.monotonic()) / 2
        if len(sts) == workers:
            cpu = sum(proc.cpu_seconds(pid) for pid in pids)
            lines = sum(int(st["lines"]) for st in sts)
            if lines == 0:
                idle, idle_cpu = t, cpu
            progress: dict[str, int] = {}
            for st in sts:
                for k, v in st["progress"].items():
                    progress[k] = max(progress.get(k, -1), v)
            if all(progress.get(k, -1) >= v for k, v in targets.items()):
                break
        if t - spawned > timeout:
            raise RuntimeError(f"{workers} worker(s) did not process the input in {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    start = idle if idle is not None else spawned  # tiny input: start-up included
    cpu_s = cpu - idle_cpu  # all workers' CPU time (all threads) in the window
    return {
        "lines": lines,
        "lines_per_s": lines / (t - start),
        "cpu_s": cpu_s,
        "lines_per_cpu_s": lines / cpu_s if cpu_s > 0 else 0.0,
        "window_s": t - start,
        "startup_s": start - spawned,
        "assignments": [st["assigned"] for st in sts],
    }


def stop_now(cluster: Cluster) -> None:
    """Measured already: SIGKILL the workers rather than wait for a clean shutdown."""
    for w in cluster.workers:
        cluster.kill_worker(w, signal.SIGKILL)
    cluster.stop()


def run(
    bootstrap: str,
    topic: str,
    contracts_topic: str,
    end_offsets: dict[int, int],
    var: Path,
    *,
    repeat: int = 1,
    one_worker_runs: int | None = None,
    reference: dict[str, Any] | None = None,
    session_timeout: int | None = None,
) -> dict[str, Any]:
    """``repeat`` runs of two workers, alternating with ``one_worker_runs`` (default
    ``repeat``) of one; ``reference`` is one more single-worker run on the same topic
    (the streaming stage's result) that counts among the one-worker runs."""
    targets = {f"{topic}:{p}": o for p, o in end_offsets.items()}
    one_worker_runs = repeat if one_worker_runs is None else one_worker_runs
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for r in range(repeat):
        for n in (1, 2):
            if n == 1 and r >= one_worker_runs:
                continue
            cluster = stage_cluster(
                bootstrap,
                f"scaling-{n}w-{r}",
                var,
                replay=True,
                declarations=topic,
                contracts=contracts_topic,
                session_timeout=session_timeout,
            )
            try:
                runs[n].append(time_group(cluster, n, targets))
            finally:
                stop_now(cluster)
    one_rates = [x["lines_per_s"] for x in runs[1]]
    one_cpu = [x["lines_per_cpu_s"] for x in runs[1]]
    if reference:
        one_rates.append(reference["worker_lines_per_s"])
        one_cpu.append(reference["worker_lines_per_cpu_s"])
    if not one_rates:
        raise RuntimeError("no one-worker rate: run one worker or give the streaming figure")
    two = max(runs[2], key=lambda x: x["lines_per_s"])
    return {
        "lines": two["lines"],
        "runs": repeat,
        "one_worker_lines_per_s": max(one_rates),
        "two_workers_lines_per_s": two["lines_per_s"],
        "all_one_worker_lines_per_s": one_rates,
        "all_two_workers_lines_per_s": [x["lines_per_s"] for x in runs[2]],
        "all_one_worker_lines_per_cpu_s": one_cpu,
        "all_two_workers_lines_per_cpu_s": [x["lines_per_cpu_s"] for x in runs[2]],
        "one_worker_includes_streaming_stage": bool(reference),
        "two_workers_assignments": two["assignments"],
        "two_workers_startup_s": two["startup_s"],
        "speedup": two["lines_per_s"] / max(one_rates),
    }
