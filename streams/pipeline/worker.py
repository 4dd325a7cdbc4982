"""A worker: what runs on the Faust app, as one object instead of closures.

``Worker(settings, policy)`` builds the app (streams/pipeline/app.py) and holds the
engine, the processor, the metrics, the provider statuses, the delivery guard and the
commit protocol (streams/kafka/commit.py) as attributes; the agents, timers and web
views (agents.py, timers.py, views.py) call its methods. ``Worker.handle`` applies one
message: a test calls it with a message-like object, a ``dict`` as the table and an
outbox that records what is sent, and gets the production code path.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import faust
import orjson
from faust.types import TP

from streams.domain.acceptance import DeadLetter
from streams.domain.bsn import mask_text
from streams.domain.contracts import ContractError, parse_contract
from streams.domain.engine import Engine
from streams.domain.model import PROCESSING_ERROR
from streams.domain.policy import Policy
from streams.kafka.commit import Commit, Published, Unacknowledged
from streams.kafka.delivery import DeliveryGuard
from streams.kafka.limits import max_message_bytes
from streams.kafka.sensor import ScrapedMonitor
from streams.kafka.stop import stop_unprocessed
from streams.kafka.topics import state_changelog
from streams.pipeline import agents, timers, views
from streams.pipeline.app import Channels, build_app, build_channels
from streams.pipeline.metrics import WorkerMetrics
from streams.pipeline.probes import Heartbeat
from streams.pipeline.processor import (
    MAX_MESSAGE_BYTES,
    Chunk,
    Output,
    Processor,
    contract_control,
    tick_of,
)
from streams.pipeline.regions import RegionJudge
from streams.pipeline.register import Register
from streams.pipeline.register import check as check_register
from streams.pipeline.settings import Settings
from streams.pipeline.status import ProviderStatus
from streams.store.layout import outbox_key
from streams.store.offheap import OffHeapTables

if TYPE_CHECKING:
    from streams.domain.state import Tables

log = logging.getLogger("claimwatch.worker")

# A dead letter carries the rejected bytes; beyond this many (a whole oversize
# message) it carries the first this many, with the full size in a header, so that
# it fits any Kafka's default max.message.bytes (1 MB).
DEAD_LETTER_MAX_BYTES = 1_000_000
OFFHEAP_DIR = "line-index"  # under the data directory: the off-heap line index


class Outbox(Protocol):
    """Where a worker's results go: ``send`` returns once the record is handed over,
    with an awaitable that completes when the broker acknowledged it."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: dict[str, bytes] | None = None,
    ) -> Any: ...

    async def drain(self) -> None:
        """Until every record handed over so far is with the broker."""


class TopicOutbox:
    """The Faust app's topics as an ``Outbox``."""

    def __init__(self, app: faust.App, channels: Channels) -> None:
        self.app = app
        self.topics = {
            t.get_topic_name(): t
            for t in (
                channels.control,
                channels.alerts,
                channels.rejected,
                channels.status,
            )
        }

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: dict[str, bytes] | None = None,
    ) -> Any:
        channel = self.topics[topic]
        if headers is None:
            return await channel.send(key=key, value=value)
        return await channel.send(key=key, value=value, headers=headers)

    async def drain(self) -> None:
        if self.app.producer.buffer.state == "running":  # not in Faust's test context
            await self.app.producer.flush()


