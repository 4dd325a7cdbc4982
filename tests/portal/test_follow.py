"""A follower on the embedded broker: reads a topic from its start, is ready at its
end, skips and counts a malformed record, and waits for a topic that is missing."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.portal.follow import Follower
from streams.portal.model import STATUS, Model
from tests.portal.conftest import produce
from tests.portal.test_model import status

pytestmark = [pytest.mark.broker]


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within the deadline: {what}")


def test_a_follower_reads_to_the_end_skips_junk_and_keeps_following(broker) -> None:
    topic = broker.topic_provider_status
    good = [
        (f"1234567{i}:2026".encode(), orjson.dumps(status(agb=f"1234567{i}"))) for i in range(5)
    ]
    produce(broker.broker, topic, [*good[:3], (b"12345670:2026", b"{kapot"), *good[3:]])

    async def run() -> None:
        model = Model()
        f = Follower(STATUS, topic, model.apply_status, broker)
        task = asyncio.create_task(f.run())
        try:
            await asyncio.wait_for(f.ready.wait(), 60)
            # ready means read to the end seen at the start: every record is in
            assert model.records[STATUS] == 6 and model.malformed[STATUS] == 1
            # the junk record replaced 12345670's value: an unreadable latest value
            # is skipped, the earlier one stays served
            assert len(model.statuses) == 5
            assert f.state()["ready"] and not f.state()["missing"]
            await asyncio.to_thread(
                produce,
                broker.broker,
                topic,
                [(b"99999999:2026", orjson.dumps(status(agb="99999999")))],
            )
            await until(lambda: model.status("99999999", 2026) is not None, "a later record")
            await until(lambda: f.lag == 0, "lag back to 0")
        finally:
            task.cancel()
            await f.stop()

    asyncio.run(run())


def test_a_missing_topic_counts_as_read_and_is_followed_once_it_appears(broker) -> None:
    async def run() -> None:
        model = Model()
        f = Follower(STATUS, "ggz.no-such-topic", model.apply_status, broker)
        task = asyncio.create_task(f.run())
        try:
            await asyncio.wait_for(f.ready.wait(), 60)
            assert f.missing and model.records[STATUS] == 0
        finally:
            task.cancel()
            await f.stop()

    asyncio.run(run())
