"""The worker's Kafka producer: its buffer drained before offsets are committed,
and idempotent where the broker supports it.

**Draining.** A table write queues its changelog record in Faust's producer buffer,
and one task hands the records to aiokafka one at a time. Before the consumer
commits offsets, Faust flushes the producer, but ``ProducerBuffer.flush`` returns
as soon as its queue is empty, while the record the task has just taken from it may
still be on its way into aiokafka (``send`` waits when its batches are full), and
it gives up after 0.1 s without a send. aiokafka's own flush covers only what it
has received. So a commit could run ahead of the state it stands for: offsets of
messages committed while their journal segment or header was not yet produced,
lost with a SIGKILL at that moment, and never processed again (the restarted
worker resumes from the committed offsets). ``DrainingBuffer`` counts the record in
hand and waits until none is queued or in hand.

**Refused records.** Table writes are fire-and-forget in Faust: a changelog record
the broker refuses (a chunk above the topic's ``max.message.bytes``, a lost
leader past the retries) sets an exception on its future, Faust logs a warning
and commits the offsets anyway, so the state those offsets stand for was never
written and the next recovery finds a header pointing at a missing chunk.
``DrainingBuffer`` watches every record it hands to the driver, and a refused one
stops the worker (``stop_unprocessed``) before another commit can run: a failure
seen when it happens stops it at once, and the commit (streams/kafka/commit.py,
step 7) looks at every record sent since and stops the worker when one failed.

**Idempotence.** aiokafka retries a produce request that failed on the network (a
connection reset, a request timeout). When the broker had already appended the
batch, the retry appends it a second time: an alert transition, a dead letter or a
changelog record written twice. The idempotent producer (Kafka's
``enable.idempotence``) numbers its batches so that the broker drops such a repeat.
Faust turns idempotence on only for ``processing_guarantee="exactly_once"``
(``Producer._settings_extra`` in faust/transport/drivers/aiokafka.py) and has no
setting for it, so the transport gets a producer class that asks for it. tansu, the
embedded broker, does not implement it (InitProducerId fails with UnknownError):
``Settings.producer_idempotence`` is off there (streams/local/cluster.py), and a network
fault can then duplicate a record (docs/operations.md, "Delivery guarantees").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Producer
from faust.transport.producer import ProducerBuffer

from streams.kafka.stop import stop_unprocessed

FLUSH_POLL_S = 0.1  # as Faust's flush: how long to wait for a send before looking again


class DrainingBuffer(ProducerBuffer):
    """Faust's producer buffer whose ``flush`` waits for the record in hand too, and
    which stops the worker when the broker refuses a record it sent."""

    in_hand = 0  # records taken from the queue and not yet handed to the driver

    def __post_init__(self) -> None:
        super().__post_init__()
        # the driver's futures of records handed over and not yet acknowledged
        self.sending: dict[asyncio.Future[Any], Any] = {}

    async def _send_pending(self, fut: Any) -> None:
        self.in_hand += 1
        try:
            try:
                sent = await fut.message.channel.publish_message(fut, wait=False)
            except Exception as exc:  # noqa: BLE001 - refused before it left (size, closed)
                _refused(fut, exc)
                return
            self.sending[sent] = fut
            sent.add_done_callback(self._settled)
        finally:
            self.in_hand -= 1

    def _settled(self, sent: asyncio.Future[Any]) -> None:
        fut = self.sending.pop(sent, None)
        if sent.cancelled():
            return  # the producer is stopping: nothing is committed after this
        exc = sent.exception()
        if exc is not None:
            _refused(fut, exc)

    def check_sent(self) -> None:
        """Stop the worker if a record handed to the driver was refused; called after
        the driver's flush, before a commit (the futures are settled by then, their
        callbacks may not have run yet)."""
        for sent in [s for s in self.sending if s.done()]:
            self._settled(sent)

    async def flush(self) -> None:
        """Wait until no record is queued or in hand (then the driver has them all)."""
        while self.size or self.in_hand:
            if self.state != "running":
                if self.size:  # as Faust's: queued records cannot go out any more
                    raise RuntimeError("Cannot flush: Producer not Running")
                return  # stopping: the send in hand is being cancelled
            self.message_sent.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.message_sent.wait(), timeout=FLUSH_POLL_S)


class DrainingProducer(Producer):
    """The aiokafka driver's producer with a ``DrainingBuffer``: its ``flush`` (step 6
    of streams/kafka/commit.py) waits for the record in hand too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stock: Any = self.buffer
        buffer = DrainingBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = stock.app
        if getattr(stock, "threaded_producer", None) is not None:
            buffer.threaded_producer = stock.threaded_producer
        self.buffer = buffer


def _refused(fut: Any, exc: BaseException) -> None:
    """A record the driver or the broker refused: stop before anything commits. The
    log names the topic and the error class, never the record."""
    topic = "a topic"
    if fut is not None:
        with contextlib.suppress(Exception):
            topic = fut.message.channel.get_topic_name()
    stop_unprocessed(
        f"a record for {topic} was refused ({type(exc).__name__}); the offsets whose "
        "state it carries must not be committed",
        exc_info=False,
    )


class IdempotentProducer(DrainingProducer):
    """A ``DrainingProducer`` that asks aiokafka for idempotence (the transport's
    producer when ``Settings.producer_idempotence`` is on, streams/kafka/transport.py)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}
