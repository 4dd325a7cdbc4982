"""The worker's Kafka producer: idempotent where the broker supports it.

aiokafka retries a produce request that failed on the network (a connection reset,
a request timeout). When the broker had already appended the batch, the retry
appends it a second time: an alert transition, a dead letter or a changelog record
written twice. The idempotent producer (Kafka's ``enable.idempotence``) numbers its
batches so that the broker drops such a repeat.

Faust turns idempotence on only for ``processing_guarantee="exactly_once"``
(``Producer._settings_extra`` in faust/transport/drivers/aiokafka.py) and has no
setting for it, so the transport gets a producer class that asks for it. tansu, the
embedded broker, does not implement it (InitProducerId fails with UnknownError):
``Settings.producer_idempotence`` is off there (streams/cluster.py), and a network
fault can then duplicate a record (docs/operations.md, "Delivery guarantees").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer


class IdempotentProducer(Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


def use_idempotent_producer(app: faust.App) -> None:
    """Make ``app`` create its producer idempotent (call before anything sends)."""
    app.transport.Producer = IdempotentProducer
