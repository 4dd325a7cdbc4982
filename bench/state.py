"""Figures 4 and 5: a worker's memory as its state grows, and how fast a restart recovers.

For each store (``memory://``, ``rocksdb://``) one worker (replay mode, own app id and
topics) runs while the history is produced in steps: a quarter, a half, then all of
it. After each step the bench waits until the worker has processed everything, lets
it settle for a second and reads ``VmRSS`` and ``VmHWM`` (peak RSS) of the worker
process from ``/proc/<pid>/status``. "Lines of state" are the distinct debited
``line_id`` values of the input so far: one line-index entry each in the worker.

- ``bytes_per_line``: (peak RSS at the largest size − RSS of the idle worker before
  any input) ÷ distinct lines. What a million lines cost, start-up excluded.
- ``slope_bytes_per_line``: (peak RSS at the largest size − peak RSS at the smallest)
  ÷ the distinct lines in between: the marginal cost, fetch buffers and other fixed
  costs excluded. "Flat" means a slope of at most ``FLAT_BYTES_PER_LINE``.

Recovery: once all of the history is processed, the worker is SIGKILLed and a fresh
process started on the same data directory (a RocksDB store keeps its files; a
memory store has only the changelog). One new message per partition is produced
right after the kill. Timed from the spawn of the fresh process:

- ``assigned_s``: ``/status`` answers and lists every partition (group joined);
- ``restored_s``: ``/status`` counts as many providers as before the kill (state
  rebuilt from the table);
- ``recovery_s``: the new messages are processed (ready and processing again).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench import proc
from bench.broker import stage_cluster
from bench.history import History
from bench.scaling import stop_now
from streams.local.cluster import Cluster
from streams.replay.producer import archive_lines, contract_lines, produce_history

TARGET_MEMORY_BYTES_PER_LINE = 200
FLAT_BYTES_PER_LINE = 20  # 20 MB per million lines: what "RSS stays flat" is taken to mean
TARGET_RECOVERY_S_PER_MILLION = 60.0
STEPS = (0.25, 0.5, 1.0)
STORES = ("memory://", "rocksdb://")
BATCH_SIZE = 500
POLL_SECONDS = 0.1


def distinct_lines_at(path: Path, cuts: list[int]) -> list[int]:
    """Distinct debited line_ids among the first ``cut`` lines of the file, per cut."""
    seen: set[str] = set()
    out: list[int] = []
    todo = iter(sorted(cuts))
    cut = next(todo)
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                obj = orjson.loads(raw)
                if obj.get("kind") == "debit" and isinstance(obj.get("line_id"), str):
                    seen.add(obj["line_id"])
            except (orjson.JSONDecodeError, AttributeError):
                pass
            while n == cut:
                out.append(len(seen))
                cut = next(todo, -1)
    while len(out) < len(cuts):
        out.append(len(seen))
    return out


def _partition_of(key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def probe_messages(history: History, partitions: int) -> list[tuple[bytes, bytes]]:
    """One new one-line batch per partition, copied from a provider of that partition."""
    found: dict[int, tuple[bytes, bytes]] = {}
    with history.declarations.open("rb") as f:
        for raw in f:
            try:
                line = orjson.loads(raw)
                agb = line["provider_agb"]
                if line["kind"] != "debit" or not isinstance(agb, str):
                    continue
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            p = _partition_of(agb.encode(), partitions)
            if p in found:
                continue
            line = {**line, "event_id": f"bench-recovery-e{p}", "line_id": f"bench-recovery-l{p}"}
            envelope = {"schema": "ggz.declaration-batch/1", "provider_agb": agb, "lines": [line]}
            found[p] = (agb.encode(), orjson.dumps(envelope))
            if len(found) == partitions:
                break
    return [found[p] for p in sorted(found)]


async def _send(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> dict[int, int]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        offsets: dict[int, int] = {}
        for key, value in messages:
            md = await producer.send_and_wait(topic, value, key=key)
            offsets[md.partition] = max(offsets.get(md.partition, -1), md.offset)
        return offsets
    finally:
        await producer.stop()


def _data_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _status(cluster: Cluster) -> dict[str, Any] | None:
    sts = cluster.statuses()
    return sts[0] if sts else None


def measure_recovery(
    cluster: Cluster,
    history: History,
    providers_before: int,
    timeout: float = 600.0,
    respawn_after_s: float = 0.0,
) -> dict[str, Any]:
    """SIGKILL the only worker, start a fresh one, time it until it processes new input.

    ``respawn_after_s``: wait between the kill and the spawn (not timed). With a short
    session (--quick) a member that joins while tansu still counts its dead
    predecessor was seen to get every partition and then fetch nothing.
    """
    s = cluster.settings
    w = cluster.workers[0]
    cluster.kill_worker(w, signal.SIGKILL)
    time.sleep(respawn_after_s)
    spawned = time.monotonic()
    cluster.start_worker(w)
    offsets = asyncio.run(
        _send(s.broker or "", s.topic_declarations, probe_messages(history, s.partitions))
    )
    targets = {f"{s.topic_declarations}:{p}": o for p, o in offsets.items()}
    want = set(range(s.partitions))
    assigned = restored = None
    while True:
        cluster.check_workers()
        st = _status(cluster)
        t = time.monotonic() - spawned
        if st is not None:
            if assigned is None and set(st["assigned"]) >= want:
                assigned = t
            if restored is None and st["providers"] >= providers_before:
                restored = t
            if all(st["progress"].get(k, -1) >= v for k, v in targets.items()):
                break
        if t > timeout:
            raise RuntimeError(f"restarted worker did not process new input in {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    assert w.proc is not None
    mem = proc.memory(w.proc.pid)
    return {
        "recovery_s": t,
        "assigned_s": assigned if assigned is not None else t,
        "restored_s": restored if restored is not None else t,
        "providers": st["providers"],
        "providers_before": providers_before,
        "recovery_peak_rss": mem["peak_rss"],
    }


def run_store(
    store: str,
    history: History,
    bootstrap: str,
    var: Path,
    steps: tuple[float, ...] = STEPS,
    session_timeout: int | None = None,
    settle_s: float = 1.0,
) -> dict[str, Any]:
    name = store.split("://")[0]
    cluster = stage_cluster(
        bootstrap, f"state-{name}", var, replay=True, session_timeout=session_timeout
    )
    cluster.settings = cluster.settings.with_(store=store)
    s = cluster.settings
    cuts = sorted({max(1, round(history.lines * f)) for f in steps})
    distinct = distinct_lines_at(history.declarations, cuts)
    lines: Iterator[bytes] = iter(archive_lines([history.declarations]))
    points: list[dict[str, Any]] = []
    targets: dict[str, int] = {}
    try:
        w = cluster.add_worker()
        cluster.wait_ready(180)
        time.sleep(settle_s)
        assert w.proc is not None
        idle = proc.memory(w.proc.pid)
        done = 0
        for i, cut in enumerate(cuts):
            stats = asyncio.run(
                produce_history(
                    bootstrap,
                    itertools.islice(lines, cut - done),
                    topic=s.topic_declarations,
                    contracts=contract_lines(history.contracts) if i == 0 else (),
                    contracts_topic=s.topic_contracts,
                    batch_size=BATCH_SIZE,
                )
            )
            done = cut
            for p, o in stats.end_offsets.items():
                key = f"{s.topic_declarations}:{p}"
                targets[key] = max(targets.get(key, -1), o)
            cluster.wait_processed(targets, timeout=900)
            time.sleep(settle_s)
            mem = proc.memory(w.proc.pid)
            st = _status(cluster) or {}
            points.append(
                {
                    "lines": cut,
                    "distinct_lines": distinct[i],
                    "rss": mem["rss"],
                    "peak_rss": mem["peak_rss"],
                    "data_dir_bytes": _data_bytes(w.data_dir),
                    "providers": st.get("providers", 0),
                }
            )
        first, last = points[0], points[-1]
        grown = last["distinct_lines"] - first["distinct_lines"]
        result: dict[str, Any] = {
            "store": store,
            "idle_rss": idle["rss"],
            "points": points,
            "distinct_lines": last["distinct_lines"],
            "peak_rss": last["peak_rss"],
            "bytes_per_line": (last["peak_rss"] - idle["rss"]) / last["distinct_lines"],
            "slope_bytes_per_line": (
                (last["peak_rss"] - first["peak_rss"]) / grown if grown > 0 else 0.0
            ),
        }
        rec = measure_recovery(
            cluster,
            history,
            last["providers"],
            respawn_after_s=session_timeout + 1.0 if session_timeout is not None else 0.0,
        )
        rec["recovery_s_per_million"] = rec["recovery_s"] / (last["distinct_lines"] / 1e6)
        result["recovery"] = rec
        return result
    finally:
        stop_now(cluster)
        shutil.rmtree(cluster.var_dir / "worker-0", ignore_errors=True)  # RocksDB files


def run(
    history: History,
    bootstrap: str,
    var: Path,
    *,
    rocksdb_history: History | None = None,
    parallel: bool = False,
    session_timeout: int | None = None,
) -> dict[str, Any]:
    """Both stores; ``parallel`` runs them at the same time (quick mode: the figures are
    then a smoke test, the point is the fixed waits of group joins overlapping).

    ``rocksdb_history`` (default: ``history``) is the RocksDB store's input. Its
    figure is a slope between two peaks, and a peak moves by 15-25 MB with what
    happens to be fetched and buffered at that moment: over the 0.75 million lines
    between a quarter and all of a million-line history that is 20-30 B a line
    either way, as large as the target itself. The full run gives it three
    million lines (2.2 million between the points)."""
    results: dict[str, Any] = {}
    errors: list[BaseException] = []
    inputs = {"memory://": history, "rocksdb://": rocksdb_history or history}

    def one(store: str) -> None:
        try:
            results[store.split("://")[0]] = run_store(
                store,
                inputs[store],
                bootstrap,
                var,
                session_timeout=session_timeout,
                settle_s=0.3 if parallel else 1.0,
            )
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    if parallel:
        threads = [threading.Thread(target=one, args=(store,)) for store in STORES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for store in STORES:
            one(store)
    if errors:
        raise errors[0]
    mem, rocks = results["memory"], results["rocksdb"]
    return {
        "lines": history.lines,
        "rocksdb_lines": inputs["rocksdb://"].lines,
        "parallel": parallel,
        "memory": mem,
        "rocksdb": rocks,
        "memory_bytes_per_line": mem["bytes_per_line"],
        "rocksdb_slope_bytes_per_line": rocks["slope_bytes_per_line"],
        "recovery_s_per_million": max(
            mem["recovery"]["recovery_s_per_million"], rocks["recovery"]["recovery_s_per_million"]
        ),
        "target_memory_bytes_per_line": TARGET_MEMORY_BYTES_PER_LINE,
        "flat_bytes_per_line": FLAT_BYTES_PER_LINE,
        "target_recovery_s_per_million": TARGET_RECOVERY_S_PER_MILLION,
    }
