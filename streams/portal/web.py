"""The portal's web application (aiohttp): Dutch HTML pages rendered on the server
with Jinja2, the same data as JSON under ``/api``, and ``/health``, ``/ready``,
``/metrics``.

Every page, ``/api`` and ``/metrics`` ask for the bearer token when one is set
(``CLAIMWATCH_PORTAL_TOKEN``), compared in constant time as the worker's views do;
``/health`` and ``/ready`` never ask. An unknown provider, alert, region or path gets
a 404 page (JSON under ``/api``), a missing or wrong token a 401.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.domain.alerts import MONTH_NAMES, euros, number, pct
from streams.domain.policy import Policy
from streams.pipeline.views import authorised
from streams.portal import pages
from streams.portal.charts import SpendChart, render_spend_chart
from streams.portal.model import Model

Feeds = Callable[[], Mapping[str, Mapping[str, Any]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/health", "/ready"})


def _month(m: int | None) -> str:
    return MONTH_NAMES["nl"][m - 1] if m else "—"


def _cents(cents: int | None) -> str:
    return euros(cents) if cents is not None else "—"


def _count(n: int | None) -> str:
    return number(n) if n is not None else "—"


def _figure(value: Any, cents: bool) -> str:
    """An explanation's numerator or denominator: euros for the ceiling rules."""
    if value is None:
        return "—"
    if cents:
        return euros(int(value))
    return number(value) if isinstance(value, int) else f"{value:g}".replace(".", ",")


def _ratio(value: Any) -> str:
    """An alert's value or threshold: three decimals, a Dutch decimal comma."""
    if not isinstance(value, int | float):
        return "—"
    return f"{value:.3f}".replace(".", ",")


def _sort_key(value: Any) -> Any:
    return value if value is not None else -1


def overview_rows(rows: list[dict[str, Any]], year: int | None) -> Markup:
    """The overview table's body, one ``<tr>`` a provider (``pages.overview``'s
    rows). Written here, not as a template loop: 2,000 providers are 50,000 cells,
    and Jinja's per-cell escaping and filter calls made the page take most of its
    200 ms budget. The provider's own texts (name, purchaser, region) are escaped;
    the rest are numbers and the portal's own words."""
    out = []
    for r in rows:
        agb, util, pace = escape(r["agb"]), r["utilisation"], r["pace_ratio"]
        link = f'<a href="/providers/{agb}?year={year}">'
        projected = r["projected_cents"]
        pace_class = (
            " over" if pace is not None and pace >= 1.1 else
            " under" if pace is not None and pace <= 0.9 else ""
        )  # fmt: skip
        cells = [
            f'<tr data-agb="{agb}">',
            f"  <td>{link}{agb}</a></td>",
            f"  <td>{link}{escape(r['name'] or '—')}</a></td>",
            f"  <td>{escape(r['purchaser'] or '—')}</td>",
            f"  <td>{escape(r['region'] or '—')}</td>",
            f'  <td class="num net" data-sort="{r["net_cents"]}">{_cents(r["net_cents"])}</td>',
            f'  <td class="num" data-sort="{_sort_key(r["ceiling_cents"])}">'
            f"{_cents(r['ceiling_cents'])}</td>",
            f'  <td class="num{" over" if util is not None and util >= 1 else ""}" '
            f'data-sort="{_sort_key(util)}">{pct(util)}</td>',
            f'  <td class="num projected" data-sort="{_sort_key(projected)}">'
            + (
                _cents(projected)
                if projected is not None
                else '<span class="muted">nog niet</span>'
            )
            + "</td>",
            f'  <td class="num{pace_class}" data-sort="{_sort_key(pace)}">{pct(pace)}</td>',
            f'  <td class="num" data-sort="{r["covered_month"]}">{_month(r["covered_month"])}</td>',
        ]
        alerts = r["open_alerts"]
        cells.append(
            "  "
            + "".join(
                f'<td class="num{f" sev-{s}" if alerts[s] else ""}">{alerts[s]}</td>'
                for s in pages.SEVERITIES
            )
        )
        cells.append("</tr>")
        out.append("\n".join(cells))
    return Markup("\n".join(out))


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("streams.portal", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        euros=_cents,
        pct=pct,
        number=_count,
        month=_month,
        figure=_figure,
        ratio=_ratio,
        severity=lambda s: pages.SEVERITY_NL.get(s, s),
        rule=lambda r: pages.RULE_NL.get(r, r),
        category=lambda c: pages.CATEGORY_NL.get(c, c),
        overview_rows=overview_rows,
    )
    env.globals.update(severities=pages.SEVERITIES, categories=pages.CATEGORIES)
    return env


