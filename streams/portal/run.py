"""Running the portal: three followers into one model, and the web server over it.

``PortalService`` is what ``claimwatch portal`` runs until a signal, and what
``claimwatch demo`` starts inside its own event loop next to the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web

from streams.domain.errors import ClaimwatchError
from streams.domain.policy import Policy
from streams.local.broker import check_reachable
from streams.portal.follow import Follower
from streams.portal.model import ALERTS, DEPARTMENTS, STATUS, Model
from streams.portal.settings import PortalSettings
from streams.portal.web import create_app

log = logging.getLogger("claimwatch.portal")


class PortalService:
    def __init__(self, settings: PortalSettings, policy: Policy, model: Model | None = None):
        self.settings = settings
        self.policy = policy
        self.model = model if model is not None else Model()
        k = settings.kafka
        self.followers = [
            Follower(STATUS, k.topic_provider_status, self.model.apply_status, k),
            Follower(ALERTS, k.topic_alerts, self.model.apply_alert, k),
            Follower(DEPARTMENTS, settings.topic_departments, self.model.apply_department, k),
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    def feeds(self) -> dict[str, dict[str, Any]]:
        return {f.name: f.state() for f in self.followers}

    @property
    def ready(self) -> bool:
        return all(f.ready.is_set() for f in self.followers)

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.settings.bind in ("0.0.0.0", "::") else self.settings.bind
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(f.run(), name=f"portal-{f.name}") for f in self.followers
        ]
        app = create_app(self.model, self.policy, self.feeds, self.settings.token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.bind, self.settings.port)
        await site.start()
        server = getattr(site, "_server", None)  # the port bound when 0 was asked for
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(f.ready.wait() for f in self.followers)), timeout
            )
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for f in self.followers:
            await f.stop()
        if self._runner is not None:
            await self._runner.cleanup()


async def serve(settings: PortalSettings, policy: Policy) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    k = settings.kafka
    await check_reachable(k.broker or "", **k.kafka_client_kwargs())
    service = PortalService(settings, policy)
    await service.start()
    log.info("portal: serving on %s", service.address)
    print(f"claimwatch portal: {service.address}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()
    return 0


def run_portal(policy: Policy) -> int:
    settings = PortalSettings.from_env()
    if not settings.kafka.broker:
        raise ClaimwatchError("CLAIMWATCH_BROKER is not set: which cluster?")
    logging.basicConfig(
        level=settings.kafka.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return asyncio.run(serve(settings, policy))
