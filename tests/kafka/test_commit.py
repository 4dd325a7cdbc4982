"""The commit protocol (streams/kafka/commit.py): per message and per commit, in order."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.kafka import commit as commit_module
from streams.kafka import producer as producer_module
from streams.kafka.commit import Commit, Published, Unacknowledged
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


async def test_a_refused_alert_stops_the_worker_before_the_commit(monkeypatch) -> None:
    """An alert is not waited for (its partition's outbox holds it): a refusal stops
    the worker at the next commit, or at once when its callback runs."""
    monkeypatch.setattr(commit_module, "stop_unprocessed", _stop)
    events: list[str] = []
    app, c = installed(events)
    unacknowledged = c.unacknowledged = Unacknowledged()
    loop = asyncio.get_running_loop()
    ok, refused = loop.create_future(), loop.create_future()
    unacknowledged.outbox(0, [({"alert_id": "a", "sequence": 1}, ok)])
    unacknowledged.outbox(1, [({"alert_id": "b", "sequence": 1}, refused)])
    await done(c, app, Message(P0, 0))
    ok.set_result(None)
    await app.consumer._commit_offsets({P0: 1})  # nothing refused yet
    assert app.consumer.commits == [{P0: 1}]
    refused.set_exception(RuntimeError("NotLeaderForPartition"))  # not yet called back
    await done(c, app, Message(P0, 1))
    with pytest.raises(Stopped, match="alert transition was refused \\(RuntimeError"):
        await app.consumer._commit_offsets({P0: 2})
    assert app.consumer.commits == [{P0: 1}]
    late = loop.create_future()
    unacknowledged.outbox(2, [({"alert_id": "c", "sequence": 1}, late)])
    late.set_exception(RuntimeError("refused"))
    stops: list[str] = []
    monkeypatch.setattr(commit_module, "stop_unprocessed", lambda what, **_: stops.append(what))
    await asyncio.sleep(0)  # its callback: at once, no commit needed
    assert len(stops) == 1


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

    async def failing_write(_out: Any) -> None:
        raise OSError("table write failed")

    monkeypatch.setattr(harness.worker, "write", failing_write)
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
