"""Driving a real cluster (embedded tansu + worker processes) in tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson

from streams.domain.policy import Policy
from streams.domain.rules import RULES
from streams.kafka.offsets import read_records
from streams.local.broker import find_broker_binary, wait_for_broker
from streams.local.cluster import Cluster, free_port
from streams.replay.offline import replay_offline
from streams.replay.producer import (
    archive_lines,
    contract_lines,
    department_lines,
    produce_history,
    send_final_tick,
)

# The rules whose every transition streaming and offline share (SPEC §6, §8.1): the
# line-driven ones, and the structural rules that read only the provider's own state
# (evaluated at its event-time month boundaries and at the end of input). The rules
# that read other providers' state promise only the set firing at the end.
LINE_DRIVEN = tuple(r.name for r in RULES if r.kind == "line" or not r.peers)


def offline_reference(
    files: list[Path],
    contracts: Path | None,
    policy: Policy,
    tmp: Path,
    departments: Path | None = None,
) -> dict[str, Any]:
    summary, engine = replay_offline(
        files,
        policy,
        contracts=contracts,
        departments=departments,
        alerts_out=tmp / "off-alerts.ndjson",
        snapshot_out=tmp / "off-snapshot.json",
        rejected_out=tmp / "off-rejected.ndjson",
    )
    alerts = [orjson.loads(x) for x in (tmp / "off-alerts.ndjson").read_bytes().splitlines()]
    rejected = [orjson.loads(x) for x in (tmp / "off-rejected.ndjson").read_bytes().splitlines()]
    firing = {aid for st in engine.providers.values() for aid, _ in st.alerts.firing()}
    if engine.region_watch is not None:
        firing.update(engine.region_watch.firing())
    return {
        "snapshot": orjson.loads((tmp / "off-snapshot.json").read_bytes()),
        "alerts": alerts,
        "firing": firing,
        "rejected": sorted(r["reason"] for r in rejected),
    }


class RecordingProducer:
    """A started producer that notes every (topic, key, value) it is asked to send,
    before it sends it: what a test produced, as opposed to what the topic holds."""

    def __init__(self, producer: Any, sent: list[tuple[str, bytes | None, bytes]]) -> None:
        self._producer = producer
        self._sent = sent

    async def send(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        self._sent.append((topic, key, value))
        return await self._producer.send(topic, value, key=key, **kwargs)

    async def send_and_wait(
        self, topic: str, value: Any = None, key: Any = None, **kwargs: Any
    ) -> Any:
        self._sent.append((topic, key, value))
        return await self._producer.send_and_wait(topic, value, key=key, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


@contextmanager
def recording_sends(sent: list[tuple[str, bytes | None, bytes]]) -> Iterator[None]:
    """While open, ``produce_history``'s producer is a ``RecordingProducer`` into ``sent``
    (the production path otherwise: it wraps the producer ``start_producer`` made)."""
    import streams.replay.producer as producer_module

    original = producer_module.start_producer

    async def start(bootstrap: str, idempotent: bool, **options: Any) -> tuple[Any, bool]:
        producer, idem = await original(bootstrap, idempotent, **options)
        return RecordingProducer(producer, sent), idem

    producer_module.start_producer = start
    try:
        yield
    finally:
        producer_module.start_producer = original


def topic_copies(cluster: Cluster, sent: list[tuple[str, bytes | None, bytes]]) -> list[bytes]:
    """The lines of the declarations records beyond what was produced, after checking
    the topic against ``sent`` (what the test's producer was asked to send):

    - every message produced is on the topic at least as often as it was produced
      (nothing lost on the way to the broker);
    - every record on the topic is byte for byte (key and value) a message produced;
    - what is left over (a retried produce request the broker had appended before the
      connection was reset, written again) is returned as the lines of those
      messages (a batch envelope's lines, or the message itself).
    """
    topic = cluster.settings.topic_declarations
    records = asyncio.run(read_partitions(cluster.settings.broker or "", topic))
    produced = Counter((key, value) for t, key, value in sent if t == topic)
    on_topic = Counter((key, value) for _p, _o, key, value in records)
    missing = produced - on_topic
    assert not missing, (
        f"{sum(missing.values())} of {produced.total()} messages produced are not on {topic} "
        f"(keys {sorted({k for k, _v in missing}, key=str)[:5]})"
    )
    foreign = [(p, o) for p, o, key, value in records if (key, value) not in produced]
    assert not foreign, (
        f"{len(foreign)} records on {topic} equal no message produced, "
        f"at (partition, offset) {foreign[:5]}"
    )
    return [
        line for (_k, value), n in (on_topic - produced).items() for line in _lines_of(value) * n
    ]


def _lines_of(value: bytes) -> list[bytes]:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return [value]
    if isinstance(obj, dict) and isinstance(obj.get("lines"), list):
        return [orjson.dumps(line) for line in obj["lines"]]
    return [value]


# Reasons for which a line is refused before its event id is looked at (SPEC §2 steps
# 1-3): a repeat is refused again for the same reason. Every other outcome (accepted,
# ignored, orphan_credit: steps 4-7) records the event id, and a repeat is `duplicate`.
JUDGED_ONCE = frozenset({"orphan_credit"})


def with_copies_counted(
    reference: dict[str, Any], copies: list[bytes], policy: Policy, tmp: Path
) -> dict[str, Any]:
    """The offline reference of the input as produced, once its ``copies`` (lines
    written again after the input) are counted: a line refused before its event id was
    looked at (invalid JSON, schema, BSN-shaped client_ref...) is refused again for the
    same reason, every other line once more as `duplicate`; nothing else changes.

    Which reason refuses a copied line comes from an offline replay of the copies
    alone: those reasons depend on the line only. (Not right for a copy of a line
    refused for its place in the stream, e.g. ``line_index_expired``; the histories
    these tests produce have none.)"""
    if not copies:
        return reference
    tmp.mkdir(parents=True, exist_ok=True)
    summary, _engine = replay_offline([write_lines(tmp / "copies.ndjson", copies)], policy)
    refused = {r: n for r, n in summary.counts["rejected"].items() if n and r not in JUDGED_ONCE}
    counts = dict(reference["snapshot"]["counts"])
    counts["duplicate"] += len(copies) - sum(refused.values())
    rejected = dict(counts["rejected"])
    for reason, n in refused.items():
        rejected[reason] = rejected.get(reason, 0) + n
    counts["rejected"] = rejected
    return {**reference, "snapshot": {**reference["snapshot"], "counts": counts}}


def produce(
    cluster: Cluster,
    files: list[Path],
    contracts: Path | None,
    batch_size: int = 500,
    rate: float | None = None,
    sent: list[tuple[str, bytes | None, bytes]] | None = None,
    departments: Path | None = None,
):  # type: ignore[no-untyped-def]
    """Produce archives as `claimwatch replay` does, in step with the workers: the lines
    before a contract change are processed before it is sent, and it is applied before
    the lines after it (SPEC §6: the order the offline replay uses).

    ``sent``: every (topic, key, value) the producer is asked to send is appended to it
    (``recording_sends``)."""
    s = cluster.settings
    crows = contract_lines(contracts)
    drows = department_lines(departments)

    ordered = crows  # contract_lines returns them in event-time order

    async def after(sent: int) -> None:
        await asyncio.to_thread(wait_contracts_applied, cluster, ordered[:sent])

    async def after_departments(sent: int) -> None:
        await asyncio.to_thread(cluster.wait_departments, drows[:sent])

    async def sync(stats: Any) -> None:
        targets = {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}
        await asyncio.to_thread(cluster.wait_processed, targets)

    with recording_sends(sent) if sent is not None else nullcontext():
        return asyncio.run(
            produce_history(
                s.broker or "",
                archive_lines(files),
                topic=s.topic_declarations,
                contracts=crows,
                contracts_topic=s.topic_contracts,
                after_contracts=after,
                departments=drows,
                departments_topic=s.topic_departments,
                after_departments=after_departments,
                sync=sync,
                batch_size=batch_size,
                rate=rate,
            )
        )


def wait_contracts_applied(cluster: Cluster, rows: list[bytes], timeout: float = 120.0) -> None:
    """Until every contract event in ``rows`` has been forwarded onto the control topic
    and the worker owning its partition has processed it there.

    (With several workers, summing their contract counts is not enough once
    partitions have moved: a worker keeps the contracts of providers it no longer
    owns, so the sum can run ahead.)"""
    if len(cluster.alive()) == 1:
        # One worker holds every contract it applied, and none it did not: its
        # count of versions cannot run ahead (the quick way, as the demo waits).
        cluster.wait_contracts(rows, timeout)
        return
    want = {_contract_id(orjson.loads(raw)) for raw in rows}
    s = cluster.settings
    deadline = time.monotonic() + timeout
    found: dict[tuple[str, int, int], tuple[int, int]] = {}
    while True:
        cluster.check_workers()
        found.update(asyncio.run(_forwarded_contracts(s.broker or "", s.topic_control)))
        if want <= found.keys():
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"contracts not forwarded within {timeout:.0f} s: {want - found.keys()}"
            )
        time.sleep(0.2)
    targets: dict[str, int] = {}
    for cid in want:
        partition, offset = found[cid]
        key = f"{s.topic_control}:{partition}"
        targets[key] = max(targets.get(key, -1), offset)
    cluster.wait_processed(targets, max(deadline - time.monotonic(), 30.0))


def _contract_id(c: dict[str, Any]) -> tuple[str, int, int]:
    return (c["provider_agb"], c["year"], c["version"])


async def _forwarded_contracts(
    bootstrap: str, control_topic: str
) -> dict[tuple[str, int, int], tuple[int, int]]:
    """(agb, year, version) → (partition, offset) of each contract on the control topic."""
    found: dict[tuple[str, int, int], tuple[int, int]] = {}
    for partition, offset, _key, value in await read_partitions(bootstrap, control_topic):
        try:
            msg = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue  # a re-keyed declarations message may be anything
        if isinstance(msg, dict) and msg.get("type") == "contract":
            found.setdefault(_contract_id(msg["contract"]), (partition, offset))
    return found


async def read_partitions(bootstrap: str, topic: str) -> list[tuple[int, int, bytes | None, bytes]]:
    """(partition, offset, key, value) of a topic's records, up to each partition's end
    as a fetch reports it (``streams.kafka.offsets``; `end_offsets()` is short on tansu)."""
    return [
        (r.partition, r.offset, r.key, r.value or b"") for r in await read_records(bootstrap, topic)
    ]


def finish(cluster: Cluster, stats: Any, policy: Policy, timeout: float = 300.0) -> dict[str, Any]:
    """Wait until all is processed, send the final tick, collect the results."""
    s = cluster.settings
    cluster.wait_processed(
        {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}, timeout
    )

    async def flushed(offsets: dict[int, int]) -> None:
        targets = {f"{s.topic_control}:{p}": o for p, o in offsets.items()}
        await asyncio.to_thread(cluster.wait_processed, targets, timeout)

    ticks = asyncio.run(
        send_final_tick(
            s.broker or "",
            s.topic_control,
            s.partitions,
            after=stats.end_offsets,
            processed=flushed,
        )
    )
    cluster.wait_processed({f"{s.topic_control}:{p}": o for p, o in ticks.items()}, timeout)
    snapshot, firing = cluster.snapshot(policy)
    alerts = [orjson.loads(v) for _k, v, _h in cluster.read_topic(s.topic_alerts)]
    return {"snapshot": snapshot, "alerts": alerts, "firing": firing}


def line_driven(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The transitions streaming and offline share (``LINE_DRIVEN``), as SPEC §6 and
    §8.1 compare them: ids, states, event times, values."""
    return sorted(
        (a["alert_id"], a["sequence"], a["state"], a["event_time"], a["value"])
        for a in alerts
        if a["rule"] in LINE_DRIVEN
    )


def without_retried_copies(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alert records with the second and later copies of an identical record dropped.

    A non-idempotent producer (the worker's on tansu, CLAIMWATCH_PRODUCER_IDEMPOTENCE)
    that retries a produce request after a connection reset can write the same
    record twice, byte for byte, when the broker had appended it before the reset
    (docs/operations.md, "Delivery guarantees"); consumers de-duplicate on
    ``(alert_id, sequence)``. A transition published again by the worker itself
    (processed twice) is not such a copy: its ``detected_at`` differs, so it stays and
    fails the check for transitions published twice."""
    seen: set[bytes] = set()
    out = []
    for a in alerts:
        raw = orjson.dumps(a, option=orjson.OPT_SORT_KEYS)
        if raw not in seen:
            seen.add(raw)
            out.append(a)
    return out


def assert_equal_results(
    online: dict[str, Any],
    offline: dict[str, Any],
    context: str = "",
    producer_retries: bool = False,
) -> None:
    """SPEC §6 equality; ``context`` (e.g. the fault schedule) goes into the messages.

    ``producer_retries``: the test cut the workers' connections to a broker without
    idempotent producers, so identical copies of an alert record are compared once
    (``without_retried_copies``)."""
    where = f" [{context}]" if context else ""
    if producer_retries:
        online = {**online, "alerts": without_retried_copies(online["alerts"])}
    assert online["snapshot"] == offline["snapshot"], (
        f"snapshots differ{where}: {diff_paths(online['snapshot'], offline['snapshot'])}"
    )
    on, off = line_driven(online["alerts"]), line_driven(offline["alerts"])
    assert on == off, describe_difference(on, off) + where
    assert online["firing"] == offline["firing"], (
        f"firing only online: {sorted(online['firing'] - offline['firing'])}; "
        f"only offline: {sorted(offline['firing'] - online['firing'])}{where}"
    )
    # Each transition published once: no (alert_id, sequence) twice.
    keys = [(a["alert_id"], a["sequence"]) for a in online["alerts"]]
    assert len(keys) == len(set(keys)), f"an alert transition was published twice{where}"


def merge_ends(*ends: dict[int, int]) -> dict[int, int]:
    """The highest offset per partition over several production runs."""
    out: dict[int, int] = {}
    for e in ends:
        for p, o in e.items():
            out[p] = max(out.get(p, -1), o)
    return out


def processed(cluster: Cluster) -> int:
    """Declarations messages processed so far, as the live workers' offsets say (a
    restarted worker reports again from where it resumed)."""
    topic = cluster.settings.topic_declarations
    return sum(o + 1 for k, o in cluster.progress().items() if k.rsplit(":", 1)[0] == topic)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


class Background:
    """Runs ``fn(*args, **kwargs)`` in a thread; ``result()`` joins and re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.value = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to result()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self, timeout: float = 300.0) -> Any:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"background task still running after {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.value


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    return path


def diff_paths(online: Any, offline: Any, path: str = "", limit: int = 8) -> list[str]:
    """Where two JSON values differ: "path: online != offline", the first few."""
    if isinstance(online, dict) and isinstance(offline, dict):
        out: list[str] = []
        for k in sorted(online.keys() | offline.keys(), key=str):
            if len(out) >= limit:
                break
            out += diff_paths(online.get(k), offline.get(k), f"{path}/{k}", limit - len(out))
        return out
    return [] if online == offline else [f"{path}: {online!r} != {offline!r}"]


def describe_difference(online: list[tuple[Any, ...]], offline: list[tuple[Any, ...]]) -> str:
    a, b = set(online), set(offline)
    return f"only online: {sorted(a - b)[:5]}; only offline: {sorted(b - a)[:5]}"


# -- a broker behind a TCP proxy: outages with data kept ---------------------------


class OutageProxy:
    """A TCP proxy on a loopback port in front of the broker.

    ``cut()`` is a broker outage as clients see it: every open connection is reset and
    new ones are refused until ``restore()``. The broker behind it keeps its data,
    which a restart of tansu with memory storage cannot.
    """

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    def _run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> OutageProxy:
        self.thread.start()
        self.restore()
        return self

    def restore(self) -> None:
        async def listen() -> None:
            self.server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

        self._run(listen())

    def cut(self) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()
                self.server = None
            for w in list(self.connections):
                w.transport.abort()
            self.connections.clear()

        self._run(close())

    def stop(self) -> None:
        if self.thread.is_alive():
            self.cut()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(1 << 16):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.connections -= {writer, up_writer}


class ProxiedBroker:
    """tansu (memory storage) that advertises a proxy's address, so every client,
    workers and producers alike, reaches it only through ``proxy``."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.proxy = OutageProxy(self.port)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    def start(self) -> ProxiedBroker:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.proxy.start()
        with (self.var_dir / "tansu.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(find_broker_binary()),
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{self.port}",
                    "--advertised-listener-url",
                    f"tcp://{self.bootstrap}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                start_new_session=True,
            )
        try:
            wait_for_broker(self.bootstrap, timeout=30.0)
        except BaseException:
            self.stop()
            raise
        return self

    def pause(self) -> None:
        """The broker hangs (connections stay open, nothing is answered)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.proxy.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
