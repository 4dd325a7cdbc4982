"""The worker's producer buffer is drained for real before offsets are committed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.producer import ProducerBuffer

from streams.kafka import producer
from streams.kafka.producer import DrainingBuffer


class _SlowDriver:
    """A channel whose hand-over to the driver waits for ``gate`` (aiokafka's ``send``
    waits like this when its batches are full)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.handed: list[Any] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> asyncio.Future[Any]:
        await self.gate.wait()
        self.handed.append(fut)
        sent = asyncio.get_running_loop().create_future()  # the driver's, acknowledged
        sent.set_result(None)
        return sent


async def _buffer_with_a_record_in_hand(cls: type[ProducerBuffer]) -> tuple[Any, _SlowDriver]:
    driver = _SlowDriver()
    buffer = cls()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    await buffer.start()
    buffer.put(SimpleNamespace(message=SimpleNamespace(channel=driver)))
    for _ in range(100):  # until the task took it from the queue
        if buffer.size == 0:
            break
        await asyncio.sleep(0.01)
    assert buffer.size == 0 and not driver.handed
    return buffer, driver


async def test_fausts_own_flush_returns_while_a_record_is_still_in_hand() -> None:
    # the gap this module closes: a commit after this flush could run ahead of a
    # changelog record that was never produced
    buffer, driver = await _buffer_with_a_record_in_hand(ProducerBuffer)
    await asyncio.wait_for(buffer.flush(), 1)
    assert not driver.handed
    driver.gate.set()
    await buffer.stop()


async def test_flush_waits_until_the_record_in_hand_reached_the_driver() -> None:
    buffer, driver = await _buffer_with_a_record_in_hand(DrainingBuffer)
    flush = asyncio.ensure_future(buffer.flush())
    await asyncio.sleep(0.35)  # past Faust's 0.1 s give-up, three times over
    assert not flush.done()
    driver.gate.set()
    await asyncio.wait_for(flush, 1)
    assert len(driver.handed) == 1 and buffer.in_hand == 0
    await buffer.stop()


async def test_flush_returns_at_once_when_nothing_is_queued_or_in_hand() -> None:
    buffer = DrainingBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    await buffer.start()
    await asyncio.wait_for(buffer.flush(), 0.05)
    await buffer.stop()


class _RefusingDriver:
    """A channel whose records the broker refuses: ``publish_message`` hands back the
    driver's future, which fails later (as aiokafka's does for a record above the
    topic's max.message.bytes), or raises at once (``at_once``)."""

    def __init__(self, at_once: bool = False) -> None:
        self.at_once = at_once
        self.sent: list[asyncio.Future[Any]] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> asyncio.Future[Any]:
        if self.at_once:
            raise ValueError("MessageSizeTooLargeError stand-in")
        sent = asyncio.get_running_loop().create_future()
        self.sent.append(sent)
        return sent

    def get_topic_name(self) -> str:
        return "cw-state-changelog"


async def _refusing_buffer(
    monkeypatch: pytest.MonkeyPatch, driver: _RefusingDriver
) -> tuple[DrainingBuffer, list[str]]:
    stops: list[str] = []
    monkeypatch.setattr(producer, "stop_unprocessed", lambda what, **kw: stops.append(what))
    buffer = DrainingBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    await buffer.start()
    buffer.put(SimpleNamespace(message=SimpleNamespace(channel=driver)))
    await asyncio.wait_for(buffer.flush(), 1)
    return buffer, stops


async def test_a_record_the_broker_refuses_stops_the_worker(monkeypatch) -> None:
    driver = _RefusingDriver()
    buffer, stops = await _refusing_buffer(monkeypatch, driver)
    assert not stops  # not yet answered
    (sent,) = driver.sent
    sent.set_exception(RuntimeError("RecordTooLarge"))
    await asyncio.sleep(0)  # the callback runs
    assert stops and "cw-state-changelog" in stops[0] and "RuntimeError" in stops[0]
    await buffer.stop()


async def test_a_refusal_settled_but_not_yet_called_back_is_found_before_the_commit(
    monkeypatch,
) -> None:
    driver = _RefusingDriver()
    buffer, stops = await _refusing_buffer(monkeypatch, driver)
    (sent,) = driver.sent
    sent.set_exception(RuntimeError("RecordTooLarge"))
    buffer.check_sent()  # what the producer's flush does before Faust commits
    assert len(stops) == 1
    await buffer.stop()


async def test_a_record_refused_before_it_left_stops_the_worker(monkeypatch) -> None:
    buffer, stops = await _refusing_buffer(monkeypatch, _RefusingDriver(at_once=True))
    assert stops and "ValueError" in stops[0]
    await buffer.stop()


async def test_acknowledged_records_are_not_kept(monkeypatch) -> None:
    driver = _RefusingDriver()
    buffer, stops = await _refusing_buffer(monkeypatch, driver)
    driver.sent[0].set_result(None)
    await asyncio.sleep(0)
    assert not buffer.sending and not stops
    await buffer.stop()
