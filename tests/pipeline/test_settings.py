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
    ({"CLAIMWATCH_PARTITIONS": "eight"}, "CLAIMWATCH_PARTITIONS='eight': use a whole number from 1 to 1024"),
    ({"CLAIMWATCH_PARTITIONS": "0"}, "CLAIMWATCH_PARTITIONS='0': use a whole number from 1 to 1024"),
    ({"CLAIMWATCH_WEB_PORT": "70000"}, "CLAIMWATCH_WEB_PORT='70000': use a whole number from 1 to 65535"),
    ({"CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS": "1.5"}, "CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS='1.5': use a whole number"),
    ({"CLAIMWATCH_PRODUCER_BATCH_BYTES": "2097152"}, "CLAIMWATCH_PRODUCER_BATCH_BYTES='2097152': use a whole number from 1 to 1048576"),
    ({"CLAIMWATCH_FETCH_WAIT_MS": "0"}, "CLAIMWATCH_FETCH_WAIT_MS='0': use a whole number from 1 to 10000"),
    ({"CLAIMWATCH_STORE": "redis://"}, "CLAIMWATCH_STORE='redis://': use one of memory://, rocksdb://"),
    ({"CLAIMWATCH_MALLOC": "jemalloc"}, "CLAIMWATCH_MALLOC='jemalloc': use one of compact, glibc"),
    ({"CLAIMWATCH_TICK_SECONDS": "soon"}, "CLAIMWATCH_TICK_SECONDS='soon': use a number greater than 0 and at most 86400"),
    ({"CLAIMWATCH_TICK_SECONDS": "-1"}, "CLAIMWATCH_TICK_SECONDS='-1': use a number greater than 0"),
    ({"CLAIMWATCH_TICK_SECONDS": "nan"}, "CLAIMWATCH_TICK_SECONDS='nan': use a number greater than 0"),
    ({"CLAIMWATCH_STATUS_INTERVAL": "x"}, "CLAIMWATCH_STATUS_INTERVAL='x': use a number greater than 0 and at most 3600"),
    ({"CLAIMWATCH_STATUS_INTERVAL": "7200"}, "CLAIMWATCH_STATUS_INTERVAL='7200': use a number greater than 0 and at most 3600"),
    ({"CLAIMWATCH_STATUS_INTERVAL": "inf"}, "CLAIMWATCH_STATUS_INTERVAL='inf': use a number greater than 0"),
    # booleans: true/false, yes/no, 1/0 in any case, nothing else
    ({"CLAIMWATCH_REPLAY": "treu"}, "CLAIMWATCH_REPLAY='treu': use true or false (or yes/no, 1/0; any case)"),
    ({"CLAIMWATCH_PRODUCER_IDEMPOTENCE": "flase"}, "CLAIMWATCH_PRODUCER_IDEMPOTENCE='flase': use true or false"),
    ({"CLAIMWATCH_PRODUCER_IDEMPOTENCE": "off"}, "CLAIMWATCH_PRODUCER_IDEMPOTENCE='off': use true or false"),
    # enums: one of the known values in any case
    ({"CLAIMWATCH_LOG_LEVEL": "verbose"}, "CLAIMWATCH_LOG_LEVEL='verbose': use one of debug, info, warning, error, critical"),
    ({"CLAIMWATCH_LOG_FORMAT": "logfmt"}, "CLAIMWATCH_LOG_FORMAT='logfmt': use one of text, json"),
    ({"CLAIMWATCH_STORE": "rocksdb://", "CLAIMWATCH_LINE_INDEX": "ssd"}, "CLAIMWATCH_LINE_INDEX='ssd': use one of heap, disk"),
    # the broker list is host:port[,host:port]
    ({"CLAIMWATCH_BROKER": "kafka"}, "CLAIMWATCH_BROKER='kafka': use host:port[,host:port] ('kafka' is not host:port)"),
    ({"CLAIMWATCH_BROKER": "kafka-1:9092,kafka-2"}, "('kafka-2' is not host:port)"),
    ({"CLAIMWATCH_BROKER": "kafka:99999"}, "CLAIMWATCH_BROKER='kafka:99999': use host:port"),
    # a name that is no setting, with the closest one when there is one
    ({"CLAIMWATCH_REPLAYY": "true"}, "unknown setting CLAIMWATCH_REPLAYY (did you mean CLAIMWATCH_REPLAY?)"),
    ({"CLAIMWATCH_WEB_TOKN": "s3cret", "CLAIMWATCH_FROBNICATE": "1"},
     "unknown setting CLAIMWATCH_FROBNICATE, CLAIMWATCH_WEB_TOKN (did you mean CLAIMWATCH_WEB_TOKEN?)"),
]  # fmt: skip


