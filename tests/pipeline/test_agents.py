"""The Faust plumbing itself, driven with ``agent.test_context()`` (no broker).

The agents of a ``Worker`` get messages put straight into their stream; what they
send to other topics is recorded instead of produced (``Topic.send`` is replaced), and
the state table is Faust's memory store. The real-broker tests in ``test_streaming``
and ``test_faults`` cover the same agents end to end; these pin the wiring: which
topic a message is routed by, what is written to the table, what is published where.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import faust
import faust.topics
import orjson
import pytest

from streams.domain.model import format_time
from streams.domain.policy import load_policy
from streams.domain.rekey import client_token
from streams.pipeline.processor import contract_control, status_flush_control, tick_control
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker
from tests.conftest import AGB

SETTINGS = Settings(broker="127.0.0.1:9", app_id="agents-test", partitions=1)


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Harness:
    worker: Worker
    sent: list[Sent]
    putting: int = 0  # the offset the test context gives the message being put

    @property
    def app(self) -> faust.App:
        return self.worker.app

    @property
    def engine(self) -> Any:
        return self.worker.engine

    @property
    def progress(self) -> dict[str, int]:
        return self.worker.progress

    def state_keys(self) -> set[str]:
        return {k.decode() if isinstance(k, bytes) else k for k in self.app.tables["state"]}

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    async def put(self, agent: Any, topic: str, value: bytes, key: str | None, **kw: Any) -> None:
        """Put one message as if read from ``topic`` and wait until the agent is done."""
        agent.original_channel = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
        mark = f"{topic}:0"
        before = self.progress.get(mark, -1)
        self.putting = agent.sent_offset
        await agent.put(value, key=key.encode() if key else None, partition=0, **kw)
        deadline = time.monotonic() + 10
        while self.progress.get(mark, -1) == before and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert self.progress.get(mark, -1) != before, "the agent did not finish the message"


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    sent: list[Sent] = []

    async def send(self: Any, *, key: Any = None, value: Any = None, headers: Any = None, **_: Any):
        sent.append(Sent(self.get_topic_name(), key, value, dict(headers or {})))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(faust.topics.Topic, "send", send)
    worker = Worker(SETTINGS, load_policy())
    app = worker.app
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()  # without this put() waits for ever (Faust testing docs)
    harness = Harness(worker, sent)

    async def log_start(*tps: Any) -> dict[Any, int]:
        return {tp: harness.putting for tp in tps}

    # No broker to ask where a partition starts (the delivery guard does, when nothing
    # is committed). The test context numbers the messages it puts across topics, so a
    # topic's log starts at the offset of the first message put to it.
    monkeypatch.setattr(app.consumer, "earliest_offsets", log_start)
    yield harness


def batch(*lines: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"schema": "ggz.declaration-batch/1", "provider_agb": AGB, "lines": list(lines)}
    )


def contract(ceiling_cents: int) -> dict[str, Any]:
    return {
        "schema": "ggz.contract/1",
        "provider_agb": AGB,
        "year": 2026,
        "ceiling_cents": ceiling_cents,
        "purchaser": "inkoop-ggz-midden",
        "provider_name": "GGZ Test",
        "region": "Utrecht",
        "version": 1,
        "updated_at": "2026-01-01T00:00:00+01:00",
    }


async def test_a_batch_is_applied_and_persisted_as_a_header_and_one_journal_segment(
    harness, make_line
):
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line(), make_line()), AGB)
    counts = harness.engine.snapshot()["counts"]
    assert counts["accepted"] == 2
    keys = harness.state_keys()
    journal = [k for k in keys if k.startswith(f"j:{AGB}:")]
    assert keys == {f"h:{AGB}", *journal} and len(journal) == 1
    header = orjson.loads(harness.app.tables["state"][f"h:{AGB}"])
    assert header["applied"] == {"d0": 0}  # the offset guard of the message
    assert harness.sent == []  # nothing to publish: no contract, nothing rejected


async def test_the_ingest_agent_beats_the_liveness_heartbeat_for_each_message(harness, make_line):
    heartbeat = harness.worker.heartbeat
    heartbeat.at = -1e9
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), AGB)
    assert heartbeat.at > 0


async def test_poison_is_dead_lettered_with_reason_headers_and_the_agent_keeps_going(
    harness, make_line
):
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        topic = SETTINGS.topic_declarations
        await harness.put(agent, topic, b"{not json", AGB)
        await harness.put(agent, topic, batch(make_line(), make_line(client_ref="123456782")), AGB)
        await harness.put(agent, topic, batch(make_line()), AGB)
    letters = harness.to(SETTINGS.topic_rejected)
    assert [s.headers["reason"] for s in letters] == [b"invalid_json", b"bsn_like_client_ref"]
    assert letters[0].value == b"{not json" and letters[0].key == AGB.encode()
    # the line of a batch is dead-lettered alone, its BSN-shaped client_ref masked
    assert orjson.loads(letters[1].value)["client_ref"] == "*********"
    assert harness.engine.snapshot()["counts"]["accepted"] == 2  # the first and the last


async def test_a_ceiling_crossing_publishes_an_alert_keyed_by_provider(harness, make_line):
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        control = contract_control(contract(100_000))
        await harness.put(agent, SETTINGS.topic_control, control, AGB)
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), AGB)  # 10 %
        assert harness.to(SETTINGS.topic_alerts) == []
        lines = [make_line() for _ in range(6)]  # 70 % with the last one
        await harness.put(agent, SETTINGS.topic_declarations, batch(*lines), AGB)
    (sent,) = harness.to(SETTINGS.topic_alerts)
    event = orjson.loads(sent.value)
    assert sent.key == AGB.encode()
    assert event["alert_id"] == f"ceiling_utilisation:{AGB}:2026:70"
    assert event["purchaser"] == "inkoop-ggz-midden" and event["state"] == "firing"
    crossing = datetime.fromisoformat(lines[-1]["submitted_at"])  # the line that crossed
    assert event["event_time"] == format_time(crossing.timestamp())


async def test_a_message_delivered_again_changes_nothing_and_publishes_nothing(harness, make_line):
    ingest = harness.app.agents["ingest"]
    message = batch(make_line(), make_line())
    async with ingest.test_context() as agent:
        control = contract_control(contract(20_000))  # the second line reaches 100 %
        await harness.put(agent, SETTINGS.topic_control, control, AGB)
        await harness.put(agent, SETTINGS.topic_declarations, message, AGB)
        alerts, snapshot = len(harness.sent), harness.engine.snapshot()["providers"]
        await harness.put(agent, SETTINGS.topic_declarations, message, AGB)  # new offset
    assert len(harness.sent) == alerts == 3  # 70, 90 and 100 % fired once
    assert harness.engine.snapshot()["providers"] == snapshot
    assert harness.engine.snapshot()["counts"]["duplicate"] == 2


async def test_provider_statuses_go_out_at_a_status_flush_and_a_tick_not_per_message(
    harness, make_line
):
    status_topic = SETTINGS.topic_provider_status
    processor = harness.worker.processor
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line(), make_line()), AGB)
        assert harness.to(status_topic) == [] and processor.dirty == {AGB}  # marked only
        await harness.put(agent, SETTINGS.topic_control, status_flush_control(), AGB)
        (first,) = harness.to(status_topic)
        assert processor.dirty == set()
        await harness.put(agent, SETTINGS.topic_control, tick_control(), AGB)
        assert len(harness.to(status_topic)) == 1  # unchanged: not sent again
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), AGB)
        await harness.put(agent, SETTINGS.topic_control, tick_control(), AGB)
    second = harness.to(status_topic)[1]
    assert first.key == second.key == f"{AGB}:2026".encode()
    snapshot = harness.engine.snapshot()["providers"][AGB]["2026"]
    assert orjson.loads(second.value)["indicators"] == snapshot
    assert [orjson.loads(s.value)["indicators"]["consults"] for s in (first, second)] == [2, 3]
    assert "peers" not in harness.app.tables  # the GlobalTable is gone (faust-streaming #283)


async def test_a_keyless_declaration_is_rekeyed_onto_the_control_topic_pseudonymised(
    harness, make_line
):
    line = make_line(client_ref="client-secret-ref", trajectory_id="traj-7", extra="x")
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(line), None)
        offset = harness.putting
    (sent,) = harness.sent
    assert sent.topic == SETTINGS.topic_control and sent.key == AGB.encode()
    assert sent.headers == {"cw-type": b"declarations", "cw-origin": f"0:{offset}".encode()}
    (forwarded,) = orjson.loads(sent.value)["lines"]
    assert b"client-secret-ref" not in sent.value and b"traj-7" not in sent.value
    assert forwarded["client_ref"] == client_token("client-secret-ref")
    assert "extra" not in forwarded and forwarded["trajectory_id"] == "-"
    assert {k: v for k, v in forwarded.items() if k not in ("client_ref", "trajectory_id")} == {
        k: v for k, v in line.items() if k not in ("client_ref", "trajectory_id", "extra")
    }
    assert harness.engine.snapshot()["counts"]["accepted"] == 0  # applied when it comes back


async def test_a_client_counts_once_whether_its_lines_came_keyed_or_rekeyed(harness, make_line):
    # ADHD clients are distinct: the re-keyed line's pseudonym must be the same client
    # as the keyed line's client_ref.
    first = make_line(client_ref="adhd-client", diagnosis_group="adhd")
    second = make_line(client_ref="adhd-client", diagnosis_group="adhd")
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(first), None)
        (sent,) = harness.sent
        await harness.put(agent, SETTINGS.topic_control, sent.value, AGB, headers=sent.headers)
        await harness.put(agent, SETTINGS.topic_declarations, batch(second), AGB)
    year = harness.engine.snapshot()["providers"][AGB]["2026"]
    assert year["adhd_clients"] == {"2026-Q1": 1}
    assert harness.engine.snapshot()["counts"]["accepted"] == 2


async def test_a_rekeyed_copy_resent_after_a_crash_is_skipped_not_counted(harness, make_line):
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), None)
        (sent,) = harness.sent
        for _ in range(2):  # the same origin twice: the second is a re-send
            await harness.put(agent, SETTINGS.topic_control, sent.value, AGB, headers=sent.headers)
    counts = harness.engine.snapshot()["counts"]
    assert (counts["accepted"], counts["duplicate"]) == (1, 0)


async def test_a_message_key_that_is_no_agb_code_never_becomes_a_state_key(harness, make_line):
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        for n in range(5):
            await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), f"junk-{n}")
        await harness.put(agent, SETTINGS.topic_declarations, b"{}", "more-junk")
    assert not [k for k in harness.state_keys() if "junk" in k], harness.state_keys()
    assert set(harness.engine.providers) <= {AGB}
    assert [s.key for s in harness.to(SETTINGS.topic_control)] == [AGB.encode()] * 5
    (rejected,) = harness.to(SETTINGS.topic_rejected)
    assert rejected.headers["reason"] == b"schema"


async def test_a_message_whose_processing_raises_is_dead_lettered_and_the_state_rolled_back(
    harness, make_line, monkeypatch
):
    from streams.domain.state import ProviderState

    accept = ProviderState.accept

    def poisoned(self, line):  # raises after the line reached the state
        outcome = accept(self, line)
        if line.amount_cents == 4_242:
            raise ZeroDivisionError("a defect")
        return outcome

    monkeypatch.setattr(ProviderState, "accept", poisoned)
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), AGB)
        before = harness.engine.snapshot()["providers"]
        poison = batch(make_line(amount_cents=4_242, client_ref="poison-ref"))
        await harness.put(agent, SETTINGS.topic_declarations, poison, AGB)
        assert harness.engine.snapshot()["providers"] == before  # rolled back to the table's
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), AGB)
    (letter,) = harness.to(SETTINGS.topic_rejected)
    assert letter.headers["reason"] == b"processing_error"
    assert letter.headers["detail"] == letter.headers["exception"] == b"ZeroDivisionError"
    assert letter.value == poison
    snapshot = harness.engine.snapshot()
    assert snapshot["counts"]["accepted"] == 2
    assert snapshot["counts"]["rejected"] == {"processing_error": 1}
    assert snapshot["providers"][AGB]["2026"]["net_cents"] == 20_000


async def test_the_contracts_agent_forwards_contracts_by_provider_and_rejects_bad_ones(
    harness, make_line
):
    forward = harness.app.agents["contracts"]
    async with forward.test_context() as agent:
        await agent.put(orjson.dumps(contract(100_000)), key=f"{AGB}:2026".encode())
        await agent.put(b'{"schema": "ggz.contract/1"}', key=b"x")
        deadline = time.monotonic() + 10
        while len(harness.sent) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    forwarded, bad = harness.sent
    assert forwarded.topic == SETTINGS.topic_control and forwarded.key == AGB.encode()
    assert forwarded.value == contract_control(contract(100_000))
    assert bad.topic == SETTINGS.topic_rejected and bad.headers["reason"] == b"contract_schema"


async def test_fausts_own_sensor_reports_into_the_registry_our_metrics_page_serves(harness):
    # Faust adds the monitor to its sensors when the worker starts (not in a test
    # context): tests/pipeline/test_streaming.py reads its counts from a real worker.
    from faust.sensors.prometheus import PrometheusMonitor

    assert isinstance(harness.app.monitor, PrometheusMonitor)
    body, _ = harness.worker.metrics.exposition()  # what GET /metrics returns
    text = body.decode()
    for name in ("faust_messages_received_total", "faust_total_rebalances"):
        assert f"\n{name} " in text, name
    assert "claimwatch_lines_total" in text
