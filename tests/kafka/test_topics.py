"""Every topic the pipeline uses (streams/kafka/topics.py): partitions and configs.

That deploy/ creates the same topics with the same configs is tested in tests/deploy
(test_compose.py, test_k8s.py); here, what the specs themselves promise.
"""

from __future__ import annotations

from streams.kafka.topics import (
    LEADER,
    STATUS_MAX_MESSAGE_BYTES,
    WEEK_MS,
    control_configs,
    leader_topic,
    state_changelog,
    topic_specs,
)
from streams.pipeline.processor import MAX_MESSAGE_BYTES
from streams.pipeline.settings import Settings

SETTINGS = Settings(app_id="topics-test", partitions=6)


def specs(settings: Settings = SETTINGS) -> dict[str, tuple[int, dict[str, str]]]:
    return {s.name: (s.partitions, s.configs) for s in topic_specs(settings)}


def test_every_topic_the_worker_reads_or_writes_is_listed_once() -> None:
    s = SETTINGS
    names = [spec.name for spec in topic_specs(s)]
    assert len(names) == len(set(names))
    assert set(names) == {
        s.topic_declarations,
        s.topic_contracts,
        s.topic_departments,
        s.topic_alerts,
        s.topic_rejected,
        s.topic_control,
        s.topic_provider_status,
        "topics-test-state-changelog",
        "topics-test-__assignor-__leader",
    }
    assert state_changelog(s) == "topics-test-state-changelog"
    assert leader_topic(s) == "topics-test-__assignor-__leader"  # the name Faust gives it


def test_the_topics_keyed_by_provider_are_co_partitioned_with_the_declarations() -> None:
    got = specs()
    for name in (
        SETTINGS.topic_declarations,
        SETTINGS.topic_control,
        state_changelog(SETTINGS),
        SETTINGS.topic_alerts,
        SETTINGS.topic_rejected,
    ):
        assert got[name][0] == 6, name
    assert specs(SETTINGS.with_(partitions=2))[SETTINGS.topic_control][0] == 2


def test_topics_that_take_large_records_say_so() -> None:
    got = specs()
    big = str(MAX_MESSAGE_BYTES)
    for name in (
        SETTINGS.topic_declarations,  # a batch message
        SETTINGS.topic_rejected,  # a whole dead-lettered message
        SETTINGS.topic_control,  # a batch re-keyed by provider
        state_changelog(SETTINGS),  # checkpoint chunks
    ):
        assert got[name][1]["max.message.bytes"] == big, name
    assert "max.message.bytes" not in got[SETTINGS.topic_alerts][1]  # alerts are small


def test_retention_and_compaction_of_each_topic() -> None:
    got = specs()
    policy = {name: configs["cleanup.policy"] for name, (_, configs) in got.items()}
    assert policy[SETTINGS.topic_contracts] == "compact"  # the latest version per key
    assert policy[SETTINGS.topic_departments] == "compact"
    assert policy[state_changelog(SETTINGS)] == "compact"
    for name in (SETTINGS.topic_declarations, SETTINGS.topic_alerts, SETTINGS.topic_rejected):
        assert (policy[name], got[name][1]["retention.ms"]) == ("delete", "-1"), name
    # the control topic: kept a week, for a worker that is down that long
    assert control_configs() == got[SETTINGS.topic_control][1]
    assert got[SETTINGS.topic_control][1]["retention.ms"] == WEEK_MS == str(604_800_000)


def test_the_provider_status_topic_is_one_compacted_partition() -> None:
    partitions, configs = specs()[SETTINGS.topic_provider_status]
    assert partitions == 1  # one end for every worker to catch up to
    assert configs == {"cleanup.policy": "compact", "max.message.bytes": STATUS_MAX_MESSAGE_BYTES}
    assert int(STATUS_MAX_MESSAGE_BYTES) >= 1 << 20  # a producer batch (at most 1 MiB) fits
    replay = Settings.from_env({"CLAIMWATCH_REPLAY": "true", "CLAIMWATCH_APP_ID": "r1"})
    assert "r1-provider-status" in specs(replay)  # a replay's summaries stay out of the live one


def test_the_leader_topic_is_one_partition_that_says_what_it_takes() -> None:
    partitions, configs = specs()[leader_topic(SETTINGS)]
    assert partitions == 1
    assert configs == LEADER == {"cleanup.policy": "delete", "max.message.bytes": "1048588"}
