"""No client reference, and no BSN-shaped value, leaves a real worker where it may not.

One real worker (``claimwatch worker`` on the embedded tansu broker, ``streams.local.cluster``)
runs at ``CLAIMWATCH_LOG_LEVEL=debug`` with ``CLAIMWATCH_LOG_FORMAT=json`` over a small generated history (keyed batches,
credits, ADHD lines, orphan credits, schema errors, BSN-shaped client_refs) and what a
careless or hostile producer adds: unkeyed lines and unkeyed batches (which the worker
re-keys onto its control topic), valid lines under message keys that are no AGB code
(one, and many distinct ones), escaped and truncated BSN-shaped client_refs. Every
``client_ref`` of that input is collected. When the worker has processed it all and
stopped, these are read whole and scanned:

- the worker's log file, every line, at DEBUG, as written and as the message and
  exception it decodes to (each line one JSON object: claimwatch's, Faust's and
  aiokafka's records alike);
- every topic on the broker except the declarations input and the dead-letter topic:
  the control topic, every changelog, ``ggz.provider-status.v1`` if there is one, the
  alerts (all partitions, each to the end a fetch reports: tansu's ListOffsets
  answers short, ``streams.kafka.offsets``);
- ``/metrics``, ``/status`` and ``/snapshot``.

None may hold a client reference of the input, nor a BSN-shaped value; a finding is
reported by place (log line, topic partition@offset) and by a hash of the value,
never the value. State keys are of the documented forms with 8-digit AGB owners, so a
producer's garbage key never becomes state. The dead-letter topic carries the
original payloads by SPEC §1, so it does carry client references; not BSN-shaped ones
in the clear, and none in its headers (docs/operations.md, "Personal data").
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request
from typing import Any

import orjson
import pytest

from streams.domain.policy import load_policy
from streams.kafka.topics import topic_specs
from streams.local.cluster import Cluster
from streams.pipeline.metrics import WorkerMetrics
from streams.pipeline.settings import Settings
from streams.replay.producer import send_final_tick
from streams.synth.generate import GenerateOptions, generate
from tests.pipeline.feed import Feed
from tests.security.leakscan import Surface, fingerprint, needles, report, scan, shape

POLICY = load_policy()
# Six seconds: tansu finishes a group join after half the session timeout
# (tests/pipeline/conftest.py), so the worker gets its partitions in seconds.
FAST_REBALANCE = {"CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS": "6"}
STATUS_TOPIC = "ggz.provider-status.v1"

# BSN-shaped values (they pass the eleven-test) planted in hostile input.
BSN_CLIENT, BSN_ESCAPED, BSN_TRAJECTORY, BSN_LINE, BSN_EVENT, BSN_KEY = (
    "123456782",
    "111222333",
    "987654321",
    "246813579",
    "135792468",
    "192837465",
)
BSN_IDS = (BSN_TRAJECTORY, BSN_LINE, BSN_EVENT, BSN_KEY)
GARBAGE_KEYS = 40  # distinct message keys that are no AGB code

# State keys (streams/pipeline/processor.py): header, journal segment, checkpoint chunk,
# contract, partition ledger, partition alert outbox; owners are 8-digit AGB codes. Any other table or
# internal topic is keyed "<agb>" or "<agb>:<year>" (peers, SPEC §10 provider status).
_AGB = "[0-9]{8}"
STATE_KEY = re.compile(
    rf"(h:{_AGB}|j:{_AGB}:[0-9]+|k:{_AGB}:[0-9]+:[0-9]+|c:{_AGB}:[0-9]{{4}}|l:[0-9]+|a:[0-9]+)\Z"
)
PROVIDER_KEY = re.compile(rf"{_AGB}(:[0-9]{{4}})?\Z")


# -- the input -----------------------------------------------------------------------


def hostile(provider: str, template: dict[str, Any]) -> list[tuple[bytes | None, bytes]]:
    """Messages a careless or hostile producer might send for ``provider``."""

    def line(n: int, **fields: object) -> dict[str, Any]:
        obj = {**template, "event_id": f"hostile-e{n}", "line_id": f"hostile-l{n}"}
        obj.update(fields)
        return obj

    def batch(agb: str, lines: list[dict[str, Any]]) -> bytes:
        return orjson.dumps(
            {"schema": "ggz.declaration-batch/1", "provider_agb": agb, "lines": lines}
        )

    key = provider.encode()
    bsn_plain = orjson.dumps(line(2, client_ref=BSN_CLIENT))
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in BSN_ESCAPED).encode()
    bsn_escaped = bsn_plain.replace(BSN_CLIENT.encode(), escaped).replace(
        b"hostile-e2", b"hostile-e3"
    )
    messages: list[tuple[bytes | None, bytes]] = [
        (key, orjson.dumps(line(1, client_ref="adhd-client-marker-1", diagnosis_group="adhd"))),
        (key, bsn_plain),
        (key, bsn_escaped),
        (None, bsn_plain),  # keyless: re-keyed by the provider it names
        (key, orjson.dumps(line(4, trajectory_id=BSN_TRAJECTORY, event_id=BSN_EVENT))),
        (key, orjson.dumps(line(5, kind="credit", line_id=BSN_LINE, client_ref="orphan-marker"))),
        (
            key,
            batch(provider, [line(6, client_ref=BSN_CLIENT), line(7, client_ref="batch-marker")]),
        ),
        (BSN_KEY.encode(), orjson.dumps(line(8, client_ref="bsn-key-client-marker"))),
        (key, b'{"client_ref": "' + BSN_CLIENT.encode() + b'", "truncated'),
        # unkeyed lines and an unkeyed batch of valid lines: re-keyed, then accepted
        (None, orjson.dumps(line(9, client_ref="unkeyed-client-marker-9"))),
        (None, orjson.dumps(line(10, client_ref="unkeyed-adhd-marker-10", diagnosis_group="adhd"))),
        (
            None,
            batch(
                provider,
                [
                    line(11, client_ref="unkeyed-batch-marker-11"),
                    line(12, client_ref="unkeyed-batch-marker-12"),
                ],
            ),
        ),
        # a valid line and a batch under a key that is no AGB code
        (b"not-an-agb", orjson.dumps(line(13, client_ref="garbage-key-marker-13"))),
        (b"not-an-agb", batch(provider, [line(14, client_ref="garbage-key-marker-14")])),
        ("１２３４５６７８".encode(), orjson.dumps(line(15, client_ref="wide-key-marker-15"))),
        # another provider's AGB code as key: the line is a batch_provider_mismatch
        (b"87654321", orjson.dumps(line(16, client_ref="wrong-key-marker-16"))),
    ]
    for i in range(GARBAGE_KEYS):
        garbage = f"garbage-{i:03d}".encode() if i % 2 else b"\xff\xfe" + bytes([i])
        messages.append((garbage, orjson.dumps(line(100 + i, client_ref=f"garbage-marker-{i}"))))
    return messages


def client_refs(messages: list[bytes]) -> set[str]:
    """Every client_ref value of the input, also in batches and unreadable lines."""
    refs: set[str] = set()
    for raw in messages:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            refs.update(m.decode() for m in re.findall(rb'"client_ref"\s*:\s*"([^"\\]+)"', raw))
            continue
        objs = obj.get("lines", [obj]) if isinstance(obj, dict) else []
        refs.update(
            o["client_ref"]
            for o in objs
            if isinstance(o, dict) and isinstance(o.get("client_ref"), str)
        )
    refs.add(BSN_ESCAPED)  # escaped in its line: the regex above does not decode it
    return refs


# -- the run -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.pipeline.harness import produce

    tmp = tmp_path_factory.mktemp("leak")
    generate(
        tmp / "history", GenerateOptions(providers=4, lines=2_000, seed=7, malformed_rate=0.01)
    )
    files, contracts = (
        [tmp / "history" / "declarations.ndjson"],
        tmp / "history" / "contracts.ndjson",
    )
    cluster = Cluster(
        Settings(partitions=4, tick_seconds=3600.0, log_level="debug"),
        var_dir=tmp / "var",
        env={**FAST_REBALANCE, "CLAIMWATCH_LOG_FORMAT": "json"},
    )
    cluster.start_broker()
    try:
        cluster.create_topics()
        worker = cluster.add_worker()
        cluster.wait_ready()
        s = cluster.settings
        stats = produce(cluster, files, contracts, batch_size=50)
        history = files[0].read_bytes().splitlines()
        template = next(
            o for o in map(_json, history) if isinstance(o, dict) and o.get("activity") == "consult"
        )
        extra = hostile(template["provider_agb"], template)
        ends = dict(stats.end_offsets)
        for p, o in asyncio.run(_send(s.broker or "", s.topic_declarations, extra)).items():
            ends[p] = max(ends.get(p, -1), o)
        cluster.wait_processed({f"{s.topic_declarations}:{p}": o for p, o in ends.items()}, 60)
        ticks = asyncio.run(
            send_final_tick(s.broker or "", s.topic_control, s.partitions, after=ends)
        )
        cluster.wait_processed({f"{s.topic_control}:{p}": o for p, o in ticks.items()}, 60)

        views = {path: _get(worker.port, path) for path in ("/metrics", "/status", "/snapshot")}
        cluster.kill_worker(worker, signal.SIGTERM)  # flushes its producer on the way out
        assert worker.proc is not None and worker.proc.returncode == 0, worker.log_path

        topics = asyncio.run(_topics(s.broker or ""))
        scanned = sorted(topics - {s.topic_declarations, s.topic_rejected})
        records = {t: asyncio.run(read_whole_topic(s.broker or "", t)) for t in scanned}
        letters = asyncio.run(read_whole_topic(s.broker or "", s.topic_rejected))
        log = worker.log_path.read_bytes()
    finally:
        cluster.stop()

    surfaces = {"log": Surface("log"), "topics": Surface("topics"), "alerts": Surface("alerts")}
    for n, text in enumerate(log.splitlines(), 1):
        surfaces["log"].add(f"log line {n}", text)
        entry = _json(text)  # JSON escapes quotes and controls: scan the decoded text too
        if isinstance(entry, dict):
            decoded = f"{entry.get('message', '')}\n{entry.get('exception', '')}"
            surfaces["log"].add(f"log line {n} decoded", decoded.encode())
    for topic, recs in records.items():
        surface = surfaces["alerts" if topic == s.topic_alerts else "topics"]
        for r in recs:
            at = f"{topic} p{r.partition}@{r.offset}"
            surface.add(f"{at} key", r.key)
            surface.add(f"{at} value", r.value)
            for name, value in r.headers or ():
                surface.add(f"{at} header {name}", name.encode() + b"=" + value)
    for path, body in views.items():
        surfaces[path] = Surface(path, [(path, body)])
    refs = client_refs(history + [v for _k, v in extra])
    return {
        "settings": s,
        "refs": refs,
        "surfaces": surfaces,
        "records": records,
        "letters": letters,
        "log": log,
        "snapshot": orjson.loads(views["/snapshot"]),
        "history": history,
    }


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _get(port: int, path: str) -> bytes:
    url = f"http://127.0.0.1:{port}{path}"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback only
        return resp.read()


async def _send(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]
) -> dict[int, int]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    ends: dict[int, int] = {}
    try:
        for key, value in messages:
            meta = await producer.send_and_wait(topic, value, key=key)
            ends[meta.partition] = max(ends.get(meta.partition, -1), meta.offset)
    finally:
        await producer.stop()
    return ends


async def _topics(bootstrap: str) -> set[str]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


async def read_whole_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every record of every partition of ``topic``, each read to the end a fetch
    reports (``streams.kafka.offsets.end_offsets``); fails if any partition is not."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka.offsets import end_offsets

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - a fresh view
        parts = consumer.partitions_for_topic(topic) or set()
        assert parts, f"{topic}: no partitions"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await end_offsets(consumer, tps, timeout)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, recs in batch.items():
                out.extend(r for r in recs if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        assert not remaining, (
            f"{topic}: partitions {sorted(tp.partition for tp in remaining)} not read to "
            f"their end within {timeout:.0f} s"
        )
        return out
    finally:
        await consumer.stop()


# -- the checks ----------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.slow
def test_the_run_exercises_every_path(run: dict[str, Any]) -> None:
    """The scan is worth something: much client data went in, DEBUG was on, and every
    internal topic the worker writes was there and read."""
    s = run["settings"]
    assert len(run["refs"]) > 300
    assert len(re.findall(rb"\bDEBUG\b", run["log"])) > 100, "the worker did not log at DEBUG"
    lines = [line for line in run["log"].splitlines() if line.strip()]
    entries = [_json(line) for line in lines]
    odd = [line[:120] for line, e in zip(lines, entries, strict=True)
           if not (isinstance(e, dict) and {"time", "level", "logger", "message"} <= set(e))]  # fmt: skip
    assert not odd, f"{len(odd)} log lines are no JSON object, e.g. {odd[:3]}"
    loggers = {e["logger"].split(".")[0] for e in entries}
    assert {"claimwatch", "faust", "aiokafka"} <= loggers, loggers
    records = run["records"]
    for spec in topic_specs(s):
        if spec.name not in (s.topic_declarations, s.topic_rejected):
            assert spec.name in records, f"{spec.name} was not read"
    for topic in (s.topic_control, f"{s.app_id}-state-changelog", s.topic_alerts):
        assert records.get(topic), f"{topic} is empty or was not read"
    owners = {k[2:] for k in _state_keys(run) if k.startswith("h:")}
    providers = {o["provider_agb"] for o in map(_json, run["history"]) if isinstance(o, dict)}
    assert providers <= owners, "a provider's state header is missing from the changelog"
    reasons = {dict(r.headers)["reason"].decode() for r in run["letters"]}
    assert reasons >= {
        "invalid_json",
        "schema",
        "bsn_like_client_ref",
        "orphan_credit",
        "batch_provider_mismatch",
    }, reasons
    assert b"claimwatch_provider_adhd_clients" in run["surfaces"]["/metrics"].units[0][1]
    counts = run["snapshot"]["counts"]
    assert counts["accepted"] > 1_500 and counts["duplicate"] >= 1


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("surface", ["log", "topics", "alerts", "/metrics", "/status", "/snapshot"])
def test_no_client_ref_nor_bsn_shaped_value_appears(run: dict[str, Any], surface: str) -> None:
    """``topics``: every topic but the declarations input, the dead letters and the
    alerts (``alerts``), each record's key, value and headers."""
    found = scan(run["surfaces"][surface], _needles(run), _allowed(run))
    assert not found, f"{surface}: " + report(found)


