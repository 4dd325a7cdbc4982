"""Start a Faust worker for the configured broker (``claimwatch worker``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

from streams.domain.policy import Policy
from streams.pipeline.settings import Settings

log = logging.getLogger("claimwatch.worker")

# glibc's mallopt parameters: the size from which malloc uses mmap, and the number
# of arenas (heaps) threads allocate from.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20
ARENA_MAX = 2


def tune_malloc(threshold: int = MMAP_THRESHOLD_BYTES, arenas: int = ARENA_MAX) -> bool:
    """Fix glibc's mmap threshold and arena count so that a worker's RSS follows its state.

    A worker allocates many large short-lived buffers (fetched messages of about 250
    KB, journal segments, checkpoint chunks of up to 2.5 MB) between long-lived small
    objects (the line index). By default glibc raises its mmap threshold to the
    largest such buffer it has freed, after which they all come from the heap, and the
    heap cannot shrink below the small objects allocated after them: on a million
    lines in 500-line batches, about a quarter less RSS a line of state with a fixed
    threshold than with the default.

    The threshold is 1 MiB: a message comes from the heap and its space serves the
    next one, while checkpoint chunks and fetch responses are mappings given back
    when freed. At 64 KiB every message is a fresh mapping whose pages are faulted in
    and returned: the worker reads a fifth fewer lines a second for 10-15 fewer
    bytes of RSS a line.

    glibc also gives each thread that allocates its own arena (up to 8 per core), and
    memory freed in one arena serves no other: Faust's consumer thread decodes the
    fetched records in its arena, the event loop keeps the state in another, and each
    holds on to its own free space. Two arenas keep a memory-store worker near 180
    bytes of RSS a line of state, below glibc's default (measurements:
    bench/history/2026-11-23_to_2026-12-06.md). ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_ARENA_MAX`` in the environment win; elsewhere than glibc nothing is
    changed. True when anything was set here. Call it before threads start.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    done = False
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done |= bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    if "MALLOC_ARENA_MAX" not in os.environ:
        done |= bool(mallopt(_M_ARENA_MAX, arenas))
    return done


def run_worker(policy: Policy, settings: Settings | None = None) -> int:
    """Run until SIGTERM/SIGINT; Faust commits what it processed on the way out."""
    import faust

    from streams.kafka.redact import install as redact_logs
    from streams.kafka.topics import topic_specs
    from streams.local.broker import ensure_topics_sync
    from streams.pipeline.logs import setup_logging
    from streams.pipeline.worker import Worker

    redact_logs()  # before anything logs: Faust's DEBUG records carry payloads
    settings = settings or Settings.from_env()
    if settings.malloc == "compact":
        tune_malloc()
    setup_logging(settings.log_level, settings.log_format)
    log.info("policy: %s", policy.source)
    if policy.defaulted:  # a release added rules the operator's file does not name yet
        log.warning(
            "policy %s names no section for %s: the shipped defaults apply "
            "(streams/policy.default.toml)",
            policy.source,
            ", ".join(f"[{name}]" for name in policy.defaulted),
        )
    app = Worker(settings, policy).app
    # Creating missing topics with explicit configs is harmless on a cluster where
    # they exist (nothing is altered) and required on tansu.
    ensure_topics_sync(
        settings.broker or "", topic_specs(settings), **settings.kafka_client_kwargs()
    )
    # override_logging=False: Faust would replace the handler set up above with its
    # own (streams/pipeline/logs.py).
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    # Faust's terminal spinner writes cursor controls to stdout even when quiet, into
    # the first log line after start: a JSON line would no longer parse.
    worker.spinner = None
    worker.execute_from_commandline()
    return worker.exit_code or 0
