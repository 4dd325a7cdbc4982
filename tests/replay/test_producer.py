"""``claimwatch replay`` into Kafka: the producer is idempotent where the broker allows.

tansu, the embedded broker, has no idempotent producers (InitProducerId fails), so
these tests cover the fallback; the idempotent path itself needs a real Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.kafka.offsets import read_all
from streams.local.broker import EmbeddedBroker
from streams.replay.producer import start_producer

pytestmark = pytest.mark.broker

TOPIC = "test.replay.declarations"


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


async def test_a_broker_without_idempotent_producers_gets_a_plain_one_that_works(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    producer, idempotent = await start_producer(broker.bootstrap, True)
    try:
        assert idempotent is False
        meta = await producer.send_and_wait("test.plain", b"x")
        assert meta.offset == 0
    finally:
        await producer.stop()
    # the refusal is the caller's to report, once, in its own words
    refusals = [r for r in caplog.records if "InitProducerId" in r.getMessage()]
    assert not [r for r in refusals if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("idempotence", ["true", "false"])
def test_replay_into_tansu_produces_every_line_and_says_once_it_is_not_idempotent(
    broker: EmbeddedBroker,
    tmp_path: Path,
    make_line,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    idempotence: str,
) -> None:
    lines = [make_line() for _ in range(7)]
    archive = tmp_path / "declarations.ndjson"
    archive.write_bytes(b"".join(orjson.dumps(obj) + b"\n" for obj in lines))
    monkeypatch.setenv("CLAIMWATCH_BROKER", broker.bootstrap)
    monkeypatch.setenv("CLAIMWATCH_TOPIC_DECLARATIONS", TOPIC)
    monkeypatch.setenv("CLAIMWATCH_PRODUCER_IDEMPOTENCE", idempotence)
    assert main(["replay", str(archive), "--no-final-tick", "--batch-size", "3"]) == 0
    out, err = capsys.readouterr()
    assert "produced 7 lines" in out
    notes = [ln for ln in err.splitlines() if "idempotent" in ln]
    assert len(notes) == (1 if idempotence == "true" else 0), err
    assert "InitProducerId" not in err
    records = asyncio.run(read_all(broker.bootstrap, TOPIC))
    produced = [orjson.loads(v) for _k, v, _h in records]
    assert sum(len(m["lines"]) for m in produced) == 7


def test_a_contract_change_cuts_the_batch_of_its_own_provider_only(
    broker: EmbeddedBroker,
    make_line,  # type: ignore[no-untyped-def]
    contract_event,  # type: ignore[no-untyped-def]
) -> None:
    """Lines before a contract change are sent, and synced, before the change, but
    only those of the provider it names: another provider's batch keeps filling."""
    from streams.replay.producer import produce_history

    a, b = "11111111", "22222222"
    lines = [make_line(provider_agb=a if i % 2 else b) for i in range(8)]
    change_at = lines[3]["submitted_at"]  # applies before line 3, as offline
    contract = contract_event(provider=a, updated_at=change_at)
    synced: list[int] = []

    async def run() -> None:
        stats = await produce_history(
            broker.bootstrap,
            [orjson.dumps(obj) for obj in lines],
            topic=TOPIC + ".cut",
            contracts=[orjson.dumps(contract)],
            contracts_topic=TOPIC + ".contracts",
            batch_size=100,
            sync=lambda stats: synced.append(stats.messages),
        )
        assert stats.lines == 8 and stats.contracts == 1

    asyncio.run(run())
    per_provider: dict[str, list[list[str]]] = {}  # in order: one provider, one partition
    for k, v, _h in asyncio.run(read_all(broker.bootstrap, TOPIC + ".cut")):
        per_provider.setdefault(k.decode(), []).append(
            [ln["event_id"] for ln in orjson.loads(v)["lines"]]
        )
    ids = [ln["event_id"] for ln in lines]
    # a's lines before the change in one message, synced before the contract went
    # out, then a's later lines; b's lines in one message, not cut
    assert synced == [1]
    assert per_provider == {a: [[ids[1]], [ids[3], ids[5], ids[7]]], b: [ids[0::2]]}


