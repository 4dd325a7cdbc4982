"""The Faust app of a worker (streams/pipeline/app.py): its configuration, channels and
state table, built without a broker.

Faust's own views (tables, router, debug pages) stay off; the ingest channel alone
gets the small stream buffer; the RocksDB table its small options. What the web
server then serves is tested in tests/pipeline/test_views.py.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from streams.domain.errors import ClaimwatchError
from streams.domain.policy import load_policy
from streams.kafka.recovery import FetchedHighwaterRecovery
from streams.pipeline.app import (
    ROCKSDB_OPTIONS,
    STREAM_BUFFER_MESSAGES,
    build_app,
    build_channels,
)
from streams.pipeline.processor import MAX_MESSAGE_BYTES
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker

SETTINGS = Settings(broker="127.0.0.1:9", app_id="app-test", partitions=3)


def test_no_broker_is_one_clear_error() -> None:
    with pytest.raises(ClaimwatchError, match="no broker configured: set CLAIMWATCH_BROKER"):
        build_app(SETTINGS.with_(broker=None))


def test_fausts_own_web_views_are_off_and_ours_are_served() -> None:
    conf = build_app(SETTINGS).conf
    assert conf.web_enabled
    assert not (
        conf.web_tables_enabled
        or conf.web_router_enabled
        or conf.web_stats_enabled
        or conf.web_graph_enabled
        or conf.web_metrics_enabled
    )


def test_the_app_commits_at_least_once_and_reads_large_messages() -> None:
    conf = build_app(SETTINGS.with_(rebalance_timeout=8.0)).conf
    assert conf.processing_guarantee.value == "at_least_once"
    assert conf.producer_acks == -1  # every replica has a result before it counts as sent
    assert conf.producer_max_request_size == conf.consumer_max_fetch_size == MAX_MESSAGE_BYTES
    assert conf.stream_wait_empty  # a rebalance waits for the message in hand
    assert conf.broker_session_timeout == conf.broker_rebalance_timeout == 8.0
    assert conf.broker_heartbeat_interval == 2.0
    assert conf.table_standby_replicas == 0


def test_the_table_recovers_with_fetched_highwaters() -> None:
    app = build_app(SETTINGS)
    build_channels(app, SETTINGS)
    assert isinstance(cast(Any, app.tables).recovery, FetchedHighwaterRecovery)


def test_only_the_ingest_channel_has_the_small_stream_buffer() -> None:
    app = build_app(SETTINGS)
    channels = build_channels(app, SETTINGS)
    assert channels.ingest.maxsize == STREAM_BUFFER_MESSAGES == 32
    assert set(channels.ingest.topics) == {SETTINGS.topic_declarations, SETTINGS.topic_control}
    for other in (channels.control, channels.contracts, channels.alerts, channels.status):
        assert other.maxsize != STREAM_BUFFER_MESSAGES, other.topics
    assert channels.control.internal and channels.control.partitions == 3


def test_a_rocksdb_table_gets_the_small_options_and_a_memory_one_none(tmp_path) -> None:
    rocks = SETTINGS.with_(store="rocksdb://", data_dir=tmp_path)
    app = build_app(rocks)
    table = build_channels(app, rocks).state
    assert table.options == ROCKSDB_OPTIONS
    assert ROCKSDB_OPTIONS["block_cache_size"] == ROCKSDB_OPTIONS["write_buffer_size"] == 1 << 20
    memory = build_app(SETTINGS)
    assert not build_channels(memory, SETTINGS).state.options
    # the changelog Faust creates when it is missing takes the records the worker writes
    assert table.extra_topic_configs == {"max.message.bytes": str(MAX_MESSAGE_BYTES)}


def test_the_producer_batches_a_messages_changelog_records_and_the_fetch_wait_is_short():
    settings = Settings.from_env({})
    app = Worker(settings.with_(broker="127.0.0.1:9"), load_policy()).app
    assert app.conf.producer_max_batch_size == settings.producer_batch_bytes == 524288
    assert settings.fetch_wait_ms == 50
    assert Settings.from_env({"CLAIMWATCH_FETCH_WAIT_MS": "10"}).fetch_wait_ms == 10
    with pytest.raises(ClaimwatchError, match="CLAIMWATCH_FETCH_WAIT_MS"):
        Settings.from_env({"CLAIMWATCH_FETCH_WAIT_MS": "0"})


def test_the_ingest_streams_queue_holds_the_small_buffer_though_app_topic_drops_maxsize():
    """README entry 12 (streams/kafka/README.md), both ways: Faust's ``App.topic`` still
    drops ``maxsize`` (when a release passes it on, this fails: give it as an argument),
    and the queue the ingest agent's stream reads from is sized by the attribute set
    on the channel before the agent clones it."""
    app = build_app(SETTINGS)
    assert app.topic("maxsize-probe", maxsize=7).maxsize is None  # the defect
    channels = build_channels(app, SETTINGS)
    stream_channel = channels.ingest.clone(is_iterator=True)  # what an agent's stream does
    assert stream_channel.queue.maxsize == STREAM_BUFFER_MESSAGES
    assert app.conf.stream_buffer_maxsize > STREAM_BUFFER_MESSAGES