@pytest.mark.parametrize(("env", "expected"), REFUSED, ids=[next(iter(e)) for e, _ in REFUSED])
def test_each_bad_value_is_refused_in_one_line_naming_the_variable(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ClaimwatchError) as info:
        Settings.from_env(env)
    text = str(info.value)
    assert expected in text and "\n" not in text, text
    assert "s3cret" not in text  # a value is quoted, a misnamed one never


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("Yes", True), ("1", True),
     ("false", False), ("False", False), ("NO", False), ("0", False), ("", None)],
)  # fmt: skip
def test_booleans_accept_true_false_yes_no_one_zero_in_any_case(text: str, expected: bool) -> None:
    env = {"CLAIMWATCH_REPLAY": text, "CLAIMWATCH_PRODUCER_IDEMPOTENCE": text}
    settings = Settings.from_env(env)
    default = Settings()
    assert settings.replay == (default.replay if expected is None else expected)
    assert settings.producer_idempotence == (
        default.producer_idempotence if expected is None else expected
    )


def test_enums_accept_any_case_and_keep_their_own_spelling() -> None:
    env = {
        "CLAIMWATCH_LOG_LEVEL": "DEBUG",
        "CLAIMWATCH_LOG_FORMAT": "JSON",
        "CLAIMWATCH_MALLOC": "Glibc",
        "CLAIMWATCH_SECURITY_PROTOCOL": "plaintext",
        "CLAIMWATCH_STORE": "RocksDB:///var/lib/claimwatch",
        "CLAIMWATCH_LINE_INDEX": "HEAP",
    }
    s = Settings.from_env(env)
    assert (s.log_level, s.log_format, s.malloc, s.security_protocol) == (
        "debug", "json", "glibc", "PLAINTEXT"
    )  # fmt: skip
    assert (s.store, s.line_index) == ("rocksdb:///var/lib/claimwatch", "heap")


def test_the_variables_of_other_tools_are_known_and_every_setting_is_documented() -> None:
    """compose's, make audit's and the tests' CLAIMWATCH_* variables pass; the table in
    docs/configuration.md names exactly the known variables (a setting added without
    its line there, or a line without its setting, fails here)."""
    import re

    from streams.pipeline.settings import VARIABLES

    others = {"CLAIMWATCH_BIND": "127.0.0.1", "CLAIMWATCH_AUDIT_IGNORE": "GHSA-x",
              "CLAIMWATCH_SCHEMAS": "", "CLAIMWATCH_KAFKA_HOST": "kafka",
              "CLAIMWATCH_FUZZ_EXAMPLES": "5000"}  # fmt: skip
    assert Settings.from_env(others) == Settings()
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `CLAIMWATCH_([A-Z_]+)`", docs, re.M))
    documented |= set(re.findall(r"^\| `CLAIMWATCH_[A-Z_]+` / `CLAIMWATCH_([A-Z_]+)`", docs, re.M))
    assert documented == set(VARIABLES), documented ^ set(VARIABLES)


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
    with pytest.raises(ClaimwatchError, match="use one of heap, disk"):
        Settings.from_env({**rocks, "CLAIMWATCH_LINE_INDEX": "ssd"})