async def test_the_replays_end_waits_for_the_groups_commits_and_gives_up_once_they_stall(
    broker: EmbeddedBroker,
) -> None:
    """``claimwatch replay`` sends its final ticks only once the workers' group has
    committed the status flushes (streams/replay/producer.py, send_final_tick)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.local.broker import TopicSpec, ensure_topics
    from streams.replay.producer import wait_committed

    await ensure_topics(broker.bootstrap, [TopicSpec(TOPIC, 1)])
    producer, _ = await start_producer(broker.bootstrap, False)
    try:
        for i in range(3):
            await producer.send_and_wait(TOPIC, b"x%d" % i, partition=0)
    finally:
        await producer.stop()
    targets = {f"{TOPIC}:0": 2}  # the last offset to be processed
    assert not await wait_committed(broker.bootstrap, "workers", targets, stall_timeout=2.0)
    # a broker that cannot be asked: no waiting for the stall timeout
    unreachable = wait_committed("127.0.0.1:9", "workers", targets, stall_timeout=300.0)
    assert not await asyncio.wait_for(unreachable, 60.0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="workers")
    await consumer.start()
    try:
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        await consumer.commit({tp: 2})  # offsets 0 and 1 processed: not yet
        waiting = asyncio.ensure_future(
            wait_committed(broker.bootstrap, "workers", targets, stall_timeout=30.0)
        )
        await asyncio.sleep(2.5)
        assert not waiting.done()
        await consumer.commit({tp: 3})
        assert await asyncio.wait_for(waiting, 10.0)
    finally:
        await consumer.stop()


def test_replay_produces_the_register_by_event_time_keyed_by_department(
    broker: EmbeddedBroker,
    tmp_path: Path,
    make_line,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``replay --departments``: each register entry on ggz.departments.v1 under
    ``<agb>:<department>``, after the lines of its provider submitted before its
    ``updated_at`` (which are cut from the batch) and before the later ones."""
    a = "11111111"
    lines = [make_line(provider_agb=a) for _ in range(6)]
    entry = {
        "schema": "ggz.department/1",
        "provider_agb": a,
        "department": "crisis",
        "name": "Crisisdienst",
        "category": "acute",
        "region": "Twente",
        "version": 1,
        "updated_at": lines[2]["submitted_at"],  # applies before line 2, as offline
    }
    archive = tmp_path / "declarations.ndjson"
    archive.write_bytes(b"".join(orjson.dumps(obj) + b"\n" for obj in lines))
    register = tmp_path / "departments.ndjson"
    register.write_bytes(orjson.dumps(entry) + b"\n")
    monkeypatch.setenv("CLAIMWATCH_BROKER", broker.bootstrap)
    monkeypatch.setenv("CLAIMWATCH_TOPIC_DECLARATIONS", TOPIC + ".reg")
    monkeypatch.setenv("CLAIMWATCH_TOPIC_DEPARTMENTS", TOPIC + ".departments")
    monkeypatch.setenv("CLAIMWATCH_PRODUCER_IDEMPOTENCE", "false")
    args = ["replay", str(archive), "--departments", str(register), "--no-final-tick"]
    assert main(args) == 0
    assert "1 register entries" in capsys.readouterr().out
    (record,) = asyncio.run(read_all(broker.bootstrap, TOPIC + ".departments"))
    assert (record[0], orjson.loads(record[1])) == (f"{a}:crisis".encode(), entry)
    batches = [
        [ln["event_id"] for ln in orjson.loads(v)["lines"]]
        for _k, v, _h in asyncio.run(read_all(broker.bootstrap, TOPIC + ".reg"))
    ]
    ids = [ln["event_id"] for ln in lines]
    assert batches == [ids[:2], ids[2:]]
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b'{"schema": "ggz.department/1"}\n')
    assert main(["replay", str(archive), "--departments", str(bad), "--no-final-tick"]) != 0
