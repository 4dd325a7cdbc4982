"""Shared fixtures: the shipped policy, and factories for declaration lines and contracts.

Lines come out valid by default (a 2026 individual consult of provider 12345678);
keyword arguments override fields, ``...`` (Ellipsis) as a value removes one. Every line gets a fresh
``event_id``/``line_id`` and a ``submitted_at`` one minute after the previous one,
so tests only spell out what they are about; a line given a service date that this
``submitted_at`` would make implausible (SPEC §12: before the service date, or more
than three years after its year) is submitted the day after its service date instead.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from streams.domain.engine import Engine
from streams.domain.policy import Policy, load_policy

AGB = "12345678"
FIXED_NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()  # engines' detected_at clock


class LineFactory:
    """Builds declaration dicts; ``credit(debit)`` builds the credit that reverses one."""

    def __init__(self) -> None:
        self._n = itertools.count(1)
        self._t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self, **fields: Any) -> dict[str, Any]:
        n = next(self._n)
        at = self._t0 + timedelta(minutes=n)
        if "submitted_at" not in fields:
            at = _plausible(at, fields.get("service_date"), n)
        at = at.astimezone(timezone(timedelta(hours=1)))
        obj: dict[str, Any] = {
            "schema": "ggz.declaration/1",
            "event_id": f"e{n}",
            "line_id": f"l{n}",
            "kind": "debit",
            "provider_agb": AGB,
            "region": "Utrecht",
            "client_ref": f"c{n}",
            "trajectory_id": f"t{n}",
            "service_date": "2026-03-01",
            "submitted_at": at.isoformat(),
            "activity": "consult",
            "consult_mode": "individual",
            "practitioners": 1,
            "digital": False,
            "setting": 1,
            "care_demand_type": 3,
            "diagnosis_group": "depression",
            "amount_cents": 10_000,
        }
        for key, value in fields.items():
            if value is Ellipsis:
                obj.pop(key, None)
            else:
                obj[key] = value
        return obj

    def credit(self, debit: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """The credit of ``debit``: same attributes, its own event id and a later time."""
        fresh = self(service_date=debit.get("service_date"))
        obj = {
            **debit,
            "kind": "credit",
            "event_id": fresh["event_id"],
            "submitted_at": fresh["submitted_at"],
        }
        obj.update(fields)
        return obj


def _plausible(at: datetime, service_date: Any, n: int) -> datetime:
    """``at``, or the day after ``service_date`` when ``at`` would be implausible_time
    for it (with the shipped retention.line_index_years = 3)."""
    try:
        day = date.fromisoformat(service_date)
    except (TypeError, ValueError):
        return at
    if day <= at.date() and at.year <= day.year + 3:
        return at
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(days=1, minutes=n)


def make_contract(
    provider: str = AGB,
    year: int = 2026,
    ceiling_cents: int = 1_000_000,
    version: int = 1,
    updated_at: str = "2026-01-01T00:00:00Z",
    **fields: Any,
) -> dict[str, Any]:
    obj = {
        "schema": "ggz.contract/1",
        "provider_agb": provider,
        "year": year,
        "ceiling_cents": ceiling_cents,
        "purchaser": "Team Midden",
        "provider_name": "GGZ Voorbeeld",
        "region": "Utrecht",
        "version": version,
        "updated_at": updated_at,
    }
    obj.update(fields)
    return obj


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def make_line() -> LineFactory:
    return LineFactory()


@pytest.fixture
def contract_event():
    """Factory of contract event dicts (``make_contract``)."""
    return make_contract


@pytest.fixture
def engine(policy: Policy) -> Engine:
    return Engine(policy, clock=lambda: FIXED_NOW)
