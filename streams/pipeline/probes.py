"""What the worker's Kubernetes probes ask: ``/ready`` and ``/live``.

- Readiness: the worker holds a partition assignment and has rebuilt the state of
  it (Faust's table recovery and ``Worker.recovered``), and no rebalance is under
  way. A rolling update waits for it, so the next pod is not stopped while this
  one still restores state. An empty assignment (more workers than partitions)
  is ready too: the worker is in the group, and would otherwise hold the update.
- Liveness: the ingest agent is not stuck. It fails when messages are waiting on
  the topics the agent reads (the consumer lag the worker measures) and the agent
  has handled none for ``STALL_SECONDS``, counted from its last message or the
  last completed recovery, whichever is later. A recovery or rebalance is never a
  stall (readiness reports it); an idle worker with nothing waiting is alive. An
  event loop that is blocked answers no probe at all, which fails liveness too.

``/health`` stays what it was: the process answers (the startup probe).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.pipeline.worker import Worker

# How long messages may wait without the agent handling any before the worker is
# reported dead. Far above the longest single message (a large provider's
# checkpoint: seconds), so a slow message is never taken for a stuck agent.
STALL_SECONDS = 120.0


@dataclass
class Heartbeat:
    """When the ingest agent last made progress: a message handled, or a recovery
    completed (after which the agent starts on what waited meanwhile)."""

    clock: Callable[[], float] = time.monotonic
    at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.at = self.clock()

    def beat(self) -> None:
        self.at = self.clock()

    def idle(self) -> float:
        return self.clock() - self.at


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str


def readiness(worker: Worker) -> Verdict:
    app = worker.app
    if not worker.state_ready:
        if not worker.assigned_once:
            return Verdict(False, "waiting for a partition assignment")
        return Verdict(False, "rebuilding the state of the assigned partitions")
    if app.rebalancing:
        return Verdict(False, "rebalancing")
    partitions = worker.active_partitions()
    return Verdict(True, f"state recovered; {len(partitions)} declarations partitions assigned")


def waiting(consumer_lag: Mapping[tuple[str, int], int], topics: set[str]) -> int:
    """Messages waiting on ``topics`` in this worker's assigned partitions."""
    return sum(n for (topic, _), n in consumer_lag.items() if topic in topics and n > 0)


def liveness(worker: Worker) -> Verdict:
    ready = readiness(worker)
    if not ready.ok:
        return Verdict(True, f"not ready ({ready.reason}): not a stall")
    s = worker.settings
    pending = waiting(worker.metrics.consumer_lag, {s.topic_declarations, s.topic_control})
    idle = worker.heartbeat.idle()
    if pending and idle > STALL_SECONDS:
        return Verdict(
            False,
            f"ingest agent stuck: {pending} messages waiting, none handled for {idle:.0f} s",
        )
    return Verdict(True, f"{pending} messages waiting; last progress {idle:.0f} s ago")
