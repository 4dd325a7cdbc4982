"""Table recovery that reads each changelog to its real end, also on tansu.

Faust's recovery reads a changelog partition up to the highwater it gets from
ListOffsets. tansu answers ListOffsets with the base offset of the partition's last
record batch + 1 instead of the offset after its last record (docs/faust-on-tansu.md),
so with batched changelog writes:

- a RocksDB store, whose persisted offset lies in that last batch, was "ahead of the
  highwater" and the worker crashed on every restart with a ConsistencyError;
- a memory store (or a RocksDB store on an empty data directory) stopped reading
  before the newest records of each partition, and lost them.

A fetch response carries the right highwater, on tansu as on Kafka. This recovery
fetches the last batch of each changelog partition and takes the larger answer
(``streams.kafka.offsets``, which the worker's other reads of a topic's end share), so the
producer can keep batching (one record per batch made ListOffsets exact, but cost
the latency target: the agent waited on the changelog backlog).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Set
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.kafka import offsets
from streams.kafka.offsets import FETCH_TIMEOUT_S
from streams.pipeline.settings import Settings

log = logging.getLogger("claimwatch.recovery")


async def fetched_end_offsets(
    settings: Settings, listed: Mapping[TP, int], timeout: float = FETCH_TIMEOUT_S
) -> dict[TP, int]:
    """The offset after the last record of each changelog partition, from fetch
    responses (``streams.kafka.offsets.fetched_end_offsets``, with a consumer of its own).

    ``listed`` holds what ListOffsets said (the end offset, possibly short).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    wanted = {TopicPartition(tp.topic, tp.partition): tp for tp, end in listed.items() if end > 0}
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=1024,  # the highwater is all we need
        **settings.kafka_client_kwargs(),
    )
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        fetched = await offsets.fetched_end_offsets(
            consumer, {atp: listed[tp] for atp, tp in wanted.items()}, timeout
        )
    finally:
        await consumer.stop()
    return {wanted[atp]: end for atp, end in fetched.items()}


class FetchedHighwaterRecovery(Recovery):
    """Faust's recovery with highwaters corrected by ``fetched_end_offsets``."""

    settings: Settings  # set by ``table_manager``

    async def _build_highwaters(
        self, consumer: Any, tps: Set[TP], destination: Counter[TP], title: str
    ) -> None:
        await super()._build_highwaters(consumer, set(tps), destination, title)
        # Faust stores "last offset" (end - 1); -1 for an empty partition.
        listed = {tp: destination[tp] + 1 for tp in tps}
        corrected = 0
        for tp, end in (await fetched_end_offsets(self.settings, listed)).items():
            if end - 1 > destination[tp]:
                destination[tp] = end - 1
                corrected += 1
        if corrected:
            log.info(
                "%s changelog highwaters: %d of %d raised to the fetched end",
                title,
                corrected,
                len(tps),
            )


def table_manager(settings: Settings) -> type[TableManager]:
    """A TableManager (Faust's ``TableManager`` setting) whose recovery reads to the end."""

    recovery_class = type("ClaimwatchRecovery", (FetchedHighwaterRecovery,), {"settings": settings})

    class ClaimwatchTableManager(TableManager):
        @property
        def recovery(self) -> Recovery:
            if self._recovery is None:
                self._recovery = recovery_class(self.app, self, beacon=self.beacon, loop=self.loop)
            return self._recovery

    return ClaimwatchTableManager
