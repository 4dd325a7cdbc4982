"""A plain aiokafka consumer on every partition of a topic, from the beginning.

The raw loop (``bench.streaming``), the latency floor (``bench.latency``) and the
in-memory readers (``bench.inmemory``) read topics this way, outside any group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from streams.kafka.offsets import end_offsets


@asynccontextmanager
async def from_beginning(
    bootstrap: str, topic: str, *, ends: bool = True, **settings: Any
) -> AsyncIterator[tuple[Any, dict[Any, int]]]:
    """A started ``AIOKafkaConsumer`` (``settings`` are its own) assigned every
    partition of ``topic`` and positioned at their beginning, and with ``ends`` each
    partition's end offset as it was then; the consumer is stopped on exit."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **settings)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        # not ListOffsets alone, which falls short on tansu; this moves the positions
        last = await end_offsets(consumer, tps) if ends else {}
        await consumer.seek_to_beginning(*tps)
        yield consumer, last
    finally:
        await consumer.stop()
