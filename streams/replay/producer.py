"""Producing archived declarations, contracts and the department register to Kafka
(online replay, demo).

Lines are grouped per provider into batch envelopes (SPEC §2) of up to
``batch_size`` lines, keyed by the provider's AGB code (aiokafka's default murmur2
partitioner, the one Java clients use too), in file order per provider, with the
Kafka message timestamp set to the event time of the batch's last line. A line
whose provider cannot be read (invalid JSON, no 8-digit AGB) goes alone and
unkeyed, so the worker dead-letters it exactly as the offline replay does.
Contracts and register entries are merged in by event time (``updated_at``), as the
offline replay's ``ContractFeed`` merges them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.domain.errors import ClaimwatchError
from streams.domain.model import is_agb, parse_time
from streams.replay.files import iter_lines

FLUSH_SECONDS = 1.0
BATCH_TAG = b'{"schema":"ggz.declaration-batch/1","provider_agb":"'


@dataclass(slots=True)
class ProduceStats:
    lines: int = 0
    messages: int = 0
    contracts: int = 0
    departments: int = 0  # department register entries
    unkeyed: int = 0
    seconds: float = 0.0
    # the producer was idempotent (asked for, and the broker supports it)
    idempotent: bool = False
    end_offsets: dict[int, int] = field(
        default_factory=dict
    )  # declarations partition → last offset


def _envelope(agb: str, lines: list[bytes]) -> bytes:
    return BATCH_TAG + agb.encode() + b'","lines":[' + b",".join(lines) + b"]}"


def _provider_and_time(raw: bytes) -> tuple[str | None, float | None]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    agb = obj.get("provider_agb")
    if not is_agb(agb):
        return None, None
    ts = obj.get("submitted_at")
    try:
        return agb, parse_time(ts) if isinstance(ts, str) else None
    except ValueError:
        return agb, None


class Pacer:
    """Keeps production at ``rate`` lines/s, or ``speed`` × real time against event time."""

    def __init__(self, rate: float | None, speed: float | None) -> None:
        self.rate = rate
        self.speed = speed
        self.start = time.monotonic()
        self.first_event: float | None = None

    async def wait(self, lines_done: int, event_time: float | None) -> None:
        if self.rate:
            due = self.start + lines_done / self.rate
        elif self.speed and event_time is not None:
            if self.first_event is None:
                self.first_event = event_time
            due = self.start + (event_time - self.first_event) / self.speed
        else:
            return
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(min(delay, 5.0))


async def produce_history(
    bootstrap: str,
    declarations: Iterable[bytes],
    *,
    topic: str,
    contracts: Sequence[bytes] = (),
    contracts_topic: str | None = None,
    departments: Sequence[bytes] = (),
    departments_topic: str | None = None,
    batch_size: int = 500,
    rate: float | None = None,
    speed: float | None = None,
    after_contracts: Callable[[int], Any] | None = None,
    after_departments: Callable[[int], Any] | None = None,
    sync: Callable[[ProduceStats], Any] | None = None,
    on_progress: Callable[[ProduceStats], None] | None = None,
    client_kwargs: dict[str, Any] | None = None,
    idempotent: bool = False,
) -> ProduceStats:
    """Produce declarations in batches with the contracts and register entries
    (``departments``) merged in by event time.

    ``after_contracts(n)`` runs once contracts are acknowledged (e.g. to wait until
    workers have applied them), ``after_departments(n)`` once register entries are;
    ``sync(stats)`` runs before a contract or register change that
    follows declarations (e.g. to wait until those are processed). Both may be
    coroutine functions. Without them the order across topics is only as good as
    the workers' consumption, which is what a live cluster gets. ``idempotent``:
    see ``start_producer``.
    """
    stats = ProduceStats()
    producer, stats.idempotent = await start_producer(
        bootstrap,
        idempotent,
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
        **(client_kwargs or {}),
    )
    started = time.perf_counter()
    run = _Production(
        producer,
        stats,
        topic=topic,
        contracts=contracts,
        contracts_topic=contracts_topic or "ggz.contracts.v1",
        after_contracts=after_contracts,
        sync=sync,
        departments=departments,
        departments_topic=departments_topic or "ggz.departments.v1",
        after_departments=after_departments,
    )
    try:
        pacer = Pacer(rate, speed)
        paced = bool(rate or speed)
        for raw in declarations:
            await run.line(raw, batch_size)
            if stats.lines % 100 == 0:
                if on_progress is not None and stats.lines % batch_size == 0:
                    on_progress(stats)
                await pacer.wait(stats.lines, run.last_ts)
                if paced and time.monotonic() - run.flushed > FLUSH_SECONDS:
                    # Paced: a small provider's lines should not wait long for its
                    # batch to fill, but every flush costs a message per provider.
                    await run.flush(list(run.buffers), settle=False)
        await run.flush(list(run.buffers))
        await run.send_contracts(None)
        await producer.flush()
    finally:
        await producer.stop()
    stats.seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(stats)
    return stats


class _Production:
    """One ``produce_history`` run: per-provider batches, the contracts and register
    entries merged in by event time, and the sends not yet acknowledged."""

    def __init__(
        self,
        producer: Any,
        stats: ProduceStats,
        *,
        topic: str,
        contracts: Sequence[bytes],
        contracts_topic: str,
        after_contracts: Callable[[int], Any] | None,
        sync: Callable[[ProduceStats], Any] | None,
        departments: Sequence[bytes] = (),
        departments_topic: str = "ggz.departments.v1",
        after_departments: Callable[[int], Any] | None = None,
    ) -> None:
        self.producer = producer
        self.stats = stats
        self.topic = topic
        self.contracts_topic = contracts_topic
        self.after_contracts = after_contracts
        self.after_departments = after_departments
        self.sync = sync
        self.buffers: dict[str, list[bytes]] = {}
        self.last_time: dict[str, float | None] = {}
        self.last_ts: float | None = None  # event time of the latest line
        self.pending: list[asyncio.Future[Any]] = []
        self.flushed = time.monotonic()
        # (updated_at, topic, key, event): stable, contracts before register entries
        events = [(r, contracts_topic, _contract_key) for r in contracts]
        events += [(r, departments_topic, _department_key) for r in departments]
        timed = []
        for raw, to, key_of in events:
            obj = orjson.loads(raw)
            timed.append((parse_time(obj["updated_at"]), to, key_of(obj), raw, obj))
        self.timed = sorted(timed, key=lambda x: x[0])
        self.next_contract = 0

    async def line(self, raw: bytes, batch_size: int) -> None:
        """One archive line: contracts due before it first, then into its provider's
        batch (sent when full), or alone without a key when it names no provider."""
        stats = self.stats
        stats.lines += 1
        agb, ts = _provider_and_time(raw)
        self.last_ts = ts
        timed, nxt = self.timed, self.next_contract
        if ts is not None and nxt < len(timed) and timed[nxt][0] <= ts:
            await self.send_contracts(ts)
        if agb is None:
            stats.unkeyed += 1
            await self.send(None, raw, None)
            return
        buf = self.buffers.setdefault(agb, [])
        buf.append(raw)
        self.last_time[agb] = ts
        if len(buf) >= batch_size:
            await self.send(agb.encode(), _envelope(agb, buf), ts)
            self.buffers[agb] = []

    async def send(self, key: bytes | None, value: bytes, ts: float | None) -> None:
        fut = await self.producer.send(
            self.topic, value, key=key, timestamp_ms=int(ts * 1000) if ts else None
        )
        self.pending.append(fut)
        self.stats.messages += 1
        if len(self.pending) >= 256:
            await _settle(self.pending, self.stats)

    async def flush(self, providers: Iterable[str], settle: bool = True) -> None:
        """Send what ``providers`` have buffered; with ``settle``, wait for every send."""
        self.flushed = time.monotonic()
        for other in providers:
            rest = self.buffers.get(other)
            if rest:
                await self.send(other.encode(), _envelope(other, rest), self.last_time.get(other))
                self.buffers[other] = []
        if settle:
            await _settle(self.pending, self.stats)

    async def send_contracts(self, until: float | None) -> None:
        """Contracts and register entries due by event time ``until`` (all if None),
        in order with the lines: lines before a change are sent (and, with ``sync``,
        processed) before it, so the change applies where its event time says."""
        due = []
        timed = self.timed
        while self.next_contract < len(timed) and (
            until is None or timed[self.next_contract][0] <= until
        ):
            due.append(timed[self.next_contract])
            self.next_contract += 1
        if not due:
            return
        # A contract or register entry bears on its own provider only: the lines of
        # the providers it names are cut here; every other provider's batch keeps
        # filling (a cut costs a message per provider).
        await self.flush({obj["provider_agb"] for *_x, obj in due})
        if self.stats.messages:
            await _call(self.sync, self.stats)
        contracts = departments = 0
        for _at, topic, key, raw, _obj in due:
            await self.producer.send_and_wait(topic, raw, key=key)
            if topic == self.contracts_topic:
                contracts += 1
            else:
                departments += 1
        self.stats.contracts += contracts
        self.stats.departments += departments
        if contracts:
            await _call(self.after_contracts, self.stats.contracts)
        if departments:
            await _call(self.after_departments, self.stats.departments)


def _contract_key(obj: dict[str, Any]) -> bytes:
    return f"{obj['provider_agb']}:{obj['year']}".encode()


def _department_key(obj: dict[str, Any]) -> bytes:
    return f"{obj['provider_agb']}:{obj['department']}".encode()


async def _call(hook: Callable[[Any], Any] | None, arg: Any) -> None:
    if hook is not None:
        result = hook(arg)
        if asyncio.iscoroutine(result):
            await result


class _NoInitProducerIdError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "InitProducerId" not in record.getMessage()


async def start_producer(bootstrap: str, idempotent: bool, **options: Any) -> tuple[Any, bool]:
    """A started ``acks=all`` producer, and whether it is idempotent.

    aiokafka retries a produce request that failed on the network; when the broker had
    appended the batch already, the retry appends it again, and the worker counts
    its lines as ``duplicate`` (event ids) instead of accepting them once. An
    idempotent producer (Kafka's ``enable.idempotence``) has the broker drop such a
    repeat. A broker without idempotent producers (tansu, the embedded one) refuses
    InitProducerId when the producer starts: it then starts without, and the caller
    says so (``ProduceStats.idempotent``).
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import (
        ClusterAuthorizationFailedError,
        UnknownError,
        UnsupportedVersionError,
    )

    if idempotent:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options
        )
        quiet = _NoInitProducerIdError()  # aiokafka logs the refusal as an error
        sender_log = logging.getLogger("aiokafka.producer.sender")
        sender_log.addFilter(quiet)
        try:
            await producer.start()
            return producer, True
        except (UnknownError, UnsupportedVersionError, ClusterAuthorizationFailedError):
            await producer.stop()
        finally:
            sender_log.removeFilter(quiet)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    await producer.start()
    return producer, False


