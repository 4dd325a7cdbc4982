"""One embedded tansu broker for the streaming and latency stages of a bench run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from streams.local.broker import EmbeddedBroker
from streams.local.cluster import Cluster
from streams.pipeline.settings import Settings

PARTITIONS = 4


def start_broker(var: Path) -> EmbeddedBroker:
    return EmbeddedBroker(log_path=var / "tansu.log").start()


def worker_malloc() -> str:
    """The workers' allocator mode: ``CLAIMWATCH_MALLOC`` as a worker reads it
    (``compact``, the default, or ``glibc``)."""
    return Settings.from_env({"CLAIMWATCH_MALLOC": os.environ.get("CLAIMWATCH_MALLOC", "")}).malloc


def stage_cluster(
    bootstrap: str,
    stage: str,
    var: Path,
    *,
    replay: bool,
    declarations: str | None = None,
    contracts: str | None = None,
    session_timeout: int | None = None,
) -> Cluster:
    """A cluster (no workers yet) with its own app id and topics on the shared broker;
    ``declarations``/``contracts`` name another stage's input topics to read instead.
    ``session_timeout`` (seconds) shortens the workers' group joins, which tansu
    answers after half of it (``--quick``); None keeps the worker's default."""
    prefix = f"bench.{stage}"
    settings = Settings(
        broker=bootstrap,
        app_id=f"bench-{stage}",
        topic_declarations=declarations or f"{prefix}.declarations",
        topic_contracts=contracts or f"{prefix}.contracts",
        topic_alerts=f"{prefix}.alerts",
        topic_rejected=f"{prefix}.rejected",
        partitions=PARTITIONS,
        tick_seconds=3600,  # the structural rules' timer stays out of the measurement
        replay=replay,
        producer_idempotence=False,  # tansu has no idempotent producers
        malloc=worker_malloc(),
    )
    run_dir = var / f"run-{stage}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cluster = Cluster(settings, var_dir=run_dir)
    if session_timeout is not None:  # workers read it from their environment
        cluster.env = {"CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS": str(session_timeout)}
    cluster.create_topics()
    return cluster
