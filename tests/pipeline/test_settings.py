"""Worker settings from the environment (streams/pipeline/settings.py).

Every bad value is refused with one line that names the variable (the CLI prints it
and exits 1); the security variables' refusals are in tests/security/
test_kafka_security_config.py, with the clients they configure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.domain.errors import ClaimwatchError
from streams.domain.policy import load_policy
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker

REFUSED = [
    ({"CLAIMWATCH_PARTITIONS": "eight"}, "CLAIMWATCH_PARTITIONS='eight' is not a whole number"),
    ({"CLAIMWATCH_PARTITIONS": "0"}, "CLAIMWATCH_PARTITIONS=0 must be between 1 and 1024"),
    ({"CLAIMWATCH_WEB_PORT": "70000"}, "CLAIMWATCH_WEB_PORT=70000 must be between 1 and 65535"),
    ({"CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS": "1.5"}, "CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS="),
    ({"CLAIMWATCH_PRODUCER_BATCH_BYTES": "2097152"}, "CLAIMWATCH_PRODUCER_BATCH_BYTES="),
    ({"CLAIMWATCH_FETCH_WAIT_MS": "0"}, "CLAIMWATCH_FETCH_WAIT_MS=0 must be between"),
    ({"CLAIMWATCH_STORE": "redis://"}, "CLAIMWATCH_STORE='redis://': use memory:// or rocksdb://"),
    ({"CLAIMWATCH_MALLOC": "jemalloc"}, "CLAIMWATCH_MALLOC='jemalloc': use compact or glibc"),
    ({"CLAIMWATCH_TICK_SECONDS": "soon"}, "CLAIMWATCH_TICK_SECONDS='soon' is not a number"),
    ({"CLAIMWATCH_TICK_SECONDS": "-1"}, "CLAIMWATCH_TICK_SECONDS must be > 0"),
    ({"CLAIMWATCH_STATUS_INTERVAL": "x"}, "CLAIMWATCH_STATUS_INTERVAL='x' is not a number"),
    ({"CLAIMWATCH_STATUS_INTERVAL": "7200"}, "CLAIMWATCH_STATUS_INTERVAL must be > 0 and at most"),
]


@pytest.mark.parametrize(("env", "expected"), REFUSED, ids=[next(iter(e)) for e, _ in REFUSED])
def test_each_bad_value_is_refused_in_one_line_naming_the_variable(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ClaimwatchError) as info:
        Settings.from_env(env)
    text = str(info.value)
    assert expected in text and "\n" not in text, text


def test_the_defaults_and_empty_values() -> None:
    default = Settings.from_env({})
    assert default == Settings()  # the environment's defaults are the class's
    assert Settings.from_env({"CLAIMWATCH_PARTITIONS": "", "CLAIMWATCH_APP_ID": ""}) == default
    assert default.topic_control == "claimwatch-control"
    assert default.data_dir == Path("var/worker")


def test_a_replay_gets_a_status_topic_of_its_own_unless_one_is_named() -> None:
    live = Settings.from_env({"CLAIMWATCH_APP_ID": "w"})
    assert live.topic_provider_status == "ggz.provider-status.v1" and not live.replay
    replay = Settings.from_env({"CLAIMWATCH_APP_ID": "r", "CLAIMWATCH_REPLAY": "yes"})
    assert replay.replay and replay.topic_provider_status == "r-provider-status"
    named = {"CLAIMWATCH_REPLAY": "1", "CLAIMWATCH_TOPIC_PROVIDER_STATUS": "mine"}
    assert Settings.from_env(named).topic_provider_status == "mine"


def test_checkpoint_sizes_come_from_the_settings_and_bad_values_are_refused():
    default = Settings.from_env({})
    assert (default.checkpoint_chunk, default.checkpoint_segments) == (50_000, 64)
    env = {"CLAIMWATCH_CHECKPOINT_CHUNK": "15000", "CLAIMWATCH_CHECKPOINT_SEGMENTS": "8"}
    worker = Worker(Settings.from_env(env).with_(broker="127.0.0.1:9"), load_policy())
    processor = worker.processor
    assert (processor.checkpoint_chunk, processor.checkpoint_segments) == (15_000, 8)
    for name, bad in (("CHECKPOINT_CHUNK", "0"), ("CHECKPOINT_SEGMENTS", "many")):
        with pytest.raises(ClaimwatchError, match=f"CLAIMWATCH_{name}"):
            Settings.from_env({f"CLAIMWATCH_{name}": bad})


def test_the_line_index_goes_to_disk_with_the_rocksdb_store_unless_set_to_heap(tmp_path):
    from streams.store.offheap import OffHeapTables

    assert Settings.from_env({}).line_index == "heap"
    rocks = {"CLAIMWATCH_STORE": "rocksdb://", "CLAIMWATCH_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(rocks).line_index == "disk"
    heap = Settings.from_env({**rocks, "CLAIMWATCH_LINE_INDEX": "heap"})
    assert heap.line_index == "heap"
    assert Worker(heap.with_(broker="127.0.0.1:9"), load_policy()).engine.tables is None
    disk = Settings.from_env(rocks).with_(broker="127.0.0.1:9")
    tables = Worker(disk, load_policy()).engine.tables
    assert isinstance(tables, OffHeapTables)
    tables.close()
    with pytest.raises(ClaimwatchError, match="needs CLAIMWATCH_STORE=rocksdb"):
        Settings.from_env({"CLAIMWATCH_LINE_INDEX": "disk"})
    with pytest.raises(ClaimwatchError, match="use heap or disk"):
        Settings.from_env({**rocks, "CLAIMWATCH_LINE_INDEX": "ssd"})
