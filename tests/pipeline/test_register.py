"""The department register on the worker's side (streams/pipeline/register.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from streams.domain.departments import DepartmentBook
from streams.domain.policy import load_policy
from streams.pipeline import views
from streams.pipeline.register import REASON, Register, check
from tests.conftest import AGB
from tests.pipeline.feed import SETTINGS, Feed


def register_entry(**fields: Any) -> dict[str, Any]:
    entry = {
        "schema": "ggz.department/1",
        "provider_agb": AGB,
        "department": "crisis",
        "name": "Crisisdienst",
        "category": "acute",
        "region": "Twente",
        "version": 1,
        "updated_at": "2026-01-01T00:00:00Z",
    }
    return {**entry, **fields}


def record(**fields: Any) -> tuple[bytes, bytes]:
    entry = register_entry(**fields)
    return f"{entry['provider_agb']}:{entry['department']}".encode(), orjson.dumps(entry)


def test_the_latest_version_wins_and_a_tombstone_falls_back_to_the_lines_settings() -> None:
    book = DepartmentBook()
    register = Register(SETTINGS, book)
    register.apply(*record(version=2, category="outreach"))
    register.apply(*record(version=1, category="clinical"))  # older: ignored
    assert book.category(AGB, "crisis", 1 << 5) == "outreach"
    register.apply(f"{AGB}:crisis".encode(), None)
    assert book.get(AGB, "crisis") is None
    assert book.category(AGB, "crisis", 1 << 5) == "clinical"  # its lines' setting 5
    assert register.skipped == 0


def test_records_that_are_no_entry_are_skipped_and_counted_never_raised() -> None:
    book = DepartmentBook()
    register = Register(SETTINGS, book)
    key, good = record()
    bad = [
        (key, b"not json"),
        (key, b"[1, 2]"),
        record(category="ward"),  # no category of SPEC §9
        (f"{AGB}:other".encode(), good),  # the key names another department
        (None, None),  # a tombstone without a key
    ]
    for k, v in bad:
        assert check(k, v) is not None
        register.apply(k, v)
    assert (register.skipped, len(book)) == (len(bad), 0)
    register.apply(key, good)
    assert len(book) == 1


def test_a_malformed_register_record_is_dead_lettered_once_and_the_worker_goes_on(
    make_line,
) -> None:
    feed = Feed(load_policy())
    worker = feed.worker
    key, good = record()
    asyncio.run(worker.check_department(key, good))
    asyncio.run(worker.check_department(key, b'{"schema": "ggz.department/1"}'))
    asyncio.run(worker.check_department(key, b"\xff not json"))
    letters = feed.dead_letters
    assert [s.headers["reason"].decode() for s in letters] == [REASON, REASON]
    assert [s.value for s in letters] == [b'{"schema": "ggz.department/1"}', b"\xff not json"]
    assert b"must contain" in letters[0].headers["detail"]
    assert worker.register_rejected == 2
    # the worker goes on: a declaration after it is accepted
    feed.declarations(AGB, orjson.dumps(make_line(department="crisis")))
    assert feed.engine.counts().accepted == 1


def test_the_register_category_reaches_the_worker_snapshot_and_its_status(make_line) -> None:
    feed = Feed(load_policy())
    worker = feed.worker
    # an outpatient setting: without an entry the department is "other"
    for i in range(3):
        line = make_line(department="crisis", setting=1, client_ref=f"c{i}")
        feed.declarations(AGB, orjson.dumps(line))
    snap = orjson.loads(views.snapshot(worker))
    assert snap["providers"][AGB]["2026"]["departments"]["crisis"]["category"] == "other"
    worker.register.apply(*record(category="acute"))
    snap = orjson.loads(views.snapshot(worker))
    crisis = snap["providers"][AGB]["2026"]["departments"]["crisis"]
    assert crisis["category"] == "acute"
    # the summary on the status topic carries the register's category too: what
    # another worker's region view reads
    worker.processor.dirty.add(AGB)
    asyncio.run(worker.statuses.publish())
    (sent,) = feed.outbox.to(SETTINGS.topic_provider_status)
    summary = orjson.loads(sent.value)
    assert summary["indicators"]["departments"]["crisis"]["category"] == "acute"
    assert views.status(worker)["departments"] == 1