class PortalCollector(Collector):
    """The portal's metrics, from its current state at scrape time."""

    def __init__(self, model: Model, feeds: Feeds) -> None:
        self.model = model
        self.feeds = feeds

    def collect(self) -> Any:
        records = CounterMetricFamily(
            "claimwatch_portal_records", "Records read per followed topic", labels=["topic"]
        )
        malformed = CounterMetricFamily(
            "claimwatch_portal_malformed_records",
            "Records skipped as malformed per followed topic",
            labels=["topic"],
        )
        for topic, n in self.model.records.items():
            records.add_metric([topic], n)
            malformed.add_metric([topic], self.model.malformed[topic])
        lag = GaugeMetricFamily(
            "claimwatch_portal_lag_records", "Records behind a topic's end", labels=["topic"]
        )
        for name, state in self.feeds().items():
            if state.get("lag") is not None:
                lag.add_metric([name], state["lag"])
        ready = GaugeMetricFamily("claimwatch_portal_ready", "1 once every topic was read")
        ready.add_metric([], 1.0 if _ready(self.feeds) else 0.0)
        years = GaugeMetricFamily("claimwatch_portal_provider_years", "Provider-years served")
        years.add_metric([], len(self.model.statuses))
        yield from (records, malformed, lag, ready, years)


def _ready(feeds: Feeds) -> bool:
    return all(state["ready"] for state in feeds().values())


