"""The portal's in-memory model: what a record of each followed topic does to it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.portal.model import ALERTS, DEPARTMENTS, STATUS, Model


def status(agb: str = "12345678", year: int = 2026, **over: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "schema": "ggz.provider-status/1",
        "provider_agb": agb,
        "year": year,
        "indicators": {
            "net_cents": 600,
            "net_cents_by_month": [100] * 6 + [0] * 6,
            "ceiling_utilisation": 0.6,
            "projected_cents": 1200,
            "pace_ratio": 1.2,
        },
        "contract": {
            "ceiling_cents": 1000,
            "purchaser": "Team Midden",
            "provider_name": "GGZ Voorbeeld",
            "region": "Utrecht",
            "version": 1,
        },
        "watermark": "2026-07-15T00:00:00Z",
        "covered_month": 5,
        "pace": {"covered_month": 5, "expected_share": 5 / 12},
        "open_alerts": [],
        "updated_at": "2026-07-15T00:00:00Z",
    }
    value.update(over)
    return value


def alert(aid: str = "ceiling_pace_high:12345678:2026", seq: int = 1, **over: Any) -> bytes:
    value: dict[str, Any] = {
        "schema": "ggz.alert/1",
        "alert_id": aid,
        "rule": aid.split(":")[0],
        "state": "firing" if seq % 2 else "resolved",
        "severity": "warning",
        "provider_agb": "12345678",
        "provider_name": "GGZ Voorbeeld",
        "year": 2026,
        "purchaser": "Team Midden",
        "region": "Utrecht",
        "value": 1.2,
        "threshold": 1.1,
        "event_time": "2026-07-15T00:00:00Z",
        "detected_at": "2026-07-15T00:00:01Z",
        "message": "tempo",
        "sequence": seq,
    }
    value.update(over)
    return orjson.dumps(value)


def put(model: Model, value: dict[str, Any]) -> None:
    model.apply_status(f"{value['provider_agb']}:{value['year']}".encode(), orjson.dumps(value))


def test_a_status_record_is_served_and_its_tombstone_removes_it() -> None:
    m = Model()
    put(m, status())
    py = m.status("12345678", 2026)
    assert py is not None and py.name == "GGZ Voorbeeld" and py.ceiling_cents == 1000
    assert m.provider_years("12345678") == [2026] and m.purchasers() == ["Team Midden"]
    m.apply_status(b"12345678:2026", None)
    assert m.status("12345678", 2026) is None and m.provider_years("12345678") == []
    assert m.malformed[STATUS] == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"12345678:2026", b"{not json"),
        (b"12345678:2026", b"[1, 2]"),
        (b"12345678:2026", b"\xff\xfe"),
        (b"12345678:2025", orjson.dumps(status())),  # key names another year
        (b"12345678:2026", orjson.dumps(status(indicators={"net_cents": 1}))),
        (b"12345678:2026", orjson.dumps(status(watermark="gisteren"))),
        (b"12345678:2026", orjson.dumps(status(contract="Team Midden"))),
        (b"12345678:2026", orjson.dumps(status(departments=[1]))),
        (None, None),
    ],
)
def test_a_malformed_status_record_is_skipped_and_counted(key, value) -> None:
    m = Model()
    put(m, status(agb="87654321"))
    m.apply_status(key, value)
    assert m.malformed[STATUS] == 1
    assert list(m.statuses) == ["87654321:2026"]


def test_malformed_alert_and_department_records_are_skipped_and_counted() -> None:
    m = Model()
    for bad in (b"{", b"3", alert(state="maybe"), alert(sequence="1"), alert(message="")):
        m.apply_alert(b"12345678", bad)
    m.apply_alert(b"12345678", None)
    m.apply_department(b"12345678:x", b'{"provider_agb": "12345678"}')
    m.apply_department(None, None)
    assert m.malformed[ALERTS] == 6 and m.malformed[DEPARTMENTS] == 2
    assert not m.alerts and not m.register


def test_an_alert_is_open_while_its_latest_transition_fires_and_copies_count_once() -> None:
    m = Model()
    m.apply_alert(b"12345678", alert(seq=1))
    m.apply_alert(b"12345678", alert(seq=1))  # a producer's retried copy
    assert m.open_alerts("12345678", 2026) == {"ceiling_pace_high:12345678:2026": "warning"}
    m.apply_alert(b"12345678", alert(seq=2))
    assert m.open_alerts("12345678", 2026) == {}
    m.apply_alert(b"12345678", alert(seq=1))  # an old transition read late
    assert m.open_alerts("12345678", 2026) == {}
    assert [t["sequence"] for t in m.alerts["ceiling_pace_high:12345678:2026"].ordered()] == [1, 2]


def test_a_replays_alert_is_not_shown() -> None:
    m = Model()
    m.apply_alert(b"12345678", alert(replay=True))
    assert not m.alerts and m.malformed[ALERTS] == 0


def test_fields_the_portal_does_not_show_are_not_kept() -> None:
    m = Model()
    m.apply_alert(b"12345678", alert(client_ref="c-secret", explain={"client_ref": "c-secret"}))
    put(m, status(contract={**status()["contract"], "client_ref": "c-secret"}))
    kept = orjson.dumps([m.alerts["ceiling_pace_high:12345678:2026"].ordered(), repr(m.statuses)])
    assert b"c-secret" not in kept


def test_contract_versions_seen_are_kept_in_order() -> None:
    m = Model()
    put(m, status())
    put(m, status(watermark="2026-08-01T00:00:00Z"))  # same version: not a new mark
    put(m, status(contract={**status()["contract"], "version": 2, "ceiling_cents": 800}))
    py = m.status("12345678", 2026)
    assert py is not None
    assert [(v.version, v.ceiling_cents) for v in py.versions] == [(1, 1000), (2, 800)]


def test_the_newest_department_register_version_stands() -> None:
    m = Model()

    def dept(version: int, category: str) -> bytes:
        return orjson.dumps(
            {
                "schema": "ggz.department/1",
                "provider_agb": "12345678",
                "department": "fact-oost",
                "name": "FACT Oost",
                "category": category,
                "region": "Utrecht",
                "version": version,
                "updated_at": "2026-01-01T00:00:00Z",
            }
        )

    m.apply_department(b"12345678:fact-oost", dept(2, "outreach"))
    m.apply_department(b"12345678:fact-oost", dept(1, "clinical"))
    assert m.register[("12345678", "fact-oost")].category == "outreach"
    assert m.regions() == ["Utrecht"]
    m.apply_department(b"12345678:fact-oost", None)
    assert not m.register
