"""One peer mean for the whole cluster (SPEC §10), on the real broker with two workers.

``group_share_low`` compares a provider's group share with ``factor`` × the mean of
all providers. A worker holds the providers of its partitions only; if it took the
mean over those (as the Faust GlobalTable did: faust-streaming #283), the outcome
would depend on how the partitions fall. The history here is built so that it does:
provider T fires against the mean of all providers and not against the mean of the
providers of the worker that holds it, whatever share of the four partitions that
worker gets (the test checks this for the split the broker made). Two workers must
still give exactly the offline replay's firing set and snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from streams.domain.rules import peer_mean
from streams.domain.status import STATUS_SCHEMA, StatusBook
from streams.kafka.topics import topic_specs
from streams.local.broker import EmbeddedBroker, ensure_topics
from streams.local.cluster import Cluster
from streams.pipeline.settings import Settings
from streams.pipeline.status import StatusReader
from tests.pipeline.conftest import FAST_REBALANCE
from tests.pipeline.harness import (
    assert_equal_results,
    finish,
    offline_reference,
    produce,
    write_lines,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PARTITIONS = 4
MIN_CONSULTS = 20
# Each provider's 2026 consults and group consults. T's share, 0.3, lies below half
# the mean of all five (0.66 / 2 = 0.33) and above half the mean of T's partition
# with any one or two other partitions (at most 0.575 / 2 = 0.2875): L shares T's
# partition (share 0), each of the other partitions holds one H (share 1).
SHARES = {"T": (20, 6), "L": (20, 0), "H1": (20, 20), "H2": (20, 20), "H3": (20, 20)}


def partition_of(agb: str) -> int:
    """The partition a key goes to (the producer's partitioner, murmur2 like Java's)."""
    from aiokafka.partitioner import DefaultPartitioner

    every = list(range(PARTITIONS))
    return int(DefaultPartitioner()(agb.encode(), every, every))


def providers() -> dict[str, tuple[str, int]]:
    """name → (AGB code, partition): T and L in one partition, an H in each other."""
    by_partition: dict[int, list[str]] = {}
    for n in range(10_000_000, 10_001_000):
        by_partition.setdefault(partition_of(str(n)), []).append(str(n))
    home = 0
    out = {"T": (by_partition[home][0], home), "L": (by_partition[home][1], home)}
    for i, p in enumerate(p for p in range(PARTITIONS) if p != home):
        out[f"H{i + 1}"] = (by_partition[p][0], p)
    return out


def lines(agbs: dict[str, tuple[str, int]]) -> Iterator[bytes]:
    """Every provider's consults, interleaved, one minute apart in March 2026."""
    n = 0
    plan = {
        name: ["group"] * group + ["individual"] * (total - group)
        for name, (total, group) in SHARES.items()
    }
    for i in range(max(len(v) for v in plan.values())):
        for name, modes in plan.items():
            if i >= len(modes):
                continue
            n += 1
            yield orjson.dumps(
                {
                    "schema": "ggz.declaration/1",
                    "event_id": f"e{n}",
                    "line_id": f"l{n}",
                    "kind": "debit",
                    "provider_agb": agbs[name][0],
                    "region": "Utrecht",
                    "client_ref": f"c{n}",
                    "trajectory_id": f"t{n}",
                    "service_date": "2026-03-02",
                    "submitted_at": f"2026-03-10T{8 + n // 60:02d}:{n % 60:02d}:00Z",
                    "activity": "consult",
                    "consult_mode": modes[i],
                    "practitioners": 1,
                    "digital": False,
                    "setting": 1,
                    "care_demand_type": 3,
                    "diagnosis_group": "depression",
                    "amount_cents": 10_000,
                }
            )


def low(share: tuple[int, int], mean: Fraction | None, policy: Policy) -> bool:
    """group_share_low's condition (streams/domain/rules.py), for the check below."""
    consults, group = share
    factor = Fraction(repr(policy.group_share.factor))
    return mean is not None and Fraction(group, consults) < factor * mean


@pytest.fixture
def policy(tmp_path: Path) -> tuple[Policy, Path]:
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    assert "min_consults = 200" in text
    path = tmp_path / "policy.toml"
    # group_share_low's minimum only (the first min_consults in the file)
    path.write_text(text.replace("min_consults = 200", f"min_consults = {MIN_CONSULTS}", 1))
    policy = load_policy(path)
    assert policy.group_share.min_consults == MIN_CONSULTS
    return policy, path


