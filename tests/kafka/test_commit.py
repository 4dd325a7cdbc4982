"""The commit protocol (streams/kafka/commit.py): per message and per commit, in order."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.kafka import commit as commit_module
from streams.kafka import producer as producer_module
from streams.kafka.commit import Commit, Published
from streams.kafka.delivery import DeliveryGuard
from streams.kafka.producer import DrainingBuffer
from tests.conftest import AGB
from tests.kafka.test_delivery import P0, TP, App, Clock, Message
from tests.pipeline.conftest import policy, small_history
from tests.pipeline.harness import assert_equal_results, finish, offline_reference, produce
from tests.pipeline.test_agents import SETTINGS as AGENTS
from tests.pipeline.test_agents import batch, harness

# the real agents in Faust's test context (test_agents.py); the broker tests' history
__all__ = ["harness", "policy", "small_history"]


class Stopped(Exception):
    """stop_unprocessed, which ends the process, as an exception here."""


def _stop(what: str, **_: Any) -> None:
    raise Stopped(what)


class Producer:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.buffer = DrainingBuffer()

    async def flush(self) -> None:
        self.events.append("flush")


def installed(events: list[str] | None = None) -> tuple[App, Commit]:
    events = [] if events is None else events
    app = App()
    app.producer = Producer(events)  # type: ignore[attr-defined]
    commit_offsets = app.consumer._commit_offsets

    async def faust_commit(offsets: dict[TP, int]) -> bool:
        events.append("commit")
        return await commit_offsets(offsets)

    app.consumer._commit_offsets = faust_commit  # type: ignore[method-assign]
    c = Commit(app, DeliveryGuard(app, {"decl"}, stall_seconds=15.0, clock=Clock()))
    c.install()
    return app, c


async def done(c: Commit, app: App, message: Message) -> bool:
    """What the ingest agent does (steps 1-4); Faust then acknowledges."""
    processed = await c.process(message, lambda _m: asyncio.sleep(0))
    app.consumer.ack(message)
    return processed


async def test_a_commit_never_passes_the_next_offset_to_process() -> None:
    """Faust counts offsets its fetcher skipped past as acknowledged; a commit of
    them would lose them in a crash. Each commit is held to what the agent processed
    in this assignment (step 5)."""
    app, c = installed()
    app.consumer._committed_offset[P0] = 5
    p1, ctl = TP("decl", 1), TP("contracts", 0)
    await app.consumer._commit_offsets({P0: 9, p1: 4, ctl: 3})
    assert app.consumer.commits == [{ctl: 3}]  # nothing processed here yet
    for n in (5, 6):
        assert await done(c, app, Message(P0, n))
    await app.consumer._commit_offsets({P0: 12})
    assert app.consumer.commits[-1] == {P0: 7}
    await app.consumer._commit_offsets({P0: 12})  # nothing new processed
    assert app.consumer.commits[-1] == {}
    await done(c, app, Message(P0, 7))
    await app.consumer._commit_offsets({P0: 8})
    assert app.consumer.commits[-1] == {P0: 8}


async def test_the_producer_is_flushed_before_offsets_are_committed() -> None:
    events: list[str] = []
    app, c = installed(events)
    await done(c, app, Message(P0, 0))
    await app.consumer._commit_offsets({P0: 1})
    assert events == ["flush", "commit"]
    assert app.consumer.commits == [{P0: 1}]


async def test_a_refused_record_stops_the_worker_before_the_commit(monkeypatch) -> None:
    monkeypatch.setattr(producer_module, "stop_unprocessed", _stop)
    events: list[str] = []
    app, c = installed(events)
    await done(c, app, Message(P0, 0))
    refused = asyncio.get_running_loop().create_future()
    refused.set_exception(RuntimeError("RecordTooLarge"))  # settled, not yet called back
    record = SimpleNamespace(message=SimpleNamespace(channel=SimpleNamespace(get_topic_name=str)))
    app.producer.buffer.sending[refused] = record  # type: ignore[attr-defined]
    with pytest.raises(Stopped, match="RuntimeError"):
        await app.consumer._commit_offsets({P0: 1})
    assert events == ["flush"] and app.consumer.commits == []


async def test_a_message_that_cannot_be_applied_stops_the_worker_unprocessed(
    monkeypatch,
) -> None:
    monkeypatch.setattr(commit_module, "stop_unprocessed", _stop)
    app, c = installed()

    async def failing(_message: Any) -> None:
        raise OSError("table write failed")

    with pytest.raises(Stopped, match="decl:0 offset 0"):
        await c.process(Message(P0, 0), failing)
    assert c.guard.next[P0] == 0  # not done: a commit holds it back
    assert await c.process(Message(P0, 0), lambda _m: asyncio.sleep(0))
    assert c.guard.next[P0] == 1


async def test_held_writes_are_made_in_message_order_once_acknowledged() -> None:
    """Step 2c without waiting (``WriteBehind``): a message's writes wait for its own
    acknowledgements and every earlier message's writes, never for later ones."""
    loop = asyncio.get_running_loop()
    behind = commit_module.WriteBehind(limit=10)
    written: list[str] = []
    first, second = loop.create_future(), loop.create_future()
    await behind.hold([first], lambda: written.append("a"))
    await behind.hold([second], lambda: written.append("b"))
    await behind.hold([], lambda: written.append("c"))  # nothing to wait for but "a", "b"
    second.set_result(None)
    behind.release_done()
    assert written == []  # "b" is acknowledged, "a" is not: nothing may pass "a"
    first.set_result(None)
    behind.release_done()
    assert written == ["a", "b", "c"] and len(behind) == 0 and behind.written == 3


