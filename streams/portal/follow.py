"""The portal's readers: one consumer per followed topic, outside any consumer group,
assigned every partition from the beginning and following it for as long as the
portal runs (SPEC §11).

A ``Follower`` learns where each partition ends when it starts (``end_offsets``,
which knows tansu's short ListOffsets answer: streams/kafka/offsets.py) and is
*ready* once it has read that far: the portal's ``/ready`` waits for all three. A
topic that does not exist yet counts as read (there is nothing to serve from it);
the follower keeps looking for it and reads it from the start once it appears.
Broker trouble is logged and retried, never fatal; a malformed record is the
model's to count (streams/portal/model.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.kafka.offsets import end_offsets, partitions_of, whole_topic_consumer

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.pipeline.settings import Settings

log = logging.getLogger("claimwatch.portal")

RETRY_S = 2.0  # between two looks for a missing topic, or after broker trouble

Apply = Callable[[bytes | None, bytes | None], None]


class Follower:
    """Reads ``topic`` from its beginning into ``apply(key, value)``."""

    def __init__(self, name: str, topic: str, apply: Apply, settings: Settings) -> None:
        self.name = name
        self.topic = topic
        self.apply = apply
        self.settings = settings
        self.ready = asyncio.Event()
        self.missing = False
        self.lag: int | None = None  # records behind the last fetch's highwater
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._ends: dict[TopicPartition, int] = {}

    def state(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "ready": self.ready.is_set(),
            "missing": self.missing,
            "lag": self.lag,
        }

    async def run(self) -> None:
        while True:
            try:
                if self._consumer is None:
                    self._consumer = await self._start()
                if not self._tps and not await self._assign():
                    await asyncio.sleep(RETRY_S)
                    continue
                batch = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the portal must outlive broker trouble
                log.warning("portal: reading %s: %s; retrying", self.topic, type(exc).__name__)
                await asyncio.sleep(RETRY_S)
                continue
            apply = self.apply
            for records in batch.values():
                for record in records:
                    apply(record.key, record.value)
                await asyncio.sleep(0)  # a long backlog must not starve the web server
            await self._progress()

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def _start(self) -> AIOKafkaConsumer:
        return await whole_topic_consumer(self.settings)

    async def _assign(self) -> bool:
        from aiokafka import TopicPartition

        consumer = self._consumer
        assert consumer is not None
        parts = await partitions_of(consumer, self.topic)
        if not parts:
            if not self.missing:
                log.warning("portal: topic %s not found; serving without it", self.topic)
            self.missing = True
            self.ready.set()  # nothing to read: not what keeps the portal unready
            return False
        self.missing = False
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        self._ends = await end_offsets(consumer, tps)
        await consumer.seek_to_beginning(*tps)
        self._tps = tps
        await self._progress()
        return True

    async def _progress(self) -> None:
        """Update the lag, and mark ready once the ends seen at the start are read."""
        consumer = self._consumer
        if consumer is None or not self._tps:
            return
        lag = 0
        behind = 0
        for tp in self._tps:
            position = await consumer.position(tp)
            if position < self._ends.get(tp, 0):
                behind += 1
            high = consumer.highwater(tp)
            lag += max(0, (high if high is not None else self._ends.get(tp, 0)) - position)
        self.lag = lag
        if not behind and not self.ready.is_set():
            self.ready.set()
            log.info("portal: %s read to its end", self.topic)
