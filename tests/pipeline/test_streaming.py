"""The streaming pipeline against the real broker (tansu) and real worker processes."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain import schemas
from streams.local.cluster import http_get
from tests.pipeline.harness import assert_equal_results, finish, offline_reference, produce

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_streaming_gives_the_offline_snapshot_and_alerts(
    cluster, history, policy, tmp_path: Path
) -> None:
    files, contracts = history
    departments = contracts.parent / "departments.ndjson"
    reference = offline_reference(files, contracts, policy, tmp_path, departments)
    cluster.add_worker()
    cluster.wait_ready()
    stats = produce(cluster, files, contracts, departments=departments)
    assert stats.departments == len(departments.read_bytes().splitlines())
    online = finish(cluster, stats, policy)
    assert_equal_results(online, reference)
    assert reference["firing"], "the history should make alerts fire"
    assert_departments_and_regions(online, reference)
    # /metrics carries Faust's own sensor next to ours, counting what the worker read:
    # every declarations message produced, once (one worker, no restart, no fault),
    # and a total that is the sum over the topics it read.
    url = f"http://127.0.0.1:{cluster.workers[0].port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        text = resp.read().decode()
    samples = metric_samples(text)
    produced = sum(o + 1 for o in stats.end_offsets.values())  # the topic was empty
    assert produced == stats.messages
    seen = {k: v for k, v in samples.items() if k[0].startswith("faust_messages_received")}
    per_topic = {
        dict(labels)["topic"]: v
        for (name, labels), v in samples.items()
        if name == "faust_messages_received_per_topic_total"
    }
    assert per_topic.get(cluster.settings.topic_declarations) == produced, seen
    assert samples[("faust_messages_received_total", ())] == sum(per_topic.values()), seen
    assert samples[("claimwatch_messages_total", ())] == produced
    assert any(name == "claimwatch_lines_total" for name, _labels in samples)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def produce_with_kills(
    cluster, files: list[Path], contracts: Path, thresholds: tuple[int, ...]
) -> tuple[Any, list[int]]:
    """Produce the history at 6,000 lines/s while the (one) worker is SIGKILLed and
    restarted each time it has processed the next threshold of lines."""
    worker = cluster.workers[0]
    kills: list[int] = []

    def killer() -> None:
        for threshold in thresholds:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if sum(st.get("lines", 0) for st in cluster.statuses()) >= threshold:
                    break
                time.sleep(0.05)
            cluster.restart_worker(worker)
            kills.append(threshold)
            cluster.wait_ready()

    t = threading.Thread(target=killer)
    t.start()
    stats = produce(cluster, files, contracts, batch_size=100, rate=6_000)
    t.join()
    return stats, kills


@pytest.mark.parametrize(
    ("store", "checkpoints"),
    [("memory://", "default"), ("memory://", "many chunks"), ("rocksdb://", "many chunks")],
)
def test_worker_killed_mid_stream_recovers_without_loss_or_double_counting(
    cluster, history, policy, tmp_path: Path, store: str, checkpoints: str
) -> None:
    """SIGKILLed twice mid-stream and restarted, the worker ends with the offline
    results. With "many chunks", small checkpoints (after 4 journal segments, 200
    entries a record) make every provider write checkpoints of many records, each
    encoded and delivered before the next."""
    files, contracts = history
    reference = offline_reference(files, contracts, policy, tmp_path)
    cluster.settings = cluster.settings.with_(store=store)
    if checkpoints == "many chunks":
        cluster.settings = cluster.settings.with_(checkpoint_chunk=200, checkpoint_segments=4)
    cluster.add_worker()
    cluster.wait_ready()
    stats, kills = produce_with_kills(cluster, files, contracts, (4_000, 12_000))
    assert len(kills) == 2
    online = finish(cluster, stats, policy)
    assert_equal_results(online, reference)
    if checkpoints == "many chunks":
        changelog = f"{cluster.settings.app_id}-state-changelog"
        keys = [orjson.loads(k) for k, _v, _h in cluster.read_topic(changelog) if k]  # JSON
        chunks = {k for k in keys if k.startswith("k:")}
        # k:<provider>:<generation>:<chunk>: checkpoints of several records, many times
        assert max((int(k.rsplit(":", 1)[1]) for k in chunks), default=-1) >= 3, keys[:5]
        assert len({k.rsplit(":", 1)[0] for k in chunks}) >= 10


def test_two_workers_share_the_partitions_and_together_give_the_same_results(
    cluster, history, policy, tmp_path: Path
) -> None:
    """With the department register: the same departments, regions and department
    alerts as offline, and each region transition published once by the cluster."""
    files, contracts = history
    departments = contracts.parent / "departments.ndjson"
    reference = offline_reference(files, contracts, policy, tmp_path, departments)
    cluster.add_worker()
    cluster.add_worker()
    cluster.wait_ready()
    held = [set(st["assigned"]) for st in cluster.statuses()]
    assert len(held) == 2 and all(held) and not (held[0] & held[1])
    stats = produce(cluster, files, contracts, departments=departments)
    online = finish(cluster, stats, policy)
    assert_equal_results(online, reference)
    assert_departments_and_regions(online, reference)
    # Both see the whole cluster's region view (deptops' metrics read it).
    views = [http_get(w.port, "/status") for w in cluster.alive()]
    assert all(v["departments"] == stats.departments for v in views)


def assert_departments_and_regions(online: dict[str, Any], reference: dict[str, Any]) -> None:
    """SPEC §9 in streaming as offline: the snapshot's departments and regions (in
    ``assert_equal_results`` already; here that they are there to compare), the
    department rules' transitions, the regions firing, each transition once."""
    snap = online["snapshot"]
    assert snap["regions"], "the history should give a region view"
    assert any(y.get("departments") for years in snap["providers"].values() for y in years.values())
    rules = ("department_activity_drop", "department_stopped")
    on = sorted(
        (a["alert_id"], a["sequence"], a["state"], a["event_time"])
        for a in online["alerts"]
        if a["rule"] in rules
    )
    off = sorted(
        (a["alert_id"], a["sequence"], a["state"], a["event_time"])
        for a in reference["alerts"]
        if a["rule"] in rules
    )
    assert on == off and on, (on, off)
    gaps_firing = {a for a in reference["firing"] if a.startswith("region_category_gap:")}
    assert gaps_firing and gaps_firing <= online["firing"]
    for a in online["alerts"]:  # region and department alerts too
        assert schemas.check(schemas.ALERT, a) is None, a["alert_id"]
    region = [
        (a["alert_id"], a["sequence"])
        for a in online["alerts"]
        if a["region"] and not a["provider_agb"]
    ]
    assert region and len(region) == len(set(region)), "a region transition was published twice"


