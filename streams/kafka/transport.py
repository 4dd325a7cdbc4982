"""The worker's Kafka clients: broker URLs, credentials, and Faust's aiokafka transport
with the two changes the worker needs (a short fetch wait, a draining producer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver

from streams.kafka.producer import DrainingProducer, IdempotentProducer

if TYPE_CHECKING:
    from streams.pipeline.settings import Settings


def broker_urls(broker: str) -> str:
    """``host:port,host:port`` as Faust's broker URL list."""
    return ";".join(f"kafka://{b.strip()}" for b in broker.split(",") if b.strip())


def transport_class(
    fetch_wait_ms: int, idempotent: bool = False
) -> type[aiokafka_driver.Transport]:
    """Faust's aiokafka transport, its consumer fetching with ``fetch_wait_ms``, its
    producer draining before commits and, when ``idempotent``, idempotent
    (streams/kafka/producer.py).

    Faust's driver fixes the consumer's fetch_max_wait_ms at 1500 and offers no
    setting. aiokafka keeps one fetch in flight per broker, for the partitions that
    have no fetched records waiting. When those are only idle ones (control and
    contracts topics) the broker holds that fetch for the whole wait, and the
    declarations partitions, drained by the agent meanwhile, cannot be fetched again
    until it returns: with a full input topic the agent sat idle up to 1.5 s at a
    time (docs/faust-on-tansu.md, "Where a worker waits"). Tansu also answers a
    waiting fetch later the longer the wait, so a short wait shortens the path to an
    alert as well.
    """

    class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # Read once, when consumer.start() creates its fetcher.
            consumer._fetch_max_wait_ms = fetch_wait_ms  # noqa: SLF001
            return consumer

    class WaitConsumer(aiokafka_driver.Consumer):
        def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    producer = IdempotentProducer if idempotent else DrainingProducer

    class Transport(aiokafka_driver.Transport):
        Consumer = WaitConsumer
        Producer = producer  # drained for real before a commit (commit.py)

    return Transport


def credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the configured security protocol (None:
    plaintext)."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    kw = settings.kafka_client_kwargs()
    if protocol == "SSL":
        return faust.SSLCredentials(kw["ssl_context"])
    mechanism = settings.sasl_mechanism
    if mechanism == "PLAIN":
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            ssl_context=kw.get("ssl_context"),
        )
    from faust.auth import SASLCredentials

    return SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password,
        ssl_context=kw.get("ssl_context"),
        mechanism=mechanism,
    )
