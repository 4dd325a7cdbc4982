"""Driving a real cluster (embedded tansu + worker processes) in tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from streams.cluster import Cluster
from streams.domain.policy import Policy
from streams.replay.offline import replay_offline
from streams.replay.producer import archive_lines, contract_lines, produce_history, send_final_tick

LINE_DRIVEN = ("ceiling_utilisation", "zvt_setting_mismatch")


def offline_reference(
    files: list[Path], contracts: Path, policy: Policy, tmp: Path
) -> dict[str, Any]:
    summary, engine = replay_offline(
        files,
        policy,
        contracts=contracts,
        alerts_out=tmp / "off-alerts.ndjson",
        snapshot_out=tmp / "off-snapshot.json",
    )
    alerts = [orjson.loads(x) for x in (tmp / "off-alerts.ndjson").read_bytes().splitlines()]
    firing = {aid for st in engine.providers.values() for aid, _ in st.alerts.firing()}
    return {
        "snapshot": orjson.loads((tmp / "off-snapshot.json").read_bytes()),
        "alerts": alerts,
        "firing": firing,
    }


def produce(
    cluster: Cluster,
    files: list[Path],
    contracts: Path | None,
    batch_size: int = 500,
    rate: float | None = None,
):  # type: ignore[no-untyped-def]
    s = cluster.settings
    crows = contract_lines(contracts)

    ordered = crows  # contract_lines returns them in event-time order

    async def after(sent: int) -> None:
        await asyncio.to_thread(cluster.wait_contracts, ordered[:sent])

    async def sync(stats: Any) -> None:
        targets = {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}
        await asyncio.to_thread(cluster.wait_processed, targets)

    return asyncio.run(
        produce_history(
            s.broker or "",
            archive_lines(files),
            topic=s.topic_declarations,
            contracts=crows,
            contracts_topic=s.topic_contracts,
            after_contracts=after,
            sync=sync,
            batch_size=batch_size,
            rate=rate,
        )
    )


def finish(cluster: Cluster, stats: Any, policy: Policy, timeout: float = 300.0) -> dict[str, Any]:
    """Wait until all is processed, send the final tick, collect the results."""
    s = cluster.settings
    cluster.wait_processed(
        {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}, timeout
    )
    ticks = asyncio.run(
        send_final_tick(s.broker or "", s.topic_control, s.partitions, after=stats.end_offsets)
    )
    cluster.wait_processed({f"{s.topic_control}:{p}": o for p, o in ticks.items()}, timeout)
    snapshot, firing = cluster.snapshot(policy)
    alerts = [orjson.loads(v) for _k, v, _h in cluster.read_topic(s.topic_alerts)]
    return {"snapshot": snapshot, "alerts": alerts, "firing": firing}


def line_driven(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Line-driven transitions as SPEC §6 compares them: ids, states, event times, values."""
    return sorted(
        (a["alert_id"], a["sequence"], a["state"], a["event_time"], a["value"])
        for a in alerts
        if a["rule"] in LINE_DRIVEN
    )


def assert_equal_results(online: dict[str, Any], offline: dict[str, Any]) -> None:
    assert online["snapshot"] == offline["snapshot"]
    on, off = line_driven(online["alerts"]), line_driven(offline["alerts"])
    assert on == off, describe_difference(on, off)
    assert online["firing"] == offline["firing"]
    # Each transition published once: no (alert_id, sequence) twice.
    keys = [(a["alert_id"], a["sequence"]) for a in online["alerts"]]
    assert len(keys) == len(set(keys)), "an alert transition was published twice"


def describe_difference(online: list[tuple[Any, ...]], offline: list[tuple[Any, ...]]) -> str:
    a, b = set(online), set(offline)
    return f"only online: {sorted(a - b)[:5]}; only offline: {sorted(b - a)[:5]}"
