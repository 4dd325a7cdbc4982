"""``python -m bench.faust_floor``: what Faust alone reads a second, decoding and nothing else.

The streaming stage puts one worker next to a raw aiokafka loop that consumes and
decodes the declarations topic. This is the third figure between them: a Faust app
configured as the worker's (the same consumer transport and fetch wait, fetch size,
stream buffer, commit settings), whose one agent decodes each message with orjson
and counts its lines, exactly the raw loop's work. No tables, no sends, no
claimwatch code on the path. Whatever this reads a second is the most any Faust
worker could, so it shows how much of the gap to the raw loop is Faust's and how
much is claimwatch's.

Timing is taken inside the process: from the arrival of the first message to the
processing of the last offset the bench asks for (``FLOOR_TARGETS``, JSON
``{"<partition>": <last offset>}``). That leaves out the first fetch, so it errs in
Faust's favour. The result (lines, messages, seconds, CPU seconds) is written as
JSON to ``FLOOR_OUT`` and the process exits.

Run by ``bench.streaming``; the broker and topic come from ``CLAIMWATCH_BROKER`` and
``CLAIMWATCH_TOPIC_DECLARATIONS``, the consumer group from ``FLOOR_APP_ID``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import faust
import orjson

from streams.kafka.transport import transport_class
from streams.pipeline.app import STREAM_BUFFER_MESSAGES
from streams.pipeline.processor import MAX_MESSAGE_BYTES
from streams.pipeline.run import tune_malloc
from streams.pipeline.settings import Settings


def create_floor_app(settings: Settings, app_id: str, targets: dict[int, int], out: Path) -> Any:
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.broker.split(",") if b.strip())
    app = faust.App(
        app_id,
        broker=brokers,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        web_enabled=False,
        stream_wait_empty=True,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        logging_config=None,
    )
    app.transport = transport_class(settings.fetch_wait_ms)(app.conf.broker_consumer, app)
    channel = app.topic(settings.topic_declarations, key_serializer="raw", value_serializer="raw")
    channel.maxsize = STREAM_BUFFER_MESSAGES
    remaining = {p: o for p, o in targets.items() if o >= 0}
    loads, bad = orjson.loads, orjson.JSONDecodeError

    @app.agent(channel, name="floor")
    async def floor(stream: faust.StreamT) -> None:
        lines = messages = 0
        started = cpu0 = 0.0
        async for event in stream.events():
            msg = event.message
            if not messages:
                started, cpu0 = time.perf_counter(), time.process_time()
            messages += 1
            try:
                obj = loads(msg.value)
            except bad:
                lines += 1
            else:
                inner = obj.get("lines") if isinstance(obj, dict) else None
                lines += len(inner) if isinstance(inner, list) else 1
            if remaining.get(msg.partition, -1) <= msg.offset:
                remaining.pop(msg.partition, None)
                if not remaining:
                    result = {
                        "lines": lines,
                        "messages": messages,
                        "seconds": time.perf_counter() - started,
                        "cpu_s": time.process_time() - cpu0,
                    }
                    out.write_bytes(orjson.dumps(result))
                    os._exit(0)  # the figure is taken; no clean shutdown to wait for

    return app


def main() -> int:
    settings = Settings.from_env()
    if settings.malloc == "compact":
        tune_malloc()  # as the worker does
    targets = {int(p): int(o) for p, o in orjson.loads(os.environ["FLOOR_TARGETS"]).items()}
    app = create_floor_app(
        settings, os.environ["FLOOR_APP_ID"], targets, Path(os.environ["FLOOR_OUT"])
    )
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 1  # only reached if the worker stopped before the last offset


if __name__ == "__main__":
    sys.exit(main())
