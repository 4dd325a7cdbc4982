"""Shared by the rule tests: the provider, the alert schema check, line builders.

Every alert event a rule test sees goes through ``published``, which checks it
against ``schemas/alert.v1.json`` and that no client reference appears in it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import fastjsonschema
import orjson

from streams.domain import schemas
from streams.domain.contracts import Contract
from streams.domain.engine import Effects, Engine

AGB = "12345678"
ALERT = fastjsonschema.compile(schemas.load_schema(schemas.ALERT))
CLIENT = "PSEUDO-CLIENT-"  # every client_ref in this module starts with it
NOW = 1_780_000_000.0


def published(fx: Effects) -> list[dict[str, Any]]:
    """The alert events of ``fx``, each checked against the alert schema."""
    for event in fx.alerts:
        ALERT(event)
        assert CLIENT not in event["message"]
        assert CLIENT.encode() not in orjson.dumps(event)
    return list(fx.alerts)


def ids(fx: Effects) -> list[tuple[str, str]]:
    return [(a["alert_id"], a["state"]) for a in published(fx)]


def contract(
    ceiling: int = 1_000_000, version: int = 1, updated_at: str = "2026-01-01T00:00:00Z", **kw: Any
) -> Contract:
    return Contract.from_event(
        {
            "schema": "ggz.contract/1",
            "provider_agb": kw.pop("provider", AGB),
            "year": kw.pop("year", 2026),
            "ceiling_cents": ceiling,
            "purchaser": "Team Midden",
            "provider_name": "GGZ Voorbeeld",
            "region": "Utrecht",
            "version": version,
            "updated_at": updated_at,
            **kw,  # digital_target
        }
    )


def consults(line, n: int, **fields: Any) -> list[dict[str, Any]]:
    return [line(**fields) for _ in range(n)]


def tick_ids(eng: Engine, **kw: Any) -> list[tuple[str, str]]:
    return ids(eng.tick(**kw))


HALF = {2026: Fraction(1, 2)}  # a peer mean of 0.5: group_share_low fires below 0.25


def group_consults(line, ge4: int, small: int) -> list[dict[str, Any]]:
    return consults(line, ge4, consult_mode="group", practitioners=4) + consults(
        line, small, consult_mode="group", practitioners=2
    )


def detox(line, clinical: int, ambulant: int) -> list[dict[str, Any]]:
    return consults(line, clinical, activity="stay", stay_days=1, detox="clinical") + consults(
        line, ambulant, activity="other", detox="ambulant"
    )


def adhd_clients(line, n: int, day: str, prefix: str = "") -> list[dict[str, Any]]:
    return [
        line(diagnosis_group="adhd", service_date=day, client_ref=f"{CLIENT}{prefix}{i}")
        for i in range(n)
    ]
