"""Event-time → alert latency of ceiling alerts at a steady input rate.

A worker runs on its own topics. ``providers`` invented providers each get a
contract whose ceiling is a whole number of identical lines, so the 70/90/100%
crossings fall on known lines, spread over the run. Lines are produced at ``rate``
lines/s in ticks of 50 ms (each tick: a few batch envelopes of one provider each),
with ``submitted_at`` = the wall clock when the line is made, in milliseconds. A
consumer on the alerts topic notes the wall clock when each alert arrives; the
latency of a firing ceiling alert is its arrival time minus its ``event_time`` (the
``submitted_at`` of the line that crossed). Producer, broker, worker and alert
consumer all run on this machine, so one clock serves every timestamp.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.broker import stage_cluster
from bench.consumer import from_beginning
from streams.domain.model import parse_time
from streams.domain.policy import load_policy
from streams.local.cluster import Cluster
from streams.pipeline.settings import Settings

TARGET_P99_S = 1.0
TICK_SECONDS = 0.05
AMOUNT_CENTS = 10_000
REGION = "Twente"
# The worker's fetch wait (CLAIMWATCH_FETCH_WAIT_MS; Faust's own driver fixes 1500)
WORKER_FETCH_WAIT_MS = Settings.from_env({}).fetch_wait_ms


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _parse_utc(text: str) -> float:
    return parse_time(text.replace("Z", "+00:00"))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _line(agb: str, n: int, service_date: str, submitted_at: str) -> dict[str, Any]:
    return {
        "schema": "ggz.declaration/1",
        "event_id": str(uuid.uuid4()),
        "line_id": f"{agb}-{n:08d}",
        "kind": "debit",
        "provider_agb": agb,
        "region": REGION,
        "client_ref": f"c-bench-{agb}-{n // 8}",
        "trajectory_id": f"zt-{agb}-{n // 8:06d}",
        "service_date": service_date,
        "submitted_at": submitted_at,
        "activity": "consult",
        "consult_mode": "individual",
        "practitioners": 1,
        "digital": False,
        "setting": 2,
        "care_demand_type": 0,
        "diagnosis_group": "depression",
        "amount_cents": AMOUNT_CENTS,
        "prestatie_code": "CO0030",
    }


class Plan:
    """Providers, their ceilings (in lines) and the ceiling alerts the run must raise."""

    def __init__(self, providers: int, lines_each: int, year: int) -> None:
        self.year = year
        self.agbs = [f"99{i:06d}" for i in range(providers)]
        # 100% reached between 30% and 95% of a provider's lines: crossings all through the run.
        self.ceiling_lines = {
            agb: max(3, round(lines_each * (0.30 + 0.65 * i / max(1, providers - 1))))
            for i, agb in enumerate(self.agbs)
        }
        self.thresholds_bp = load_policy().ceiling.thresholds_bp

    def contracts(self) -> list[tuple[bytes, bytes]]:
        updated = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
        out = []
        for i, agb in enumerate(self.agbs):
            obj = {
                "schema": "ggz.contract/1",
                "provider_agb": agb,
                "year": self.year,
                "ceiling_cents": self.ceiling_lines[agb] * AMOUNT_CENTS,
                "purchaser": "inkoop-bench",
                "provider_name": f"Bench provider {i}",
                "region": REGION,
                "version": 1,
                "updated_at": updated,
            }
            out.append((f"{agb}:{self.year}".encode(), orjson.dumps(obj)))
        return out

    def expected(self, sent: dict[str, int]) -> set[str]:
        """Ceiling alert ids that must fire given the lines sent per provider."""
        ids = set()
        for agb, k in self.ceiling_lines.items():
            for bp in self.thresholds_bp:
                crossing = -(-bp * k // 10_000)  # first line with net ≥ bp/10000 × ceiling
                if crossing <= sent.get(agb, 0):
                    detail = str(bp // 100) if bp % 100 == 0 else f"{bp / 100:g}".replace(".", "-")
                    ids.add(f"ceiling_utilisation:{agb}:{self.year}:{detail}")
        return ids


async def _consume(
    bootstrap: str,
    topic: str,
    fetch_max_wait_ms: int,
    on_record: Callable[[float, bytes], None],
    stop: asyncio.Event,
) -> None:
    """Read ``topic`` from the beginning until ``stop``; ``on_record(arrival, value)``."""
    async with from_beginning(
        bootstrap, topic, ends=False, fetch_max_wait_ms=fetch_max_wait_ms
    ) as (consumer, _):
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=20)
            arrived = time.time()
            for records in batch.values():
                for record in records:
                    on_record(arrived, record.value)


async def _drive(
    cluster: Cluster, plan: Plan, rate: float, seconds: float, per_message: int
) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    s = cluster.settings
    bootstrap = s.broker or ""
    per_tick = max(1, round(rate * TICK_SECONDS))
    received: list[tuple[float, dict[str, Any]]] = []
    floor: list[float] = []

    def on_alert(arrived: float, value: bytes) -> None:
        received.append((arrived, orjson.loads(value)))

    def on_declarations(arrived: float, value: bytes) -> None:
        first = orjson.loads(value)["lines"][0]
        floor.append(arrived - _parse_utc(first["submitted_at"]))

    stop = asyncio.Event()
    # The alert reader must not add to the latency it measures: a 10 ms fetch wait.
    # The floor reader reads the declarations as the worker does, with the worker's
    # fetch wait: tansu does not answer a waiting fetch as soon as data arrives (the
    # delay grows with the fetch wait), so the same delay stands in front of the worker.
    readers = [
        asyncio.create_task(_consume(bootstrap, s.topic_alerts, 10, on_alert, stop)),
        asyncio.create_task(
            _consume(bootstrap, s.topic_declarations, WORKER_FETCH_WAIT_MS, on_declarations, stop)
        ),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        contracts = plan.contracts()
        for key, value in contracts:
            await producer.send_and_wait(s.topic_contracts, value, key=key)
        await asyncio.to_thread(cluster.wait_contracts, [value for _, value in contracts])

        service_date = datetime.now(UTC).date().isoformat()
        sent: dict[str, int] = dict.fromkeys(plan.agbs, 0)
        cursor = 0
        pending: list[asyncio.Future[Any]] = []
        ticks = round(seconds / TICK_SECONDS)
        started = time.monotonic()
        first_send = last_send = 0.0
        lines = 0
        for tick in range(ticks):
            delay = started + tick * TICK_SECONDS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            left = per_tick
            while left > 0:
                agb = plan.agbs[cursor % len(plan.agbs)]
                cursor += 1
                n = min(per_message, left)
                left -= n
                now = _now_iso()
                batch = [_line(agb, sent[agb] + j, service_date, now) for j in range(n)]
                sent[agb] += n
                envelope = orjson.dumps(
                    {"schema": "ggz.declaration-batch/1", "provider_agb": agb, "lines": batch}
                )
                pending.append(
                    await producer.send(s.topic_declarations, envelope, key=agb.encode())
                )
                lines += n
            last_send = time.monotonic()
            if tick == 0:
                first_send = last_send
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        produce_window = last_send - first_send

        expected = plan.expected(sent)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            got = {a["alert_id"] for _, a in received if a["state"] == "firing"}
            if expected <= got:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*readers)
        await producer.stop()

    # Total = (detected_at - event_time): producer, broker, the worker's fetch and
    # processing; plus (arrival - detected_at): publishing the alert and reading it back.
    latencies: dict[str, tuple[float, float, float]] = {}
    for arrived, alert in received:
        aid = alert["alert_id"]
        if alert["state"] == "firing" and aid in expected and aid not in latencies:
            event = _parse_utc(alert["event_time"])
            detected = _parse_utc(alert["detected_at"])
            latencies[aid] = (arrived - event, detected - event, arrived - detected)
    values = sorted(v[0] for v in latencies.values())
    to_detect = sorted(v[1] for v in latencies.values())
    to_arrive = sorted(v[2] for v in latencies.values())
    unexpected = {a["alert_id"] for _, a in received} - expected
    return {
        "rate_target": rate,
        "rate_achieved": (lines - per_tick) / produce_window if produce_window > 0 else 0.0,
        "seconds": seconds,
        "lines": lines,
        "providers": len(plan.agbs),
        "lines_per_message": per_message,
        "alerts_expected": len(expected),
        "alerts_measured": len(values),
        "alerts_missing": len(expected) - len(values),
        "alerts_unexpected": len(unexpected),
        "p50_s": percentile(values, 50) if values else 0.0,
        "p90_s": percentile(values, 90) if values else 0.0,
        "p99_s": percentile(values, 99) if values else 0.0,
        "max_s": values[-1] if values else 0.0,
        "min_s": values[0] if values else 0.0,
        "detect_p50_s": percentile(to_detect, 50) if values else 0.0,
        "detect_p99_s": percentile(to_detect, 99) if values else 0.0,
        "deliver_p50_s": percentile(to_arrive, 50) if values else 0.0,
        "deliver_p99_s": percentile(to_arrive, 99) if values else 0.0,
        "floor_p50_s": percentile(sorted(floor), 50) if floor else 0.0,
        "floor_p99_s": percentile(sorted(floor), 99) if floor else 0.0,
        "target_p99_s": TARGET_P99_S,
    }


def run(
    bootstrap: str,
    var: Path,
    *,
    rate: float = 2_000,
    seconds: float = 20.0,
    providers: int = 100,
    per_message: int = 25,
    session_timeout: int | None = None,
) -> dict[str, Any]:
    cluster = stage_cluster(
        bootstrap, "latency", var, replay=False, session_timeout=session_timeout
    )
    lines_each = max(10, int(rate * seconds / providers))
    plan = Plan(providers, lines_each, datetime.now(UTC).year)
    try:
        cluster.add_worker()
        cluster.wait_ready()
        return asyncio.run(_drive(cluster, plan, rate, seconds, per_message))
    finally:
        cluster.stop()
