"""The department register (``ggz.departments.v1``, SPEC §9) on the worker's side.

Every worker reads the whole register with a consumer of its own (``TopicReader``,
outside the consumer group, from the beginning, for as long as it runs) into its
engine's ``DepartmentBook``, not only the entries of the providers it owns: the
region view and ``region_category_gap`` (streams/pipeline/regions.py) place every
provider's departments in their register region, whichever worker judges the region.
The register is small (one entry per department) and compacted, so reading it whole
at each start costs little, and nothing of it needs to be in the state table.

A department's category counts from its provider's next evaluation (the engine
applies nothing retroactively, as the offline replay's ``ContractFeed`` does); the
worker processes no declaration before the reader has read the register to its end
once (``Register.wait_ready``), so a restarted worker judges with the register it
had. The order of register entries and lines is the order in which they reach the
worker: ``claimwatch replay`` produces both by event time (streams/replay/producer.py).

A record that is not a register entry is skipped by every reader, and dead-lettered
once per cluster, with the reason ``department_schema``, by the ``departments``
agent, which reads the topic in the consumer group (``check``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from streams.domain.departments import DepartmentError, parse_department
from streams.pipeline.status import TopicReader

if TYPE_CHECKING:
    from streams.domain.departments import DepartmentBook
    from streams.pipeline.settings import Settings

log = logging.getLogger("claimwatch.register")

REASON = "department_schema"
READY_TIMEOUT_S = 60.0  # a worker waits at most this long for the first full read


def check(key: bytes | None, value: bytes | None) -> str | None:
    """Why a register record is refused (None: it is an entry, or a tombstone of a
    key of the ``<agb>:<department>`` form)."""
    if value is None:
        return None if _key(key) is not None else "tombstone without an <agb>:<department> key"
    try:
        entry = parse_department(orjson.loads(value))
    except orjson.JSONDecodeError:
        return "not JSON"
    except DepartmentError as exc:
        return str(exc)
    if key is not None and _key(key) != (entry.provider, entry.department):
        return "key does not name the entry's <agb>:<department>"
    return None


def _key(key: bytes | None) -> tuple[str, str] | None:
    if key is None:
        return None
    provider, sep, department = key.decode("utf-8", "replace").partition(":")
    return (provider, department) if sep and provider and department else None


def apply_record(book: DepartmentBook, key: bytes | None, value: bytes | None) -> bool:
    """One record of the register topic into ``book``: an entry (the latest version
    wins) or a tombstone (the department falls back to the settings of its lines).
    False for anything else, which changes nothing."""
    if check(key, value) is not None:
        return False
    if value is None:
        provider, department = _key(key)  # type: ignore[misc] # checked above
        book.remove(provider, department)
        return True
    book.apply(parse_department(orjson.loads(value)))
    return True


class Register:
    """The register as this worker reads it."""

    def __init__(self, settings: Settings, book: DepartmentBook) -> None:
        self.book = book
        self.skipped = 0  # records that are no register entry (the agent dead-letters them)
        self.reader = TopicReader(settings, settings.topic_departments, self.apply, "register")

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic (``apply_record``); one that is no entry is
        skipped and counted."""
        if not apply_record(self.book, key, value):
            self.skipped += 1

    async def wait_ready(self) -> None:
        if not self.reader.ready.is_set():
            await self.reader.wait_ready(READY_TIMEOUT_S)