class Worker:
    """One worker: the Faust app and everything that runs on it."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        *,
        state: MutableMapping[str, Any] | None = None,
        outbox: Outbox | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``state`` and ``outbox`` replace the Faust table and topics, ``clock`` the
        engine's wall clock (tests drive ``handle`` with them)."""
        self.settings = settings
        self.policy = policy
        self.app = build_app(settings)
        self.channels = build_channels(self.app, settings)
        self.state: MutableMapping[str, Any] = self.channels.state if state is None else state
        self.outbox: Outbox = outbox or TopicOutbox(self.app, self.channels)
        self.engine = Engine(policy, replay=settings.replay, journal=True, clock=clock or time.time)
        if settings.line_index == "disk":
            # The line index off the heap, so RSS does not grow with it: a local cache
            # rebuilt at recovery like the C tables (streams/store/offheap.py).
            tables = OffHeapTables(settings.data_dir / OFFHEAP_DIR)
            atexit.register(tables.close)
            # an Index and Events by behaviour; their structural types are the store's
            self.engine.tables = cast("Tables", tables)
        self.processor = Processor(self.engine, self.state)
        self.processor.checkpoint_chunk = settings.checkpoint_chunk
        self.processor.checkpoint_segments = settings.checkpoint_segments
        self.metrics = WorkerMetrics(self.engine, settings)
        # Faust's own sensor (messages, events, table operations, sends, rebalances,
        # commit latency) under the faust_ prefix, in the registry our /metrics page
        # serves; its per-message figures are made when the page is scraped.
        self.app.monitor = ScrapedMonitor(self.metrics.registry, "faust")
        self.progress: dict[str, int] = {}  # "<topic>:<partition>" → last processed offset
        # What the probes read (streams/pipeline/probes.py): the agent's progress, and
        # whether the state of the current assignment is rebuilt.
        self.heartbeat = Heartbeat()
        self.assigned_once = False
        self.state_ready = False
        # The peer mean from every provider's summary on the status topic (SPEC §10),
        # read by this worker's own consumer: the same for every worker.
        self.statuses = ProviderStatus(settings, self.engine, self.processor, self._send_status)
        self.metrics.peer_source = self.statuses.book.pairs
        self.processor.peers = self.statuses.peer_means
        self.engine.peers = self.statuses.peer_means  # for month boundaries (SPEC §8.1)
        # The department register, read whole (streams/pipeline/register.py), and the
        # regions this worker judges (streams/pipeline/regions.py).
        self.register = Register(settings, self.engine.departments)
        self.register_rejected = 0  # register records dead-lettered by this worker
        self.published = Published()
        self.unacknowledged = Unacknowledged()
        self.regions = RegionJudge(
            settings,
            policy,
            self.statuses.book,
            self.engine.departments,
            self.published,
            self.outbox.send,
            clock or time.time,
        )
        # Faust can lose messages between its fetcher and the agent around rebalances;
        # the guard makes the agent see every offset of a partition, in order.
        self.delivery = DeliveryGuard(
            self.app, {settings.topic_declarations, settings.topic_control}
        )
        self.commit = Commit(self.app, self.delivery, self.unacknowledged)
        agents.install(self)
        timers.install(self)
        views.install(self)
        self.channels.state.on_recover(self.recovered)
        # mode types a receiver as taking any positionals; Faust sends (app, tps)
        self.app.on_partitions_assigned.connect(cast(Any, self.on_assigned))
        self.app.on_partitions_revoked.connect(cast(Any, self.on_revoked))

    # -- one message (step 2 of streams/kafka/commit.py) -----------------------------
    async def handle(self, msg: Any) -> Output:
        """Apply one message of the declarations or control topic: the processor's
        output, then re-keyed lines and dead letters sent and acknowledged, alerts
        sent (those unacknowledged written to the partition's outbox), then the
        table writes, then the statuses when a tick or flush asks."""
        out = await self._process(msg)
        # Re-keyed lines are acknowledged before the ledger that records the message
        # is written: a crash in between re-sends them, and their event ids make the
        # copy a counted duplicate, never a loss.
        await self._rekey(msg, out)
        if not out.skipped:
            await self.publish(msg.partition, out)
            await self.write(out)
        if out.flush:  # a tick or a status flush: the statuses out, acknowledged
            await self.statuses.publish()
        if out.tick is not None:
            await self.regions.judge(msg.partition)
        elif out.event_times and msg.key:
            st = self.engine.providers.get(msg.key.decode("utf-8", "replace"))
            if st is not None:
                await self.regions.on_event_time(msg.partition, st.watermark)
        return out

    async def _process(self, msg: Any) -> Output:
        await self.register.wait_ready()  # judged with the register as the topic has it
        key = msg.key.decode("utf-8", "replace") if msg.key else None
        value = msg.value or b""
        processor = self.processor
        if msg.topic == self.settings.topic_declarations:
            self.metrics.messages += 1
            self.metrics.last_event = time.time()
            return processor.on_declarations(msg.partition, msg.offset, key, value)
        if header(msg, "cw-type") == b"declarations":
            origin = _origin(header(msg, "cw-origin"))
            return processor.on_declarations(
                msg.partition, msg.offset, key, value, source="c", origin=origin
            )
        tick = tick_of(value)
        if tick is not None:
            await self.statuses.before_tick(final=tick)
        return processor.on_control(msg.partition, value)

    async def _rekey(self, msg: Any, out: Output) -> None:
        if not out.rekey:
            return
        origin = f"{msg.partition}:{msg.offset}".encode()
        headers = {"cw-type": b"declarations", "cw-origin": origin}
        control = self.settings.topic_control
        sends = [
            await self.outbox.send(control, provider.encode(), payload, dict(headers))
            for provider, payload in out.rekey.items()
        ]
        for sent in sends:
            await sent

    async def publish(self, partition: int, out: Output) -> None:
        """Send a message's alerts (each transition once) and dead letters, before
        the state that records them is written, so a crash in between re-sends (same
        alert_id + sequence) rather than loses them. The dead letters are waited
        for; the alerts are written to the partition's outbox, before the state
        (streams/kafka/commit.py, step 2)."""
        futures = []
        send = self.outbox.send
        sent = []
        for event in out.alerts:
            if self.published.first(event):
                key = event["provider_agb"].encode()
                sent.append(
                    (event, await send(self.settings.topic_alerts, key, orjson.dumps(event)))
                )
        if sent:
            self.state[outbox_key(partition)] = self.unacknowledged.outbox(partition, sent)
        for letter in out.dead_letters:
            headers = dead_letter_headers(letter)
            payload = letter.payload
            if len(payload) > DEAD_LETTER_MAX_BYTES:
                headers["original_bytes"] = str(len(payload)).encode()
                payload = payload[:DEAD_LETTER_MAX_BYTES]
            key = letter.key.encode() if letter.key else None
            futures.append(await send(self.settings.topic_rejected, key, payload, headers))
        for fut in futures:
            await fut
        self.metrics.record(out, [e for e, _ in sent])

    async def write(self, out: Output) -> None:
        """Make a message's table writes, in order."""
        state = self.state
        for k, v in out.writes.items():
            if v is None:  # superseded by a checkpoint: a changelog tombstone
                # not pop(): it reads the value and Faust JSON-decodes it (the table
                # has no value type), a whole checkpoint chunk parsed to be dropped
                if k in state:
                    del state[k]
            elif isinstance(v, Chunk):
                # A checkpoint goes out one chunk at a time: encoded now, and
                # delivered before the next is made, so a large provider's
                # checkpoint is never in memory whole.
                state[k] = v.encode()
                await self.outbox.drain()
            else:
                state[k] = v

    async def _send_status(self, key: bytes, value: bytes) -> Any:
        return await self.outbox.send(self.settings.topic_provider_status, key, value)

    # -- the contracts topic -----------------------------------------------------------
    async def forward_contract(self, key: bytes | None, value: bytes) -> None:
        """Re-key a contract by provider onto the control topic (co-partitioned with
        the declarations); one that does not parse is dead-lettered."""
        try:
            obj = orjson.loads(value)
            contract = parse_contract(obj)
        except (orjson.JSONDecodeError, ContractError) as exc:
            headers = {"reason": b"contract_schema", "detail": str(exc).encode()[:1000]}
            await self.outbox.send(self.settings.topic_rejected, key, value, headers)
            return
        control = self.settings.topic_control
        await self.outbox.send(control, contract.provider.encode(), contract_control(obj))

    # -- the department register -------------------------------------------------------
    async def check_department(self, key: bytes | None, value: bytes | None) -> None:
        """Dead-letter a register record that is no entry (every worker's reader skips
        it; this runs in the consumer group, so once per cluster)."""
        problem = check_register(key, value)
        if problem is None:
            return
        headers = {"reason": b"department_schema", "detail": mask_text(problem).encode()[:1000]}
        sent = await self.outbox.send(self.settings.topic_rejected, key, value or b"", headers)
        await sent
        self.register_rejected += 1
        log.warning("register record dead-lettered as department_schema")

    def region_view(self) -> dict[str, dict[str, dict[str, int]]]:
        """SPEC §9 ``regions`` of the whole cluster, from the provider-status topic."""
        return self.regions.view()

    # -- rebalances --------------------------------------------------------------------
    def active_partitions(self) -> list[int]:
        """The declarations partitions assigned to this worker, in order."""
        topic = self.settings.topic_declarations
        return sorted(
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic
        )

    async def recovered(self) -> None:
        """After the table's recovery: the transitions already published, the
        changelog's record limit, and the state rebuilt from the table."""
        s = self.settings
        client = s.kafka_client_kwargs()
        await self.published.reload(s.broker or "", s.topic_alerts, client)
        processor = self.processor
        if processor.max_record_bytes is None:
            limit = await max_message_bytes(s.broker or "", state_changelog(s), client)
            processor.max_record_bytes = min(limit, MAX_MESSAGE_BYTES)
            log.info(
                "the state changelog takes records up to %d bytes: checkpoint chunks "
                "are sized below that",
                limit,
            )
        keys = (k.decode() if isinstance(k, bytes) else k for k in self.state)
        try:
            n = processor.recover(keys, set(self.active_partitions()))
        except Exception:  # noqa: BLE001 - never run on a state that is not the table's
            stop_unprocessed("the state table could not be rebuilt")
        log.info("state recovered: %d providers rebuilt from the changelog", n)
        await self.resend(self.active_partitions())
        self.state_ready = True
        self.heartbeat.beat()  # what waited during the recovery is not the agent's delay

    async def resend(self, partitions: Iterable[int]) -> None:
        """Send what the alert outboxes of ``partitions`` hold and the alerts topic
        does not (a crash came before the broker acknowledged them), and wait for
        the broker."""
        acks = []
        for p in partitions:
            for event in Unacknowledged.unsent(self.state.get(outbox_key(p)), self.published):
                value = orjson.dumps(event)
                key = str(event["provider_agb"]).encode()
                acks.append(await self.outbox.send(self.settings.topic_alerts, key, value))
        for ack in acks:
            await ack
        if acks:
            log.info("%d alert transitions sent again from the alert outboxes", len(acks))

    async def on_assigned(self, app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        self.assigned_once = True
        self.state_ready = False  # until recovered() has rebuilt this assignment's state
        self.delivery.reset(assigned)
        if not self.statuses.reader.running:  # before the first message is processed
            await app.add_runtime_dependency(self.statuses.reader)
        if not self.register.reader.running:
            await app.add_runtime_dependency(self.register.reader)

    async def on_revoked(self, app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        self.state_ready = False
        self.delivery.reset(revoked)
        await self.statuses.settle()  # no summary of a departing provider sent after this
        topic = self.settings.topic_declarations
        gone = {tp.partition for tp in revoked if tp.topic == topic}
        if gone:
            self.processor.forget_partitions(gone)
            self.unacknowledged.forget(gone)


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


def header(msg: Any, name: str) -> bytes | None:
    """A message's header ``name`` (Faust gives a dict or a list of pairs)."""
    headers = msg.headers or ()
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:
        if k == name:
            return bytes(v) if isinstance(v, bytes | bytearray | memoryview) else None
    return None


def _origin(value: bytes | None) -> tuple[int, int] | None:
    """(partition, offset) of the unkeyed message a re-keyed one came from."""
    if value is None:
        return None
    partition, _, offset = value.partition(b":")
    if not (partition.isdigit() and offset.isdigit()):
        return None
    return int(partition), int(offset)
