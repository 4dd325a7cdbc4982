"""The state table's layout (streams/store/layout.py): the journal is bounded by
checkpoints, and recovery rebuilds exactly what was written (no broker needed).

The worker's own handler (``Worker.handle``) is fed without a broker
(``tests/pipeline/feed.py``), with a dict as the state table: each message writes a journal segment and a header;
now and then (and whenever a service year's line index is dropped) a checkpoint
replaces the segments, whose keys get tombstones. A worker recovering from the table
must hold exactly the state of the worker that wrote it, and go on the same way.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from streams.domain.engine import Engine
from streams.domain.policy import load_policy
from streams.pipeline.processor import Processor
from streams.store import codec
from streams.store.codec import STATE_FORMAT
from streams.store.layout import Chunk, JournalLog
from tests.pipeline.feed import Feed
from tests.store.test_codec import malloc_usable_size

PROVIDERS = ("12345678", "23456789")


def stream(seed: int = 5, messages: int = 240) -> list[tuple[str, bytes]]:
    """Keyed messages of two providers, submitted from mid-2024 to 2027: lines of
    service years 2021-2027, credits (some of years dropped meanwhile), redelivered
    messages and lines, ADHD clients, batches."""
    rng = random.Random(seed)
    t = datetime(2024, 6, 1, tzinfo=UTC)
    step = (datetime(2027, 3, 1, tzinfo=UTC) - t) / messages
    debits: dict[str, list[dict[str, Any]]] = {p: [] for p in PROVIDERS}
    sent: list[tuple[str, bytes]] = []
    n = 0
    for _ in range(messages):
        t += step
        agb = rng.choice(PROVIDERS)
        if sent and rng.random() < 0.05:  # a producer redelivers an earlier message
            sent.append(rng.choice(sent))
            continue
        lines = []
        for _ in range(rng.randint(1, 6)):
            n += 1
            at = (t + timedelta(seconds=n)).isoformat()
            mine = debits[agb]
            roll = rng.random()
            if mine and roll < 0.2:
                old = rng.choice(mine)
                # submitted soon after its debit: late, behind the provider's watermark,
                # so a credit of a year dropped meanwhile meets the retention rule
                late = datetime.fromisoformat(old["submitted_at"]) + timedelta(days=1)
                credit = {**old, "kind": "credit", "event_id": f"e{n}"}
                lines.append({**credit, "submitted_at": late.isoformat()})
            elif mine and roll < 0.25:
                lines.append(rng.choice(mine))  # a redelivered line
            else:
                # a service date in the declaration term: up to three years back
                served = t - timedelta(days=rng.randint(0, 3 * 365))
                debit = {
                    "schema": "ggz.declaration/1",
                    "event_id": f"e{n}",
                    "line_id": f"l{n}",
                    "kind": "debit",
                    "provider_agb": agb,
                    "region": "Utrecht",
                    "client_ref": f"c{rng.randint(1, 30)}",
                    "trajectory_id": f"t{n}",
                    "service_date": served.date().isoformat(),
                    "submitted_at": at,
                    "activity": "consult",
                    "consult_mode": rng.choice(["individual", "group"]),
                    "practitioners": rng.randint(1, 5),
                    "digital": rng.random() < 0.3,
                    "setting": rng.choice([1, 5, 8]),
                    "department": rng.choice(["kliniek", "fact", "ambulant"]),
                    "prestatie_code": rng.choice(["CO1", "CO2", "CO3", "CO4"]),
                    "care_demand_type": rng.choice([1, 3]),
                    "diagnosis_group": rng.choice(["adhd", "depression"]),
                    "amount_cents": rng.randint(1, 50_000),
                }
                mine.append(debit)
                lines.append(debit)
        batch = {"schema": "ggz.declaration-batch/1", "provider_agb": agb, "lines": lines}
        sent.append((agb, orjson.dumps(batch)))
    return sent


def make_sim(segments: int = 8, chunk: int = 50_000, store: dict[str, Any] | None = None) -> Feed:
    sim = Feed(load_policy(), clock=lambda: 0.0, store=store)
    sim.processor.checkpoint_segments = segments
    sim.processor.checkpoint_chunk = chunk
    return sim


def recovered(sim: Feed) -> Feed:
    """A new worker that recovers from (a copy of) the table the old one wrote."""
    segments, chunk = sim.processor.checkpoint_segments, sim.processor.checkpoint_chunk
    return make_sim(segments, chunk, store=dict(sim.store)).recover()


def assert_same_state(a: Engine, b: Engine) -> None:
    assert b.snapshot() == a.snapshot()
    assert b.providers.keys() == a.providers.keys()
    for agb, st in a.providers.items():
        other = b.providers[agb]
        assert other.lines == st.lines
        assert other.events == st.events
        assert other.clients == st.clients
        # the dims table is rebuilt in the same order (ids interned across segments)
        assert other.dims == st.dims
        assert {y: ys.to_json() for y, ys in other.years.items()} == {
            y: ys.to_json() for y, ys in st.years.items()
        }
        assert other.open_from == st.open_from
        assert other.alerts.to_json() == st.alerts.to_json()
        log = JournalLog().fields()
        assert codec.header(other, log, 0) == codec.header(st, log, 0)


def offline(messages: list[tuple[str, bytes]]) -> Engine:
    engine = Engine(load_policy(), clock=lambda: 0.0)
    for key, raw in messages:
        engine.process(raw, key)
    return engine


def test_the_stream_exercises_retention_and_checkpoints():
    sim = make_sim()
    for key, raw in stream():
        sim.declarations(key, raw)
    counts = sim.engine.counts()
    assert counts.rejected.get("line_index_expired", 0) > 10
    assert counts.duplicate > 10 and counts.accepted > 500
    assert all(st.open_from == 2024 for st in sim.engine.providers.values())
    assert all(log.generation >= 3 for log in sim.processor.logs.values())


def test_recovery_from_any_point_equals_the_worker_that_wrote_the_table():
    sim = make_sim()
    for i, (key, raw) in enumerate(stream()):
        sim.declarations(key, raw)
        if i % 7 == 0 or i > 225:
            assert_same_state(sim.engine, recovered(sim).engine)


@pytest.mark.parametrize("chunk", [50_000, 7])
def test_streaming_with_a_restart_equals_offline(chunk):
    messages = stream(seed=9)
    sim = make_sim(chunk=chunk)
    for key, raw in messages[:150]:
        sim.declarations(key, raw)
    restarted = recovered(sim)
    restarted.offsets = sim.offsets  # the consumer resumes after the committed offset
    for key, raw in messages[150:]:
        restarted.declarations(key, raw)
    reference = offline(messages)
    assert restarted.engine.snapshot() == reference.snapshot()
    uninterrupted = make_sim(chunk=chunk)
    for key, raw in messages:
        uninterrupted.declarations(key, raw)
    assert_same_state(uninterrupted.engine, restarted.engine)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 50_000])
def test_a_checkpoint_yields_as_many_chunks_as_its_header_counts(chunk):
    """The header's chunk count is taken before the chunks are made (they are encoded
    one at a time as the worker writes them): it must match, exact multiples too."""
    sim = make_sim(chunk=chunk)
    seen = set()
    for key, raw in stream()[:80]:
        sim.declarations(key, raw)
        for st in sim.engine.providers.values():
            n = codec.checkpoint_chunks(st, chunk)
            assert n == len(codec.checkpoint(st, chunk))
            seen.add(n)
    assert len(seen) > 3 or chunk == 50_000  # sizes that cross chunk boundaries were seen


def test_checkpoint_chunks_are_encoded_when_written_in_key_order():
    sim = make_sim(segments=4, chunk=7)
    for i, (key, raw) in enumerate(stream()[:60]):
        out = sim.processor.on_declarations(sim.partition_of(key), i, key, raw)
        chunks = [k for k, v in out.writes.items() if isinstance(v, Chunk)]
        if len(chunks) > 1:
            st = sim.engine.providers[key]
            expected = [orjson.dumps(c) for c in codec.checkpoint(st, 7)]
            assert [v for k, v in out.encoded() if k in chunks] == expected
            return
    pytest.fail("no checkpoint of several chunks in the stream")  # pragma: no cover


def test_the_table_holds_one_checkpoint_and_a_short_journal_per_provider():
    sim = make_sim(segments=8)
    for key, raw in stream():
        sim.declarations(key, raw)
        for agb in sim.engine.providers:
            segments = [k for k in sim.store if k.startswith(f"j:{agb}:")]
            generations = {k.split(":")[2] for k in sim.store if k.startswith(f"k:{agb}:")}
            # a journal of 8 segments or more is a small part of the state: a
            # checkpoint would cost more than it saves (CHECKPOINT_TAIL_RATIO)
            log, st = sim.processor.logs[agb], sim.engine.providers[agb]
            assert len(segments) < 8 or log.records * 8 < codec.checkpoint_entries(st)
            assert len(segments) == log.end - log.base
            assert len(generations) <= 1
    header = orjson.loads(sim.store[f"h:{PROVIDERS[0]}"])
    assert header["format"] == STATE_FORMAT
    # what the table holds sits in blocks of its own size (codec.dumps)
    held = [v for v in sim.store.values() if len(v) > 1_000]
    assert held and all(malloc_usable_size(v) < len(v) + 128 for v in held)
    log = header["log"]
    end, base, generation, chunks = log["end"], log["base"], log["generation"], log["chunks"]
    assert [k for k in sim.store if k.startswith(f"j:{PROVIDERS[0]}:")] == [
        f"j:{PROVIDERS[0]}:{n}" for n in range(base, end)
    ]
    assert chunks == 1 and f"k:{PROVIDERS[0]}:{generation}:0" in sim.store


def test_without_a_checkpoint_a_message_writes_one_segment_and_one_header():
    sim = make_sim(segments=1_000)
    for key, raw in stream()[:40]:
        for out in sim.declarations(key, raw):
            if out.skipped:
                continue
            assert [k.split(":")[0] for k in out.writes] == ["j", "h"] or list(out.writes) == [
                f"h:{key}"
            ]


def test_a_checkpoint_is_written_before_its_header_and_tombstones_after_it():
    sim = make_sim(segments=4)
    for key, raw in stream()[:60]:
        for out in sim.declarations(key, raw):
            kinds = [k.split(":")[0] for k in out.writes]
            if "k" not in kinds:
                assert None not in out.writes.values()
                continue
            header = kinds.index("h")
            assert all(kind == "k" for kind in kinds[:header])
            assert all(out.writes[k] is None for k in list(out.writes)[header + 1 :])
            assert "j" not in kinds[:header]  # the checkpoint replaced this segment


def test_dropping_a_service_year_writes_a_checkpoint_without_it():
    sim = make_sim(segments=1_000)
    agb = PROVIDERS[0]
    base = {
        "schema": "ggz.declaration/1",
        "kind": "debit",
        "provider_agb": agb,
        "region": "Utrecht",
        "client_ref": "c",
        "trajectory_id": "t",
        "activity": "other",
        "setting": 1,
        "care_demand_type": 3,
        "diagnosis_group": "depression",
        "amount_cents": 100,
    }

    def msg(i: int, year: int, at: str) -> bytes:
        line = {
            **base,
            "event_id": f"e{i}",
            "line_id": f"l{i}",
            "service_date": f"{year}-01-01",
            "submitted_at": at,
        }
        return orjson.dumps(line)

    sim.declarations(agb, msg(1, 2022, "2025-03-01T00:00:00Z"))
    sim.declarations(agb, msg(2, 2023, "2025-04-01T00:00:00Z"))
    assert [k for k in sim.store if k.startswith("k:")] == []
    (out,) = sim.declarations(agb, msg(3, 2026, "2026-01-01T00:00:00Z"))
    assert f"k:{agb}:1:0" in out.writes
    checkpoint = orjson.loads(sim.store[f"k:{agb}:1:0"])
    assert sorted(checkpoint["lines"]) == ["2023", "2026"]  # 2022's index dropped
    assert sorted(checkpoint["years"]) == ["2022", "2023", "2026"]  # indicators stay
    assert [k for k in sim.store if k.startswith("j:")] == []
    assert out.writes[f"j:{agb}:0"] is None and out.writes[f"j:{agb}:1"] is None
    assert_same_state(sim.engine, recovered(sim).engine)


def test_a_table_of_an_earlier_format_is_refused_with_a_clear_message():
    engine = Engine(load_policy(), journal=True)
    store = {"h:12345678": orjson.dumps({"journal": 0, "partition": 0})}
    with pytest.raises(RuntimeError, match="earlier claimwatch version"):
        Processor(engine, store).recover(list(store))


@pytest.mark.parametrize("kept", ["chunks only", "chunks and header"])
def test_a_crash_inside_a_checkpoint_loses_nothing_and_leaves_no_garbage(kept):
    """The table gets only a prefix of a checkpointing message's writes; the message is
    redelivered to the recovered worker, which ends equal to one that never crashed."""
    messages = stream(seed=3)
    sim = make_sim(segments=4)
    for i, (key, raw) in enumerate(messages):
        before = dict(sim.store)
        p = sim.partition_of(key)
        offset = next(sim.offsets[p])
        out = sim.processor.on_declarations(p, offset, key, raw)
        kinds = [k.split(":")[0] for k in out.writes]
        if i > 40 and "k" in kinds and kinds.count("k") and None in out.writes.values():
            header = kinds.index("h")
            prefix = list(out.encoded())[: header + (1 if kept == "chunks and header" else 0)]
            sim.store = {**before}
            for k, v in prefix:
                sim.store[k] = v  # type: ignore[assignment]
            break
        if not out.skipped:  # as Worker.handle: nothing of a skipped message is written
            asyncio.run(sim.worker.write(out))
    else:  # pragma: no cover
        pytest.fail("no checkpoint in the stream")
    restarted = recovered(sim)
    restarted.offsets = {q: iter(range(o, 10**9)) for q, o in _next_offsets(sim, p, offset)}
    for key, raw in messages[i:]:  # the crashed message is redelivered (same offset)
        restarted.declarations(key, raw)
    reference = make_sim(segments=4)
    for key, raw in messages:
        reference.declarations(key, raw)
    assert_same_state(reference.engine, restarted.engine)
    # every journal or checkpoint key left is one a header points at
    logs = restarted.processor.logs
    for k in restarted.store:
        if k.startswith(("j:", "k:")):
            owner = k.split(":")[1]
            log = logs[owner]
            if k.startswith("j:"):
                assert log.base <= int(k.split(":")[2]) < log.end, k
            else:
                assert int(k.split(":")[2]) == log.generation, k


def _next_offsets(sim: Feed, crashed: int, offset: int) -> list[tuple[int, int]]:
    """Per partition the offset the consumer resumes at: the crashed message again."""
    resume = []
    for q in range(sim.partitions):
        nxt = next(sim.offsets[q])
        resume.append((q, offset if q == crashed else nxt))
    return resume
