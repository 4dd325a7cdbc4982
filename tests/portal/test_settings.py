"""The portal's settings from the environment."""

from __future__ import annotations

import pytest

from streams.domain.errors import ClaimwatchError
from streams.portal.settings import PortalSettings


def test_defaults_and_the_workers_kafka_settings_are_read() -> None:
    s = PortalSettings.from_env({"CLAIMWATCH_BROKER": "kafka:9092"})
    assert (s.port, s.bind, s.token, s.topic_departments) == (
        8080,
        "0.0.0.0",
        None,
        "ggz.departments.v1",
    )
    assert s.kafka.broker == "kafka:9092"
    assert s.kafka.topic_provider_status == "ggz.provider-status.v1"


def test_port_token_bind_and_topic_are_settings() -> None:
    s = PortalSettings.from_env(
        {
            "CLAIMWATCH_PORTAL_PORT": "9000",
            "CLAIMWATCH_PORTAL_TOKEN": "t",
            "CLAIMWATCH_PORTAL_BIND": "127.0.0.1",
            "CLAIMWATCH_TOPIC_DEPARTMENTS": "afd",
        }
    )
    assert (s.port, s.token, s.bind, s.topic_departments) == (9000, "t", "127.0.0.1", "afd")


@pytest.mark.parametrize("port", ["http", "0", "70000"])
def test_a_bad_port_is_refused_in_one_line(port: str) -> None:
    with pytest.raises(ClaimwatchError, match="CLAIMWATCH_PORTAL_PORT"):
        PortalSettings.from_env({"CLAIMWATCH_PORTAL_PORT": port})
