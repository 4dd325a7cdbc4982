from __future__ import annotations

from pathlib import Path

import pytest

from streams.domain.policy import load_policy
from streams.local.cluster import Cluster
from streams.pipeline.settings import Settings
from streams.synth.generate import GenerateOptions, generate

# Six seconds: the lowest session timeout a real Kafka accepts. tansu finishes a group
# join after half of it, and expires a SIGKILLed member after it, so restarts and
# rebalances take seconds, not tens of seconds (docs/faust-on-tansu.md).
FAST_REBALANCE = {"CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS": "6"}


@pytest.fixture(scope="session")
def policy():  # type: ignore[no-untyped-def]
    return load_policy()


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """A generated history with every kind of line and anomaly, shared by the tests."""
    out = tmp_path_factory.mktemp("history")
    generate(out, GenerateOptions(providers=12, lines=20_000, seed=11))
    return [out / "declarations.ndjson"], out / "contracts.ndjson"


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = Cluster(
        Settings(partitions=4, tick_seconds=3600.0), var_dir=tmp_path / "var", env=FAST_REBALANCE
    )
    c.start_broker()
    c.create_topics()
    try:
        yield c
    finally:
        c.stop()


# -- the fault tests (test_faults.py) -------------------------------------------------


@pytest.fixture(scope="session")
def small_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """4,000 lines of 5 providers over 2025–2026: ceiling alerts that fire and resolve,
    a clinical-detox alert and two group-share alerts against the peer mean."""
    out = tmp_path_factory.mktemp("small-history")
    generate(out, GenerateOptions(providers=5, lines=4_000, seed=3))
    return [out / "declarations.ndjson"], out / "contracts.ndjson"


@pytest.fixture
def proxied_cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A cluster whose broker every client reaches through an `OutageProxy`."""
    from tests.pipeline.harness import ProxiedBroker

    broker = ProxiedBroker(tmp_path / "var").start()
    c = Cluster(
        # tansu: no idempotent producers (Cluster.start_broker sets the same)
        Settings(
            partitions=4,
            tick_seconds=3600.0,
            broker=broker.bootstrap,
            producer_idempotence=False,
        ),
        var_dir=tmp_path / "var",
        env=FAST_REBALANCE,
    )
    c.proxied = broker  # type: ignore[attr-defined]
    try:
        c.create_topics()
        yield c
    finally:
        c.stop()
        broker.stop()
