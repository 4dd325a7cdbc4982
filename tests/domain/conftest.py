"""Domain-test helpers: feeding lines to an engine, and policies with changed values."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streams.domain.engine import Effects, Engine
from streams.domain.policy import DEFAULT_POLICY_PATH, Policy, parse_policy


def default_policy_dict() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def policy_with() -> Callable[..., Policy]:
    """``policy_with(**{"group_share_low.min_consults": 3})``: defaults with changes."""

    def build(**changes: Any) -> Policy:
        raw = default_policy_dict()
        for dotted, value in changes.items():
            section, key = dotted.split(".")
            raw[section][key] = value
        return parse_policy(raw)

    return build


@pytest.fixture
def feed() -> Callable[..., Effects]:
    """``feed(engine, *objs)``: each object (or bytes) as its own message."""

    def send(engine: Engine, *objs: Any) -> Effects:
        fx = Effects()
        for obj in objs:
            engine.process(obj if isinstance(obj, bytes) else orjson.dumps(obj), None, fx)
        return fx

    return send
