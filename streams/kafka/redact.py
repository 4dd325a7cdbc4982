"""No log record of a worker carries a payload.

At DEBUG, Faust and aiokafka log the records they move: Faust every record it
produces (``send: topic=… k=… v=…``, faust/topics.py and faust/transport/drivers/
aiokafka.py, faust-streaming 0.15.3), aiokafka every record it sends (``Sending
(key=… value=…)``, aiokafka/producer/producer.py) and every request and response
whole (``Request to …`` / ``Response from …``, aiokafka/conn.py: fetched record
batches included). At WARNING Faust logs a refused record with the whole pending
message (``_on_published error … message FutureMessage(…)``). All of these would
write declaration lines, client references included, into the worker's log. (Not
reported upstream: logging payloads at DEBUG is their choice; ours is not to.)

``install`` wraps the process's log-record factory, so it applies to every logger
and handler: those records keep what they say about topics, partitions and
request types and lose the payload, and any other record whose text quotes a
declaration (it names ``client_ref``) is replaced by a line that says which logger
wrote it. Pinned by tests/kafka/test_redact.py and the real-worker leak test
(tests/security/test_no_client_refs_leak.py).
"""

from __future__ import annotations

import logging
from typing import Any

REDACTED = "<redacted>"
_SEND = "send: topic=%r k=%r v=%r timestamp=%r partition=%r"
_SENDING = "Sending (key=%s value=%s) to %s"  # aiokafka's producer
_WIRE = ("Request to %s:%d %d: %s", "Response from %s:%d %d: %s")  # aiokafka's conn
_PUBLISHED = "_on_published error"
_MARK = "client_ref"


def install() -> None:
    """Redact payloads from every log record made in this process from now on."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "claimwatch_redacts", False):
        return

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redacted(factory(*args, **kwargs))

    make.claimwatch_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)


def redacted(record: logging.LogRecord) -> logging.LogRecord:
    msg = record.msg
    if msg == _SEND and isinstance(record.args, tuple) and len(record.args) == 5:
        topic, _key, _value, timestamp, partition = record.args
        record.args = (topic, REDACTED, REDACTED, timestamp, partition)
        return record
    if msg == _SENDING and isinstance(record.args, tuple) and len(record.args) == 3:
        record.args = (REDACTED, REDACTED, record.args[2])
        return record
    if msg in _WIRE and isinstance(record.args, tuple) and len(record.args) == 4:
        host, port, correlation, struct = record.args
        record.args = (host, port, correlation, type(struct).__name__)
        return record
    if isinstance(msg, str) and msg.startswith(_PUBLISHED):
        # "_on_published error for message topic T error E message <pending message>"
        record.msg = msg.split(" message FutureMessage", 1)[0].split(" message <", 1)[0]
        record.args = None
        return record
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001 - a record that cannot be formatted is left to logging
        return record
    if _MARK in text or (record.exc_info and _MARK in _exc_text(record)):
        record.msg = f"{REDACTED} (a record of {record.name} quoted a declaration)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return record


def _exc_text(record: logging.LogRecord) -> str:
    exc = record.exc_info[1] if record.exc_info else None
    try:
        return f"{exc!r}"
    except Exception:  # noqa: BLE001
        return ""
