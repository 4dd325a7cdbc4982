"""A worker with the RocksDB store survives a restart on its own data directory.

On tansu, Faust's table recovery took the changelog highwater from ListOffsets,
which tansu answers with the base offset of the last record batch + 1. A worker
whose changelog writes were batched then found its persisted RocksDB offset past
that highwater and crashed with a ConsistencyError on every restart. Recovery now
takes the highwater a fetch reports (streams/kafka/recovery.py), so this holds
with one record per producer batch and with batched writes (what production and
the embedded broker use) alike.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from streams.domain.policy import load_policy
from streams.local.cluster import Cluster
from streams.pipeline.settings import Settings
from streams.replay.producer import archive_lines, contract_lines, produce_history
from streams.synth.generate import GenerateOptions, generate

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _produce(cluster: Cluster, lines: list[bytes], contracts: list[bytes]) -> dict[str, int]:
    s = cluster.settings
    stats = asyncio.run(
        produce_history(
            s.broker or "",
            lines,
            topic=s.topic_declarations,
            contracts=contracts,
            contracts_topic=s.topic_contracts,
            batch_size=100,
        )
    )
    return {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}


@pytest.mark.parametrize("batch_bytes", [1, 16384], ids=["one-record-batches", "batched"])
def test_a_rocksdb_worker_restarted_on_its_data_keeps_its_state_and_processes_new_input(
    tmp_path: Path, batch_bytes: int
) -> None:
    history = tmp_path / "history"
    generate(history, GenerateOptions(providers=6, lines=3_000, seed=5))
    lines = list(archive_lines([history / "declarations.ndjson"]))
    first, rest = lines[:2_500], lines[2_500:]
    policy = load_policy()
    cluster = Cluster(
        Settings(partitions=4, tick_seconds=3600.0, store="rocksdb://", replay=True),
        var_dir=tmp_path / "var",
        env={
            "CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS": "3",  # quick group joins on tansu
            "CLAIMWATCH_PRODUCER_BATCH_BYTES": str(batch_bytes),
        },
    )
    cluster.start_broker()
    try:
        cluster.create_topics()
        worker = cluster.add_worker()
        cluster.wait_ready()
        targets = _produce(cluster, first, contract_lines(history / "contracts.ndjson"))
        cluster.wait_processed(targets, timeout=120)
        before, _ = cluster.snapshot(policy)

        # SIGKILL, then a new process on the same data dir once the dead member's 3 s
        # session is over: a member that joins while tansu still counts its dead
        # predecessor was seen (twice in a dozen runs) to get every partition and then
        # fetch nothing. That race is not what this test is about.
        cluster.kill_worker(worker)
        time.sleep(4)
        cluster.start_worker(worker)
        targets.update(_produce(cluster, rest, []))
        cluster.wait_processed(targets, timeout=120)  # raises if the worker crashed
        after, _ = cluster.snapshot(policy)
    finally:
        cluster.stop()

    assert any(worker.data_dir.rglob("CURRENT"))  # the state was in RocksDB files
    assert set(after["providers"]) >= set(before["providers"])
    done = sum(after["counts"][k] for k in ("accepted", "duplicate", "duplicate_line"))
    done += sum(after["counts"]["rejected"].values()) + after["counts"].get("duplicate_credit", 0)
    assert done == len(lines)  # every line counted once: restored state plus the new lines