async def test_held_writes_beyond_the_limit_make_the_agent_wait() -> None:
    loop = asyncio.get_running_loop()
    behind = commit_module.WriteBehind(limit=1)
    written: list[int] = []
    acks = [loop.create_future() for _ in range(2)]
    await behind.hold([acks[0]], lambda: written.append(0))
    loop.call_later(0.01, acks[0].set_result, None)
    await behind.hold([acks[1]], lambda: written.append(1))  # waits for the first
    assert written == [0] and len(behind) == 1


async def test_a_held_write_runs_with_its_own_faust_event(monkeypatch) -> None:
    """Faust sends a table key's changelog record to the partition of
    ``current_event()``, which its context variable holds as a weak reference
    (faust/streams.py, 0.15.3): a write made after the agent moved on must still see
    the message's own event, kept alive by the held entry."""
    import gc
    import weakref

    from faust.streams import _current_event, current_event

    class Event:
        def __init__(self, partition: int) -> None:
            self.partition = partition

    loop = asyncio.get_running_loop()
    behind = commit_module.WriteBehind(limit=10)
    seen: list[int | None] = []

    def write() -> None:
        event = current_event()
        seen.append(getattr(event, "partition", None))

    async def handle(partition: int, ack: asyncio.Future[None]) -> None:
        event = Event(partition)
        _current_event.set(weakref.ref(event))  # as Faust's stream does, per event
        await behind.hold([ack], write)

    acks = [loop.create_future() for _ in range(2)]
    await asyncio.create_task(handle(3, acks[0]))  # a task: a context of its own
    await asyncio.create_task(handle(5, acks[1]))
    gc.collect()  # the agent holds neither event any more
    for ack in acks:
        ack.set_result(None)
    await behind.release()
    assert seen == [3, 5]


async def test_held_writes_are_made_before_offsets_are_committed(monkeypatch) -> None:
    monkeypatch.setattr(commit_module, "stop_unprocessed", _stop)
    events: list[str] = []
    app, c = installed(events)
    ack = asyncio.get_running_loop().create_future()
    await c.behind.hold([ack], lambda: events.append("write"))
    await done(c, app, Message(P0, 0))
    asyncio.get_running_loop().call_later(0.01, ack.set_result, None)
    await app.consumer._commit_offsets({P0: 1})
    assert events == ["write", "flush", "commit"]
    refused = asyncio.get_running_loop().create_future()
    await c.behind.hold([refused], lambda: events.append("never"))
    await done(c, app, Message(P0, 1))
    refused.set_exception(RuntimeError("NotLeaderForPartition"))
    with pytest.raises(RuntimeError):  # found by the agent: raised into Commit.process
        c.behind.release_done()
    with pytest.raises(Stopped, match="not acknowledged"):  # found by a commit
        await app.consumer._commit_offsets({P0: 2})
    assert "never" not in events and events.count("commit") == 1


def test_each_alert_transition_is_published_once() -> None:
    published = Published()
    event = {"alert_id": "ceiling_utilisation:x:2026:70", "sequence": 1}
    assert published.first(event)
    assert not published.first(event)
    assert published.first({**event, "sequence": 2})


async def test_the_real_ingest_agent_stops_the_worker_when_a_messages_writes_fail(
    harness, make_line, monkeypatch
) -> None:
    """README entry 13 through the worker's own ingest agent (Faust's test context):
    raised out of the agent, the error would be acknowledged by Faust's stream and the
    offset committed with the state never written; the agent hands every message to
    ``Commit.process``, which stops the worker instead."""
    stops: list[str] = []
    monkeypatch.setattr(commit_module, "stop_unprocessed", lambda what, **_: stops.append(what))

    class FailingTable(dict):  # type: ignore[type-arg]
        def __setitem__(self, key: str, value: Any) -> None:
            raise OSError("table write failed")

    monkeypatch.setattr(harness.worker, "state", FailingTable())
    topic = AGENTS.topic_declarations
    async with harness.app.agents["ingest"].test_context() as agent:
        await harness.put(agent, topic, batch(make_line()), AGB)
    assert stops == [f"{topic}:0 offset 0 could not be processed and written"]


@pytest.mark.broker
@pytest.mark.slow
def test_a_transition_already_on_the_alerts_topic_is_not_sent_again(
    cluster, small_history, policy, tmp_path
) -> None:
    """README entry 15 on the embedded broker, deterministically: a transition on the
    alerts topic before the worker starts (one sent before a crash whose state write
    was lost) is read back at recovery (``Published.reload``) and not sent again when
    the input brings it once more."""
    from aiokafka import AIOKafkaProducer

    files, contracts = small_history
    reference = offline_reference(files, contracts, policy, tmp_path)
    first = reference["alerts"][0]
    s = cluster.settings

    async def already_sent() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=s.broker, **s.kafka_client_kwargs())
        await producer.start()
        try:
            key = first["provider_agb"].encode()
            await producer.send_and_wait(s.topic_alerts, orjson.dumps(first), key=key)
        finally:
            await producer.stop()

    asyncio.run(already_sent())
    cluster.add_worker()
    cluster.wait_ready()
    online = finish(cluster, produce(cluster, files, contracts), policy)
    mark = (first["alert_id"], first["sequence"])
    assert [a for a in online["alerts"] if (a["alert_id"], a["sequence"]) == mark] == [first]
    assert_equal_results(online, reference)  # and no other transition twice
