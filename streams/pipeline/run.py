"""Start a Faust worker for the configured broker (``claimwatch worker``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

from streams.domain.policy import Policy
from streams.pipeline.settings import Settings

log = logging.getLogger("claimwatch.worker")

# glibc's mallopt parameter for the size from which malloc uses mmap.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 1024


def tune_malloc(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold so that a worker's RSS follows its state.

    A worker allocates many large short-lived buffers (fetched messages of hundreds of
    KB, journal segments, checkpoint chunks of a MB) between long-lived small objects
    (the line index). By default glibc raises its mmap threshold to the largest such
    buffer it has freed, after which they all come from the heap, and the heap cannot
    shrink below the small objects allocated after them: measured on a million lines
    in 500-line batches, 454 bytes of RSS a line of state with the default, 331 with a
    fixed 64 KB threshold (bench/RESULTS.md). ``MALLOC_MMAP_THRESHOLD_`` in the
    environment wins; elsewhere than glibc nothing is changed. True when set here.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def run_worker(policy: Policy, settings: Settings | None = None) -> int:
    """Run until SIGTERM/SIGINT; Faust commits what it processed on the way out."""
    import faust

    from streams.broker import ensure_topics_sync
    from streams.pipeline.app import create_app
    from streams.pipeline.topics import topic_specs

    settings = settings or Settings.from_env()
    tune_malloc()
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
