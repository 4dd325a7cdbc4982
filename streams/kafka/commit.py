"""The commit protocol of a worker, in one place, read top to bottom.

The guarantee: an input offset is committed only once every effect of the messages
before it (re-keyed lines, alerts, dead letters, the state table's changelog records)
is acknowledged by the broker; anything that would break this stops the worker
without committing, and the restarted worker reads again from the committed offsets
(at least once; what is read twice is a no-op, see step 2).

Per message, ``Commit.process`` (the ingest agent calls it for every message):

1. **Admit.** ``DeliveryGuard.admit``: only the next offset of its partition is
   processed. An earlier one (read again) is skipped; a later one means Faust lost
   offsets on the way, and the partition is read again from the next one
   (streams/kafka/delivery.py says which Faust defects this answers).
2. **Apply.** The worker's handler (``Worker.handle``): the processor skips a message
   whose offset its state already applied (the applied offsets in each provider's
   header, the ledger offset of a partition), then, in this order:
   a. re-keyed lines are sent to the control topic and acknowledged,
   b. dead letters are sent and acknowledged; alerts (each transition once:
      ``Published``) are sent, and those of the partition not yet acknowledged
      (``Unacknowledged``) are written to the partition's alert outbox,
   c. the table writes are made (their changelog records queued in the producer;
      checkpoint chunks drained one at a time),
   so a crash between any two of them re-sends results rather than loses them. An
   alert is not waited for: the outbox record goes to the changelog partition the
   message's state goes to, before it, and the producer keeps a partition's records
   in order, so a state that records the alert comes back with an outbox that holds
   it; recovery sends what of the outbox the alerts topic lacks. Dead letters carry
   input bytes, which no state record may hold: they are waited for.
3. **Stop on failure.** A message whose effects could not all be made stops the
   worker (``stop_unprocessed``): raised out of the agent, Faust would acknowledge it.
4. **Done.** ``DeliveryGuard.done``: the partition's next offset moves past it; Faust
   acknowledges it when the agent asks for the next message.

Per commit, ``Commit.commit`` (it replaces the consumer's ``_commit_offsets``, which
Faust's commit loop calls every second, at a rebalance and on the way out):

5. **Hold.** The offsets Faust asks for, each guarded partition held to the next
   offset the agent has to process (``DeliveryGuard.committable``): Faust counts
   skipped offsets as acknowledged.
6. **Flush.** The producer drained: every record queued or in hand handed to
   aiokafka (``DrainingBuffer.flush``; Faust's returns with one still in hand), then
   aiokafka's flush, which waits for the broker's answers.
7. **Check.** A record the broker refused stops the worker, committing nothing
   (``DrainingBuffer.check_sent``, ``Unacknowledged.check`` for alerts; a refusal
   seen earlier stopped it at once).
8. **Commit.** Faust's own commit of the held offsets.

At a rebalance (``Worker.on_assigned``, ``Worker.on_revoked``, ``Worker.recovered``):
the guard forgets the partitions that come or go; at recovery the alerts topic tells
which transitions are out already (``Published.reload``), the alert outboxes of the
partitions assigned are sent where the topic lacks them (``Unacknowledged.unsent``),
and a state that cannot be rebuilt from the changelog stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from streams.kafka.delivery import DeliveryGuard
from streams.kafka.offsets import read_all
from streams.kafka.producer import DrainingBuffer
from streams.kafka.stop import stop_unprocessed
from streams.store import codec

log = logging.getLogger("claimwatch.commit")

CommitOffsets = Callable[..., Awaitable[bool]]


class Commit:
    """The steps above for one worker's Faust app and delivery guard."""

    def __init__(
        self, app: Any, guard: DeliveryGuard, unacknowledged: Unacknowledged | None = None
    ) -> None:
        self.app = app
        self.guard = guard
        self.unacknowledged = unacknowledged
        self._commit_offsets: CommitOffsets | None = None

    def install(self) -> None:
        """Take over the consumer's acknowledgements (the guard's) and its commit
        (steps 5-8); once, when the agent starts."""
        if self._commit_offsets is not None:
            return
        self.guard.install()
        consumer = self.app.consumer
        self._commit_offsets = consumer._commit_offsets  # noqa: SLF001
        consumer._commit_offsets = self.commit  # noqa: SLF001

    # -- per message: steps 1-4 ------------------------------------------------------
    async def process(self, message: Any, apply: Callable[[Any], Awaitable[Any]]) -> bool:
        """Steps 1-4 for ``message``; whether it was processed (admitted)."""
        if not await self.guard.admit(message):  # 1
            return False
        try:
            await apply(message)  # 2
        except Exception:  # noqa: BLE001 - anything: the state may be ahead of the table
            tp = message.tp
            stop_unprocessed(  # 3
                f"{tp.topic}:{tp.partition} offset {message.offset} could not be "
                "processed and written"
            )
        self.guard.done(message)  # 4
        return True

    # -- per commit: steps 5-8 -------------------------------------------------------
    async def commit(self, offsets: Mapping[Any, int], *args: Any, **kwargs: Any) -> bool:
        held = self.guard.committable(offsets)  # 5
        producer = self.app.producer
        await producer.flush()  # 6
        buffer = producer.buffer
        if isinstance(buffer, DrainingBuffer):
            buffer.check_sent()  # 7
        if self.unacknowledged is not None:
            self.unacknowledged.check()  # 7
        assert self._commit_offsets is not None, "install() first"
        return bool(await self._commit_offsets(held, *args, **kwargs))  # 8


