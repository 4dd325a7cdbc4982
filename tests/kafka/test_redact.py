"""No log record of a worker carries a payload (streams/kafka/redact.py)."""

from __future__ import annotations

import io
import logging

import faust.topics
import pytest

from streams.kafka import redact

LINE = b'{"schema":"ggz.declaration/1","client_ref":"client-ref-marker","amount_cents":1}'


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.setattr(logging, "_logRecordFactory", logging.LogRecord)  # restored after
    redact.install()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(old)


def test_fausts_send_record_keeps_topic_and_partition_but_not_key_or_value(captured) -> None:
    # the call faust/topics.py makes for every record it produces (faust-streaming 0.15.3)
    faust.topics.logger.debug(
        "send: topic=%r k=%r v=%r timestamp=%r partition=%r",
        "ggz.declarations.v1",
        b"12345678",
        LINE,
        None,
        3,
    )
    text = captured.getvalue()
    assert "client-ref-marker" not in text and "12345678" not in text
    assert "send: topic='ggz.declarations.v1'" in text and "partition=3" in text


def test_fausts_refused_send_warning_keeps_topic_and_error_but_not_the_message(captured) -> None:
    pending = f"FutureMessage(message=PendingMessage(value={LINE!r}))"
    faust.topics.logger.warning(
        f"_on_published error for message topic cw-state-changelog error "
        f"MessageSizeTooLargeError message {pending}"
    )
    text = captured.getvalue()
    assert "client-ref-marker" not in text
    assert "cw-state-changelog" in text and "MessageSizeTooLargeError" in text


def test_any_record_quoting_a_declaration_is_replaced(captured) -> None:
    logging.getLogger("aiokafka.something").info("value was %s", LINE.decode())
    try:
        raise ValueError(LINE.decode())
    except ValueError:
        logging.getLogger("claimwatch.x").exception("failed")
    text = captured.getvalue()
    assert "client-ref-marker" not in text
    assert "a record of aiokafka.something quoted a declaration" in text


def test_a_record_without_payload_is_left_alone(captured) -> None:
    logging.getLogger("claimwatch.worker").info("state recovered: %d providers", 3)
    assert "state recovered: 3 providers" in captured.getvalue()


def test_aiokafkas_wire_dumps_keep_the_request_type_only(captured) -> None:
    class FetchResponse_v11:  # noqa: N801 - aiokafka's struct names
        def __repr__(self) -> str:
            return f"FetchResponse_v11(records={LINE!r}, bsn=123456789)"

    logging.getLogger("aiokafka.conn").debug(
        "Response from %s:%d %d: %s", "127.0.0.1", 9092, 7, FetchResponse_v11()
    )
    logging.getLogger("aiokafka.producer.producer").debug(
        "Sending (key=%s value=%s) to %s", b"12345678", LINE, "tp"
    )
    text = captured.getvalue()
    assert "client-ref-marker" not in text and "123456789" not in text and "12345678" not in text
    assert "Response from 127.0.0.1:9092 7: FetchResponse_v11" in text
