"""A real worker on the embedded broker under faults that used to stop or corrupt it:
a message whose processing raises, and a state record the broker refuses.

The faults are injected into the worker process (tests/pipeline/faults/
sitecustomize.py): the worker's code path is the production one."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import orjson
import pytest

from tests.pipeline.conftest import FAST_REBALANCE
from tests.pipeline.harness import (
    Background,
    assert_equal_results,
    finish,
    offline_reference,
    produce,
    wait_until,
    write_lines,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]
FAULTS = Path(__file__).parent / "faults"


def _fault_env(fault: str, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**FAST_REBALANCE, "PYTHONPATH": path, "CW_FAULT": fault, **extra}


def test_a_poison_message_is_dead_lettered_and_the_partition_goes_on(
    cluster, small_history, policy, tmp_path: Path
) -> None:
    files, contracts = small_history
    lines = files[0].read_bytes().splitlines()
    reference = offline_reference(files, contracts, policy, tmp_path)
    middle = len(lines) // 2
    poison = orjson.loads(lines[middle])
    poison.update(event_id="poison-event", line_id="poison-line")
    with_poison = write_lines(
        tmp_path / "with-poison.ndjson",
        [*lines[:middle], orjson.dumps(poison), *lines[middle:]],
    )
    cluster.env = _fault_env("poison")
    worker = cluster.add_worker()
    cluster.wait_ready()
    # One line a message: the poison message holds the poison line alone.
    stats = produce(cluster, [with_poison], contracts, batch_size=1)
    online = finish(cluster, stats, policy)
    assert worker.proc is not None and worker.proc.poll() is None, "the worker stopped"
    expected = copy.deepcopy(reference)
    expected["snapshot"]["counts"]["rejected"]["processing_error"] = 1
    assert_equal_results(online, expected)
    (letter,) = [
        h
        for _k, _v, h in cluster.read_topic(cluster.settings.topic_rejected)
        if dict(h).get("reason") == b"processing_error"
    ]
    assert dict(letter)["detail"] == dict(letter)["exception"] == b"ZeroDivisionError"
    log = worker.log_path.read_text()
    assert "raised ZeroDivisionError; dead-lettered as processing_error" in log
    assert poison["client_ref"] not in log


def test_a_refused_checkpoint_chunk_stops_the_worker_uncommitted_and_nothing_is_lost(
    cluster, small_history, policy, tmp_path: Path
) -> None:
    files, contracts = small_history
    reference = offline_reference(files, contracts, policy, tmp_path)
    marker = tmp_path / "refused"
    # Checkpoints early and in many chunks, so that one is written mid-stream.
    cluster.settings = cluster.settings.with_(checkpoint_segments=4, checkpoint_chunk=200)
    cluster.env = _fault_env("refuse-chunk", CW_FAULT_MARKER=str(marker))
    worker = cluster.add_worker()
    cluster.wait_ready()
    producing = Background(produce, cluster, files, contracts, batch_size=40, rate=2_000)
    wait_until(
        lambda: worker.proc is not None and worker.proc.poll() is not None,
        120,
        "the worker to stop on the refused chunk",
    )
    assert marker.exists(), "no checkpoint chunk was written"
    assert worker.proc is not None and worker.proc.returncode == 70
    log = worker.log_path.read_text()
    assert "was refused (MessageSizeTooLargeError)" in log and "stopping without committing" in log
    # Had the offsets of the message whose chunk was refused been committed, the
    # restarted worker would find a header pointing at a missing chunk (recovery
    # fails) or miss that message's lines (the snapshot differs).
    cluster.start_worker(worker)
    cluster.wait_ready()
    stats = producing.result()
    online = finish(cluster, stats, policy)
    assert_equal_results(online, reference, f"refused {marker.read_text()}")