@pytest.mark.broker
@pytest.mark.slow
def test_state_keys_are_of_the_documented_forms_with_agb_owners(run: dict[str, Any]) -> None:
    """A message key becomes state only once it is a validated AGB code: a producer's
    garbage keys (and a BSN-shaped one) are no state keys, in any changelog or
    provider-keyed internal topic."""
    s = run["settings"]
    bad = []
    for topic, recs in run["records"].items():
        if topic == f"{s.app_id}-state-changelog":
            form = STATE_KEY
        elif topic.endswith("-changelog") or topic == STATUS_TOPIC:
            form = PROVIDER_KEY
        else:
            continue
        for r in recs:
            key = _key(r.key)
            if not form.match(key):
                bad.append(f"{topic} p{r.partition}@{r.offset} key {shape(key)}")
    assert not bad, f"{len(bad)} state keys of no documented form: {sorted(set(bad))[:12]}"


def _needles(run: dict[str, Any]) -> dict[bytes, str]:
    return needles(run["refs"]) | needles(BSN_IDS, "BSN-shaped identifier")


def _allowed(run: dict[str, Any]) -> set[bytes]:
    """Nine-digit values claimwatch sets itself: topic configs (a week in ms)."""
    return {
        v.encode()
        for spec in topic_specs(run["settings"])
        for v in spec.configs.values()
        if re.fullmatch("[0-9]{9}", v)
    }


