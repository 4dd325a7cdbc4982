"""What the broker lets the worker write: a topic's ``max.message.bytes``.

The worker's largest records are checkpoint chunks on the state changelog. A chunk
above the topic's limit is refused by Kafka (tansu does not enforce the limit, so
no test on the embedded broker would show it), and a refused chunk leaves a header
pointing at a checkpoint that is not there. So the worker asks the broker for the
changelog's limit before it writes, and sizes chunks below it (processor.py).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

log = logging.getLogger("claimwatch.worker")

# Kafka's default for a topic that does not set max.message.bytes (the broker's
# message.max.bytes default). tansu reports only the configs a topic was created
# with: a topic without the entry is taken at this limit, the smallest it can have
# on a Kafka left at its defaults.
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


async def max_message_bytes(bootstrap: str, topic: str, client_kwargs: dict[str, Any]) -> int:
    """The ``max.message.bytes`` of ``topic`` as the broker describes it; Kafka's
    default when the topic does not say, or the broker cannot be asked."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs)
    try:
        await admin.start()
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except Exception as exc:  # noqa: BLE001 - any failure: the safe default
        log.warning(
            "could not read max.message.bytes of %s (%s); assuming Kafka's default %d",
            topic,
            type(exc).__name__,
            KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
        )
        return KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    finally:
        await admin.close()
    return limit_from_response(responses, topic)


def limit_from_response(responses: Any, topic: str) -> int:
    """``max.message.bytes`` out of DescribeConfigs responses, else Kafka's default."""
    for response in responses:
        for resource in response.resources:
            error_code, _message, _type, name, entries = resource[:5]
            if name != topic or error_code:
                continue
            for entry in entries:
                if entry[0] == "max.message.bytes" and str(entry[1]).isdigit():
                    return int(entry[1])
    return KAFKA_DEFAULT_MAX_MESSAGE_BYTES
