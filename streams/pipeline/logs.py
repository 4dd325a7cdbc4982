"""How a worker's log lines look: plain text, or one JSON object a line for a collector.

One handler on the root logger formats every record of the process the same way:
claimwatch's own, Faust's and mode's, aiokafka's. Faust would otherwise replace the
root handlers with its own coloured ones when the worker starts
(``mode.utils.logging.setup_logging``), so the worker passes ``override_logging=False``
(streams/pipeline/run.py) and this module stays the one place logging is set up.

A JSON line carries ``time`` (UTC, ISO 8601 with milliseconds), ``level`` (``INFO``,
``WARNING``, … as in the text lines), ``logger``
and ``message``, plus ``exception`` (the formatted traceback) when the record has
one. Nothing else from the record: ``extra`` fields are set after the record factory
ran, so they would bypass the payload redaction of streams/kafka/redact.py, which
every message has passed through.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "claimwatch"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry).decode()


def setup_logging(level: str, fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """Route every record at ``level`` and above through one handler on ``stream``
    (stderr by default) in ``fmt`` ("text" or "json"); return the handler.

    A handler set up here before is replaced; others on the root logger (pytest's
    capture, an embedding application's) are left alone.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