def _key(raw: bytes | None) -> str:
    """A changelog key as the table wrote it (JSON-encoded, or the raw bytes)."""
    text = (raw or b"").decode("utf-8", "replace")
    value = _json(raw or b"")
    return value if isinstance(value, str) else text


def _state_keys(run: dict[str, Any]) -> list[str]:
    s = run["settings"]
    return [_key(r.key) for r in run["records"].get(f"{s.app_id}-state-changelog", [])]


@pytest.mark.broker
@pytest.mark.slow
def test_dead_letters_carry_bsn_shaped_client_refs_masked_and_headers_no_client_data(
    run: dict[str, Any],
) -> None:
    letters = run["letters"]
    bsns = {r for r in run["refs"] if len(r) == 9 and r.isdigit()}
    bsn_letters = [r for r in letters if dict(r.headers)["reason"] == b"bsn_like_client_ref"]
    assert len(bsn_letters) >= 4 + 6  # plain, escaped, keyless copy, in a batch; generated
    for r in letters:
        assert not [b for b in bsns if b.encode() in r.value], f"p{r.partition}@{r.offset}"
        assert b"\\u0031\\u0031\\u0031" not in r.value  # the escaped form, re-encoded
    for r in bsn_letters:
        payload = _json(r.value)
        if isinstance(payload, dict):
            assert payload["client_ref"] == "*********", f"p{r.partition}@{r.offset}"
    headers = Surface("dead-letter headers")
    for r in letters:
        for name, value in r.headers or ():
            headers.add(f"dead letter p{r.partition}@{r.offset} header {name}", value)
    found = scan(headers, _needles(run), _allowed(run))
    assert not found, report(found)
    # SPEC §2 rejects only a BSN-shaped client_ref; other identifiers are the
    # provider's own numbering, and stay out of headers all the same.
    details = [dict(r.headers).get("detail", b"") for r in letters]
    assert b"credit for line ********* that was never debited" in details