async def _settle(pending: list[asyncio.Future[Any]], stats: ProduceStats) -> None:
    for fut in pending:
        meta = await fut
        if meta.offset > stats.end_offsets.get(meta.partition, -1):
            stats.end_offsets[meta.partition] = meta.offset
    pending.clear()


async def send_final_tick(
    bootstrap: str,
    control_topic: str,
    partitions: int,
    client_kwargs: dict[str, Any] | None = None,
    after: dict[int, int] | None = None,
    processed: Callable[[dict[int, int]], Any] | None = None,
) -> dict[int, int]:
    """End of input: every partition's owner evaluates the structural rules once
    more, after it has processed the declarations up to ``after[partition]``.

    Rules that read other providers (the peer mean of ``group_share_low``) must see
    every provider's final figures, wherever its partition is processed. So first a
    status flush goes to every partition: its owner publishes the summaries of its
    providers to the status topic and waits for the broker (streams/pipeline/status.py);
    ``processed(offsets)`` (awaited if a coroutine) returns once every flush, at those
    control-topic offsets, is processed. Then the final ticks, before each of which
    the worker reads the status topic to its end. Without ``processed`` the ticks
    follow the flushes at once, and a worker may judge before another has published.
    Returns the final ticks' offsets."""
    from aiokafka import AIOKafkaProducer

    from streams.pipeline.processor import status_flush_control, tick_control

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **(client_kwargs or {}))
    await producer.start()
    offsets = {}
    try:
        flushes = {}
        for p in range(partitions):
            target = {p: after[p]} if after and p in after else None
            meta = await producer.send_and_wait(
                control_topic, status_flush_control(after=target), partition=p
            )
            flushes[p] = meta.offset
        await _call(processed, flushes)
        for p in range(partitions):
            meta = await producer.send_and_wait(
                control_topic, tick_control(final=True), partition=p
            )
            offsets[p] = meta.offset
    finally:
        await producer.stop()
    return offsets


