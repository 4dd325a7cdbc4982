"""The worker's two agents.

``ingest`` reads the declarations and the control topic (co-partitioned, one agent:
a provider's state is touched by one coroutine, in order) and hands every message to
the commit protocol (streams/kafka/commit.py), which applies it with
``Worker.handle``. ``contracts`` re-keys contracts by provider onto the control topic.
``departments`` dead-letters register records that are no entry (every worker reads
the register whole on its own: streams/pipeline/register.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

if TYPE_CHECKING:
    from streams.pipeline.worker import Worker


def install(worker: Worker) -> None:
    app = worker.app
    commit = worker.commit
    progress = worker.progress
    heartbeat = worker.heartbeat

    @app.agent(worker.channels.ingest, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        commit.install()
        async for event in stream.events():
            msg = event.message
            if await commit.process(msg, worker.handle):
                progress[f"{msg.topic}:{msg.partition}"] = msg.offset
            heartbeat.beat()  # the liveness probe (streams/pipeline/probes.py)

    @app.agent(worker.channels.contracts, name="contracts")
    async def contracts(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await worker.forward_contract(event.message.key, event.message.value or b"")

    @app.agent(worker.channels.departments, name="departments")
    async def departments(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await worker.check_department(event.message.key, event.message.value)
