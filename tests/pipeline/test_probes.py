"""The worker's probes (streams/pipeline/probes.py) and their views ``/ready`` and
``/live``: readiness follows the assignment and the state's recovery, liveness fails
only when messages wait and the ingest agent has handled none for too long.

The worker is built without a broker; what the rebalance callbacks and the lag timer
set is set here as they set it, and the views are served by aiohttp's test server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.domain.policy import load_policy
from streams.pipeline import probes
from streams.pipeline.probes import STALL_SECONDS, Heartbeat
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker

SETTINGS = Settings(broker="127.0.0.1:9", app_id="probes", web_token="t0ken")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(tmp_path, clock: Clock) -> Worker:
    w = Worker(SETTINGS.with_(data_dir=tmp_path), load_policy())
    w.heartbeat = Heartbeat(clock)
    return w


@pytest.fixture
async def web(worker: Worker) -> AsyncIterator[TestClient]:
    worker.app.web.init_server()
    async with TestClient(TestServer(worker.app.web.web_app)) as client:
        yield client


async def assigned_and_recovered(worker: Worker) -> None:
    """What the rebalance callbacks do, without a broker: the assignment arrives,
    then ``Worker.recovered`` ends (its last steps)."""
    await worker.on_assigned(worker.app, set())
    worker.state_ready = True
    worker.heartbeat.beat()


async def test_not_ready_before_the_assignment_nor_while_its_state_is_rebuilt(
    worker: Worker, web: TestClient
) -> None:
    resp = await web.get("/ready")  # no token needed: a probe
    assert resp.status == 503
    assert (await resp.json())["reason"] == "waiting for a partition assignment"
    worker.assigned_once = True  # on_assigned ran; recovered() has not finished
    resp = await web.get("/ready")
    assert resp.status == 503 and "rebuilding the state" in (await resp.json())["reason"]
    await assigned_and_recovered(worker)
    resp = await web.get("/ready")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "ok"


async def test_a_rebalance_takes_readiness_away_until_the_state_is_rebuilt(
    worker: Worker,
) -> None:
    await assigned_and_recovered(worker)
    assert probes.readiness(worker).ok
    worker.app.rebalancing = True
    assert not probes.readiness(worker).ok
    worker.app.rebalancing = False
    await worker.on_revoked(worker.app, set())
    assert not probes.readiness(worker).ok
    await worker.on_assigned(worker.app, set())
    assert not probes.readiness(worker).ok
    worker.state_ready = True
    assert probes.readiness(worker).ok


def lag(worker: Worker, **per_topic: int) -> None:
    """The consumer lag as the lag timer leaves it (topic → messages, partition 0)."""
    names = {
        "declarations": worker.settings.topic_declarations,
        "control": worker.settings.topic_control,
        "contracts": worker.settings.topic_contracts,
    }
    worker.metrics.consumer_lag = {(names[t], 0): n for t, n in per_topic.items()}


async def test_live_fails_when_messages_wait_and_the_agent_handled_none_for_too_long(
    worker: Worker, web: TestClient, clock: Clock
) -> None:
    await assigned_and_recovered(worker)
    lag(worker, declarations=40)
    clock.now += STALL_SECONDS - 1
    assert (await web.get("/live")).status == 200
    clock.now += 2
    resp = await web.get("/live")
    assert resp.status == 503
    assert (await resp.json())["reason"].startswith("ingest agent stuck: 40 messages waiting")
    worker.heartbeat.beat()  # the agent handled a message
    assert (await web.get("/live")).status == 200


async def test_live_holds_when_idle_with_nothing_waiting_or_not_ready(
    worker: Worker, clock: Clock
) -> None:
    clock.now += 10 * STALL_SECONDS
    lag(worker, declarations=40)
    assert probes.liveness(worker).ok  # never assigned: not a stall
    await assigned_and_recovered(worker)  # a long recovery ends: progress counts from here
    assert probes.liveness(worker).ok
    clock.now += 10 * STALL_SECONDS
    lag(worker, declarations=0, control=0)
    assert probes.liveness(worker).ok  # quiet topics
    lag(worker, contracts=5)  # not read by the ingest agent
    assert probes.liveness(worker).ok
    lag(worker, control=3)
    assert not probes.liveness(worker).ok
    worker.state_ready = False  # a rebalance began: recovery is not a stall
    assert probes.liveness(worker).ok


def test_waiting_counts_only_the_given_topics() -> None:
    consumer_lag: dict[tuple[str, int], Any] = {("a", 0): 3, ("a", 1): 4, ("b", 0): 9}
    assert probes.waiting(consumer_lag, {"a"}) == 7
    assert probes.waiting(consumer_lag, {"c"}) == 0
