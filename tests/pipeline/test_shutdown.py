"""A graceful stop (SIGTERM: rolling update, scale-in) commits what the worker processed."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.pipeline.harness import produce

pytestmark = [pytest.mark.broker, pytest.mark.slow]


async def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int, client_kwargs: dict[str, Any]
) -> dict[int, int | None]:
    """The group's committed offsets (the next offset to read), read without joining it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **client_kwargs
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


def test_a_worker_stopped_with_sigterm_commits_what_it_processed_and_exits_cleanly(
    cluster, history, tmp_path: Path
) -> None:
    files, contracts = history
    worker = cluster.add_worker()
    cluster.wait_ready()
    stats = produce(cluster, files, contracts)
    s = cluster.settings
    cluster.wait_processed({f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()})
    started = time.monotonic()
    cluster.kill_worker(worker, signal.SIGTERM)
    stopped_in = time.monotonic() - started
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log_path.read_text()[
        -2000:
    ]
    assert stopped_in < 25, f"a graceful stop took {stopped_in:.1f} s"
    committed = asyncio.run(
        committed_offsets(
            s.broker or "", s.app_id, s.topic_declarations, s.partitions, s.kafka_client_kwargs()
        )
    )
    # end_offsets are the last offsets produced; a commit names the next one to read
    assert {p: committed[p] for p in stats.end_offsets} == {
        p: o + 1 for p, o in stats.end_offsets.items()
    }
