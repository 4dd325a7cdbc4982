"""DeliveryGuard (streams/kafka/delivery.py) against a stand-in for Faust's consumer.

The faults it answers were caught by test_faults.py against tansu; these pin its
rules without a broker: every offset of a partition reaches the agent once, in order,
and nothing that did not is acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest

from streams.kafka.delivery import DeliveryGuard


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass(eq=False)
class Message:
    tp: TP
    offset: int
    generation_id: int = 1


@dataclass
class Flow:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class Consumer:
    acked: list[int] = field(default_factory=list)
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    _unacked_messages: set[Any] = field(default_factory=set)
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)
    highwaters: dict[TP, int] = field(default_factory=dict)
    starts: dict[TP, int] = field(default_factory=dict)  # log start offsets; 0 if absent
    commits: list[dict[TP, int]] = field(default_factory=list)
    broker_down: bool = False

    def ack(self, message: Message) -> bool:
        self.acked.append(message.offset)
        return True

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        if self.broker_down:
            raise ConnectionError("broker unreachable")
        return {tp: self.starts.get(tp, 0) for tp in tps}

    async def _commit_offsets(self, offsets: dict[TP, int]) -> bool:
        self.commits.append(dict(offsets))
        self._committed_offset.update(offsets)
        return bool(offsets)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.extend(partitions.items())

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)


@dataclass
class App:
    consumer: Consumer = field(default_factory=Consumer)
    flow_control: Flow = field(default_factory=Flow)
    consumer_generation_id: int = 1
    rebalancing: bool = False


P0 = TP("decl", 0)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(app: App, clock: Clock | None = None) -> DeliveryGuard:
    g = DeliveryGuard(app, {"decl"}, stall_seconds=15.0, clock=clock or Clock())
    g.install()
    return g


async def deliver(g: DeliveryGuard, app: App, message: Message) -> bool:
    """What the agent does: admit, process, done; Faust then acknowledges."""
    admitted = await g.admit(message)
    if admitted:
        g.done(message)
    app.consumer.ack(message)
    return admitted


@pytest.mark.asyncio
async def test_in_order_messages_are_admitted_and_acknowledged() -> None:
    app = App()
    g = guard(app)
    assert [await deliver(g, app, Message(P0, n)) for n in range(3)] == [True] * 3
    assert app.consumer.acked == [0, 1, 2]
    assert g.next[P0] == 3


@pytest.mark.asyncio
async def test_a_later_offset_first_rereads_from_the_next_and_is_not_acknowledged() -> None:
    app = App()
    g = guard(app)
    await deliver(g, app, Message(P0, 0))
    assert not await deliver(g, app, Message(P0, 3))  # 1 and 2 lost on the way
    assert not await deliver(g, app, Message(P0, 4))  # already asked: one re-read
    assert app.consumer.seeks == [(P0, 1)]
    assert app.consumer.acked == [0]
    assert [await deliver(g, app, Message(P0, n)) for n in (1, 2, 3, 4)] == [True] * 4
    assert app.consumer.acked == [0, 1, 2, 3, 4]
    assert g.rereads == 1


@pytest.mark.asyncio
async def test_an_earlier_offset_delivered_again_is_skipped_but_acknowledged() -> None:
    app = App()
    g = guard(app)
    for n in range(3):
        await deliver(g, app, Message(P0, n))
    assert not await deliver(g, app, Message(P0, 1))
    assert app.consumer.acked == [0, 1, 2, 1]
    assert app.consumer.seeks == []


@pytest.mark.asyncio
async def test_the_committed_offset_is_where_a_new_assignment_starts() -> None:
    app = App()
    app.consumer._committed_offset[P0] = 10
    g = guard(app)
    assert not await deliver(g, app, Message(P0, 12))
    assert app.consumer.seeks == [(P0, 10)]
    assert not await deliver(g, app, Message(P0, 9))  # before the committed offset
    assert await deliver(g, app, Message(P0, 10))


@pytest.mark.asyncio
async def test_without_a_committed_offset_the_log_start_is_where_a_partition_starts() -> None:
    """A worker killed before its first commit, or a new application id: Faust can
    hand over a later offset first; the ones before it are read, not taken as done."""
    app = App()
    g = guard(app)
    assert not await deliver(g, app, Message(P0, 7))
    assert app.consumer.seeks == [(P0, 0)]
    assert app.consumer.acked == []
    assert [await deliver(g, app, Message(P0, n)) for n in range(8)] == [True] * 8
    other = TP("decl", 1)
    app.consumer.starts[other] = 40  # the offsets before were deleted (retention)
    assert await deliver(g, app, Message(other, 40))


@pytest.mark.asyncio
async def test_without_an_answer_for_the_log_start_nothing_is_admitted_or_acknowledged() -> None:
    app = App()
    g = guard(app)
    app.consumer.broker_down = True
    assert not await deliver(g, app, Message(P0, 3))
    assert app.consumer.acked == [] and P0 not in g.next
    app.consumer.broker_down = False
    assert not await deliver(g, app, Message(P0, 4))
    assert app.consumer.seeks == [(P0, 0)]


@pytest.mark.asyncio
async def test_offsets_deleted_before_they_were_read_are_not_waited_for() -> None:
    app = App()
    app.consumer._committed_offset[P0] = 10
    g = guard(app)
    app.consumer.starts[P0] = 15  # retention deleted 10..14 after the commit
    assert not await deliver(g, app, Message(P0, 17))
    assert app.consumer.seeks == [(P0, 15)]
    assert await deliver(g, app, Message(P0, 15))


@pytest.mark.asyncio
async def test_reset_forgets_what_came_before_a_rebalance() -> None:
    app = App()
    g = guard(app)
    await deliver(g, app, Message(P0, 5))
    g.reset([P0])
    app.consumer._committed_offset[P0] = 3
    assert await deliver(g, app, Message(P0, 3))


@pytest.mark.asyncio
async def test_acks_are_refused_while_flow_is_suspended_or_from_an_older_generation() -> None:
    app = App()
    g = guard(app)
    message = Message(P0, 0)
    app.consumer._unacked_messages.add(message)
    app.flow_control.active = False
    assert app.consumer.ack(message) is False
    assert message not in app.consumer._unacked_messages
    app.flow_control.active = True
    assert app.consumer.ack(Message(P0, 1, generation_id=0)) is False
    assert app.consumer.ack(Message(P0, 2)) is True
    assert app.consumer.acked == [2]
    g.install()  # once only
    assert app.consumer.ack(Message(P0, 3)) is True


@pytest.mark.asyncio
async def test_other_topics_pass_unjudged() -> None:
    app = App()
    g = guard(app)
    assert await deliver(g, app, Message(TP("contracts", 0), 9))
    assert await deliver(g, app, Message(TP("contracts", 0), 2))


@pytest.mark.asyncio
async def test_a_partition_whose_messages_stopped_arriving_is_read_again() -> None:
    app, clock = App(), Clock()
    g = guard(app, clock)
    g.reset([P0])
    app.consumer.highwaters[P0] = 1  # offset 0 fetched, never delivered
    await g.watch([P0])
    assert app.consumer.seeks == []  # not idle long enough yet
    clock.now += 16
    app.flow_control.active = False
    await g.watch([P0])
    assert app.consumer.seeks == []  # not during a rebalance
    app.flow_control.active = True
    await g.watch([P0])
    assert app.consumer.seeks == [(P0, 0)]
    await g.watch([P0])
    assert app.consumer.seeks == [(P0, 0)]  # and then waits again


@pytest.mark.asyncio
async def test_a_partition_that_is_caught_up_or_busy_is_left_alone() -> None:
    app, clock = App(), Clock()
    g = guard(app, clock)
    await deliver(g, app, Message(P0, 0))
    app.consumer.highwaters[P0] = 1  # caught up
    clock.now += 60
    await g.watch([P0])
    app.consumer.highwaters[P0] = 50  # a backlog, still arriving
    await deliver(g, app, Message(P0, 1))
    clock.now += 5
    await g.watch([P0])
    assert app.consumer.seeks == []


def test_fausts_own_bookkeeping_commits_past_an_offset_never_acknowledged() -> None:
    """Why ``committable`` exists, on Faust's real ``Consumer._new_offset``: with the
    committed offset (the next to read) at 5, acknowledgements of 6 and 7 make it
    commit 8 although 5 was never acknowledged; offsets its fetcher skipped past
    (``_add_gap``) count as acknowledged too. If a Faust release stops doing either,
    this test fails and the guard's hold on commits can be reconsidered."""
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.transport.consumer import Consumer as FaustConsumer
    from intervaltree import IntervalTree

    def consumer(committed: int, acked: list[int], gap: tuple[int, int] | None) -> Any:
        c = SimpleNamespace(
            _acked=defaultdict(list),
            _acked_index=defaultdict(set),
            _gap=defaultdict(IntervalTree),
            _committed_offset=defaultdict(lambda: None),
        )
        c._committed_offset[P0] = committed
        c._acked[P0].extend(acked)
        c._acked_index[P0].update(acked)
        if gap is not None:
            c._gap[P0].addi(*gap)
        return c

    assert FaustConsumer._new_offset(consumer(5, [6, 7], None), P0) == 8
    # The fetcher jumped from 6 to 10 after a seek (gap 7..9); the agent, reading
    # again from 7, has processed 5 to 8: Faust commits 10, though 9 was not processed
    c = consumer(5, [5, 6, 7, 8], (7, 10))
    commits = []
    while (offset := FaustConsumer._new_offset(c, P0)) is not None:  # its commit loop
        c._committed_offset[P0] = offset
        commits.append(offset)
    assert commits[-1] == 10
