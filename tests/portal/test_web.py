"""The portal's web application over real HTTP (aiohttp's test server): pages, the
JSON API, the token, 404s, health, readiness and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.portal.model import Model
from streams.portal.web import create_app
from tests.portal.conftest import Built, status_records
from tests.portal.test_model import alert

READY: dict[str, dict[str, Any]] = {"provider-status": {"ready": True, "lag": 0}}


@pytest.fixture
def client_for(built: Built) -> Callable[..., Any]:
    """A started client of a portal over ``model`` (the built one by default); the
    test closes it."""

    async def make(token: str | None = None, feeds: Any = None, model: Model | None = None):
        app = create_app(model or built.model, built.policy, feeds or (lambda: READY), token)
        c = TestClient(TestServer(app))
        await c.start_server()
        return c

    return make


@pytest.fixture
async def client(client_for) -> AsyncIterator[TestClient]:
    c = await client_for()
    yield c
    await c.close()


async def test_the_overview_page_lists_the_providers_with_dutch_amounts(client, built) -> None:
    resp = await client.get("/?year=2026")
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert '<html lang="nl">' in text
    for agb, years in built.snapshot["providers"].items():
        if "2026" in years:
            assert f'data-agb="{agb}"' in text
    net = next(iter(built.snapshot["providers"].values()))["2026"]["net_cents"]
    euros = f"€ {round(net / 100):,}".replace(",", ".")
    assert euros in text


async def test_the_api_serves_what_the_pages_show(client, built) -> None:
    overview = await (await client.get("/api/overview?year=2026")).json()
    assert {r["agb"] for r in overview["providers"]} == {
        agb for agb, y in built.snapshot["providers"].items() if "2026" in y
    }
    agb = overview["providers"][0]["agb"]
    provider = await (await client.get(f"/api/providers/{agb}?year=2026")).json()
    assert provider["net_cents"] == built.snapshot["providers"][agb]["2026"]["net_cents"]
    aid = built.alerts[0]["alert_id"]
    got = await (await client.get(f"/api/alerts/{quote(aid)}")).json()
    assert got["alert_id"] == aid and got["history"]
    page = await (await client.get(f"/alerts/{quote(aid)}")).text()
    assert aid in page and "Verloop" in page
    regions = await (await client.get("/api/regions")).json()
    assert {r["region"] for r in regions["regions"]} == set(built.model.regions())


@pytest.mark.parametrize(
    "path",
    [
        "/providers/00000000",
        "/providers/{agb}?year=1999",
        "/alerts/ceiling_pace_high:00000000:2026",
        "/regions/Atlantis",
        "/geen-pagina",
    ],
)
async def test_an_unknown_provider_alert_region_or_path_is_a_404_page(client, built, path) -> None:
    agb = next(iter(built.snapshot["providers"]))
    resp = await client.get(path.format(agb=agb))
    assert resp.status == 404
    assert 'id="error"' in await resp.text() and "Niet gevonden" in await resp.text()
    api = await client.get("/api" + path.format(agb=agb))
    assert api.status == 404 and (await api.json())["error"] == "not_found"


async def test_a_year_that_is_no_number_is_a_400(client) -> None:
    assert (await client.get("/?year=twee")).status == 400
    assert (await client.get("/api/overview?year=twee")).status == 400


async def test_a_missing_or_wrong_token_is_401_and_health_stays_open(client_for) -> None:
    c = await client_for(token="s3cret")
    try:
        for path in ("/", "/api/overview", "/regions", "/metrics", "/api/status"):
            assert (await c.get(path)).status == 401, path
            bad = await c.get(path, headers={"Authorization": "Bearer wrong"})
            assert bad.status == 401 and bad.headers["WWW-Authenticate"].startswith("Bearer")
            ok = await c.get(path, headers={"Authorization": "Bearer s3cret"})
            assert ok.status == 200, path
        assert (await c.get("/health")).status == 200
        assert (await c.get("/ready")).status == 200
    finally:
        await c.close()


async def test_ready_waits_for_every_topic_and_the_pages_say_so(client_for) -> None:
    feeds = {"provider-status": {"ready": True}, "alerts": {"ready": False}}
    c = await client_for(feeds=lambda: feeds)
    try:
        assert (await c.get("/ready")).status == 503
        assert 'id="not-ready"' in await (await c.get("/")).text()
        feeds["alerts"]["ready"] = True
        assert (await c.get("/ready")).status == 200
        assert 'id="not-ready"' not in await (await c.get("/")).text()
    finally:
        await c.close()


async def test_malformed_records_are_counted_on_health_status_and_metrics(client_for) -> None:
    model = Model()
    model.apply_alert(b"x", b"{broken")
    before = 0
    client = await client_for(model=model)
    health = await (await client.get("/health")).json()
    assert health["malformed"]["alerts"] == before + 1
    status = await (await client.get("/api/status")).json()
    assert status["malformed"]["alerts"] == before + 1
    metrics = await (await client.get("/metrics")).text()
    assert f'claimwatch_portal_malformed_records_total{{topic="alerts"}} {before + 1}.0' in metrics
    await client.close()


async def test_no_client_reference_reaches_any_page_or_api(client_for, built) -> None:
    model = Model()
    for key, value in status_records(built.engine):
        model.apply_status(key, value)
    aid = "ceiling_pace_high:" + next(iter(built.snapshot["providers"])) + ":2026"
    model.apply_alert(
        b"x", alert(aid, seq=99, client_ref="CLIENT-REF-1", explain={"client_ref": "CLIENT-REF-1"})
    )
    agb = aid.split(":")[1]
    paths = [
        "/",
        f"/providers/{agb}",
        f"/alerts/{quote(aid)}",
        "/regions",
        "/api/overview",
        f"/api/providers/{agb}",
        f"/api/alerts/{quote(aid)}",
        "/api/regions",
    ]
    client = await client_for(model=model)
    try:
        for path in paths:
            resp = await client.get(path)
            assert resp.status == 200, path
            assert b"CLIENT-REF-1" not in await resp.read(), path
    finally:
        await client.close()
    for record in built.alerts:
        assert "client_ref" not in orjson.dumps(record).decode()
