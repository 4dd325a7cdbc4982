"""The worker's timers (streams/pipeline/timers.py): which run, how often, and which
``Worker`` methods each calls.

Faust's ``App.timer`` is replaced by one that records the function it is given, so
each timer's body can be run once, on a real ``Worker`` (a ``dict`` as its table, a
recording outbox: tests/pipeline/feed.py); Faust's own loop around it is not ours.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import faust.topics
import pytest

from streams.domain.policy import load_policy
from streams.pipeline.processor import tick_control
from streams.pipeline.settings import Settings
from streams.pipeline.timers import CONSUMER_LAG_S, DELIVERY_WATCH_S
from streams.pipeline.worker import Worker
from tests.pipeline.feed import Recorder

SETTINGS = Settings(broker="127.0.0.1:9", app_id="timers-test", partitions=4, status_interval=2.5)

Timers = dict[str, tuple[float, Any]]


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``build(settings)`` → the worker and its timers (name → (interval, body))."""
    recorded: Timers = {}

    def timer(self: faust.App, interval: float, **_: Any) -> Any:
        def record(fun: Any) -> Any:
            recorded[fun.__name__] = (interval, fun)
            return fun

        return record

    monkeypatch.setattr(faust.App, "timer", timer)

    def make(settings: Settings = SETTINGS) -> tuple[Worker, Timers]:
        recorded.clear()
        worker = Worker(settings, load_policy(), state={}, outbox=Recorder())
        return worker, dict(recorded)

    return make


def test_the_timers_and_their_intervals(build) -> None:
    _, timers = build()
    intervals = {name: interval for name, (interval, _) in timers.items()}
    assert intervals == {
        "publish_statuses": 2.5,  # CLAIMWATCH_STATUS_INTERVAL
        "watch_delivery": DELIVERY_WATCH_S,
        "consumer_lag": CONSUMER_LAG_S,
        "tick": load_policy().tick_seconds,  # the policy's unless set
    }
    _, timers = build(SETTINGS.with_(tick_seconds=0.5))
    assert timers["tick"][0] == 0.5


def test_a_replay_has_no_tick_timer(build) -> None:
    # a replay is judged by event time: only its final tick (from the producer) evaluates
    _, timers = build(SETTINGS.with_(replay=True))
    assert set(timers) == {"publish_statuses", "watch_delivery", "consumer_lag"}


async def test_the_tick_timer_sends_a_tick_to_each_assigned_partition(build, monkeypatch) -> None:
    sent: list[tuple[str, Any, int]] = []

    async def send(self: Any, *, value: Any = None, partition: Any = None, **_: Any) -> None:
        sent.append((self.get_topic_name(), value, partition))

    monkeypatch.setattr(faust.topics.Topic, "send", send)
    worker, timers = build()
    monkeypatch.setattr(worker, "active_partitions", lambda: [0, 3])
    await timers["tick"][1]()
    control = SETTINGS.topic_control
    assert sent == [(control, tick_control(), 0), (control, tick_control(), 3)]


async def test_the_status_timer_publishes_and_a_failure_waits_for_the_next_round(
    build, monkeypatch, caplog
) -> None:
    worker, timers = build()
    calls: list[str] = []

    async def publish() -> None:
        calls.append("publish")

    monkeypatch.setattr(worker.statuses, "publish", publish)
    await timers["publish_statuses"][1]()
    assert calls == ["publish"]

    async def refused() -> None:
        raise ConnectionError("broker at 10.0.0.1 gone")

    monkeypatch.setattr(worker.statuses, "publish", refused)
    with caplog.at_level(logging.WARNING, logger="claimwatch.worker"):
        await timers["publish_statuses"][1]()  # does not raise: the timer goes on
    assert [r.getMessage() for r in caplog.records] == [
        "provider statuses not published: ConnectionError"
    ]


async def test_the_delivery_watch_and_the_lag_timers_call_the_worker(build, monkeypatch) -> None:
    worker, timers = build()
    calls: list[tuple[str, Any]] = []
    assigned = {faust.types.TP(SETTINGS.topic_declarations, 1)}

    async def watch(tps: Any) -> None:
        calls.append(("watch", tps))

    async def update_lag(app: Any) -> None:
        calls.append(("lag", app))

    monkeypatch.setattr(worker.app.assignor, "assigned_actives", lambda: assigned)
    monkeypatch.setattr(worker.delivery, "watch", watch)
    monkeypatch.setattr(worker.metrics, "update_lag", update_lag)
    await timers["watch_delivery"][1]()
    await timers["consumer_lag"][1]()
    assert calls == [("watch", assigned), ("lag", worker.app)]
