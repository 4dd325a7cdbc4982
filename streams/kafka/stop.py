"""Stopping a worker at once, committing nothing.

Used where carrying on would let Faust commit offsets whose effects were not
written: a message whose writes could not be made, a record the broker refused, a
state that could not be rebuilt. The restarted worker reads from the last
committed offsets and rebuilds its state from the changelog (docs/operations.md,
"Recovering"), as after a SIGKILL.
"""

from __future__ import annotations

import logging
import os
from typing import NoReturn

log = logging.getLogger("claimwatch.worker")

# Exit code of a worker that stops because a message could not be processed and
# written, a record not produced, or its state not rebuilt (EX_SOFTWARE).
EXIT_UNPROCESSED = 70


def stop_unprocessed(what: str, exc_info: bool = True) -> NoReturn:
    """Log ``what`` (never payload text: callers name a topic, partition, offset or
    exception class) and end the process without committing.

    Raised out of an agent, an error would make Faust restart the agent and
    acknowledge the message, so its offset would be committed while its state was
    never written. ``os._exit`` skips Faust's shutdown, which would commit.
    """
    log.critical("%s; stopping without committing it", what, exc_info=exc_info)
    logging.shutdown()
    os._exit(EXIT_UNPROCESSED)
