"""The Faust application of a worker: its configuration, topics and state table.

Built by ``Worker`` (streams/pipeline/worker.py), which holds what runs on them:

    ggz.declarations.v1 ─┐
                         ├─ ingest agent ─→ engine ─→ state table (changelog)
    <app>-control ───────┘        │            ├─→ ggz.alerts.v1
          ▲                       │            ├─→ ggz.declarations.rejected.v1
          │                       └──────────→ └─→ ggz.provider-status.v1 (on a timer)
    contracts agent ← ggz.contracts.v1                    │
    tick timer (per assigned partition)                   └─→ status reader → peer mean

The declarations and the internal control topic (contracts and ticks, keyed by
provider) are co-partitioned and read by ONE agent, so a provider's state is only
ever touched by one coroutine, in order. One Kafka message is one engine call and
a couple of table writes, whatever the number of lines in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from streams.domain.errors import ClaimwatchError
from streams.domain.policy import Policy
from streams.kafka.recovery import table_manager
from streams.kafka.topics import BIG, control_configs
from streams.kafka.transport import broker_urls, credentials, transport_class
from streams.pipeline.processor import MAX_MESSAGE_BYTES
from streams.pipeline.settings import Settings

# The state table's RocksDB options per partition database (Faust's RocksDBOptions):
# 1 MiB memtables, two at most, and a 1 MiB block cache, where Faust's defaults are
# 64 MiB (up to 3) and 2 GiB.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 1 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 1 << 20,
}
# Messages fetched and waiting for the agent. Faust's default (stream_buffer_maxsize,
# 4,096) is sized for small messages: of 500-line batches (~250 KB each) it let a
# worker that fell behind a fast producer hold over 100 MB of input. 32 (about 8 MB)
# keeps the agent fed between fetches as well as 128 did (bench figure 2), and the
# peaks of a worker that falls behind lower (figure 4).
STREAM_BUFFER_MESSAGES = 32


@dataclass(frozen=True)
class Channels:
    """The topics and the table of a worker's app."""

    ingest: Any  # declarations + control, read by the ingest agent
    control: Any
    contracts: Any
    departments: Any  # the register, checked by the departments agent
    alerts: Any
    rejected: Any
    status: Any
    state: Any  # the state table (a MutableMapping[str, bytes])


def build_app(settings: Settings) -> faust.App:
    """The Faust app, configured for the worker (no agent yet)."""
    if not settings.broker:
        raise ClaimwatchError(
            "no broker configured: set CLAIMWATCH_BROKER (host:port), or run `claimwatch demo`"
        )
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.broker),
        broker_credentials=credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        # A message writes a journal segment and a header (tens of KB) to the state
        # changelog. aiokafka sends one batch per partition at a time, and a record
        # that finds its partition's batch full waits for it to be sent; Faust's
        # producer buffer sends table writes one after another, and past 100 waiting
        # its conductor stops handing fetched messages to the agent ("producer buffer
        # full" in the log). 16 KiB batches (one record each) held the agent up that
        # way; 512 KiB ones take a message's records, and stay under the 1 MB
        # max.message.bytes of a topic created with Kafka's defaults. The embedded
        # tansu broker gets the same batches: tansu answers ListOffsets with the base
        # offset of a partition's last batch + 1, not its end, so nothing the worker
        # reads to a topic's end trusts ListOffsets (streams/kafka/offsets.py;
        # docs/faust-on-tansu.md, "tansu behaviour that matters").
        producer_max_batch_size=settings.producer_batch_bytes,
        # Faust's table recovery takes the changelog highwater from ListOffsets; this
        # one reads each changelog to the end a fetch reports, so it is exact on tansu
        # with batched writes (streams/kafka/recovery.py).
        TableManager=table_manager(settings),
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_enabled=True,
        # Faust's own /table and /router views would serve table values (journal
        # segments hold ADHD client references) without our bearer token; the
        # debug views (/graph, statistics at /) stay off too. Ours are GET-only.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        # A rebalance waits until the message being processed is finished (results
        # sent, state written) before the partitions are given up and recovered.
        stream_wait_empty=True,
        # A joining worker waits up to the rebalance timeout for the group's other
        # members; 10 s keeps restarts and scale-out quick without flapping.
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.rebalance_timeout,
        broker_heartbeat_interval=min(3.0, settings.rebalance_timeout / 4),
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        logging_config=None,
    )
    transport = transport_class(settings.fetch_wait_ms, settings.producer_idempotence)
    app.transport = transport(app.conf.broker_consumer, app)
    return app


def build_channels(app: faust.App, settings: Settings) -> Channels:
    """The worker's topics and its state table, declared on ``app``."""
    _raw(app, settings.topic_declarations, partitions=settings.partitions)
    control = _raw(
        app,
        settings.topic_control,
        partitions=settings.partitions,
        internal=True,
        config=control_configs(),
    )
    # The stream buffer is set on this channel only: the same setting also sizes the
    # queue of changelog records at recovery, which stays as Faust tests it. (App.topic
    # takes ``maxsize`` but does not pass it on; the queue is made, and the channel
    # cloned, with the attribute.)
    ingest = _raw(app, settings.topic_declarations, settings.topic_control)
    ingest.maxsize = STREAM_BUFFER_MESSAGES
    # Faust's defaults per partition database (64 MiB memtables, up to 3, and a
    # 2 GiB block cache) let RSS grow with the changelog written; the table is
    # written far more than read (reads: recovery), so little of either helps.
    options: dict[str, Any] = {}
    if settings.store.startswith("rocksdb:"):
        options["options"] = dict(ROCKSDB_OPTIONS)
    state = app.Table(
        "state",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(
            key_type=str, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
        # Created by Faust when missing: with the limit its records need (topics.py).
        extra_topic_configs=dict(BIG),
        **options,
    )
    return Channels(
        ingest=ingest,
        control=control,
        contracts=_raw(app, settings.topic_contracts),
        departments=_raw(app, settings.topic_departments),
        alerts=_raw(app, settings.topic_alerts),
        rejected=_raw(app, settings.topic_rejected),
        status=_raw(app, settings.topic_provider_status),
        state=state,
    )


def _raw(app: faust.App, *topics: str, **options: Any) -> Any:
    """A topic of raw bytes: keys and values are decoded by the worker, not Faust."""
    return app.topic(*topics, key_serializer="raw", value_serializer="raw", **options)


def create_app(settings: Settings, policy: Policy) -> faust.App:
    """The app of a new ``Worker`` (streams/pipeline/worker.py); to reach the worker's
    parts, build ``Worker(settings, policy)`` instead."""
    from streams.pipeline.worker import Worker  # the worker builds on this module

    return Worker(settings, policy).app
