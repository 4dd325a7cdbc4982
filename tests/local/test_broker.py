"""The embedded tansu broker: lifecycle, readiness, topic set-up, a real round trip."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition

from streams.local.broker import (
    BrokerError,
    EmbeddedBroker,
    TopicSpec,
    ensure_topics,
    ensure_topics_sync,
    find_broker_binary,
    wait_for_broker,
    wait_for_broker_async,
)

pytestmark = pytest.mark.broker


def poll_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [resource] = response.resources
    return {entry[0]: entry[1] for entry in resource[4]}


async def partition_count(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(described["partitions"])


# --------------------------------------------------------------------------- lifecycle


def test_started_broker_answers_metadata_on_loopback(broker: EmbeddedBroker) -> None:
    assert broker.running
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    wait_for_broker(broker.bootstrap, timeout=2.0)


def test_log_file_and_its_parent_directories_are_created(tmp_path: Path) -> None:
    log_path = tmp_path / "deep" / "er" / "tansu.log"
    with EmbeddedBroker(log_path=log_path):
        poll_until(lambda: "listening on" in log_path.read_text())


def test_stop_leaves_no_process_and_is_idempotent(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    pid = broker.pid
    assert pid is not None and not process_gone(pid)

    broker.stop()
    broker.stop()

    poll_until(lambda: process_gone(pid))
    assert not broker.running
    with pytest.raises(BrokerError, match="no Kafka broker answered"):
        wait_for_broker(broker.bootstrap, timeout=0.5)


def test_context_manager_stops_the_broker_on_error(tmp_path: Path) -> None:
    with (
        pytest.raises(KeyError),
        EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker,
    ):
        pid = broker.pid
        raise KeyError("boom")
    assert pid is not None
    poll_until(lambda: process_gone(pid))


def test_broker_takes_a_given_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log") as broker:
        assert broker.bootstrap == f"127.0.0.1:{port}"
        wait_for_broker(broker.bootstrap, timeout=2.0)


def test_a_taken_port_is_refused_clearly(broker: EmbeddedBroker, tmp_path: Path) -> None:
    second = EmbeddedBroker(port=broker.port, log_path=tmp_path / "second.log")
    with pytest.raises(BrokerError, match="not free"):
        second.start()
    assert not second.running


async def test_restart_keeps_the_address_and_loses_the_data(broker: EmbeddedBroker) -> None:
    await ensure_topics(broker.bootstrap, [TopicSpec("before.restart")])
    bootstrap, old_pid = broker.bootstrap, broker.pid
    assert old_pid is not None

    broker.restart()

    assert broker.bootstrap == bootstrap
    assert broker.pid != old_pid and process_gone(old_pid)
    # memory storage: the topic is gone, so it is created anew
    assert await ensure_topics(broker.bootstrap, [TopicSpec("before.restart")]) == [
        "before.restart"
    ]


# --------------------------------------------------------------------------- errors


def test_wrong_binary_path_raises_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tansu"
    broker = EmbeddedBroker(binary=missing, log_path=tmp_path / "tansu.log")
    with pytest.raises(BrokerError, match="binary not found at .*no-such-tansu"):
        broker.start()
    assert not broker.running


def test_non_executable_binary_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "tansu"
    binary.write_text("not a program")
    with pytest.raises(BrokerError, match="not executable"):
        find_broker_binary(binary)


def test_broker_exiting_early_reports_the_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'cannot open storage: disk on fire'\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    broker = EmbeddedBroker(binary=fake, log_path=tmp_path / "tansu.log", ready_timeout=10)
    with pytest.raises(BrokerError, match=r"exited with code 3(.|\n)*disk on fire"):
        broker.start()
    assert not broker.running


def test_wait_for_broker_gives_up_at_the_deadline() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(BrokerError, match=f"127.0.0.1:{port} within 0.3 s"):
        wait_for_broker(f"127.0.0.1:{port}", timeout=0.3)
    assert time.monotonic() - started < 3


def test_bundled_binary_is_found() -> None:
    assert os.access(find_broker_binary(), os.X_OK)


# --------------------------------------------------------------------------- topics


async def test_ensure_topics_creates_partitions_and_configs_and_is_idempotent(
    shared_broker: EmbeddedBroker,
) -> None:
    specs = [
        TopicSpec("ensure.compacted", partitions=4, configs={"cleanup.policy": "compact"}),
        TopicSpec(
            "ensure.retained",
            partitions=2,
            configs={"cleanup.policy": "delete", "retention.ms": "604800000"},
        ),
    ]

    assert sorted(await ensure_topics(shared_broker.bootstrap, specs)) == [
        "ensure.compacted",
        "ensure.retained",
    ]
    assert await ensure_topics(shared_broker.bootstrap, specs) == []

    assert await partition_count(shared_broker.bootstrap, "ensure.compacted") == 4
    assert await partition_count(shared_broker.bootstrap, "ensure.retained") == 2
    assert await topic_configs(shared_broker.bootstrap, "ensure.compacted") == {
        "cleanup.policy": "compact"
    }
    assert await topic_configs(shared_broker.bootstrap, "ensure.retained") == {
        "cleanup.policy": "delete",
        "retention.ms": "604800000",
    }


async def test_sync_wrapper_works_inside_a_running_event_loop(
    shared_broker: EmbeddedBroker,
) -> None:
    spec = TopicSpec("ensure.sync", partitions=3)
    assert ensure_topics_sync(shared_broker.bootstrap, [spec]) == ["ensure.sync"]
    assert ensure_topics_sync(shared_broker.bootstrap, [spec]) == []


def test_topic_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TopicSpec("t", partitions=0)
    with pytest.raises(ValueError):
        TopicSpec("")


def test_ensure_topics_against_no_broker_raises_broker_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BrokerError):
        ensure_topics_sync(f"127.0.0.1:{port}", [TopicSpec("t")], request_timeout_ms=1000)


# --------------------------------------------------------------------------- round trip


async def test_produce_consume_round_trip_keeps_keys_order_and_partitions(
    shared_broker: EmbeddedBroker,
) -> None:
    topic = "roundtrip"
    await ensure_topics(shared_broker.bootstrap, [TopicSpec(topic, partitions=4)])
    sent = [(f"agb{i % 5}".encode(), f"value-{i}".encode()) for i in range(50)]

    producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap)
    await producer.start()
    try:
        partition_of: dict[bytes, int] = {}
        for key, value in sent:
            meta = await producer.send_and_wait(topic, value, key=key)
            assert partition_of.setdefault(key, meta.partition) == meta.partition
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=shared_broker.bootstrap,
        group_id="roundtrip-test",
        auto_offset_reset="earliest",
        # tansu completes a group join after session_timeout / 2
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + 20
        while len(received) < len(sent) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                received.extend((r.key, r.value) for r in records)  # type: ignore[misc]
    finally:
        await consumer.stop()

    assert sorted(received) == sorted(sent)
    for key in partition_of:  # order is kept per key (same partition)
        assert [v for k, v in received if k == key] == [v for k, v in sent if k == key]


async def test_wait_for_broker_async_returns_for_a_running_broker(
    shared_broker: EmbeddedBroker,
) -> None:
    await asyncio.wait_for(wait_for_broker_async(shared_broker.bootstrap, timeout=2.0), 5)


# --------------------------------------------------------------------------- tansu quirks
# Characterisation tests: the pipeline works around these (docs/faust-on-tansu.md).
# If one fails after a tansu upgrade, the workaround may no longer be needed.


async def test_tansu_list_offsets_counts_a_multi_record_batch_as_one_record(
    shared_broker: EmbeddedBroker,
) -> None:
    topic = "quirk.listoffsets"
    await ensure_topics(shared_broker.bootstrap, [TopicSpec(topic)])
    tp = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap)
    await producer.start()
    try:
        batch = producer.create_batch()
        for _ in range(10):
            batch.append(key=None, value=b"x", timestamp=None)
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=shared_broker.bootstrap)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records = await consumer.getmany(tp, timeout_ms=5000)
        list_offsets_end = (await consumer.end_offsets([tp]))[tp]
        fetch_highwater = consumer.highwater(tp)
    finally:
        await consumer.stop()

    assert len(records[tp]) == 10
    assert fetch_highwater == 10  # the fetch response is right
    assert list_offsets_end == 1  # ListOffsets(latest) = base offset of the last batch + 1


async def test_tansu_creates_unknown_topics_on_metadata_request_without_configs(
    shared_broker: EmbeddedBroker,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("quirk.autocreated", b"x")
    finally:
        await producer.stop()
    assert await partition_count(shared_broker.bootstrap, "quirk.autocreated") == 4
    assert await topic_configs(shared_broker.bootstrap, "quirk.autocreated") == {}
