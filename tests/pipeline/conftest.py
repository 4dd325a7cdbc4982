from __future__ import annotations

from pathlib import Path

import pytest

from streams.cluster import Cluster
from streams.domain.policy import load_policy
from streams.pipeline.settings import Settings
from streams.replay.generate import GenerateOptions, generate


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
    c = Cluster(Settings(partitions=4, tick_seconds=3600.0), var_dir=tmp_path / "var")
    c.start_broker()
    c.create_topics()
    try:
        yield c
    finally:
        c.stop()
