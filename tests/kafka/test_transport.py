"""The worker's Kafka clients (streams/kafka/transport.py): the broker URL list, the
credentials Faust gets for each security protocol, and the transport class with its
consumer's fetch wait and its producer (draining; idempotent unless turned off).

No broker: the aiokafka clients are built for real (so aiokafka checks the arguments)
but never started. That the credentials reach every client Faust builds, for each
protocol, is tested in tests/security/test_kafka_security_config.py.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers import aiokafka as aiokafka_driver

from streams.domain.policy import load_policy
from streams.kafka.producer import DrainingProducer, IdempotentProducer
from streams.kafka.transport import broker_urls, credentials, transport_class
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker

SETTINGS = Settings(broker="127.0.0.1:9", app_id="transport-test", partitions=1)


def test_broker_urls_are_fausts_list_of_kafka_urls() -> None:
    assert broker_urls("kafka-1:9092") == "kafka://kafka-1:9092"
    assert (
        broker_urls(" kafka-1:9092, kafka-2:9093 , ,")
        == "kafka://kafka-1:9092;kafka://kafka-2:9093"
    )


def test_the_transport_drains_and_is_idempotent_only_when_asked() -> None:
    plain, idempotent = transport_class(50), transport_class(50, idempotent=True)
    assert issubclass(plain, aiokafka_driver.Transport)
    assert plain.Producer is DrainingProducer
    assert idempotent.Producer is IdempotentProducer
    assert issubclass(IdempotentProducer, DrainingProducer)  # it drains as well
    app = Worker(SETTINGS.with_(producer_idempotence=False), load_policy()).app
    assert type(app.producer) is DrainingProducer  # the class the worker's app runs


def test_plaintext_needs_no_credentials() -> None:
    assert credentials(SETTINGS) is None


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_SSL", "SCRAM-SHA-512"),
    ],
)
def test_sasl_credentials_carry_the_protocol_mechanism_and_user(
    protocol: str, mechanism: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No CA file for SASL_SSL: the system's CAs (Settings.ssl_context).
    settings = SETTINGS.with_(
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username="claimwatch-worker",
        sasl_password="s3cret-pw",
    )
    creds = credentials(settings)
    assert isinstance(creds, SASLCredentials)
    assert creds.protocol.value == protocol
    assert creds.mechanism.value == mechanism
    assert (creds.username, creds.password) == ("claimwatch-worker", "s3cret-pw")
    assert (creds.ssl_context is not None) == (protocol == "SASL_SSL")
    assert "s3cret" not in repr(creds)


def test_ssl_credentials_carry_the_settings_tls_context() -> None:
    creds = credentials(SETTINGS.with_(security_protocol="SSL"))
    assert isinstance(creds, SSLCredentials) and not isinstance(creds, SASLCredentials)
    assert creds.context.check_hostname  # the broker's name is verified


async def test_the_workers_consumer_fetches_with_its_own_fetch_wait_not_fausts_1500_ms():
    # Faust's driver hard-codes fetch_max_wait_ms=1500; the worker's transport sets
    # CLAIMWATCH_FETCH_WAIT_MS on the consumer before it starts (docs/configuration.md).
    import inspect

    from aiokafka import AIOKafkaConsumer

    app = Worker(SETTINGS.with_(fetch_wait_ms=25), load_policy()).app
    thread = cast(Any, app.consumer)._thread  # noqa: SLF001
    consumer = thread._create_worker_consumer(app.transport)  # noqa: SLF001
    try:
        assert consumer._fetch_max_wait_ms == 25  # noqa: SLF001
    finally:
        await consumer.stop()
    # ... which is where AIOKafkaConsumer.start() takes its fetcher's wait from.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


async def test_the_workers_producer_is_idempotent_unless_the_setting_turns_it_off():
    # Faust asks aiokafka for idempotence only under exactly_once; the worker's
    # transport asks for it whenever CLAIMWATCH_PRODUCER_IDEMPOTENCE is on (the default).
    assert Settings.from_env({}).producer_idempotence is True
    on = Worker(SETTINGS.with_(producer_idempotence=True), load_policy()).app
    # the aiokafka producers, constructed (options checked) but not started; aiokafka
    # keeps a transaction manager exactly when the producer is idempotent
    producer = cast(Any, on.producer)._new_producer()  # noqa: SLF001
    off = Worker(SETTINGS.with_(producer_idempotence=False), load_policy()).app
    plain = cast(Any, off.producer)._new_producer()  # noqa: SLF001
    try:
        assert producer._txn_manager is not None  # noqa: SLF001
        assert plain._txn_manager is None  # noqa: SLF001
    finally:
        await producer.stop()
        await plain.stop()


async def test_fausts_own_consumer_still_fetches_with_a_hard_coded_1500_ms() -> None:
    """The defect behind the worker's ConsumerThread (README entry 9): Faust's stock
    driver builds its consumer with fetch_max_wait_ms=1500 whatever the app's settings
    say. When a Faust release makes it configurable this fails: use the setting and
    drop the ConsumerThread override."""
    import faust

    stock = faust.App("transport-test-stock", broker="kafka://127.0.0.1:9")
    assert type(stock.transport).Consumer is aiokafka_driver.Consumer  # Faust's own
    thread = cast(Any, stock.consumer)._thread  # noqa: SLF001
    consumer = thread._create_worker_consumer(stock.transport)  # noqa: SLF001
    try:
        assert consumer._fetch_max_wait_ms == 1500  # noqa: SLF001
    finally:
        await consumer.stop()
