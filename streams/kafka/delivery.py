"""Every offset processed, in order: a guard between Faust's consumer and the agent.

Faust (faust-streaming 0.15) can lose messages around a rebalance on their way from
the fetcher to the agent. The fault tests (tests/pipeline/test_faults.py) caught
three ways:

- it *acknowledges* the messages a stream skips while a rebalance is under way
  (flow control suspended, or fetched in an older consumer generation; faust/streams.py
  ``skipped_value``), so their offsets are committed although no agent processed them;
- after seeking back to the committed offset it can hand a partition's messages over
  out of order, later ones first, and then drops the earlier ones as already read;
- it fetched a partition's first message and never delivered it.

Two more were found by logging every offset processed and committed while the crash
test (tests/pipeline/test_streaming.py) ran in a loop (bench/history/2026-11-23_to_2026-12-06.md):

- a partition with no committed offset (a new application id, or a worker killed
  before its first commit) starts at the log's first offset, but the out-of-order
  hand-over can make a *later* offset the first the agent sees; taken as the start,
  the offsets before it counted as processed and were never read;
- Faust counts the offsets its fetcher skipped past (``Consumer._add_gap``) as
  acknowledged, and ``Consumer._new_offset`` takes an acknowledged ``committed + 1``
  as following the committed offset, so a commit can cover offsets no agent processed.

The declarations and control topics are never compacted and carry no transaction
markers, so their offsets are contiguous: the agent can insist on getting offset
``n + 1`` after ``n``. ``DeliveryGuard`` starts a partition without a committed offset
at the log's first offset, refuses acknowledgements of anything not processed, never
lets a commit pass the next offset the agent has to process, reads a partition again
from the next offset when a later one arrives first, and re-reads a partition whose
fetched messages stopped arriving. The state's offset guard (processor.py) makes
whatever is read twice a no-op.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger("claimwatch.delivery")


class DeliveryGuard:
    def __init__(
        self,
        app: Any,
        topics: Iterable[str],
        stall_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.next: dict[Any, int] = {}  # TP → next offset to process (this assignment)
        self.seeking: dict[Any, int] = {}  # TP → offset a re-read was asked from
        self.last_delivery: dict[Any, float] = {}
        self.refused: set[int] = set()  # id() of delivered messages not to acknowledge
        self.rereads = 0
        self._installed = False

    # -- acknowledgements -------------------------------------------------------
    def install(self) -> None:
        """Wrap the consumer's ``ack`` (once): refuse the acknowledgement of a message
        skipped here, or skipped by Faust during a rebalance. A refused message is read
        again after the rebalance, or after the re-read asked for here. (Commits are
        held by ``committable``, step 5 of streams/kafka/commit.py.)"""
        if self._installed:
            return
        consumer = self.app.consumer
        ack = consumer.ack

        def guarded_ack(message: Any) -> bool:
            if (
                id(message) in self.refused
                or not self.app.flow_control.is_active()
                or message.generation_id != self.app.consumer_generation_id
            ):
                self.refused.discard(id(message))
                consumer._unacked_messages.discard(message)  # noqa: SLF001 - or wait_empty waits
                return False
            return bool(ack(message))

        consumer.ack = guarded_ack
        self._installed = True

    def committable(self, offsets: Mapping[Any, int]) -> dict[Any, int]:
        """``offsets`` (partition → offset to commit, the next one to read) with each
        guarded partition held to the next offset the agent has to process in this
        assignment, and left out when it has processed nothing since: whatever Faust
        counted as acknowledged beyond that (skipped offsets, ``_add_gap``) is read
        again after a crash instead of being lost. Faust acknowledges those offsets
        again once the agent processes them, and commits them then."""
        out = {}
        for tp, offset in offsets.items():
            if tp.topic in self.topics:
                done = self.next.get(tp)
                if done is None:
                    continue
                if offset > done:
                    log.debug(
                        "%s:%d: commit held at %d (Faust asked %d)",
                        tp.topic,
                        tp.partition,
                        done,
                        offset,
                    )
                    offset = done
                committed = self._committed(tp)
                if committed is not None and offset <= committed:
                    continue
            out[tp] = offset
        return out

    # -- assignment ---------------------------------------------------------------
    def reset(self, tps: Iterable[Any]) -> None:
        """Partitions revoked or (re)assigned: what comes next is judged afresh."""
        now = self.clock()
        for tp in tps:
            self.next.pop(tp, None)
            self.seeking.pop(tp, None)
            self.last_delivery[tp] = now

    def _committed(self, tp: Any) -> int | None:
        """The group's committed offset (the next one to process), as Faust loaded it
        at assignment and keeps it at every commit."""
        committed = self.app.consumer._committed_offset.get(tp)  # noqa: SLF001
        return committed if isinstance(committed, int) and committed > 0 else None

    # -- delivery ------------------------------------------------------------------
    async def admit(self, message: Any) -> bool:
        """Whether the agent should process ``message``.

        The next offset of its partition: yes. An earlier one, delivered again
        (already processed, or before the committed offset): no, and it may be
        acknowledged. A later one: offsets in between were lost on the way; the
        partition is read again from the next offset, and this one is skipped
        unacknowledged (it comes again)."""
        tp = message.tp
        if tp.topic not in self.topics:
            return True
        self.last_delivery[tp] = self.clock()
        want = self.next.get(tp)
        if want is None:
            want = self._committed(tp)
            if want is None:  # nothing committed: the log's first offset
                want = await self._log_start(tp)
                if want is None:  # no answer: judged again at the next delivery
                    self.refused.add(id(message))
                    return False
            self.next[tp] = want
        if message.offset < want:
            return False
        if message.offset == want:
            self.seeking.pop(tp, None)
            return True
        if self.seeking.get(tp) != want:
            start = await self._log_start(tp)
            if start is not None and start > want:
                # Deleted (retention) before this group read them: nothing to re-read.
                log.error(
                    "%s:%d: offsets %d to %d were deleted from the broker before they "
                    "were processed; going on from %d",
                    tp.topic,
                    tp.partition,
                    want,
                    start - 1,
                    start,
                )
                want = self.next[tp] = start
                if message.offset == want:
                    return True
        self.refused.add(id(message))
        if self.seeking.get(tp) != want:
            self.seeking[tp] = want
            self.rereads += 1
            log.warning(
                "%s:%d: offset %d delivered before %d; reading the partition again from %d",
                tp.topic,
                tp.partition,
                message.offset,
                want,
                want,
            )
            await self._reread(tp, want)
        return False

    async def _log_start(self, tp: Any) -> int | None:
        """The partition's first offset on the broker (ListOffsets, earliest): where a
        group without a committed offset starts. None when the broker does not answer."""
        try:
            starts = await self.app.consumer.earliest_offsets(tp)
        except Exception:  # noqa: BLE001 - any failure: the caller asks again later
            log.warning(
                "%s:%d: no answer for the partition's first offset",
                tp.topic,
                tp.partition,
                exc_info=True,
            )
            return None
        start = next(iter(starts.values()), None) if starts else None
        return start if isinstance(start, int) and start >= 0 else None

    async def _reread(self, tp: Any, offset: int) -> None:
        # seek_wait runs the seek in the consumer's own thread and event loop (a plain
        # Consumer.seek from here did not take: the partition stayed silent).
        await self.app.consumer.seek_wait({tp: offset})

    def done(self, message: Any) -> None:
        """``message`` was processed (its results sent, its state written)."""
        tp = message.tp
        if tp.topic in self.topics:
            self.next[tp] = max(self.next.get(tp, 0), message.offset + 1)

    # -- stalls ----------------------------------------------------------------------
    async def watch(self, active: Iterable[Any]) -> None:
        """Re-read a partition the broker has messages for (fetch highwater above the
        next offset) when none has reached the agent for ``stall_seconds``."""
        if not self.app.flow_control.is_active() or getattr(self.app, "rebalancing", False):
            return
        now = self.clock()
        for tp in active:
            if tp.topic not in self.topics:
                continue
            highwater = self.app.consumer.highwater(tp)
            want = self.next.get(tp)
            if want is None:
                want = self._committed(tp) or 0
            idle = now - self.last_delivery.setdefault(tp, now)
            if highwater is not None and highwater > want and idle > self.stall_seconds:
                self.last_delivery[tp] = now
                self.seeking[tp] = want
                self.rereads += 1
                log.warning(
                    "%s:%d: the broker has offsets up to %d, none delivered for %.0f s; "
                    "reading the partition again from %d",
                    tp.topic,
                    tp.partition,
                    highwater - 1,
                    idle,
                    want,
                )
                await self._reread(tp, want)
