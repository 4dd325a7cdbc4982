"""One embedded tansu broker for the streaming and latency stages of a bench run."""

from __future__ import annotations

import shutil
from pathlib import Path

from streams.broker import EmbeddedBroker
from streams.cluster import Cluster
from streams.pipeline.settings import Settings

PARTITIONS = 4


def start_broker(var: Path) -> EmbeddedBroker:
    return EmbeddedBroker(log_path=var / "tansu.log").start()


def stage_cluster(bootstrap: str, stage: str, var: Path, *, replay: bool) -> Cluster:
    """A cluster (no workers yet) with its own app id and topics on the shared broker."""
    prefix = f"bench.{stage}"
    settings = Settings(
        broker=bootstrap,
        app_id=f"bench-{stage}",
        topic_declarations=f"{prefix}.declarations",
        topic_contracts=f"{prefix}.contracts",
        topic_alerts=f"{prefix}.alerts",
        topic_rejected=f"{prefix}.rejected",
        partitions=PARTITIONS,
        tick_seconds=3600,  # the structural rules' timer stays out of the measurement
        replay=replay,
    )
    run_dir = var / f"run-{stage}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cluster = Cluster(settings, var_dir=run_dir)
    cluster.create_topics()
    return cluster
