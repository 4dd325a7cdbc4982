"""The worker's log lines (streams/pipeline/logs.py): text, or one JSON object a line.

A real worker writing JSON, Faust's and aiokafka's records included, is checked by
tests/security/test_no_client_refs_leak.py, which runs it with CLAIMWATCH_LOG_FORMAT=json
at DEBUG and scans every line.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest

from streams.kafka import redact
from streams.pipeline.logs import setup_logging


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back afterwards."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(level)


def test_json_logs_are_one_object_a_line_with_time_level_logger_message(root) -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    logging.getLogger("claimwatch.worker").info("policy: %s", "/etc/claimwatch/policy.toml")
    logging.getLogger("faust.transport.drivers.aiokafka").warning("Heartbeat failed\nretrying")
    logging.getLogger("aiokafka").debug("below the level: not written")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("claimwatch.commit").exception("commit failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines  # a message with a newline stays one line
    records = [orjson.loads(line) for line in lines]
    assert [(r["level"], r["logger"]) for r in records] == [
        ("INFO", "claimwatch.worker"),
        ("WARNING", "faust.transport.drivers.aiokafka"),
        ("ERROR", "claimwatch.commit"),
    ]
    assert records[0]["message"] == "policy: /etc/claimwatch/policy.toml"
    assert records[1]["message"] == "Heartbeat failed\nretrying"
    assert "ValueError: boom" in records[2]["exception"] and "Traceback" in records[2]["exception"]
    assert set(records[0]) == {"time", "level", "logger", "message"}
    assert datetime.fromisoformat(records[0]["time"]).utcoffset().total_seconds() == 0


def test_text_logs_keep_the_plain_format_and_the_level_holds_for_every_logger(root) -> None:
    out = io.StringIO()
    setup_logging("WARNING", "text", out)
    logging.getLogger("claimwatch.worker").info("not written")
    logging.getLogger("aiokafka").error("Unable connect to node")
    (line,) = out.getvalue().splitlines()
    assert line.endswith(" ERROR aiokafka: Unable connect to node")


def test_setting_up_twice_writes_each_record_once(root) -> None:
    """A second set-up (a worker started again in one process) replaces the first."""
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "text", first)
    setup_logging("info", "json", second)
    logging.getLogger("faust").info("started")
    assert first.getvalue() == "" and len(second.getvalue().splitlines()) == 1


def test_json_lines_carry_no_payload_and_no_extra_fields(root, monkeypatch) -> None:
    """The redaction of streams/kafka/redact.py applies to the JSON message; fields
    given with ``extra=`` (set after the redaction) are not written."""
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    redact.install()
    out = io.StringIO()
    setup_logging("debug", "json", out)
    line = b'{"client_ref":"C-123456782","provider_agb":"94000001"}'
    logging.getLogger("aiokafka.producer").debug(
        "Sending (key=%s value=%s) to %s", b"94000001", line, "ggz.alerts.v1"
    )
    logging.getLogger("claimwatch.worker").info("topics", extra={"client_ref": "C-123456782"})
    text = out.getvalue()
    assert "C-123456782" not in text and "client_ref" not in text
    first, second = (orjson.loads(x) for x in text.splitlines())
    assert first["message"] == "Sending (key=<redacted> value=<redacted>) to ggz.alerts.v1"
    assert set(second) == {"time", "level", "logger", "message"}
