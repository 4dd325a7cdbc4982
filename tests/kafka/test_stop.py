"""``stop_unprocessed`` (streams/kafka/stop.py): the process ends at once with exit code
70 and one CRITICAL line, and nothing that would commit runs on the way out.

Run in a subprocess: the function ends the interpreter. Faust commits in its shutdown
(atexit handlers, ``finally`` blocks, the service's stop); the child stands in for
those with an atexit handler and a ``finally`` that each print "committed".
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from streams.kafka.stop import EXIT_UNPROCESSED

CHILD = textwrap.dedent(
    """
    import atexit, logging, sys
    from streams.kafka.stop import stop_unprocessed

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    atexit.register(lambda: print("committed at exit", flush=True))
    try:
        try:
            raise ValueError("a defect")
        except ValueError:
            stop_unprocessed("record of ggz.declarations.v1[3]@17 refused", exc_info=False)
    finally:
        print("committed in finally", flush=True)
    print("carried on", flush=True)
    """
)


def test_stop_unprocessed_exits_70_logging_one_line_and_committing_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == EXIT_UNPROCESSED == 70, done.stderr
    assert done.stdout == ""  # no atexit handler, no finally, nothing after the call
    assert done.stderr.splitlines() == [
        "CRITICAL claimwatch.worker record of ggz.declarations.v1[3]@17 refused; "
        "stopping without committing it"
    ]


def test_the_exception_being_handled_is_logged_by_class_with_its_traceback() -> None:
    child = CHILD.replace(", exc_info=False", "")
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 70 and done.stdout == ""
    assert done.stderr.startswith("CRITICAL claimwatch.worker record of")
    assert "ValueError" in done.stderr  # exc_info=True: the traceback, for the operator