class Published:
    """Alert transitions (alert_id, sequence) known to be on the alerts topic.

    A crash can come after an alert was sent and before its message's state was
    written: the message is processed again and its transitions found here, read
    from the topic at recovery, are not sent twice."""

    def __init__(self) -> None:
        self.marks: set[tuple[str, int]] = set()

    def first(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` is to be sent (and is now counted as sent)."""
        mark = (event["alert_id"], event["sequence"])
        if mark in self.marks:
            return False  # published before a crash whose state write was lost
        self.marks.add(mark)
        return True

    async def reload(self, broker: str, topic: str, client: Mapping[str, Any]) -> None:
        """Read the alerts topic once (each rebalance) to the end a fetch reports, not
        to tansu's ListOffsets answer (streams/kafka/offsets.py)."""
        for _k, value, _h in await read_all(broker, topic, 60.0, dict(client)):
            try:
                event = orjson.loads(value)
                self.marks.add((event["alert_id"], event["sequence"]))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue


class Unacknowledged:
    """Alert transitions sent and not yet acknowledged, per input partition: what the
    partition's alert outbox (``a:<partition>`` in the state table) has to hold.

    The agent does not wait for an alert's acknowledgement before the next message:
    a broker round trip for every message with an alert kept it idle for a large part
    of its time. The outbox record precedes the message's other writes in the
    changelog partition, so whatever state a recovery finds, the alerts it recorded
    are either on the topic or in the outbox."""

    def __init__(self) -> None:
        self.pending: dict[int, list[tuple[Mapping[str, Any], Any]]] = {}

    def outbox(self, partition: int, sent: Sequence[tuple[Mapping[str, Any], Any]]) -> bytes:
        """The outbox value of ``partition`` once ``sent`` ((event, acknowledgement)
        pairs) went out: those of its earlier alerts still unacknowledged, then these."""
        still = [(e, ack) for e, ack in self.pending.get(partition, ()) if not acknowledged(ack)]
        for _e, ack in sent:
            if isinstance(ack, asyncio.Future):
                ack.add_done_callback(_settled)  # a refusal stops the worker at once
        still += sent
        self.pending[partition] = still
        return codec.encode_outbox([e for e, _ in still])

    def check(self) -> None:
        """Stop the worker if the broker refused an alert (step 7: the futures are
        settled after the flush, their callbacks may not have run yet)."""
        for entries in self.pending.values():
            for _e, ack in entries:
                _settled(ack)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions gone (their records were flushed by the revocation's commit)."""
        for p in partitions:
            self.pending.pop(p, None)

    @staticmethod
    def unsent(value: Any, published: Published) -> list[dict[str, Any]]:
        """The transitions of an outbox value the alerts topic does not hold, in order
        (now counted as sent)."""
        return [e for e in codec.decode_outbox(value) if published.first(e)]


def _settled(ack: Any) -> None:
    """Stop the worker on an alert the producer or the broker refused: it was not
    waited for, and a commit must not pass its message (it would stay in the outbox
    until the next recovery)."""
    if not isinstance(ack, asyncio.Future) or not ack.done() or ack.cancelled():
        return
    exc = ack.exception()
    if exc is not None:
        stop_unprocessed(
            f"an alert transition was refused ({type(exc).__name__}); the offsets "
            "whose state records it must not be committed",
            exc_info=False,
        )


def acknowledged(ack: Any) -> bool:
    """Whether a send's future completed without error (a refused record stays
    pending: the commit's check stops the worker on it, step 7)."""
    done = getattr(ack, "done", None)
    if done is None or not done():
        return False
    return not ack.cancelled() and ack.exception() is None
