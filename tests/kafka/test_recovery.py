"""Table recovery that reads each changelog to its real end (streams/kafka/recovery.py),
without a broker: the highwaters Faust's recovery starts from are raised to what a
fetch reports, never lowered.

On a broker, with tansu's short ListOffsets answer: tests/store/test_rocksdb_store.py
(a RocksDB worker restarted on its data, with one-record and batched changelog writes).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from faust.types import TP

from streams.domain.policy import load_policy
from streams.kafka import recovery
from streams.kafka.recovery import FetchedHighwaterRecovery
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker

SETTINGS = Settings(broker="127.0.0.1:9", app_id="recovery-test", partitions=3)
CHANGELOG = "recovery-test-state-changelog"
TPS = [TP(CHANGELOG, p) for p in range(3)]


class Listed:
    """A consumer whose ListOffsets answers (``highwaters``) are given."""

    def __init__(self, ends: dict[TP, int | None]) -> None:
        self.ends = ends

    async def highwaters(self, *tps: TP) -> dict[TP, int | None]:
        return {tp: self.ends[tp] for tp in tps}


@pytest.fixture
def worker_recovery() -> Any:
    """The recovery of a real worker's app, as Faust makes it from the TableManager."""
    return Worker(SETTINGS, load_policy()).app.tables.recovery


def fetched(ends: dict[TP, int], asked: list[Any]) -> Any:
    async def fetched_end_offsets(settings: Settings, listed: dict[TP, int]) -> dict[TP, int]:
        asked.append((settings, dict(listed)))
        return {tp: ends[tp] for tp in listed if tp in ends}

    return fetched_end_offsets


async def test_the_workers_app_recovers_with_fetched_highwaters(worker_recovery) -> None:
    assert isinstance(worker_recovery, FetchedHighwaterRecovery)
    assert worker_recovery.settings is SETTINGS  # the worker's broker and credentials


async def test_a_highwater_short_of_the_fetched_end_is_raised_and_none_is_lowered(
    worker_recovery, monkeypatch, caplog
) -> None:
    # ListOffsets (tansu): the base offset of the last batch + 1, short of the end for
    # partition 0; right for 1; partition 2 empty. The fetch says 0 ends at 30, and
    # (a stale answer) 1 at 5, below what ListOffsets said.
    listed = Listed({TPS[0]: 21, TPS[1]: 12, TPS[2]: 0})
    asked: list[Any] = []
    monkeypatch.setattr(
        recovery, "fetched_end_offsets", fetched({TPS[0]: 30, TPS[1]: 5, TPS[2]: 0}, asked)
    )
    destination: Counter[TP] = Counter()
    with caplog.at_level(logging.INFO, logger="claimwatch.recovery"):
        await worker_recovery._build_highwaters(listed, set(TPS), destination, "active")
    # Faust's convention: the last offset (end - 1), -1 for an empty partition
    assert dict(destination) == {TPS[0]: 29, TPS[1]: 11, TPS[2]: -1}
    ((settings, asked_for),) = asked
    assert settings is SETTINGS and asked_for == {TPS[0]: 21, TPS[1]: 12, TPS[2]: 0}
    assert "active changelog highwaters: 1 of 3 raised to the fetched end" in caplog.text


async def test_highwaters_that_are_right_are_left_and_nothing_is_logged(
    worker_recovery, monkeypatch, caplog
) -> None:
    listed = Listed({TPS[0]: 7, TPS[1]: None, TPS[2]: 3})
    monkeypatch.setattr(recovery, "fetched_end_offsets", fetched({TPS[0]: 7, TPS[2]: 3}, []))
    destination: Counter[TP] = Counter()
    with caplog.at_level(logging.INFO, logger="claimwatch.recovery"):
        await worker_recovery._build_highwaters(listed, set(TPS), destination, "standby")
    assert dict(destination) == {TPS[0]: 6, TPS[1]: -1, TPS[2]: 2}
    assert "raised to the fetched end" not in caplog.text


async def test_empty_changelog_partitions_need_no_fetch(monkeypatch) -> None:
    import aiokafka

    def no_consumer(*_: Any, **__: Any) -> Any:
        raise AssertionError("no consumer for partitions that ListOffsets says are empty")

    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", no_consumer)
    assert await recovery.fetched_end_offsets(SETTINGS, {TPS[0]: 0, TPS[1]: 0}) == {}