def test_the_scan_reports_places_and_hashes_never_the_value() -> None:
    """The scan itself: it finds a planted reference (also JSON-escaped, and in a
    repr) and a BSN-shaped value where they are, says where, and prints neither; on
    surfaces without client data it finds nothing."""
    ref = "c-e1bd36c4dcbae8570bc1"
    clean = Surface(
        "log",
        [
            ("log line 1", b"INFO worker ready; offsets {0: 123456789, 1: 17}"),
            ("log line 2", b'DEBUG send: key=b"12345678" value={"net_cents": 123456789}'),
            ("log line 3", b"alert for provider '12345678' at 2026-01-01T00:00:00.123456789"),
            ("log line 4", b"CreateTopics (config_key='retention.ms', config_value='604800000')"),
            (
                "log line 5",
                b"Join group response member_id='faust-0.15.3-c0b2ad6e-ef01-4a2b-"
                b"8c3d-a987654320bc'",
            ),
            (
                "log line 9",
                b'{"logger":"mode.threads","message":"[^--MethodQueueWorker@0x7ff834288450]"}',
            ),
        ],
    )
    assert scan(clean, needles([ref, BSN_CLIENT]), allowed=[b"604800000"]) == []
    assert [f.where for f in scan(clean, {})] == ["log line 4"]
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in ref)
    dirty = Surface(
        "log",
        [
            *clean.units,
            ("log line 6", f'DEBUG send: value=b\'{{"client_ref":"{ref}"}}\''.encode()),
            (
                "log line 7",
                f'value=b\'{{"client_ref":"{escaped}"}}\''.encode().replace(b"\\", b"\\\\"),
            ),
            ("log line 8", b"key=b'" + BSN_CLIENT.encode() + b"'"),
        ],
    )
    found = scan(dirty, needles([ref]), allowed=[b"604800000"])
    assert {f.where for f in found} == {"log line 6", "log line 7", "log line 8"}
    text = report(found)
    assert ref not in text and BSN_CLIENT not in text and fingerprint(ref) in text
    assert shape("１２３４５６７８:" + BSN_CLIENT) == "????????:999999999"
    assert shape("h:not-an-agb\x00") == "h:xxx-xx-xxx?"


