"""The provider-status topic (SPEC §10) on the worker's side: publish, read back.

Every worker publishes the summaries of the provider-years it owns
(``streams.domain.status``) to the compacted ``ggz.provider-status.v1``, and reads
the whole topic with a consumer of its own, outside the consumer group, assigned
every partition from the beginning and following it for as long as the worker runs.
The peer mean of ``group_share_low`` comes from what that reader holds, so every
worker judges against the same providers however the partitions are spread (a Faust
GlobalTable is not shared between worker instances: faust-streaming #283).

Publishing is off the per-message path: the processor only marks an owner dirty;
``ProviderStatus.publish`` builds and sends the summaries of the dirty owners, on a
timer (``status_interval``) and whenever a tick or a status flush is handled, and
waits until the broker has them. A summary equal to the last one published is not
sent again.

End of input (SPEC §8.1, §5: the set firing once all input is processed): a replay
first sends a status flush to every partition and waits until all are processed,
so every provider's final summary is on the topic; then the final ticks, before
each of which the worker reads the topic up to its end as a fetch reports it at that
moment (tansu's ListOffsets stops short of the end: streams/kafka/offsets.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mode import Service

from streams.domain.status import StatusBook, digest, provider_statuses
from streams.kafka.offsets import end_offsets, partitions_of, whole_topic_consumer

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.domain.engine import Engine
    from streams.pipeline.processor import Processor
    from streams.pipeline.settings import Settings

log = logging.getLogger("claimwatch.status")

# A tick waits at most this long for the reader's first read of the whole topic.
READY_TIMEOUT_S = 60.0
# A final tick waits at most this long for the reader to reach the topic's end.
CATCH_UP_TIMEOUT_S = 60.0
BUILD_YIELD = 200  # owners whose summaries are built between two yields to the loop

Send = Callable[[bytes, bytes], Awaitable[Awaitable[Any]]]


class TopicReader(Service):
    """Follows every partition of a compacted topic from its beginning, outside the
    consumer group, handing each record to ``apply(key, value)``."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        apply: Callable[[bytes | None, bytes | None], None],
        what: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topic = topic
        self.apply = apply
        self.what = what  # as log lines name it
        self.ready = asyncio.Event()  # set after the first read to the topic's end
        self.running = False
        self._consumer: AIOKafkaConsumer | None = None
        self._probe: AIOKafkaConsumer | None = None
        self._probe_lock = asyncio.Lock()
        self._tps: list[TopicPartition] = []

    async def _started_consumer(self) -> AIOKafkaConsumer:
        return await whole_topic_consumer(self.settings)

    async def on_start(self) -> None:
        # The consumer starts in _follow, which retries: a broker away for a moment
        # must not fail the rebalance that starts this service.
        self.running = True
        self.add_future(self._follow())
        self.add_future(self._first_read())

    async def on_stop(self) -> None:
        for consumer in (self._consumer, self._probe):
            if consumer is not None:
                await consumer.stop()

    async def _assign(self) -> bool:
        from aiokafka import TopicPartition

        if self._consumer is None:
            self._consumer = await self._started_consumer()
        consumer = self._consumer
        topic = self.topic
        parts = await partitions_of(consumer, topic)
        if not parts:
            return False
        self._tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(self._tps)
        await consumer.seek_to_beginning(*self._tps)
        return True

    async def _follow(self) -> None:
        missing_logged = False
        while not self.should_stop:
            try:
                if not self._tps and not await self._assign():
                    if not missing_logged:
                        log.error("%s: topic %s not found; waiting for it", self.what, self.topic)
                        missing_logged = True
                    await asyncio.sleep(2.0)
                    continue
                assert self._consumer is not None
                batch = await self._consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the reader must outlive broker trouble
                if self.should_stop:
                    return
                log.warning("%s: %s; retrying", self.what, type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            apply = self.apply
            for records in batch.values():
                for record in records:
                    apply(record.key, record.value)

    async def _first_read(self) -> None:
        done = await self.catch_up(READY_TIMEOUT_S)
        self.ready.set()
        if done:
            log.info("%s: read to its end", self.what)

    async def wait_ready(self, timeout: float) -> None:
        if not self.running or self.ready.is_set():
            return
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            log.warning("%s not ready within %.0f s: going on without it", self.what, timeout)

    async def catch_up(self, timeout: float) -> bool:
        """Read the topic up to where it ends now, as a fetch reports it. False (and a
        warning) when that is not done within ``timeout``."""
        try:
            return await self._catch_up(timeout)
        except Exception as exc:  # noqa: BLE001 - judge with what is read, never crash the agent
            log.warning("%s: catching up failed: %s", self.what, type(exc).__name__)
            return False

    async def _catch_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._tps and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        consumer = self._consumer
        if not self._tps or consumer is None:
            log.warning("%s: no topic to catch up with", self.what)
            return False
        async with self._probe_lock:
            if self._probe is None:
                self._probe = await self._started_consumer()
                self._probe.assign(self._tps)
            ends = await end_offsets(self._probe, self._tps, timeout)
        while True:
            behind = 0
            for tp in self._tps:
                if await consumer.position(tp) < ends[tp]:
                    behind += 1
            if not behind:
                return True
            if time.monotonic() >= deadline:
                log.warning(
                    "%s: %d of %d partitions not read to their end within %.0f s",
                    self.what,
                    behind,
                    len(self._tps),
                    timeout,
                )
                return False
            await asyncio.sleep(0.01)


class StatusReader(TopicReader):
    """Follows every partition of the status topic into a ``StatusBook``."""

    def __init__(self, settings: Settings, book: StatusBook, **kwargs: Any) -> None:
        super().__init__(
            settings, settings.topic_provider_status, book.apply, "status reader", **kwargs
        )
        self.book = book


class ProviderStatus:
    """One worker's side of the status topic: the book, its reader, the publisher."""

    def __init__(
        self, settings: Settings, engine: Engine, processor: Processor, send: Send
    ) -> None:
        self.engine = engine
        self.processor = processor
        self.book = StatusBook()
        self.reader = StatusReader(settings, self.book)
        self._send = send
        self._lock = asyncio.Lock()
        # owner → year → digest of the summary this process published last
        self._sent: dict[str, dict[int, int]] = {}
        self.published = 0

    def peer_means(self) -> dict[int, Fraction | None]:
        return self.book.means(self.engine.policy.group_share.min_consults)

    async def before_tick(self, final: bool) -> None:
        """A final tick judges against the topic as it ends now; another tick, once
        the reader has read it whole a first time."""
        if not self.reader.running:  # Faust's test context: no reader was started
            return
        if final:
            await self.reader.catch_up(CATCH_UP_TIMEOUT_S)
        else:
            await self.reader.wait_ready(READY_TIMEOUT_S)

    async def settle(self) -> None:
        """Until a publication under way is acknowledged (before partitions go)."""
        async with self._lock:
            pass

    async def publish(self) -> int:
        """Send the changed summaries of the dirty owners and wait for the broker;
        the number sent. If a send fails, the owners stay dirty and the error is
        raised."""
        async with self._lock:
            providers = self.engine.providers
            for owner in [o for o in self._sent if o not in providers]:
                del self._sent[owner]  # its partition went to another worker
            owners = self.processor.dirty
            if not owners:
                return 0
            self.processor.dirty = set()
            try:
                futures = []
                for i, owner in enumerate(sorted(owners), 1):
                    st = providers.get(owner)
                    if st is None:
                        continue
                    sent = self._sent.setdefault(owner, {})
                    for key, value in provider_statuses(
                        st, self.engine.contracts, self.engine.policy, self.engine.departments
                    ):
                        d = digest(value)
                        year = _year_of(key)
                        last = sent.get(year)
                        if last is None:
                            last = self.book.digest(key)  # published before this process
                        if last == d:
                            continue
                        sent[year] = d
                        futures.append(await self._send(key.encode(), value))
                    if i % BUILD_YIELD == 0:
                        await asyncio.sleep(0)
                for fut in futures:
                    await fut
            except BaseException:
                self.processor.dirty |= owners
                for owner in owners:
                    self._sent.pop(owner, None)
                raise
            self.published += len(futures)
            return len(futures)


def _year_of(key: str) -> int:
    return int(key.rsplit(":", 1)[1])
