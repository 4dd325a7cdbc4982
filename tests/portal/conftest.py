"""A portal model built from a real history: a generated archive run through the
offline engine, its provider statuses (``streams.domain.status``) and alert
transitions applied to a ``Model`` as the followers would apply the topics' records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.engine import Engine
from streams.domain.policy import Policy, load_policy
from streams.domain.status import provider_statuses
from streams.portal.model import Model
from streams.replay.offline import replay_offline
from streams.synth.generate import GenerateOptions, generate


@dataclass
class Built:
    model: Model
    engine: Engine
    snapshot: dict[str, Any]
    alerts: list[dict[str, Any]]
    firing: set[str]
    policy: Policy


def status_records(engine: Engine) -> list[tuple[bytes, bytes]]:
    return [
        (key.encode(), value)
        for st in engine.providers.values()
        for key, value in provider_statuses(st, engine.contracts, engine.policy)
    ]


def build(tmp: Path, providers: int = 6, lines: int = 5000, seed: int = 3) -> Built:
    generate(tmp, GenerateOptions(providers=providers, lines=lines, seed=seed))
    policy = load_policy()
    _, engine = replay_offline(
        [tmp / "declarations.ndjson"],
        policy,
        contracts=tmp / "contracts.ndjson",
        alerts_out=tmp / "alerts.ndjson",
        replay_flag=False,
    )
    alerts = [orjson.loads(x) for x in (tmp / "alerts.ndjson").read_bytes().splitlines()]
    model = Model()
    for key, value in status_records(engine):
        model.apply_status(key, value)
    for a in alerts:
        model.apply_alert((a["provider_agb"] or a["region"]).encode(), orjson.dumps(a))
    firing = {aid for st in engine.providers.values() for aid, _ in st.alerts.firing()}
    return Built(model, engine, engine.snapshot(), alerts, firing, policy)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("portal-history"))


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The embedded tansu broker, with the three topics the portal follows."""
    from streams.kafka.topics import topic_specs
    from streams.local.broker import EmbeddedBroker, TopicSpec, ensure_topics_sync
    from streams.pipeline.settings import Settings

    b = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        settings = Settings(broker=b.bootstrap, partitions=2, producer_idempotence=False)
        specs = [
            s
            for s in topic_specs(settings)
            if s.name in (settings.topic_alerts, settings.topic_provider_status)
        ]
        ensure_topics_sync(
            b.bootstrap,
            [*specs, TopicSpec("ggz.departments.v1", 1, configs={"cleanup.policy": "compact"})],
        )
        yield settings
    finally:
        b.stop()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(run())
