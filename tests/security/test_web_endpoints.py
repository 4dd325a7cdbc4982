"""The worker's web server: read-only, and behind a bearer token when one is set.

The Faust app's aiohttp application is served by aiohttp's test server, without a
broker or a running worker: routes and views are exactly those ``claimwatch worker``
serves (``create_app`` + Faust's ``init_server``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.domain.policy import load_policy
from streams.pipeline.app import create_app
from streams.pipeline.settings import Settings

TOKEN = "n0t-a-real-t0ken"
OURS = {"/metrics", "/health", "/status", "/snapshot"}
PROTECTED = sorted(OURS - {"/health"})
WRITES = ["POST", "PUT", "PATCH", "DELETE"]


async def client_for(tmp_path, token: str | None) -> TestClient:
    settings = Settings(broker="127.0.0.1:9", web_token=token, data_dir=tmp_path)
    app = create_app(settings, load_policy())
    app.web.init_server()
    return TestClient(TestServer(app.web.web_app))


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
    for path in sorted(OURS):
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
