"""Every topic the pipeline uses, with explicit partitions and configs.

Created up front by ``claimwatch demo`` and the tests (tansu reports only the
configs given at creation), and documented for production, where the platform
team creates them (see docker-compose.yml and deploy/k8s). The declarations topic
and every internal topic keyed by provider must have the same partition count.
"""

from __future__ import annotations

from streams.local.broker import TopicSpec
from streams.pipeline.processor import MAX_MESSAGE_BYTES
from streams.pipeline.settings import Settings

WEEK_MS = str(7 * 24 * 3600 * 1000)
# Every topic the worker writes large records to says so: a topic left at Kafka's
# default (1 MB) refuses a 1000-line batch re-keyed onto the control topic, and the
# worker sizes its checkpoint chunks from the changelog's limit (processor.py).
BIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
# A status record is a few KB; the limit bounds the worker's producer batches,
# which CLAIMWATCH_PRODUCER_BATCH_BYTES caps at 1 MiB of records.
STATUS_MAX_MESSAGE_BYTES = str(2 << 20)
# Faust's assignor topic (``<app_id>-__assignor-__leader``): created by Faust as an
# internal topic when missing; listed here so that it too says what it takes.
LEADER = {"cleanup.policy": "delete", "max.message.bytes": "1048588"}


def topic_specs(settings: Settings) -> list[TopicSpec]:
    n = settings.partitions
    compact = {"cleanup.policy": "compact"}
    keep = {"cleanup.policy": "delete", "retention.ms": "-1"}
    return [
        TopicSpec(settings.topic_declarations, n, configs=keep | BIG),
        TopicSpec(settings.topic_contracts, 1, configs=compact),
        # The department register, read whole by every worker: one partition, compacted.
        TopicSpec(settings.topic_departments, 1, configs=compact),
        TopicSpec(settings.topic_alerts, n, configs=keep),
        TopicSpec(settings.topic_rejected, n, configs=keep | BIG),
        TopicSpec(settings.topic_control, n, configs=control_configs()),
        TopicSpec(state_changelog(settings), n, configs=compact | BIG),
        # Faust's leader election: one partition, never written to.
        TopicSpec(leader_topic(settings), 1, configs=LEADER),
        # One summary per provider-year, read whole by every worker: one partition
        # (one end to catch up to), compacted (streams/pipeline/status.py).
        TopicSpec(
            settings.topic_provider_status,
            1,
            configs={"cleanup.policy": "compact", "max.message.bytes": STATUS_MAX_MESSAGE_BYTES},
        ),
    ]


def control_configs() -> dict[str, str]:
    """The internal control topic: contracts, ticks and re-keyed lines (pseudonymised,
    streams/pipeline/processor.py), kept a week for a worker that is down that long."""
    return {"cleanup.policy": "delete", "retention.ms": WEEK_MS} | BIG


def state_changelog(settings: Settings) -> str:
    return f"{settings.app_id}-state-changelog"


def leader_topic(settings: Settings) -> str:
    return f"{settings.app_id}-__assignor-__leader"
