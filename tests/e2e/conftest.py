"""The whole alert path on one machine: tansu, a worker, Prometheus, Alertmanager, a webhook.

Prometheus and Alertmanager are the Debian servers (scripts/system-deps.sh installs
them); the test skips only where one is missing. Every server gets a free loopback
port and a directory under the test's tmp_path, and is stopped in teardown.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.local.cluster import Cluster, free_port
from streams.pipeline.settings import Settings
from tests.e2e.stack import (
    Server,
    Stack,
    WebhookReceiver,
    alertmanager_config,
    prometheus_config,
    start_alertmanager,
    start_prometheus,
)


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"{names[0]} is not installed (scripts/system-deps.sh installs it)")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    prometheus_bin = binary("prometheus")
    # Debian names the server prometheus-alertmanager, upstream tarballs alertmanager.
    alertmanager_bin = binary("prometheus-alertmanager", "alertmanager")

    started: list[Server] = []
    webhook = WebhookReceiver()
    # One hour between ticks: only the line-driven rules (the ceiling) act in the test.
    cluster = Cluster(Settings(partitions=2, tick_seconds=3600.0), var_dir=tmp_path / "var")
    try:
        cluster.start_broker()
        cluster.create_topics()
        worker = cluster.add_worker()

        # Start Prometheus and Alertmanager while the worker joins its group.
        prom_port, am_port = free_port(), free_port()
        for name in ("prometheus", "alertmanager"):
            (tmp_path / name / "data").mkdir(parents=True)
        am = start_alertmanager(
            alertmanager_bin,
            alertmanager_config(tmp_path / "alertmanager", webhook.url),
            tmp_path / "alertmanager" / "data",
            am_port,
        )
        started.append(am)
        prom = start_prometheus(
            prometheus_bin,
            prometheus_config(
                tmp_path / "prometheus",
                workers=[f"127.0.0.1:{worker.port}"],
                prometheus=f"127.0.0.1:{prom_port}",
                alertmanager=f"127.0.0.1:{am_port}",
            ),
            tmp_path / "prometheus" / "data",
            prom_port,
        )
        started.append(prom)

        am.wait_ready()
        prom.wait_ready()
        cluster.wait_ready()
        yield Stack(cluster, prom, am, webhook)
    finally:
        for server in reversed(started):
            server.stop()
        cluster.stop()
        webhook.stop()
