"""The changelog's max.message.bytes, read from the broker, bounds checkpoint chunks."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from streams.domain.engine import Engine
from streams.kafka.limits import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    limit_from_response,
    max_message_bytes,
)
from streams.local.broker import EmbeddedBroker, TopicSpec, ensure_topics
from streams.pipeline.processor import Processor
from streams.store import codec
from tests.conftest import AGB


def _response(topic: str, entries: list[tuple[str, str]], error: int = 0) -> list:
    resource = (error, "", 2, topic, [(k, v, False, 5, False, []) for k, v in entries])
    return [SimpleNamespace(resources=[resource])]


def test_the_limit_is_the_topics_max_message_bytes() -> None:
    entries = [("cleanup.policy", "compact"), ("max.message.bytes", "2000000")]
    assert (
        limit_from_response(_response("cw-state-changelog", entries), "cw-state-changelog")
        == 2_000_000
    )


def test_a_topic_that_does_not_say_is_taken_at_kafkas_default() -> None:
    entries = [("cleanup.policy", "compact")]
    assert limit_from_response(_response("t", entries), "t") == KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    failed = _response("t", [("max.message.bytes", "9")], error=3)  # unknown topic
    assert limit_from_response(failed, "t") == KAFKA_DEFAULT_MAX_MESSAGE_BYTES


@pytest.mark.broker
def test_the_limit_is_read_from_the_embedded_broker(tmp_path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        specs = [
            TopicSpec("big", 1, configs={"max.message.bytes": "2000000"}),
            TopicSpec("plain", 1, configs={"cleanup.policy": "compact"}),
        ]
        asyncio.run(ensure_topics(broker.bootstrap, specs))
        assert asyncio.run(max_message_bytes(broker.bootstrap, "big", {})) == 2_000_000
        got = asyncio.run(max_message_bytes(broker.bootstrap, "plain", {}))
        assert got == KAFKA_DEFAULT_MAX_MESSAGE_BYTES


def test_checkpoint_chunks_stay_below_the_changelogs_limit(policy, make_line) -> None:
    engine = Engine(policy, journal=True)
    lines = [make_line(diagnosis_group="adhd", client_ref=f"c{n % 700}") for n in range(6_000)]
    for start in range(0, len(lines), 500):
        batch = {
            "schema": "ggz.declaration-batch/1",
            "provider_agb": AGB,
            "lines": lines[start : start + 500],
        }
        engine.process(orjson.dumps(batch), AGB)
    processor = Processor(engine, {})
    processor.max_record_bytes = 60_000
    st = engine.providers[AGB]
    entries = processor.chunk_entries(st)
    chunks = [orjson.dumps(c) for c in codec.iter_checkpoint(st, entries)]
    assert len(chunks) > 3, "the state should need several chunks at this limit"
    assert max(len(c) for c in chunks) <= 60_000
    processor.max_record_bytes = None  # not known: the configured chunk size
    assert processor.chunk_entries(st) == processor.checkpoint_chunk