def _year(request: web.Request) -> int | None:
    text = request.query.get("year", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise web.HTTPBadRequest(text=f"ongeldig jaar: {text[:20]!r}")
    return int(text)


class Portal:
    """The routes, bound to a model, a policy and the followers' state."""

    def __init__(self, model: Model, policy: Policy, feeds: Feeds, token: str | None) -> None:
        self.model = model
        self.policy = policy
        self.feeds = feeds
        self.token = token
        self.env = environment()
        self.registry = CollectorRegistry()
        self.registry.register(PortalCollector(model, feeds))

    # -- rendering ---------------------------------------------------------------
    def html(self, template: str, status: int = 200, **context: Any) -> web.Response:
        body = self.env.get_template(template).render(ready=_ready(self.feeds), **context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    @staticmethod
    def json(data: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")

    def not_found(self, request: web.Request, what: str) -> web.Response:
        if request.path.startswith("/api/"):
            return self.json({"error": "not_found", "detail": what}, 404)
        return self.html("error.html", 404, title="Niet gevonden", detail=what)

    # -- middleware --------------------------------------------------------------
    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS and not authorised(self.token, request):
            headers = {"WWW-Authenticate": 'Bearer realm="claimwatch"'}
            if request.path.startswith("/api/"):
                resp = self.json({"error": "unauthorised"}, 401)
            else:
                resp = self.html(
                    "error.html",
                    401,
                    title="Geen toegang",
                    detail="Deze pagina vraagt een geldig toegangstoken.",
                )
            resp.headers.update(headers)
            return resp
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self.not_found(request, f"Er is geen pagina {request.path}.")
        except web.HTTPBadRequest as exc:
            if request.path.startswith("/api/"):
                return self.json({"error": "bad_request", "detail": exc.text}, 400)
            return self.html("error.html", 400, title="Ongeldige vraag", detail=exc.text)

    # -- pages -------------------------------------------------------------------
    async def overview_page(self, request: web.Request) -> web.Response:
        data = self._overview(request)
        return self.html("overview.html", **data)

    async def overview_api(self, request: web.Request) -> web.Response:
        return self.json(self._overview(request))

    def _overview(self, request: web.Request) -> dict[str, Any]:
        purchaser = request.query.get("purchaser") or None
        return pages.overview(self.model, purchaser, _year(request), request.query.get("q"))

    async def provider_page(self, request: web.Request) -> web.Response:
        agb = request.match_info["agb"]
        data = pages.provider(self.model, self.policy, agb, _year(request))
        if data is None:
            return self.not_found(request, f"Geen zorgaanbieder {agb} in dit jaar.")
        return self.html("provider.html", p=data, chart=self.chart(data))

    async def provider_api(self, request: web.Request) -> web.Response:
        agb = request.match_info["agb"]
        data = pages.provider(self.model, self.policy, agb, _year(request))
        if data is None:
            return self.not_found(request, f"no provider {agb} in that year")
        return self.json(data)

    def chart(self, data: dict[str, Any]) -> Markup:
        py = self.model.status(data["agb"], data["year"])
        assert py is not None
        shares = pages.expected_shares(self.model, py, self.policy)
        earlier = [(v.version, v.ceiling_cents) for v in py.versions[:-1]]
        return render_spend_chart(
            SpendChart(
                year=py.year,
                by_month=py.indicators["net_cents_by_month"],
                expected_shares=[float(s) for s in shares] if py.ceiling_cents else None,
                ceiling_cents=py.ceiling_cents,
                covered_month=py.covered_month,
                projected_cents=py.indicators.get("projected_cents"),
                earlier_ceilings=earlier,
                contract_version=py.contract_version,
            )
        )

    async def alert_page(self, request: web.Request) -> web.Response:
        aid = request.match_info["alert_id"]
        data = pages.alert(self.model, aid)
        if data is None:
            return self.not_found(request, f"Er is geen signaal {aid}.")
        return self.html("alert.html", a=data)

    async def alert_api(self, request: web.Request) -> web.Response:
        aid = request.match_info["alert_id"]
        data = pages.alert(self.model, aid)
        if data is None:
            return self.not_found(request, f"no alert {aid}")
        return self.json(data)

    async def regions_page(self, request: web.Request) -> web.Response:
        return self.html("regions.html", **pages.regions(self.model, self.policy))

    async def regions_api(self, request: web.Request) -> web.Response:
        return self.json(pages.regions(self.model, self.policy))

    async def region_page(self, request: web.Request) -> web.Response:
        name = request.match_info["region"]
        data = pages.region(self.model, self.policy, name)
        if data is None:
            return self.not_found(request, f"Er is geen regio {name}.")
        return self.html("region.html", r=data)

    async def region_api(self, request: web.Request) -> web.Response:
        name = request.match_info["region"]
        data = pages.region(self.model, self.policy, name)
        if data is None:
            return self.not_found(request, f"no region {name}")
        return self.json(data)

    # -- operations --------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {"ready": _ready(self.feeds), "topics": dict(self.feeds()), **self.model.counts()}

    async def status_api(self, request: web.Request) -> web.Response:
        return self.json(self.status())

    async def health(self, request: web.Request) -> web.Response:
        # No figures about providers here: /health answers without a token.
        return self.json(
            {
                "status": "ok",
                "ready": _ready(self.feeds),
                "malformed": dict(self.model.malformed),
                "time": time.time(),
            }
        )

    async def ready(self, request: web.Request) -> web.Response:
        ok = _ready(self.feeds)
        return self.json({"ready": ok}, 200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": "text/plain"}
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard])
        get = app.router.add_get
        get("/", self.overview_page)
        get("/providers/{agb}", self.provider_page)
        get("/alerts/{alert_id}", self.alert_page)
        get("/regions", self.regions_page)
        get("/regions/{region}", self.region_page)
        get("/api/overview", self.overview_api)
        get("/api/providers/{agb}", self.provider_api)
        get("/api/alerts/{alert_id}", self.alert_api)
        get("/api/regions", self.regions_api)
        get("/api/regions/{region}", self.region_api)
        get("/api/status", self.status_api)
        get("/health", self.health)
        get("/ready", self.ready)
        get("/metrics", self.metrics)
        return app


def create_app(
    model: Model, policy: Policy, feeds: Feeds, token: str | None = None
) -> web.Application:
    return Portal(model, policy, feeds, token).app()