def test_poison_messages_are_dead_lettered_with_reasons_and_the_worker_keeps_running(
    cluster, policy, tmp_path: Path
) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    cluster.add_worker()
    cluster.wait_ready()
    s = cluster.settings
    good = {
        "schema": "ggz.declaration/1",
        "event_id": "e1",
        "line_id": "l1",
        "kind": "debit",
        "provider_agb": "12345678",
        "region": "Twente",
        "client_ref": "c-1",
        "trajectory_id": "t1",
        "service_date": "2026-03-02",
        "submitted_at": "2026-04-02T10:00:00+02:00",
        "activity": "stay",
        "stay_days": 3,
        "setting": 5,
        "care_demand_type": 4,
        "diagnosis_group": "depression",
        "amount_cents": 90000,
    }
    messages = [
        (b"12345678", b"\x00\xff not json"),
        (b"12345678", b"[1, 2, 3]"),
        (
            b"12345678",
            orjson.dumps({**good, "event_id": "e2", "practitioners": 0, "activity": "consult"}),
        ),
        (
            b"12345678",
            orjson.dumps({**good, "event_id": "e3", "line_id": "l3", "client_ref": "123456789"}),
        ),
        (
            b"12345678",
            orjson.dumps(
                {"schema": "ggz.declaration-batch/1", "provider_agb": "12345678", "lines": []}
            ),
        ),
        (
            b"12345678",
            orjson.dumps(
                {
                    "schema": "ggz.declaration-batch/1",
                    "provider_agb": "12345678",
                    "lines": [
                        good,
                        {**good, "event_id": "e4", "line_id": "l4", "provider_agb": "87654321"},
                    ],
                }
            ),
        ),
        (
            b"12345678",
            orjson.dumps({**good, "event_id": "e5", "line_id": "never", "kind": "credit"}),
        ),
        # valid JSON nested 4,500 deep (9 KB) in an extra field: refused before any
        # recursive decoder sees it; it made the worker raise and exit before
        (b"12345678", orjson.dumps(good)[:-1] + b',"x":' + b"[" * 4_500 + b"]" * 4_500 + b"}"),
        # a schema-valid timestamp in year 9999: refused before it moves any watermark
        (
            b"12345678",
            orjson.dumps(
                {**good, "event_id": "e6", "line_id": "l6", "submitted_at": "9999-01-01T00:00:00Z"}
            ),
        ),
        (None, b"keyless garbage"),
    ]

    async def send() -> dict[int, int]:
        p = AIOKafkaProducer(bootstrap_servers=s.broker)
        await p.start()
        ends: dict[int, int] = {}
        try:
            for key, value in messages:
                meta = await p.send_and_wait(s.topic_declarations, value, key=key)
                ends[meta.partition] = max(ends.get(meta.partition, -1), meta.offset)
        finally:
            await p.stop()
        return ends

    ends = asyncio.run(send())
    cluster.wait_processed({f"{s.topic_declarations}:{p}": o for p, o in ends.items()}, 60)
    letters = cluster.read_topic(s.topic_rejected)
    reasons = sorted(h["reason"].decode() for _k, _v, h in letters)
    assert reasons == sorted(
        [
            "invalid_json",
            "invalid_json",
            "schema",
            "bsn_like_client_ref",
            "invalid_batch",
            "batch_provider_mismatch",
            "orphan_credit",
            "invalid_json",
            "implausible_time",
            "invalid_json",
        ]
    )
    details = {h["detail"].decode() for _k, _v, h in letters}
    assert any("nested deeper than 64" in d for d in details), details
    assert all(b"123456789" not in v for _k, v, _h in letters), (
        "a BSN-shaped value reached the dead-letter topic"
    )
    snapshot, _ = cluster.snapshot(policy)
    assert (
        snapshot["providers"]["12345678"]["2026"]["net_cents"] == 90000
    )  # the good line of the batch
    assert cluster.alive(), "the worker died on poison input"
