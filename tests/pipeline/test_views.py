"""The worker's web views (streams/pipeline/views.py): read-only, behind a bearer token
when one is set, and what ``/health``, ``/status`` and ``/snapshot`` say.

The Faust app's aiohttp application is served by aiohttp's test server, without a
broker or a running worker: routes and views are exactly those ``claimwatch worker``
serves (``Worker`` + Faust's ``init_server``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.domain.policy import load_policy
from streams.pipeline import views
from streams.pipeline.processor import contract_control
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker
from tests.conftest import AGB, make_contract
from tests.pipeline.feed import Message, Recorder

TOKEN = "n0t-a-real-t0ken"
OURS = {"/metrics", "/health", "/ready", "/live", "/status", "/snapshot"}
PROBES = {"/health", "/ready", "/live"}  # tests/pipeline/test_probes.py
PROTECTED = sorted(OURS - PROBES)
WRITES = ["POST", "PUT", "PATCH", "DELETE"]


def client_of(worker: Worker) -> TestClient:
    worker.app.web.init_server()
    return TestClient(TestServer(worker.app.web.web_app))


async def client_for(tmp_path, token: str | None) -> TestClient:
    settings = Settings(broker="127.0.0.1:9", web_token=token, data_dir=tmp_path)
    return client_of(Worker(settings, load_policy()))


@pytest.fixture
async def open_web(tmp_path) -> AsyncIterator[TestClient]:
    async with await client_for(tmp_path, None) as c:
        yield c


@pytest.fixture
async def token_web(tmp_path) -> AsyncIterator[TestClient]:
    async with await client_for(tmp_path, TOKEN) as c:
        yield c


async def test_only_our_views_are_routed_and_only_for_get_and_head(open_web: TestClient) -> None:
    routes = {(r.method, r.resource.canonical) for r in open_web.server.app.router.routes()}
    paths = {p for _, p in routes}
    # Faust's /table and /router views would serve table values without the token.
    assert paths <= OURS | {"/"}, paths - OURS
    assert {m for m, _ in routes} == {"GET", "HEAD"}


async def test_faust_table_router_and_debug_views_are_not_served(open_web: TestClient) -> None:
    for path in ("/table/", "/table/state/", "/table/state/h:12345678/", "/router/", "/graph/",
                 "/assignment/", "/performance/", "/signal/"):  # fmt: skip
        assert (await open_web.get(path)).status == 404, path
    root = await open_web.get("/")
    assert root.status == 404 or await root.json() == {"status": "OK"}


@pytest.mark.parametrize("method", WRITES)
async def test_write_methods_are_refused_on_every_view(
    method: str, open_web: TestClient, token_web: TestClient
) -> None:
    for web in (open_web, token_web):
        for path in sorted(OURS):
            resp = await web.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status == 405, (method, path)


async def test_without_a_token_configured_the_views_answer(open_web: TestClient) -> None:
    for path in sorted(OURS - {"/ready"}):  # not ready: no partitions, no broker
        resp = await open_web.get(path)
        assert resp.status == 200, path
    metrics = await (await open_web.get("/metrics")).text()
    assert "claimwatch_build_info" in metrics


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        TOKEN,  # no scheme
        f"Basic {TOKEN}",
        f"bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}{TOKEN}",
        "Bearer ",
        "Bearer ünïcode",
    ],
)
async def test_a_missing_or_wrong_token_gets_401_and_no_data(
    authorization: str | None, token_web: TestClient
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in PROTECTED:
        for method in ("GET", "HEAD"):
            resp = await token_web.request(method, path, headers=headers)
            assert resp.status == 401, (method, path, authorization)
            body = await resp.read()
            assert b"claimwatch_" not in body and b"providers" not in body


async def test_the_right_token_opens_every_view(token_web: TestClient) -> None:
    for path in PROTECTED:
        resp = await token_web.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200, path


async def test_health_stays_open_for_probes_and_says_nothing_else(token_web: TestClient) -> None:
    resp = await token_web.get("/health")
    assert resp.status == 200
    assert set(await resp.json()) == {"status", "app_id"}


class Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def test_authorised_compares_the_whole_bearer_header() -> None:
    assert views.authorised(None, Request({}))  # no token configured: open
    assert views.authorised("", Request({}))
    assert views.authorised(TOKEN, Request({"Authorization": f"Bearer {TOKEN}"}))
    for given in (TOKEN, f"Bearer {TOKEN} ", f"Bearer {TOKEN[:-1]}", "Bearer ünïcode"):
        assert not views.authorised(TOKEN, Request({"Authorization": given})), given
    assert not views.authorised(TOKEN, Request({}))


async def test_health_names_the_app(open_web: TestClient) -> None:
    assert await (await open_web.get("/health")).json() == {"status": "ok", "app_id": "claimwatch"}


async def test_status_and_snapshot_serve_the_workers_progress_and_indicators(make_line) -> None:
    settings = Settings(broker="127.0.0.1:9", partitions=1)
    worker = Worker(settings, load_policy(), state={}, outbox=Recorder())
    control = contract_control(make_contract(AGB, ceiling_cents=20_000))
    await worker.handle(Message(settings.topic_control, 0, 0, AGB.encode(), control))
    batch = {"schema": "ggz.declaration-batch/1", "provider_agb": AGB}
    lines = [make_line(), make_line()]  # 100 % of the ceiling
    raw = orjson.dumps(batch | {"lines": lines})
    await worker.handle(Message(settings.topic_declarations, 0, 0, AGB.encode(), raw))
    worker.progress["ggz.declarations.v1:0"] = 0  # what the agent records
    async with client_of(worker) as web:
        status = await (await web.get("/status")).json()
        snapshot = await (await web.get("/snapshot")).json()
    assert status == {
        "progress": {"ggz.declarations.v1:0": 0},
        "messages": 1,
        "lines": 2,
        "providers": 1,
        "contracts": 1,
        "contract_versions": 1,
        "provider_statuses": 0,
        "departments": 0,
        "department_versions": 0,
        "register_skipped": 0,
        "register_rejected": 0,
        "assigned": [],
    }
    assert snapshot["providers"][AGB]["2026"]["net_cents"] == 20_000
    assert snapshot["counts"]["accepted"] == 2
    assert snapshot["firing"] == [f"ceiling_utilisation:{AGB}:2026:{pct}" for pct in (100, 70, 90)]
    assert "client_ref" not in orjson.dumps(snapshot).decode()


async def test_metrics_serve_the_workers_region_view_and_gaps_where_it_keeps_them(
    tmp_path,
) -> None:
    """/metrics exports the region view and the firing region gaps the worker's
    provider-status book holds (``Worker.region_view``, ``Worker.regions``), and no
    region figures while it holds none."""
    from streams.domain.regions import DepartmentSummary, RegionWatch, region_view

    latest = (2026, 5)
    rows = [
        DepartmentSummary("1", "crisis", "acute", "Utrecht", latest, (5,) * 6 + (7,)),
        DepartmentSummary("1", "ward", "secured", "Utrecht", latest, (4,) * 6 + (0,)),
    ]
    watch = RegionWatch()
    watch.evaluate(rows, 0.0, 0.0)
    worker = Worker(Settings(broker="127.0.0.1:9", data_dir=tmp_path), load_policy())
    async with client_of(worker) as client:
        before = await (await client.get("/metrics")).text()
    assert "claimwatch_region_active_departments{" not in before
    # what the provider-status book would hold: these rows, and the watch's verdicts
    worker.regions.view = lambda: region_view(rows)  # type: ignore[method-assign]
    worker.regions.firing_states = lambda: sorted(watch.alerts.firing())  # type: ignore[method-assign]
    views.wire_regions(worker)
    async with client_of(worker) as client:
        page = await (await client.get("/metrics")).text()
    assert 'claimwatch_region_active_departments{category="acute",region="Utrecht"} 1.0' in page
    assert 'claimwatch_region_clients{category="acute",region="Utrecht"} 7.0' in page
    assert (
        'claimwatch_region_category_gap_firing{alert_id="region_category_gap:Utrecht:secured:2026",'
        'category="secured",region="Utrecht",'
        'severity="high",year="2026"} 1.0'
    ) in page
