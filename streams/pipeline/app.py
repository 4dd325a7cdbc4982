"""The Faust application: topics, the state table, agents, the tick timer, web views.

Thin plumbing around ``Processor`` and the domain engine:

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

import atexit
import hmac
import logging
import time
from typing import Any

import faust
import orjson
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from streams.domain.acceptance import DeadLetter
from streams.domain.bsn import mask_text
from streams.domain.engine import Engine
from streams.domain.model import PROCESSING_ERROR
from streams.domain.policy import Policy
from streams.domain.snapshot import build_snapshot
from streams.kafka.delivery import DeliveryGuard
from streams.kafka.limits import max_message_bytes
from streams.kafka.producer import DrainingProducer, use_idempotent_producer
from streams.kafka.recovery import table_manager
from streams.kafka.sensor import ScrapedMonitor
from streams.kafka.stop import stop_unprocessed
from streams.kafka.topics import BIG, control_configs, state_changelog
from streams.pipeline.metrics import WorkerMetrics
from streams.pipeline.processor import (
    MAX_MESSAGE_BYTES,
    Chunk,
    Output,
    Processor,
    contract_control,
    tick_control,
    tick_of,
)
from streams.pipeline.settings import Settings
from streams.pipeline.status import ProviderStatus
from streams.store.offheap import OffHeapTables

log = logging.getLogger("claimwatch.worker")

# A dead letter carries the rejected bytes; beyond this many (a whole oversize
# message) it carries the first this many, with the full size in a header, so that
# it fits any Kafka's default max.message.bytes (1 MB).
DEAD_LETTER_MAX_BYTES = 1_000_000
# The state table's RocksDB options per partition database (Faust's RocksDBOptions):
# 1 MiB memtables, two at most, and a 1 MiB block cache, where Faust's defaults are
# 64 MiB (up to 3) and 2 GiB.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 1 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 1 << 20,
}
STREAM_BUFFER_MESSAGES = 128
OFFHEAP_DIR = "line-index"  # under the data directory: the off-heap line index


def create_app(settings: Settings, policy: Policy) -> faust.App:
    if not settings.broker:
        from streams.domain.errors import ClaimwatchError

        raise ClaimwatchError(
            "no broker configured: set CLAIMWATCH_BROKER (host:port), or run `claimwatch demo`"
        )
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.broker.split(",") if b.strip())
    app = faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=_credentials(settings),
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
    app.transport = _transport(settings.fetch_wait_ms)(app.conf.broker_consumer, app)
    if settings.producer_idempotence:
        use_idempotent_producer(app)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    app.topic(settings.topic_declarations, partitions=settings.partitions, **raw)
    control = app.topic(
        settings.topic_control,
        partitions=settings.partitions,
        internal=True,
        config=control_configs(),
        **raw,
    )
    # Messages fetched and waiting for the agent. Faust's default (stream_buffer_maxsize,
    # 4,096) is sized for small messages: of 500-line batches (~250 KB each) it let a
    # worker that fell behind a fast producer hold over 100 MB of input
    # (bench/RESULTS.md). Set on this channel only: the same setting also sizes the
    # queue of changelog records at recovery, which stays as Faust tests it. (App.topic
    # takes ``maxsize`` but does not pass it on; the queue is made, and the channel
    # cloned, with the attribute.)
    ingest_channel = app.topic(settings.topic_declarations, settings.topic_control, **raw)
    ingest_channel.maxsize = STREAM_BUFFER_MESSAGES
    contracts = app.topic(settings.topic_contracts, **raw)
    alerts = app.topic(settings.topic_alerts, **raw)
    rejected = app.topic(settings.topic_rejected, **raw)

    rocksdb = settings.store.startswith("rocksdb:")
    state = app.Table(
        "state",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(
            key_type=str, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
        # Created by Faust when missing: with the limit its records need (topics.py).
        extra_topic_configs=dict(BIG),
        # Faust's defaults per partition database (64 MiB memtables, up to 3, and a
        # 2 GiB block cache) let RSS grow with the changelog written; the table is
        # written far more than read (reads: recovery), so little of either helps.
        **({"options": dict(ROCKSDB_OPTIONS)} if rocksdb else {}),
    )
    status_topic = app.topic(settings.topic_provider_status, **raw)

    engine = Engine(policy, replay=settings.replay, journal=True)
    if settings.line_index == "disk":
        # The line index off the heap, so RSS does not grow with it: a local cache
        # rebuilt at recovery like the C tables (streams/store/offheap.py).
        tables = OffHeapTables(settings.data_dir / OFFHEAP_DIR)
        atexit.register(tables.close)
        engine.tables = tables
    processor = Processor(engine, state)
    processor.checkpoint_chunk = settings.checkpoint_chunk
    processor.checkpoint_segments = settings.checkpoint_segments
    metrics = WorkerMetrics(engine, settings)
    # Faust's own sensor (messages, events, table operations, sends, rebalances, commit
    # latency) under the faust_ prefix, in the registry our /metrics page serves; its
    # per-message figures are made when the page is scraped (streams/kafka/sensor.py).
    app.monitor = ScrapedMonitor(metrics.registry, "faust")
    progress: dict[str, int] = {}  # "<topic>:<partition>" → last processed offset
    app.claimwatch = {
        "engine": engine,
        "processor": processor,
        "metrics": metrics,
        "progress": progress,
    }  # type: ignore[attr-defined]

    async def send_status(key: bytes, value: bytes) -> Any:
        return await status_topic.send(key=key, value=value)

    # The peer mean from every provider's summary on the status topic (SPEC §10),
    # read by this worker's own consumer: the same for every worker.
    statuses = ProviderStatus(settings, engine, processor, send_status)
    metrics.peer_source = statuses.book.pairs
    processor.peers = statuses.peer_means
    app.claimwatch["statuses"] = statuses  # type: ignore[attr-defined]

    async def publish(out: Output) -> None:
        # Alerts and dead letters are acknowledged before the state that records them
        # is written: a crash in between re-sends (same alert_id + sequence) rather
        # than loses them.
        futures = []
        for event in out.alerts:
            mark = (event["alert_id"], event["sequence"])
            if mark in published:
                continue  # published before a crash whose state write was lost
            published.add(mark)
            futures.append(
                await alerts.send(key=event["provider_agb"].encode(), value=orjson.dumps(event))
            )
        for letter in out.dead_letters:
            headers = dead_letter_headers(letter)
            payload = letter.payload
            if len(payload) > DEAD_LETTER_MAX_BYTES:
                headers["original_bytes"] = str(len(payload)).encode()
                payload = payload[:DEAD_LETTER_MAX_BYTES]
            futures.append(
                await rejected.send(
                    key=letter.key.encode() if letter.key else None,
                    value=payload,
                    headers=headers,
                )
            )
        for fut in futures:
            await fut
        metrics.record(out)

    # Faust can lose messages between its fetcher and the agent around rebalances;
    # the guard makes the agent see every offset of a partition, in order.
    delivery = DeliveryGuard(app, {settings.topic_declarations, settings.topic_control})

    @app.agent(ingest_channel, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        delivery.install()
        async for event in stream.events():
            msg = event.message
            if not await delivery.admit(msg):
                continue
            try:
                await handle(msg)
            except Exception:  # noqa: BLE001 - anything: the state may be ahead of the table
                stop_unprocessed(
                    f"{msg.topic}:{msg.partition} offset {msg.offset} could not be "
                    "processed and written"
                )
            delivery.done(msg)
            progress[f"{msg.topic}:{msg.partition}"] = msg.offset

    async def handle(msg: Any) -> None:
        key = msg.key.decode("utf-8", "replace") if msg.key else None
        if msg.topic == settings.topic_declarations:
            out = processor.on_declarations(msg.partition, msg.offset, key, msg.value or b"")
            metrics.messages += 1
            metrics.last_event = time.time()
        elif _header(msg, "cw-type") == b"declarations":
            out = processor.on_declarations(
                msg.partition,
                msg.offset,
                key,
                msg.value or b"",
                source="c",
                origin=_origin(_header(msg, "cw-origin")),
            )
        else:
            tick = tick_of(msg.value or b"")
            if tick is not None:
                await statuses.before_tick(final=tick)
            out = processor.on_control(msg.partition, msg.value or b"")
        # Re-keyed lines are acknowledged before the ledger that records the message
        # is written: a crash in between re-sends them, and their event ids make the
        # copy a counted duplicate, never a loss.
        sends = [
            await control.send(
                key=provider.encode(),
                value=payload,
                headers={
                    "cw-type": b"declarations",
                    "cw-origin": f"{msg.partition}:{msg.offset}".encode(),
                },
            )
            for provider, payload in out.rekey.items()
        ]
        for sent in sends:
            await sent
        if not out.skipped:
            await publish(out)
            for k, v in out.writes.items():
                if v is None:  # superseded by a checkpoint: a changelog tombstone
                    # not pop(): it reads the value and Faust JSON-decodes it (the
                    # table has no value type), a whole checkpoint chunk parsed to
                    # be dropped: 11 MB at a RocksDB worker's peak (bench/RESULTS.md)
                    if k in state:
                        del state[k]
                elif isinstance(v, Chunk):
                    # A checkpoint goes out one chunk at a time: encoded now, and
                    # delivered before the next is made, so a large provider's
                    # checkpoint is never in memory whole (bench/RESULTS.md, session 9).
                    state[k] = v.encode()
                    if app.producer.buffer.state == "running":  # not in Faust's test context
                        await app.producer.flush()
                else:
                    state[k] = v
        if out.flush:  # a tick or a status flush: the statuses out, acknowledged
            await statuses.publish()

    @app.agent(contracts, name="contracts")
    async def forward_contracts(stream: faust.StreamT) -> None:
        """Re-key contracts by provider onto the control topic (co-partitioned)."""
        async for event in stream.events():
            value = event.message.value or b""
            from streams.domain.contracts import ContractError, parse_contract

            try:
                obj = orjson.loads(value)
                contract = parse_contract(obj)
            except (orjson.JSONDecodeError, ContractError) as exc:
                await rejected.send(
                    key=event.message.key,
                    value=value,
                    headers={"reason": b"contract_schema", "detail": str(exc).encode()[:1000]},
                )
                continue
            await control.send(key=contract.provider.encode(), value=contract_control(obj))

    published: set[tuple[str, int]] = set()

    async def recovered() -> None:
        # Alerts are acknowledged before the state that records them is written; a
        # crash in between would re-send them. The alerts topic itself says which
        # transitions (alert_id, sequence) are out already: read it once per
        # rebalance, so each transition is published exactly once. read_all reads
        # each partition to the end a fetch reports, not to tansu's ListOffsets
        # answer, which stops at the first record of the last batch (streams/kafka/offsets.py).
        from streams.kafka.offsets import read_all

        for _k, value, _h in await read_all(
            settings.broker or "", settings.topic_alerts, 60.0, settings.kafka_client_kwargs()
        ):
            try:
                event = orjson.loads(value)
                published.add((event["alert_id"], event["sequence"]))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
        if processor.max_record_bytes is None:
            limit = await max_message_bytes(
                settings.broker or "", state_changelog(settings), settings.kafka_client_kwargs()
            )
            processor.max_record_bytes = min(limit, MAX_MESSAGE_BYTES)
            log.info(
                "the state changelog takes records up to %d bytes: checkpoint chunks "
                "are sized below that",
                limit,
            )
        active = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == settings.topic_declarations
        }
        try:
            n = processor.recover(
                (k.decode() if isinstance(k, bytes) else k for k in state), active
            )
        except Exception:  # noqa: BLE001 - never run on a state that is not the table's
            stop_unprocessed("the state table could not be rebuilt")
        log.info("state recovered: %d providers rebuilt from the changelog", n)

    state.on_recover(recovered)

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        delivery.reset(assigned)
        if not statuses.reader.running:  # before the first message is processed
            await app.add_runtime_dependency(statuses.reader)

    @app.timer(settings.status_interval)
    async def publish_statuses() -> None:
        try:
            await statuses.publish()
        except Exception as exc:  # noqa: BLE001 - they stay dirty: the next round sends them
            log.warning("provider statuses not published: %s", type(exc).__name__)

    @app.timer(5.0)
    async def watch_delivery() -> None:
        await delivery.watch(app.assignor.assigned_actives())

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        delivery.reset(revoked)
        await statuses.settle()  # no summary of a departing provider sent after this
        gone = {tp.partition for tp in revoked if tp.topic == settings.topic_declarations}
        if gone:
            processor.forget_partitions(gone)

    tick_seconds = (
        settings.tick_seconds if settings.tick_seconds is not None else policy.tick_seconds
    )
    if not settings.replay:
        # Replays are judged by event time: only the replay's final tick evaluates them.
        @app.timer(tick_seconds)
        async def tick() -> None:
            for tp in sorted(app.assignor.assigned_actives()):
                if tp.topic == settings.topic_declarations:
                    await control.send(value=tick_control(), partition=tp.partition)

    @app.timer(5.0)
    async def consumer_lag() -> None:
        await metrics.update_lag(app)

    def authorised(request: Any) -> bool:
        if not settings.web_token:
            return True
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        return hmac.compare_digest(given, f"Bearer {settings.web_token}".encode())

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        if not authorised(request):
            return web.text("unauthorised\n", status=401)
        body, content_type = metrics.exposition()
        return web.bytes(body, content_type=content_type)

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app_id": settings.app_id})

    @app.page("/status")
    async def status_view(web: Any, request: Any) -> Any:
        if not authorised(request):
            return web.text("unauthorised\n", status=401)
        return web.json(
            {
                "progress": progress,
                "messages": metrics.messages,
                "lines": metrics.lines,
                "providers": len(engine.providers),
                "contracts": len(engine.contracts),
                "contract_versions": sum(c.version for c in engine.contracts),
                "provider_statuses": len(statuses.book),  # as this worker's reader holds them
                "assigned": sorted(
                    tp.partition
                    for tp in app.assignor.assigned_actives()
                    if tp.topic == settings.topic_declarations
                ),
            }
        )

    @app.page("/snapshot")
    async def snapshot_view(web: Any, request: Any) -> Any:
        if not authorised(request):
            return web.text("unauthorised\n", status=401)
        counts = [c for c, _ in processor.ledgers.values()]
        counts.append(engine.counts())
        snap = build_snapshot(engine.providers.values(), engine.contracts, counts, policy)
        firing = sorted(aid for st in engine.providers.values() for aid, _ in st.alerts.firing())
        snap["firing"] = firing
        return web.bytes(orjson.dumps(snap), content_type="application/json")

    return app


def _transport(fetch_wait_ms: int) -> type[aiokafka_driver.Transport]:
    """Faust's aiokafka transport, its consumer fetching with ``fetch_wait_ms``.

    Faust's driver fixes the consumer's fetch_max_wait_ms at 1500 and offers no
    setting. aiokafka keeps one fetch in flight per broker, for the partitions that
    have no fetched records waiting. When those are only idle ones (control and
    contracts topics) the broker holds that fetch for the whole
    wait, and the declarations partitions, drained by the agent meanwhile, cannot be
    fetched again until it returns: with a full input topic the agent sat idle up to
    1.5 s at a time, a third of its wall time (docs/faust-on-tansu.md, "Where a
    worker waits"). Tansu also answers a waiting fetch late, more so the longer the
    wait (bench/RESULTS.md), so a short wait shortens the path to an alert as well.
    """

    class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # Read once, when consumer.start() creates its fetcher.
            consumer._fetch_max_wait_ms = fetch_wait_ms  # noqa: SLF001
            return consumer

    class WaitConsumer(aiokafka_driver.Consumer):
        def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(aiokafka_driver.Transport):
        Consumer = WaitConsumer
        Producer = DrainingProducer  # flushed for real before a commit (producer.py)

    return Transport


def dead_letter_headers(letter: DeadLetter) -> dict[str, bytes]:
    """Headers of a dead letter. The detail text may quote an identifier of the
    input (an orphan credit's line_id, a message key); anything BSN-like is masked,
    as in payloads. A ``processing_error`` names the exception's class (SPEC §12)."""
    headers = {
        "reason": letter.reason.encode(),
        "detail": mask_text(letter.detail).encode()[:1000],
    }
    if letter.reason == PROCESSING_ERROR:
        headers["exception"] = letter.detail.rsplit(" ", 1)[-1].encode()[:200]
    return headers


def _origin(header: bytes | None) -> tuple[int, int] | None:
    """(partition, offset) of the unkeyed message a re-keyed one came from."""
    if header is None:
        return None
    partition, _, offset = header.partition(b":")
    if not (partition.isdigit() and offset.isdigit()):
        return None
    return int(partition), int(offset)


def _header(msg: Any, name: str) -> bytes | None:
    headers = msg.headers or ()
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:
        if k == name:
            return v  # type: ignore[no-any-return]
    return None


def _credentials(settings: Settings) -> Any:
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    kw = settings.kafka_client_kwargs()
    if protocol == "SSL":
        return faust.SSLCredentials(kw["ssl_context"])
    mechanism = settings.sasl_mechanism
    if mechanism == "PLAIN":
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            ssl_context=kw.get("ssl_context"),
        )
    from faust.auth import SASLCredentials

    return SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password,
        ssl_context=kw.get("ssl_context"),
        mechanism=mechanism,
    )
