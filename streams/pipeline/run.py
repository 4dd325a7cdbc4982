"""Start a Faust worker for the configured broker (``claimwatch worker``)."""

from __future__ import annotations

import logging

from streams.domain.policy import Policy
from streams.pipeline.settings import Settings


def run_worker(policy: Policy, settings: Settings | None = None) -> int:
    """Run until SIGTERM/SIGINT; Faust commits what it processed on the way out."""
    import faust

    from streams.broker import ensure_topics_sync
    from streams.pipeline.app import create_app
    from streams.pipeline.topics import topic_specs

    settings = settings or Settings.from_env()
    app = create_app(settings, policy)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Creating missing topics with explicit configs is harmless on a cluster where
    # they exist (nothing is altered) and required on tansu.
    ensure_topics_sync(
        settings.broker or "", topic_specs(settings), **settings.kafka_client_kwargs()
    )
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return worker.exit_code or 0
