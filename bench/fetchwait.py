"""``python -m bench.fetchwait``: how tansu's fetch wait turns into consumer latency.

Produces one small message every 50 ms to a 4-partition topic and reads it back
with a raw aiokafka consumer, for several ``fetch_max_wait_ms`` values; prints the
produce → receive latency (p50 / p99). Faust's aiokafka driver uses 1500 ms and
does not let the application change it, which is why the latency stage reports
this floor next to the worker's figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.history import VAR
from bench.latency import percentile
from streams.local.broker import EmbeddedBroker, TopicSpec, ensure_topics_sync

TOPIC = "bench.fetchwait"


async def measure(bootstrap: str, wait_ms: int, messages: int) -> tuple[float, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=wait_ms
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(4)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)

        async def read() -> None:
            while len(latencies) < messages:
                batch = await consumer.getmany(timeout_ms=2_000)
                now = time.time()
                for records in batch.values():
                    latencies.extend(now - float(r.value) for r in records)

        reader = asyncio.create_task(read())
        for i in range(messages):
            await producer.send(TOPIC, str(time.time()).encode(), partition=i % 4)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(reader, 30)
    finally:
        await producer.stop()
        await consumer.stop()
    latencies.sort()
    return percentile(latencies, 50), percentile(latencies, 99)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fetchwait", description=__doc__)
    p.add_argument("--waits", default="10,100,500,1500", help="fetch_max_wait_ms values")
    p.add_argument("--messages", type=int, default=100)
    args = p.parse_args(argv)
    broker = EmbeddedBroker(log_path=VAR / "tansu-fetchwait.log").start()
    try:
        ensure_topics_sync(broker.bootstrap, [TopicSpec(TOPIC, 4)])
        print("fetch_max_wait_ms   p50 ms   p99 ms")
        for wait in (int(w) for w in args.waits.split(",")):
            p50, p99 = asyncio.run(measure(broker.bootstrap, wait, args.messages))
            print(f"{wait:>17}  {1000 * p50:>7.0f}  {1000 * p99:>7.0f}")
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