async def wait_committed(
    bootstrap: str,
    group: str,
    targets: dict[str, int],
    client_kwargs: dict[str, Any] | None = None,
    stall_timeout: float = 300.0,
) -> bool:
    """Until the consumer group ``group`` has committed every "<topic>:<partition>"
    past its offset in ``targets``; False if its commits stop moving for
    ``stall_timeout`` seconds first (no worker running, or one stuck), or if the
    broker cannot be asked at all."""
    from streams.local.cluster import committed_offsets

    last: dict[str, int] = {}
    moved = time.monotonic()
    first = True
    while True:
        try:
            done = await committed_offsets(bootstrap, group, targets, client_kwargs)
        except Exception:  # noqa: BLE001 - the broker may be away for a moment
            if first:
                return False
            done = last
        first = False
        if all(done.get(k, -1) >= v for k, v in targets.items()):
            return True
        if done != last:
            last, moved = done, time.monotonic()
        elif time.monotonic() - moved > stall_timeout:
            return False
        await asyncio.sleep(1.0)


def archive_lines(files: Sequence[str | Path]) -> Iterable[bytes]:
    for f in files:
        for _n, raw in iter_lines(f):
            yield raw


def contract_lines(path: str | Path | None) -> list[bytes]:
    """Contract events in event-time order, validated (a bad one stops the replay)."""
    if path is None:
        return []
    from streams.replay.files import read_contracts

    read_contracts(path)  # raises InputError naming file:line on a bad event
    rows = [raw for _n, raw in iter_lines(path)]
    rows.sort(key=lambda r: parse_time(orjson.loads(r)["updated_at"]))
    return rows