@pytest.mark.parametrize("interval", ["3600", "0.2"])
def test_two_workers_judge_group_share_low_against_the_mean_of_every_provider(
    policy: tuple[Policy, Path], tmp_path: Path, interval: str
) -> None:
    policy_obj, policy_path = policy
    agbs = providers()
    files = [write_lines(tmp_path / "declarations.ndjson", list(lines(agbs)))]
    reference = offline_reference(files, None, policy_obj, tmp_path)
    t_alert = f"group_share_low:{agbs['T'][0]}:2026"
    assert t_alert in reference["firing"]  # against the mean of all five
    full = peer_mean(SHARES.values(), MIN_CONSULTS)[0]
    assert low(SHARES["T"], full, policy_obj)

    cluster = Cluster(
        Settings(partitions=PARTITIONS, tick_seconds=3600.0),
        var_dir=tmp_path / "var",
        # 3600: no timer publishes a status during the test, the final figures reach
        # the status topic by the replay's status flush alone (send_final_tick);
        # 0.2: the timer publishes all along, and the flush has to wait for it.
        env={**FAST_REBALANCE, "CLAIMWATCH_STATUS_INTERVAL": interval},
        policy_path=str(policy_path),
    )
    cluster.start_broker()
    cluster.create_topics()
    try:
        cluster.add_worker()
        cluster.add_worker()
        cluster.wait_ready()
        held = [set(st["assigned"]) for st in cluster.statuses()]
        assert len(held) == 2 and all(held) and not (held[0] & held[1])
        # The flip, for the split the broker made: the worker holding T, judging by
        # the mean of its own providers, would not fire what the offline replay fires.
        (own,) = [h for h in held if agbs["T"][1] in h]
        partial = peer_mean(
            [SHARES[name] for name, (_agb, p) in agbs.items() if p in own], MIN_CONSULTS
        )[0]
        assert low(SHARES["T"], partial, policy_obj) != low(SHARES["T"], full, policy_obj)

        stats = produce(cluster, files, None)
        online = finish(cluster, stats, policy_obj)
        assert_equal_results(online, reference)
        assert t_alert in online["firing"]

        # The topic holds every provider-year's final summary: the snapshot's entries.
        latest: dict[str, Any] = {}
        for key, value, _h in cluster.read_topic(cluster.settings.topic_provider_status):
            latest[(key or b"").decode()] = orjson.loads(value) if value is not None else None
        expected = {
            f"{agb}:{year}": entry
            for agb, years in reference["snapshot"]["providers"].items()
            for year, entry in years.items()
        }
        assert {k: v["indicators"] for k, v in latest.items()} == expected
        assert t_alert in latest[f"{agbs['T'][0]}:2026"]["open_alerts"]
    finally:
        cluster.stop()


def summary(agb: str, consults: int, group: int) -> bytes:
    indicators = {"consults": consults, "group_consults": group}
    return orjson.dumps(
        {"schema": STATUS_SCHEMA, "provider_agb": agb, "year": 2026, "indicators": indicators}
    )


async def test_the_status_reader_catches_up_to_the_end_a_fetch_reports(tmp_path: Path) -> None:
    """``catch_up`` returns once the book holds everything on the topic when it was
    called, also the rest of a batch: tansu's ListOffsets answers the last batch's
    base offset + 1 (streams/kafka/offsets.py), and batches here hold hundreds of records."""
    from aiokafka import AIOKafkaProducer

    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    settings = Settings(broker=broker.bootstrap, partitions=1)
    topic = settings.topic_provider_status
    book = StatusBook()
    reader = StatusReader(settings, book)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, linger_ms=100, max_batch_size=1 << 20
    )
    try:
        await ensure_topics(broker.bootstrap, topic_specs(settings))
        await producer.start()
        await reader.start()
        await reader.wait_ready(30.0)
        agbs = [str(10_000_000 + i) for i in range(400)]
        for step, group in enumerate((20, 50, 100)):
            # every provider's new summary, in a few large batches; the last round
            # deletes every other provider-year
            sends = []
            for i, agb in enumerate(agbs):
                value = None if step == 2 and i % 2 else summary(agb, 200, group + i % 2)
                sends.append(await producer.send(topic, value, key=f"{agb}:2026".encode()))
            await asyncio.gather(*sends)
            assert await reader.catch_up(30.0)
            kept = agbs if step < 2 else agbs[::2]
            assert len(book) == len(kept), step
            shares = [(200, group + (i % 2 if step < 2 else 0)) for i in range(len(kept))]
            assert book.means(MIN_CONSULTS) == {2026: peer_mean(shares, MIN_CONSULTS)[0]}
    finally:
        await reader.stop()
        await producer.stop()
        broker.stop()
