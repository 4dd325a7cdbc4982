"""Fixtures of the rule tests: an engine with a fixed clock, lines with client
references the tests look for."""

from __future__ import annotations

from typing import Any

import pytest

from streams.domain.engine import Engine
from tests.domain.rules.rule_helpers import CLIENT, NOW


@pytest.fixture
def line(make_line):
    """``make_line`` with pseudonymous client references that tests can look for."""
    counter = iter(range(10**6))

    def make(**fields: Any) -> dict[str, Any]:
        fields.setdefault("client_ref", f"{CLIENT}{next(counter)}")
        return make_line(**fields)

    make.credit = make_line.credit  # type: ignore[attr-defined]
    return make


@pytest.fixture
def eng(policy) -> Engine:
    return Engine(policy, clock=lambda: NOW)


@pytest.fixture
def send(feed):
    return feed
