"""Where a topic's partitions end, exactly, on Kafka and on tansu; reading up to there.

tansu (the embedded broker) answers ListOffsets(latest) with the base offset of a
partition's last record batch + 1 instead of the offset after its last record
(docs/faust-on-tansu.md): once a producer batches, ``AIOKafkaConsumer.end_offsets()``
falls short by up to a batch. The highwater in a fetch response is right on tansu as
on Kafka. ``end_offsets`` therefore asks ListOffsets, fetches from inside the last
batch of each partition and takes the larger answer; it is the one place that does,
for table recovery (streams/kafka/recovery.py) as for ``read_all``, which the
worker uses to learn which alert transitions are already published, and the demo and
the tests to collect alerts and dead letters. ``consumer_lag`` reads a running
worker's lag the same way: the fetch highwater, never ListOffsets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger("claimwatch.offsets")

FETCH_TIMEOUT_S = 30.0


async def whole_topic_consumer(settings: Any, fetch_max_wait_ms: int = 200) -> AIOKafkaConsumer:
    """A started consumer outside any consumer group, from the beginning, never
    committing: what a reader of a whole compacted topic (the provider-status topic,
    the department register, the portal's topics) assigns every partition to.
    ``settings`` gives the broker and its security (``Settings.kafka_client_kwargs``)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        **settings.kafka_client_kwargs(),
    )
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def fetched_end_offsets(
    consumer: AIOKafkaConsumer,
    listed: Mapping[TopicPartition, int],
    timeout: float = FETCH_TIMEOUT_S,
) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition, from fetch responses.

    ``listed`` holds what ListOffsets said (the end offset, possibly short); the fetch
    starts one before it, in the last batch, so the broker answers at once. The
    consumer must be started and have the partitions assigned; their positions move.
    A partition that is empty by ``listed``, or whose fetch brings no answer within
    ``timeout``, is left out (a warning says how many did not answer).
    """
    pending = {tp for tp, end in listed.items() if end > 0}
    for tp in pending:
        consumer.seek(tp, listed[tp] - 1)
    out: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        await consumer.getmany(*pending, timeout_ms=200, max_records=1)
        for tp in list(pending):
            highwater = consumer.highwater(tp)
            if highwater is not None:
                out[tp] = highwater
                pending.discard(tp)
    if pending:
        log.warning("no fetch highwater for %d partitions within %.0f s", len(pending), timeout)
    return out


async def end_offsets(
    consumer: AIOKafkaConsumer,
    tps: Iterable[TopicPartition],
    timeout: float = FETCH_TIMEOUT_S,
) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition (assigned to ``consumer``):
    ListOffsets, raised to the highwater a fetch of the last batch reports."""
    listed: dict[TopicPartition, int] = dict(await consumer.end_offsets(list(tps)))
    fetched = await fetched_end_offsets(consumer, listed, timeout)
    return {tp: max(end, fetched.get(tp, end)) for tp, end in listed.items()}


def consumer_lag(consumer: Any, tps: Iterable[Any]) -> dict[tuple[str, int], int]:
    """Messages a Faust consumer is behind, per partition of ``tps``: the highwater of
    its last fetch minus its committed offset (0 when nothing is committed). A
    partition not fetched yet, or moving away mid-call, is left out.

    The highwater is the fetch's (``Consumer.highwater``), right on tansu, where
    ``highwaters()`` (ListOffsets) is short. Faust keeps the committed offsets in the
    private ``Consumer._committed_offset`` and exposes none (README, "Private APIs").
    """
    committed = consumer._committed_offset  # noqa: SLF001
    lags: dict[tuple[str, int], int] = {}
    for tp in tps:
        try:
            high = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - a partition moving away mid-scrape
            continue
        if high is None:
            continue
        lags[(tp.topic, tp.partition)] = max(0, int(high) - int(committed.get(tp) or 0))
    return lags


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` (empty: the topic does not exist), asking the broker
    once more when the consumer's metadata has not seen it yet. aiokafka refreshes
    metadata on a timer; its public API has no way to ask now, so the private
    ``_client.force_metadata_update`` is used (README, "Private APIs")."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()  # noqa: SLF001
        parts = consumer.partitions_for_topic(topic)
    return set(parts or ())


async def read_records(
    bootstrap: str,
    topic: str,
    timeout: float = 30.0,
    client_kwargs: dict[str, Any] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic up to the end of each partition when called (by
    ``end_offsets``), partition by partition. A partition not read to its end within
    ``timeout`` is logged and returned as far as it was read."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        # a one-off reader: a fetch at a partition's end need not be held long
        fetch_max_wait_ms=100,
        **(client_kwargs or {}),
    )
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
        if not tps:
            return out
        consumer.assign(tps)
        deadline = time.monotonic() + timeout
        ends = await end_offsets(consumer, tps, timeout)
        remaining = {tp for tp in tps if ends[tp] > 0}
        if remaining:
            await consumer.seek_to_beginning(*remaining)
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                # later records (written since the ends were taken) are not asked for
                out.extend(r for r in records if r.offset < ends[tp])
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        if remaining:
            log.warning(
                "%s: %d partitions not read to their end within %.0f s",
                topic,
                len(remaining),
                timeout,
            )
    finally:
        await consumer.stop()
    return out


async def read_all(
    bootstrap: str,
    topic: str,
    timeout: float = 30.0,
    client_kwargs: dict[str, Any] | None = None,
) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """(key, value, headers) of every message of a topic up to its current end
    (``read_records``)."""
    return [
        (r.key, r.value, dict(r.headers or ()))
        for r in await read_records(bootstrap, topic, timeout, client_kwargs)
    ]
