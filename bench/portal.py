"""Bench stage ``portal``: the purchaser portal (SPEC §11) under load.

1. Following: status updates worth ``lines`` declaration lines (one update per
   ``LINES_PER_UPDATE`` lines: a worker publishes a provider-year's status after
   each message that changes it, 500 lines a message, and per provider at most once
   per status interval, so this is generous) are produced at ``rate`` updates/s
   onto a fresh status topic while a portal ``Follower`` reads it into a ``Model``;
   its lag is sampled every 0.25 s. Lag that stays flat (the last third of the run's
   mean lag within one fetch wait's worth of updates of the first third's,
   ``report._lag_flat``) means the portal keeps up.
2. Rendering: a model of ``providers`` providers x 2 years (real status values of a
   generated history, copied under new AGB codes, with their alerts): the time to
   render the overview and a provider page (data, chart and template), as the web
   handlers do, median and worst of ``repeat`` renders.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

LINES_PER_UPDATE = 50


def _values(tmp: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    from streams.domain.policy import load_policy
    from streams.domain.status import provider_statuses
    from streams.replay.offline import replay_offline
    from streams.synth.generate import GenerateOptions, generate

    generate(tmp, GenerateOptions(providers=6, lines=5000, seed=3))
    policy = load_policy()
    _, engine = replay_offline(
        [tmp / "declarations.ndjson"],
        policy,
        contracts=tmp / "contracts.ndjson",
        alerts_out=tmp / "alerts.ndjson",
        replay_flag=False,
    )
    statuses = [
        orjson.loads(v)
        for st in engine.providers.values()
        for _, v in provider_statuses(st, engine.contracts, policy)
    ]
    alerts = [orjson.loads(x) for x in (tmp / "alerts.ndjson").read_bytes().splitlines()]
    return statuses, alerts, policy


def _as(value: dict[str, Any], agb: str) -> dict[str, Any]:
    out = dict(value)
    out["provider_agb"] = agb
    return out


async def _follow(
    bootstrap: str, statuses: list[dict[str, Any]], lines: int, rate: float
) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from streams.local.broker import TopicSpec, ensure_topics
    from streams.pipeline.settings import Settings
    from streams.portal.follow import Follower
    from streams.portal.model import STATUS, Model

    topic = f"bench.portal-status.{int(time.time())}"
    await ensure_topics(bootstrap, [TopicSpec(topic, 1, configs={"cleanup.policy": "compact"})])
    settings = Settings(broker=bootstrap, producer_idempotence=False)
    model = Model()
    follower = Follower(STATUS, topic, model.apply_status, settings)
    task = asyncio.create_task(follower.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
    await producer.start()
    updates = lines // LINES_PER_UPDATE
    samples: list[tuple[float, int]] = []
    try:
        await asyncio.wait_for(follower.ready.wait(), 60)
        started = time.perf_counter()
        sent = 0

        async def sample() -> None:
            while True:
                samples.append((time.perf_counter() - started, sent - model.records[STATUS]))
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        encoded = [
            (f"{9000000 + i:08d}", v) for i, v in enumerate(statuses * 400)
        ]  # distinct keys: 2,000 providers' years and more
        while sent < updates:
            due = started + sent / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            agb, value = encoded[sent % len(encoded)]
            v = _as(value, agb)
            await producer.send(topic, orjson.dumps(v), key=f"{agb}:{v['year']}".encode())
            sent += 1
        await producer.flush()
        produce_s = time.perf_counter() - started
        while model.records[STATUS] < updates:
            await asyncio.sleep(0.05)
        done_s = time.perf_counter() - started
        sampler.cancel()
    finally:
        task.cancel()
        await follower.stop()
        await producer.stop()
    third = max(1, len(samples) // 3)
    first = [lag for _, lag in samples[:third]]
    last = [lag for _, lag in samples[-third:]]
    return {
        "lines": lines,
        "updates": updates,
        "rate_per_s": rate,
        "produce_s": produce_s,
        "caught_up_s": done_s,
        "lag_max": max((lag for _, lag in samples), default=0),
        "lag_mean_first_third": statistics.fmean(first) if first else 0.0,
        "lag_mean_last_third": statistics.fmean(last) if last else 0.0,
        "malformed": model.malformed[STATUS],
    }


def _render(
    statuses: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    policy: Any,
    providers: int,
    repeat: int,
) -> dict[str, Any]:
    from streams.portal.model import Model
    from streams.portal.web import Portal

    model = Model()
    by_year: dict[int, list[dict[str, Any]]] = {}
    for s in statuses:
        by_year.setdefault(s["year"], []).append(s)
    for i in range(providers):
        agb = f"{10000000 + i:08d}"
        for year, values in by_year.items():
            v = _as(values[i % len(values)], agb)
            v["open_alerts"] = []
            model.apply_status(f"{agb}:{year}".encode(), orjson.dumps(v))
    for i in range(providers):
        agb = f"{10000000 + i:08d}"
        for a in alerts[:5]:
            a2 = dict(a, provider_agb=agb, alert_id=a["alert_id"].replace(a["provider_agb"], agb))
            model.apply_alert(agb.encode(), orjson.dumps(a2))
    portal = Portal(model, policy, lambda: {"x": {"ready": True}}, None)
    year = max(by_year)

    def overview() -> int:
        from streams.portal import pages

        return len(
            portal.html("overview.html", **pages.overview(model, None, year, None)).text or ""
        )

    def provider() -> int:
        from streams.portal import pages

        data = pages.provider(model, policy, "10000007", year)
        assert data is not None
        return len(portal.html("provider.html", p=data, chart=portal.chart(data)).text or "")

    out: dict[str, Any] = {"providers": providers, "provider_years": len(model.statuses)}
    for name, fn in (("overview", overview), ("provider", provider)):
        times = []
        size = 0
        for _ in range(repeat):
            t = time.perf_counter()
            size = fn()
            times.append((time.perf_counter() - t) * 1000)
        out[f"{name}_ms_median"] = statistics.median(times)
        out[f"{name}_ms_max"] = max(times)
        out[f"{name}_bytes"] = size
    return out


def run(
    bootstrap: str,
    lines: int = 1_000_000,
    rate: float = 2_000.0,
    providers: int = 2_000,
    repeat: int = 20,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        statuses, alerts, policy = _values(Path(tmp))
    follow = asyncio.run(_follow(bootstrap, statuses, lines, rate))
    render = _render(statuses, alerts, policy, providers, repeat)
    return {"follow": follow, "render": render}