def test_a_hostile_region_reaches_neither_metrics_nor_alerts() -> None:
    """A line's `region` is the provider's free text: labels and alerts take the
    region from the insurer's contract, or show none (docs/operations.md)."""
    from streams.domain.contracts import Contract
    from tests.security.test_fuzz_acceptance import valid_line

    sim = Feed(POLICY, clock=lambda: 1_780_000_000.0)
    # zorgvraagtype 1 in setting 5 in 2026: the line fires zvt_setting_mismatch itself
    mismatch = valid_line(1, region=BSN_CLIENT, care_demand_type=1, setting=5)
    sim.declarations("12345678", orjson.dumps(mismatch))
    text = WorkerMetrics(sim.engine).exposition()[0].decode()
    assert BSN_CLIENT not in text
    # the region is a label of the provider-year's info series only
    info = [ln for ln in text.splitlines() if ln.startswith("claimwatch_provider_info{")]
    firing = [ln for ln in text.splitlines() if ln.startswith("claimwatch_alert_firing{")]
    assert len(info) == 1 and 'region="unknown"' in info[0]
    assert len(firing) == 1 and "region=" not in firing[0]
    (alert,) = sim.alerts
    assert alert["rule"] == "zvt_setting_mismatch"
    assert alert["region"] is None  # no contract: no region, as alert.v1.json allows
    assert BSN_CLIENT not in orjson.dumps(alert).decode()

    # A contract names the region (and provider, purchaser) from then on.
    sim.engine.apply_contract(
        Contract("12345678", 2026, 10_000_000, "inkoop-ggz-noord", "GGZ Test", "Twente", 1, 0.0)
    )
    text = WorkerMetrics(sim.engine).exposition()[0].decode()
    info = [ln for ln in text.splitlines() if ln.startswith("claimwatch_provider_info{")]
    assert len(info) == 1 and 'region="Twente"' in info[0]
    assert BSN_CLIENT not in text
