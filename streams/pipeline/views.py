"""The worker's web views: ``/metrics``, ``/health``, ``/ready``, ``/live``,
``/status``, ``/snapshot``.

All GET-only; every view but the probes (``/health``, ``/ready``, ``/live``: status
and a reason, no data) asks for the bearer token when one is set
(``CLAIMWATCH_WEB_TOKEN``). Faust's own views stay off (streams/pipeline/app.py).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import orjson

from streams.domain.snapshot import build_snapshot
from streams.pipeline import probes

if TYPE_CHECKING:
    from streams.pipeline.worker import Worker


def authorised(token: str | None, request: Any) -> bool:
    if not token:
        return True
    given = request.headers.get("Authorization", "").encode("utf-8", "replace")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def status(worker: Worker) -> dict[str, Any]:
    """What ``/status`` serves: progress and sizes, no client data."""
    engine = worker.engine
    return {
        "progress": worker.progress,
        "messages": worker.metrics.messages,
        "lines": worker.metrics.lines,
        "providers": len(engine.providers),
        "contracts": len(engine.contracts),
        "contract_versions": sum(c.version for c in engine.contracts),
        "provider_statuses": len(worker.statuses.book),  # as this worker's reader holds them
        # the register as this worker's reader holds it (every worker reads it whole)
        "departments": len(engine.departments),
        "department_versions": sum(d.version for d in engine.departments),
        "register_skipped": worker.register.skipped,
        "register_rejected": worker.register_rejected,
        "assigned": worker.active_partitions(),
    }


def snapshot(worker: Worker) -> bytes:
    """What ``/snapshot`` serves: the indicators and firing alerts (SPEC §8), the
    departments per provider-year and the ``regions`` of this worker's providers
    (SPEC §9; snapshots of disjoint workers sum, ``merge_snapshots``)."""
    engine = worker.engine
    counts = [c for c, _ in worker.processor.ledgers.values()]
    counts.append(engine.counts())
    snap = build_snapshot(
        engine.providers.values(), engine.contracts, counts, worker.policy, engine.departments
    )
    # Region alerts as the status topic holds their states: the same on every worker.
    snap["firing"] = sorted(
        [aid for st in engine.providers.values() for aid, _ in st.alerts.firing()]
        + worker.regions.firing()
    )
    return orjson.dumps(snap)


def install(worker: Worker) -> None:
    app = worker.app
    token = worker.settings.web_token
    wire_regions(worker)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        if not authorised(token, request):
            return web.text("unauthorised\n", status=401)
        body, content_type = await worker.metrics.render()
        return web.bytes(body, content_type=content_type)

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app_id": worker.settings.app_id})

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        verdict = probes.readiness(worker)
        return _probe(web, verdict)

    @app.page("/live")
    async def live_view(web: Any, request: Any) -> Any:
        verdict = probes.liveness(worker)
        return _probe(web, verdict)

    @app.page("/status")
    async def status_view(web: Any, request: Any) -> Any:
        if not authorised(token, request):
            return web.text("unauthorised\n", status=401)
        return web.json(status(worker))

    @app.page("/snapshot")
    async def snapshot_view(web: Any, request: Any) -> Any:
        if not authorised(token, request):
            return web.text("unauthorised\n", status=401)
        return web.bytes(snapshot(worker), content_type="application/json")


def wire_regions(worker: Worker) -> None:
    """Give /metrics the cluster's region view (SPEC §9) and its firing region gaps,
    both as the provider-status book holds them (``Worker.region_view``, and the
    region alerts' published states, ``streams/pipeline/regions.py``)."""
    worker.metrics.region_source = worker.region_view
    worker.metrics.gap_source = worker.regions.firing_states


def _probe(web: Any, verdict: probes.Verdict) -> Any:
    body = {"status": "ok" if verdict.ok else "failing", "reason": verdict.reason}
    return web.json(body, status=200 if verdict.ok else 503)
