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

from streams.pipeline.settings import EnvReader, Settings


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
        """Read as strictly as the worker's settings (one line naming a bad value)."""
        e = EnvReader(os.environ if env is None else env)
        return cls(
            kafka=Settings.from_env(e.env),
            topic_departments=e.text("TOPIC_DEPARTMENTS") or "ggz.departments.v1",
            port=e.integer("PORTAL_PORT", 8080, 1, 65535),
            bind=e.text("PORTAL_BIND") or "0.0.0.0",
            token=e.text("PORTAL_TOKEN"),
        )