def department_lines(path: str | Path | None) -> list[bytes]:
    """Register entries in event-time order, validated (a bad one stops the replay)."""
    if path is None:
        return []
    from streams.replay.files import read_departments

    read_departments(path)  # raises InputError naming file:line on a bad entry
    rows = [raw for _n, raw in iter_lines(path)]
    rows.sort(key=lambda r: parse_time(orjson.loads(r)["updated_at"]))
    return rows


def run_replay(args: Any, policy: Any) -> int:
    """``claimwatch replay FILE…`` into Kafka."""
    from streams.pipeline.settings import Settings

    settings = Settings.from_env()
    if not settings.broker:
        raise ClaimwatchError("no broker configured: set CLAIMWATCH_BROKER, or use --offline")
    live_default = settings.topic_declarations == "ggz.declarations.v1"
    if live_default and not args.live:
        raise ClaimwatchError(
            "refusing to replay into the live topic ggz.declarations.v1: set CLAIMWATCH_TOPIC_DECLARATIONS "
            "(and CLAIMWATCH_APP_ID/CLAIMWATCH_TOPIC_ALERTS for the replay worker), or pass --live"
        )
    for f in args.files:
        if not Path(f).is_file():
            raise ClaimwatchError(f"{f}: no such file")
    contracts = contract_lines(args.contracts)
    register = department_lines(getattr(args, "departments", None))
    tty = sys.stderr.isatty()

    def progress(stats: ProduceStats) -> None:
        if tty:
            sys.stderr.write(f"\rproduced {stats.lines:,} lines in {stats.messages:,} messages")
            sys.stderr.flush()

    from streams.kafka.topics import topic_specs
    from streams.local.broker import ensure_topics_sync

    kw = settings.kafka_client_kwargs()
    ensure_topics_sync(settings.broker, topic_specs(settings), **kw)
    stats = asyncio.run(
        produce_history(
            settings.broker,
            archive_lines(args.files),
            topic=settings.topic_declarations,
            contracts=contracts,
            contracts_topic=settings.topic_contracts,
            departments=register,
            departments_topic=settings.topic_departments,
            batch_size=args.batch_size,
            rate=args.rate,
            speed=args.speed,
            on_progress=progress,
            client_kwargs=kw,
            idempotent=settings.producer_idempotence,
        )
    )
    if not args.no_final_tick:
        _final_tick(settings, stats, kw, tty)
    if tty:
        sys.stderr.write("\n")
    if settings.producer_idempotence and not stats.idempotent:
        print(
            "note: the broker has no idempotent producers, so this replay produced without: "
            "a batch retried after a network fault may be written twice, and its lines are "
            "then counted as duplicate (CLAIMWATCH_PRODUCER_IDEMPOTENCE=false silences this)",
            file=sys.stderr,
        )
    print(
        f"produced {stats.lines:,} lines in {stats.messages:,} messages to {settings.topic_declarations} "
        f"({stats.unkeyed} unkeyed), {stats.contracts} contracts and "
        f"{stats.departments} register entries in {stats.seconds:.1f} s"
    )
    return 0


def _final_tick(settings: Any, stats: ProduceStats, kw: dict[str, Any], tty: bool) -> None:
    """After a replay: a status flush and, once the workers processed every partition
    of the replay, the final tick (SPEC §6: the structural rules' last evaluation)."""
    declarations = {f"{settings.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}

    async def flushed(offsets: dict[int, int]) -> None:
        # The workers' progress, from their group's commits: the flush of a
        # partition is processed once its declarations are.
        targets = {f"{settings.topic_control}:{p}": o for p, o in offsets.items()}
        if tty:
            sys.stderr.write("\nwaiting for the workers to process the replay\n")
        done = await wait_committed(
            settings.broker or "", settings.app_id, targets | declarations, kw
        )
        if not done:
            print(
                "warning: the workers' progress stalled before the end of the replay; "
                "the final evaluation may not see every provider's final figures",
                file=sys.stderr,
            )

    asyncio.run(
        send_final_tick(
            settings.broker,
            settings.topic_control,
            settings.partitions,
            kw,
            after=stats.end_offsets,
            processed=flushed,
        )
    )
