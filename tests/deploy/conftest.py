"""Fixtures for the deployment tests: the Prometheus and Alertmanager binaries they run.

CI installs them (scripts/system-deps.sh); a test skips only where one is missing.
"""

from __future__ import annotations

import shutil

import pytest

from tests.deploy.deploy_helpers import need_binary


@pytest.fixture(scope="session")
def promtool() -> str:
    return need_binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return need_binary("amtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    # Debian calls the server prometheus-alertmanager, upstream tarballs alertmanager.
    for name in ("prometheus-alertmanager", "alertmanager"):
        if shutil.which(name):
            return need_binary(name)
    return need_binary("prometheus-alertmanager")
