"""Fault tests against the real broker (issue #6).

Every test drives real worker processes on tansu through one fault and ends with the
comparison of SPEC §6 against the offline replay of the same input: equal snapshot,
equal line-driven alerts (ids, sequence, state, event time, value), equal set of
firing alerts after the final tick, and no alert transition published twice.

Faults are injected at seeded random points; the schedule each test used is in its
assertion messages. Histories are small (a few thousand lines) so the whole module
stays within a few minutes on two shared cores: tansu's group join costs ~3 s per
rebalance with the 6 s session timeout these tests use.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.domain.model import format_time, parse_time
from streams.kafka.topics import state_changelog
from streams.local.cluster import Cluster
from streams.pipeline.processor import MAX_MESSAGE_BYTES
from streams.pipeline.worker import DEAD_LETTER_MAX_BYTES
from streams.replay.offline import replay_offline
from tests.pipeline.harness import (
    Background,
    assert_equal_results,
    finish,
    merge_ends,
    offline_reference,
    processed,
    produce,
    read_partitions,
    topic_copies,
    wait_until,
    with_copies_counted,
    write_lines,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SEED = 20260406


def history_lines(files: list[Path]) -> list[bytes]:
    return [line for f in files for line in f.read_bytes().splitlines() if line.strip()]


def wait_advance(cluster: Cluster, by: int, producing: Background, what: str) -> int:
    """Until `by` more declarations messages are processed (or production is over);
    returns the count reached."""
    start = processed(cluster)
    wait_until(
        lambda: processed(cluster) >= start + by or producing.done(),
        180,
        f"{what}: {by} more messages processed after {start}",
    )
    return processed(cluster)


# -- a. worker SIGKILL ---------------------------------------------------------------


def test_worker_sigkilled_at_random_points_recovers_without_loss_or_double_counting(
    cluster, small_history, policy, tmp_path: Path
) -> None:
    """Three SIGKILLs in one stream, each at a seeded random point: after a random
    number of further messages while the worker is processing, or a random fraction
    of a second after a restarted worker got its partitions (while it rebuilds its
    state from the changelog and reads the alerts topic). Each kill is followed by a
    restart; the stream goes on meanwhile."""
    files, contracts = small_history
    reference = offline_reference(files, contracts, policy, tmp_path)
    rnd = random.Random(SEED)
    worker = cluster.add_worker()
    cluster.wait_ready()
    producing = Background(produce, cluster, files, contracts, batch_size=40, rate=160)
    kills: list[str] = []
    for n in range(3):
        if n and rnd.random() < 0.5:
            delay = rnd.uniform(0.0, 1.0)
            wait_until(
                lambda: any(st["assigned"] for st in cluster.statuses()),
                120,
                "the restarted worker gets its partitions",
            )
            time.sleep(delay)
            kills.append(f"{delay:.2f} s after the restart got its partitions")
        else:
            cluster.wait_ready()
            reached = wait_advance(cluster, rnd.randint(2, 12), producing, f"kill {n + 1}")
            time.sleep(rnd.uniform(0.0, 0.2))
            kills.append(f"after message {reached}")
        cluster.restart_worker(worker)
    cluster.wait_ready()
    stats = producing.result()
    online = finish(cluster, stats, policy)
    assert len(kills) == 3
    assert_equal_results(online, reference, f"kills: {kills}")


def test_a_restarted_worker_sends_what_its_alert_outbox_holds_and_the_topic_lacks(
    cluster,
) -> None:
    """The deterministic case of the kills above: a worker died after its state
    recorded an alert and before the broker acknowledged the alert. The changelog then
    holds the partition's alert outbox with the transition (planted here); the
    restarted worker reads it at recovery and sends it, once."""
    worker = cluster.add_worker()
    cluster.wait_ready()
    cluster.kill_worker(worker)
    event = {
        "schema": "ggz.alert/1",
        "alert_id": "ceiling_utilisation:12345678:2026:70",
        "rule": "ceiling_utilisation",
        "state": "firing",
        "sequence": 1,
        "provider_agb": "12345678",
        "year": 2026,
    }
    changelog = state_changelog(cluster.settings)

    async def plant() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=cluster.settings.broker, **cluster.settings.kafka_client_kwargs()
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                changelog, orjson.dumps([event]), key=orjson.dumps("a:2"), partition=2
            )
        finally:
            await producer.stop()

    asyncio.run(plant())
    cluster.start_worker(worker)
    cluster.wait_ready()
    alerts_topic = cluster.settings.topic_alerts

    def sent() -> list[dict[str, Any]]:
        return [orjson.loads(v) for _k, v, _h in cluster.read_topic(alerts_topic, timeout=5.0)]

    wait_until(lambda: event in sent(), 60, "the outbox's alert on the alerts topic")
    cluster.restart_worker(worker)  # the topic has it now: not sent again
    cluster.wait_ready()
    assert sent() == [event]


# -- b. broker outage ----------------------------------------------------------------


def test_broker_unreachable_mid_stream_the_worker_reconnects_and_resumes(
    proxied_cluster, small_history, policy, tmp_path: Path
) -> None:
    """The broker goes away twice while the worker processes a stream, and comes back
    with its data; the same worker process reconnects and carries on.

    Why not restart tansu: the embedded tansu keeps everything in memory
    (`--storage-engine memory://`; this build has no other engine usable without an
    external database or object store), so a restarted broker is empty. Topics,
    records, committed offsets and changelogs are gone, and there is nothing left to
    compare with the offline reference. What a broker restart means to the worker is
    the broker being unreachable for a while and then answering again with its data,
    and that is what this test does, in two forms:

    1. the broker hangs: its process is SIGSTOPped for a few seconds (connections stay
       open, nothing is answered), then SIGCONTed;
    2. the broker is unreachable: every client reaches tansu through a TCP proxy
       (tansu advertises the proxy's address), which resets every open connection and
       refuses new ones for longer than the session timeout, then accepts again.

    The test's producer goes through the same proxy, as producers would.
    """
    cluster = proxied_cluster
    broker = cluster.proxied
    files, contracts = small_history
    reference = offline_reference(files, contracts, policy, tmp_path)
    rnd = random.Random(SEED + 1)
    worker = cluster.add_worker()
    cluster.wait_ready()
    sent: list[tuple[str, bytes | None, bytes]] = []
    producing = Background(produce, cluster, files, contracts, batch_size=40, rate=200, sent=sent)

    wait_advance(cluster, rnd.randint(5, 20), producing, "before the hang")
    hang = rnd.uniform(3.0, 6.0)
    broker.pause()
    time.sleep(hang)
    broker.resume()
    resumed = wait_advance(cluster, rnd.randint(10, 20), producing, "after the hang")

    outage = rnd.uniform(8.0, 10.0)  # beyond the 6 s session timeout
    broker.proxy.cut()
    time.sleep(outage)
    broker.proxy.restore()
    wait_advance(cluster, 5, producing, "after the outage")

    stats = producing.result()
    online = finish(cluster, stats, policy)
    faults = f"hang {hang:.1f} s, outage {outage:.1f} s after message {resumed}"
    # Every message produced is on the topic, and nothing else but copies of them: the
    # test's producer is not idempotent either (tansu), and a request it retried after
    # the cut can have put messages on the topic twice. Their lines the worker rightly
    # counts as `duplicate` (or refuses again, for what the line is): the one
    # difference allowed from the offline replay of the input.
    copies = topic_copies(cluster, sent)
    faults += f"; {len(copies)} lines written twice by a retry"
    expected = with_copies_counted(reference, copies, policy, tmp_path / "copies")
    assert worker.proc is not None and worker.proc.poll() is None, (
        f"the worker exited ({faults}); see {worker.log_path}"
    )
    # tansu has no idempotent producers: a produce request the worker retries after
    # the proxy reset its connection can leave an identical copy of an alert record.
    assert_equal_results(online, expected, faults, producer_retries=True)


# -- c. rebalance ----------------------------------------------------------------------


def test_second_worker_joins_and_leaves_mid_stream(
    cluster, small_history, policy, tmp_path: Path
) -> None:
    """A second worker joins while the first is processing (partitions move to it,
    with their state), and later leaves with SIGTERM (they move back). Each move is a
    rebalance with at-least-once redelivery of what was not yet committed."""
    files, contracts = small_history
    reference = offline_reference(files, contracts, policy, tmp_path)
    rnd = random.Random(SEED + 2)
    first = cluster.add_worker()
    cluster.wait_ready()
    producing = Background(produce, cluster, files, contracts, batch_size=40, rate=200)

    wait_advance(cluster, rnd.randint(5, 20), producing, "before the join")
    second = cluster.add_worker()
    cluster.wait_ready()
    held = [set(st["assigned"]) for st in cluster.statuses()]
    assert len(held) == 2 and all(held) and not (held[0] & held[1]), held
    wait_advance(cluster, rnd.randint(10, 25), producing, "with two workers")

    cluster.kill_worker(second, signal.SIGTERM)
    assert second.proc is not None and second.proc.returncode == 0, (
        f"the leaving worker exited with {second.proc and second.proc.returncode}"
    )
    cluster.wait_ready()
    assert [st["assigned"] for st in cluster.statuses()] == [[0, 1, 2, 3]]

    stats = producing.result()
    online = finish(cluster, stats, policy)
    assert first.proc is not None and first.proc.poll() is None
    assert_equal_results(online, reference, f"partitions while both ran: {held}")


# -- d. redelivery storm ---------------------------------------------------------------


def test_the_same_batches_produced_three_times(
    cluster, small_history, policy, tmp_path: Path
) -> None:
    """A producer that re-sends everything (no idempotence, retries after timeouts):
    the same batches three times, at new offsets, so the worker's offset guard does not
    apply and event ids must make the second and third copy no-ops. The reference is
    the offline replay of the archive three times over (each repeated line counts as a
    duplicate there too); contracts are sent once, where their event time puts them
    (those after the last line after the third pass)."""
    files, contracts = small_history
    lines = history_lines(files)
    last = max(parse_time(orjson.loads(x)["submitted_at"]) for x in lines if _is_json(x))
    crows = contracts.read_bytes().splitlines()
    early = [c for c in crows if parse_time(orjson.loads(c)["updated_at"]) <= last]
    late = [c for c in crows if parse_time(orjson.loads(c)["updated_at"]) > last]
    early_file = write_lines(tmp_path / "contracts-early.ndjson", early)
    late_file = write_lines(tmp_path / "contracts-late.ndjson", late)
    reference = offline_reference(files * 3, contracts, policy, tmp_path)

    cluster.add_worker()
    cluster.wait_ready()
    stats = produce(cluster, files, early_file, batch_size=100)
    sent = asyncio.run(
        read_partitions(cluster.settings.broker or "", cluster.settings.topic_declarations)
    )
    assert len(sent) == stats.messages
    again = [
        send_messages(cluster, [(key, value) for _p, _o, key, value in sent]) for _ in range(2)
    ]
    stats.end_offsets = merge_ends(
        stats.end_offsets, *again, produce(cluster, [], late_file).end_offsets
    )
    online = finish(cluster, stats, policy)
    assert online["snapshot"]["counts"]["duplicate"] >= 2 * len(lines) - 20
    assert_equal_results(online, reference)


# -- e. out-of-order and late events ----------------------------------------------------


def test_out_of_order_and_late_events(cluster, small_history, policy, tmp_path: Path) -> None:
    """Event times out of order across providers (each provider's lines arrive with a
    seeded delay of up to four months against the others'), and late lines: debits
    with service dates months back that arrive after the year has turned (they count
    in their service year's contract), credits of old lines arriving months later,
    and 2026 zorgvraagtype/setting mismatches among the late lines. Archive and stream
    carry the lines in the same (disordered) order."""
    files, contracts = small_history
    rnd = random.Random(SEED + 4)
    lines = [orjson.loads(x) for x in history_lines(files) if _is_json(x)]
    valid = [x for x in lines if isinstance(x, dict) and "submitted_at" in x]
    delay = {p: rnd.uniform(0, 120 * 86400) for p in sorted({x["provider_agb"] for x in valid})}
    arrival = sorted(
        (
            (parse_time(x["submitted_at"]) + delay[x["provider_agb"]], i)
            for i, x in enumerate(valid)
        ),
    )
    ordered = [valid[i] for _, i in arrival]
    assert _lateness(ordered) > 60 * 86400, "lines should arrive months after later-dated ones"

    debits_2025 = [x for x in ordered if x["kind"] == "debit" and x["service_date"] < "2025-07"]
    late: list[dict[str, Any]] = []
    for n, old in enumerate(rnd.sample(debits_2025, 60)):
        late.append(
            {
                **old,
                "event_id": f"late-{n}",
                "line_id": f"late-{n}",
                "service_date": f"2025-{rnd.randint(1, 6):02d}-03",
                "submitted_at": f"2026-0{rnd.randint(2, 5)}-1{rnd.randint(0, 9)}T09:00:00+01:00",
            }
        )
    for n, old in enumerate(rnd.sample(debits_2025, 15)):
        late.append(
            {
                **old,
                "event_id": f"late-credit-{n}",
                "kind": "credit",
                "submitted_at": f"2026-0{rnd.randint(2, 5)}-2{rnd.randint(0, 8)}T10:00:00+01:00",
            }
        )
    for n, old in enumerate(rnd.sample([x for x in ordered if x["service_date"] >= "2026"], 5)):
        late.append(
            {
                **old,
                "event_id": f"late-zvt-{n}",
                "line_id": f"late-zvt-{n}",
                "activity": "stay",
                "stay_days": 2,
                "setting": 5,
                "care_demand_type": 1,
                "submitted_at": f"2026-0{rnd.randint(2, 5)}-0{rnd.randint(1, 9)}T11:00:00+01:00",
                **{k: None for k in ("consult_mode", "practitioners", "digital")},
            }
        )
    for line in late:  # scattered over the last third of the stream
        for k in [k for k, v in line.items() if v is None]:
            del line[k]
        ordered.insert(rnd.randint(len(ordered) * 2 // 3, len(ordered)), line)
    archive = write_lines(tmp_path / "disordered.ndjson", [orjson.dumps(x) for x in ordered])
    reference = offline_reference([archive], contracts, policy, tmp_path)
    assert any(a["rule"] == "zvt_setting_mismatch" for a in reference["alerts"])

    cluster.add_worker()
    cluster.wait_ready()
    stats = produce(cluster, [archive], contracts, batch_size=100)
    online = finish(cluster, stats, policy)
    assert_equal_results(online, reference)


def _lateness(lines: list[dict[str, Any]]) -> float:
    """How far (seconds) the latest event time seen so far runs ahead of a line's, at most."""
    latest, worst = float("-inf"), 0.0
    for x in lines:
        t = parse_time(x["submitted_at"])
        latest = max(latest, t)
        worst = max(worst, latest - t)
    return worst


def _is_json(raw: bytes) -> bool:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("submitted_at"), str)


# -- f. very large and malformed messages ---------------------------------------------


def test_large_and_malformed_messages_mixed_into_the_stream(
    cluster, small_history, policy, tmp_path: Path
) -> None:
    """1000-line batches (the SPEC's maximum) carry the history, malformed lines are
    mixed into it (the offline replay reads those too), and malformed messages that
    no archive line can express arrive in between: binary garbage, truncated and
    empty messages, a batch envelope without a line list, a 1001-line batch, batches
    of another provider than their key, keyless garbage, keyless batches that name
    their provider (re-keyed by the worker, their lines processed), and messages
    beyond the maximum message size (16 MiB), keyed and keyless.

    Expected: the snapshot equals the offline one except for the rejection counts of
    the message-level faults, every rejection is on the dead-letter topic with its
    reason (a payload too large for a dead letter is cut, with its size in a header),
    and the worker keeps running."""
    s = cluster.settings
    files, contracts = small_history
    rnd = random.Random(SEED + 5)
    lines = history_lines(files)
    sizes: dict[str, int] = {}
    for x in lines:
        if _is_json(x):
            agb = orjson.loads(x).get("provider_agb")
            sizes[agb] = sizes.get(agb, 0) + 1
    big, other = sorted(sizes, key=lambda p: -sizes[p])[:2]
    assert sizes[big] >= 1000, "a provider should fill a 1000-line batch"
    sample = orjson.loads(
        next(x for x in lines if _is_json(x) and orjson.loads(x).get("provider_agb") == big)
    )

    def line(n: int, agb: str = big, **changes: Any) -> dict[str, Any]:
        return {
            **sample,
            "provider_agb": agb,
            "event_id": f"f-{agb}-{n}",
            "line_id": f"f-{agb}-{n}",
            **changes,
        }

    # Malformed lines inside the archive: the offline replay sees them as well.
    bad_lines = [
        b"{not json",
        b'["a", "list"]',
        orjson.dumps({k: v for k, v in line(1).items() if k != "region"}),
        orjson.dumps(line(2, client_ref="123456789")),
        orjson.dumps(line(3, amount_cents=0)),
        orjson.dumps(line(4, kind="credit", line_id="never-debited")),
        orjson.dumps(line(5, service_date="2026-02-30")),
    ]
    mixed = list(lines)
    for raw in bad_lines:
        mixed.insert(rnd.randint(0, len(mixed)), raw)
    archive = write_lines(tmp_path / "mixed.ndjson", mixed)

    # Keyless batches that name their provider: processed after re-keying. A provider
    # of their own, so where they fall in the stream does not matter.
    fresh = "99000017"
    keyless_lines = [orjson.dumps(line(10 + n, agb=fresh)) for n in range(6)]
    keyless = [
        (None, _envelope(fresh, keyless_lines[:4])),
        (None, keyless_lines[4]),
        (None, keyless_lines[5]),
    ]
    reference = offline_reference(
        [write_lines(tmp_path / "keyless.ndjson", keyless_lines), archive],
        contracts,
        policy,
        tmp_path,
    )

    huge_line = orjson.dumps(line(30, note="x" * (MAX_MESSAGE_BYTES + 1000)))
    garbage: list[tuple[bytes | None, bytes, list[str]]] = [
        (big.encode(), b"\x00\xff\xfe binary", ["invalid_json"]),
        (big.encode(), _envelope(big, [orjson.dumps(line(40))])[:-7], ["invalid_json"]),
        (big.encode(), b"", ["invalid_json"]),
        (
            big.encode(),
            orjson.dumps({"schema": "ggz.declaration-batch/1", "provider_agb": big, "lines": "x"}),
            ["invalid_batch"],
        ),
        (
            big.encode(),
            _envelope(big, [orjson.dumps(line(1000 + n)) for n in range(1001)]),
            ["invalid_batch"],
        ),
        (
            big.encode(),
            _envelope(other, [orjson.dumps(line(50 + n, agb=other)) for n in range(2)]),
            ["batch_provider_mismatch"] * 2,
        ),
        (
            big.encode(),
            _envelope(big, [orjson.dumps(line(60, agb=other))]),
            ["batch_provider_mismatch"],
        ),
        (None, b"keyless garbage", ["invalid_json"]),
        (big.encode(), _envelope(big, [huge_line]), ["message_too_large"]),
        (None, _envelope(fresh, [huge_line]), ["message_too_large"]),
    ]
    extra = sorted(r for _k, _v, reasons in garbage for r in reasons)

    worker = cluster.add_worker()
    cluster.wait_ready()
    keyless_ends = send_messages(cluster, [(k, v) for k, v in keyless])
    wait_until(
        lambda: cluster.snapshot(policy)[0]["counts"]["accepted"] >= len(keyless_lines),
        60,
        "the keyless lines re-keyed and processed",
    )
    producing = Background(produce, cluster, [archive], contracts, batch_size=1000)
    order = list(garbage)
    rnd.shuffle(order)
    garbage_ends = []
    for key, value, _ in order:
        time.sleep(rnd.uniform(0.0, 1.0))
        garbage_ends.append(send_messages(cluster, [(key, value)]))
    stats = producing.result()
    stats.end_offsets = merge_ends(stats.end_offsets, keyless_ends, *garbage_ends)
    online = finish(cluster, stats, policy)

    assert cluster.alive() == [worker], f"the worker died; see {worker.log_path}"
    expected = orjson.loads(orjson.dumps(reference["snapshot"]))
    for reason in extra:
        rejected = expected["counts"]["rejected"]
        rejected[reason] = rejected.get(reason, 0) + 1
    expected["counts"]["rejected"] = dict(sorted(expected["counts"]["rejected"].items()))
    assert_equal_results(online, {**reference, "snapshot": expected})

    letters = cluster.read_topic(s.topic_rejected)
    assert sorted(h["reason"].decode() for _k, _v, h in letters) == sorted(
        reference["rejected"] + extra
    )
    for _k, value, headers in letters:
        assert len(value) <= DEAD_LETTER_MAX_BYTES
        if headers["reason"] == b"message_too_large":
            assert int(headers["original_bytes"]) > MAX_MESSAGE_BYTES
    assert all(b"123456789" not in v for _k, v, _h in letters)


def _envelope(agb: str, lines: list[bytes]) -> bytes:
    return (
        b'{"schema":"ggz.declaration-batch/1","provider_agb":"'
        + agb.encode()
        + b'","lines":['
        + b",".join(lines)
        + b"]}"
    )


def send_messages(cluster: Cluster, messages: list[tuple[bytes | None, bytes]]) -> dict[int, int]:
    """Send raw messages to the declarations topic; the last offset per partition."""
    from aiokafka import AIOKafkaProducer

    async def send() -> dict[int, int]:
        producer = AIOKafkaProducer(
            bootstrap_servers=cluster.settings.broker, max_request_size=64 * 1024 * 1024
        )
        await producer.start()
        ends: dict[int, int] = {}
        try:
            for key, value in messages:
                meta = await producer.send_and_wait(
                    cluster.settings.topic_declarations, value, key=key
                )
                ends[meta.partition] = max(ends.get(meta.partition, -1), meta.offset)
        finally:
            await producer.stop()
        return ends

    return asyncio.run(send())


# -- g. a contract after the declarations it governs ---------------------------------


def test_contract_arriving_after_the_declarations_it_governs(
    cluster, small_history, policy, tmp_path: Path
) -> None:
    """A provider-year's contract arrives only after its declarations (the purchaser
    signs late), then is adjusted twice. The ceiling rule fires on the contract event,
    with event_time = the contract's updated_at, exactly as the offline replay (which
    merges contracts by event time) does: the contract versions are dated after the
    provider-year's last line, so archive order, event-time order and arrival order
    agree. Version 1 puts the provider at 95 % (70 and 90 fire), version 2 raises the
    ceiling (both resolve), version 3 lowers it below the net amount (70, 90 and 100
    fire)."""
    files, contracts = small_history
    crows = [orjson.loads(c) for c in contracts.read_bytes().splitlines()]
    _, bare = replay_offline(files, policy)  # no contracts: the provider-years' net amounts
    year = 2025
    agb = max(
        (p for p, st in bare.providers.items() if year in st.years),
        key=lambda p: bare.providers[p].years[year].net_cents,
    )
    net = bare.providers[agb].years[year].net_cents
    last = max(
        parse_time(orjson.loads(x)["submitted_at"])
        for x in history_lines(files)
        if _is_json(x)
        and orjson.loads(x).get("provider_agb") == agb
        and str(orjson.loads(x).get("service_date")).startswith(str(year))
    )
    template = next(c for c in crows if c["provider_agb"] == agb and c["year"] == year)
    kept = [c for c in crows if c["provider_agb"] == agb and c["year"] != year]
    versions = [(1, net * 100 // 95, 1), (2, net * 2, 2), (3, net * 100 // 105, 3)]
    late = [
        {
            **template,
            "version": v,
            "ceiling_cents": ceiling,
            "updated_at": _rfc3339(last + days * 86400),
        }
        for v, ceiling, days in versions
    ]
    contract_file = write_lines(
        tmp_path / "contracts-late.ndjson", [orjson.dumps(c) for c in kept + late]
    )
    # That provider's lines only: the other providers add time, not coverage.
    archive = write_lines(
        tmp_path / "provider.ndjson",
        [
            x
            for x in history_lines(files)
            if _is_json(x) and orjson.loads(x).get("provider_agb") == agb
        ],
    )
    reference = offline_reference([archive], contract_file, policy, tmp_path)

    cluster.add_worker()
    cluster.wait_ready()
    stats = produce(cluster, [archive], contract_file, batch_size=100)
    online = finish(cluster, stats, policy)
    assert_equal_results(online, reference)

    prefix = f"ceiling_utilisation:{agb}:{year}:"
    fired = sorted(
        (a["event_time"], a["alert_id"].removeprefix(prefix), a["state"])
        for a in online["alerts"]
        if a["alert_id"].startswith(prefix)
    )
    t1, t2, t3 = (format_time(parse_time(c["updated_at"])) for c in late)
    assert [(t, d, st) for t, d, st in fired if t in (t1, t2, t3)] == [
        (t1, "70", "firing"),
        (t1, "90", "firing"),
        (t2, "70", "resolved"),
        (t2, "90", "resolved"),
        (t3, "100", "firing"),
        (t3, "70", "firing"),
        (t3, "90", "firing"),
    ], fired


def _rfc3339(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
