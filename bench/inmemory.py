"""The streaming stage's messages without a broker: what decoding alone and the
processor alone cost a line, and what that leaves a worker.

The streaming stage times three readers of the same topic: the raw aiokafka loop,
Faust alone (``bench.faust_floor``) and the worker. This module reads the topic's
messages into memory once and times, in this process, the two pieces of work that
sit between those readers:

- **decode alone**: ``orjson.loads`` of every message, the raw loop's and Faust
  alone's only work on a message once it has been fetched;
- **processor alone**: ``Processor.on_declarations`` over every message, in order,
  with a dict as the state table (its writes applied, checkpoint chunks encoded),
  after the contracts were applied: everything the worker does to a message
  except Faust's consumer, the table's changelog and the sends.

A worker pays Faust's consumer path (Faust alone less its decoding) plus the
processor, at least. So ``raw ÷ (faust − decode + processor)``, in time per line, is
the most the streaming ratio can be while the processor costs what it costs here
(and with the raw loop's consumer path in place of Faust's, the most it could be
for a worker without Faust).
That bound errs in the worker's favour: the processor runs here in a warm process
with nothing else to do, and the changelog and the sends are left out.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import orjson

from bench.consumer import from_beginning
from streams.domain.engine import Engine
from streams.domain.policy import load_policy
from streams.pipeline.processor import Chunk, Processor, contract_control

MAX_FETCH = 16 * 1024 * 1024


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, int, str | None, bytes]]:
    """Every message of ``topic`` as (partition, offset, key, value), in offset
    order per partition and partitions in turn."""
    async with from_beginning(bootstrap, topic, max_partition_fetch_bytes=MAX_FETCH) as (
        consumer,
        ends,
    ):
        remaining = {tp for tp, end in ends.items() if end > 0}
        out: dict[int, list[tuple[int, int, str | None, bytes]]] = {tp.partition: [] for tp in ends}
        deadline = time.monotonic() + 300
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end in 300 s")
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    key = r.key.decode() if r.key is not None else None
                    out[tp.partition].append((tp.partition, r.offset, key, r.value))
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
    return [m for p in sorted(out) for m in out[p]]


def time_decode(messages: list[tuple[int, int, str | None, bytes]]) -> tuple[int, float]:
    """(lines, seconds) of orjson-decoding every message, as the raw loop does."""
    loads, bad = orjson.loads, orjson.JSONDecodeError
    lines = 0
    started = time.perf_counter()
    for _, _, _, value in messages:
        try:
            obj = loads(value)
        except bad:  # the history has some malformed messages on purpose
            lines += 1
            continue
        inner = obj.get("lines") if isinstance(obj, dict) else None
        lines += len(inner) if isinstance(inner, list) else 1
    return lines, time.perf_counter() - started


def time_processor(
    messages: list[tuple[int, int, str | None, bytes]],
    contracts: list[bytes],
    partitions: int,
) -> tuple[int, float, float]:
    """(lines, seconds, CPU seconds) of the processor over the messages, in order.

    The contracts go first, each to the partition of its provider (the order the
    worker sees them in may differ; for the time a line costs that does not matter).
    """
    processor = Processor(Engine(load_policy(), replay=True, journal=True), {})
    store: dict[str, bytes] = processor.store  # type: ignore[assignment]
    for raw in contracts:
        obj = orjson.loads(raw)
        part = zlib.crc32(obj["provider_agb"].encode()) % partitions
        processor.on_control(part, contract_control(obj))
    lines = 0
    started, cpu = time.perf_counter(), time.process_time()
    for partition, offset, key, value in messages:
        out = processor.on_declarations(partition, offset, key, value)
        # every line the message held, whatever its outcome, as the worker's /status counts
        lines += out.outcomes.total() if out.outcomes is not None else out.lines
        for k, v in out.writes.items():
            if v is None:
                store.pop(k, None)
            else:
                store[k] = v.encode() if isinstance(v, Chunk) else v
    return lines, time.perf_counter() - started, time.process_time() - cpu


def run(bootstrap: str, topic: str, contracts_topic: str, partitions: int) -> dict[str, Any]:
    messages = asyncio.run(read_topic(bootstrap, topic))
    contracts = [m[3] for m in asyncio.run(read_topic(bootstrap, contracts_topic))]
    decode_lines, decode_s = time_decode(messages)
    lines, seconds, cpu_s = time_processor(messages, contracts, partitions)
    return {
        "decode_lines_per_s": decode_lines / decode_s,
        "processor_lines": lines,
        "processor_lines_per_s": lines / seconds,
        "processor_lines_per_cpu_s": lines / cpu_s if cpu_s > 0 else 0.0,
    }


def budget(
    raw: float, floor: float, decode: float, processor: float, target: float
) -> dict[str, float]:
    """From rates (lines/s): the most the streaming ratio can be, and the processor's
    time a line that ``target`` leaves it, in µs (negative: none at all).

    ``ratio_bound_no_faust`` is the same bound for a worker without Faust, the raw
    loop's own consumer with the processor in place of its decoding."""
    faust_us = 1e6 / floor - 1e6 / decode  # Faust's consumer path, decoding taken out
    fetch_us = 1e6 / raw - 1e6 / decode  # the raw loop's consumer path, decoding taken out
    return {
        "faust_path_us": faust_us,
        "fetch_path_us": fetch_us,
        "processor_us": 1e6 / processor,
        "ratio_bound": (1e6 / raw) / (faust_us + 1e6 / processor),
        "ratio_bound_no_faust": (1e6 / raw) / (fetch_us + 1e6 / processor),
        "processor_budget_us": 1e6 / (raw * target) - faust_us,
    }
