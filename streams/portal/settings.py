"""The portal's settings from the environment (docs/deploy.md, "The purchaser portal").

Kafka (broker, security, the status and alerts topics) is read as the worker reads
it (``streams.pipeline.settings.Settings``), so one environment serves both; the
portal adds its own web port, bind address and bearer token, and the department
register's topic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.domain.errors import ClaimwatchError
from streams.pipeline.settings import Settings


@dataclass(frozen=True, slots=True)
class PortalSettings:
    kafka: Settings = field(default_factory=Settings)
    topic_departments: str = "ggz.departments.v1"
    port: int = 8080
    bind: str = "0.0.0.0"
    # Every page and /api ask for "Authorization: Bearer <token>" when set; /health
    # and /ready never do (as the worker's CLAIMWATCH_WEB_TOKEN).
    token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PortalSettings:
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = e.get(f"CLAIMWATCH_{name}")
            return value if value not in (None, "") else None

        port_text = get("PORTAL_PORT") or "8080"
        try:
            port = int(port_text)
        except ValueError:
            raise ClaimwatchError(
                f"CLAIMWATCH_PORTAL_PORT={port_text!r} is not a whole number"
            ) from None
        if not 1 <= port <= 65535:
            raise ClaimwatchError(f"CLAIMWATCH_PORTAL_PORT={port} must be between 1 and 65535")
        return cls(
            kafka=Settings.from_env(e),
            topic_departments=get("TOPIC_DEPARTMENTS") or "ggz.departments.v1",
            port=port,
            bind=get("PORTAL_BIND") or "0.0.0.0",
            token=get("PORTAL_TOKEN"),
        )
