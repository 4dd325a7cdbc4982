"""The worker's producer buffer is drained for real before offsets are committed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from streams.pipeline.producer import DrainingBuffer


class _SlowDriver:
    """A channel whose hand-over to the driver waits for ``gate`` (aiokafka's ``send``
    waits like this when its batches are full)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.handed: list[Any] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await self.gate.wait()
        self.handed.append(fut)


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
