"""The worker's timers: ticks, provider-status publication, the delivery watch and
consumer lag."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streams.pipeline.processor import tick_control

if TYPE_CHECKING:
    from streams.pipeline.worker import Worker

log = logging.getLogger("claimwatch.worker")

DELIVERY_WATCH_S = 5.0
CONSUMER_LAG_S = 5.0


def install(worker: Worker) -> None:
    app = worker.app
    settings = worker.settings

    @app.timer(settings.status_interval)
    async def publish_statuses() -> None:
        try:
            await worker.statuses.publish()
        except Exception as exc:  # noqa: BLE001 - they stay dirty: the next round sends them
            log.warning("provider statuses not published: %s", type(exc).__name__)

    @app.timer(DELIVERY_WATCH_S)
    async def watch_delivery() -> None:
        await worker.delivery.watch(app.assignor.assigned_actives())

    @app.timer(CONSUMER_LAG_S)
    async def consumer_lag() -> None:
        await worker.metrics.update_lag(app)

    if settings.replay:
        return  # replays are judged by event time: only the replay's final tick evaluates them
    # The wall-clock tick evaluates only the rules that read other providers' state (the
    # processor passes only_peers for a tick that is not final); the others follow
    # event time alone (SPEC §8.1: month boundaries and the end of input).
    tick_seconds = settings.tick_seconds
    if tick_seconds is None:
        tick_seconds = worker.policy.tick_seconds
    control = worker.channels.control

    @app.timer(tick_seconds)
    async def tick() -> None:
        for partition in worker.active_partitions():
            await control.send(value=tick_control(), partition=partition)
