"""The region view and ``region_category_gap`` across workers (SPEC §9).

A region spans providers of every partition, so no worker holds its departments in
state. Every worker reads the whole provider-status topic (streams/pipeline/
status.py), whose summaries carry each provider-year's ``departments``, and the
whole register (streams/pipeline/register.py): from those it builds the region
view's rows (``StatusBook.department_rows``), the same on every worker.

Each region is judged by one worker: the one that owns partition
``crc32(region) % partitions`` of the declarations topic (``partition_of``), when it
handles that partition's tick (the timer's, or a replay's final one) or a month
boundary of that partition's event time. After a rebalance the partition's new owner
judges the region; a region has one judge at a time, whatever the number of workers.

What a judge must know to publish each transition once, also across a rebalance or a
restart, are the alerts' states as last published. They are kept on the
provider-status topic under ``region:<region>:<category>`` (compacted: the latest
states per key), published after the transition and read back by every worker's
status reader. That topic, rather than one of their own, because every worker
already reads it whole and reads it to its end before a final tick: the rows a
region is judged on and the states it resumes from come from one read, with no
second reader and no further topic to create and secure. A judge's transitions go
out (and are acknowledged) before their states; a crash in between repeats a
transition with the same ``alert_id`` and ``sequence``, which the worker's record of
published transitions (reloaded from the alerts topic at each rebalance) drops.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from streams.domain.months import next_month_start
from streams.domain.regions import RegionWatch, gap_id, region_view
from streams.domain.status import encode_region_states, region_state_key

if TYPE_CHECKING:
    from streams.domain.alerts import AlertState
    from streams.domain.departments import DepartmentBook
    from streams.domain.policy import Policy
    from streams.domain.regions import DepartmentSummary
    from streams.domain.status import StatusBook
    from streams.kafka.commit import Published
    from streams.pipeline.settings import Settings

Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]


def partition_of(region: str, partitions: int) -> int:
    """The declarations partition whose owner judges ``region``: stable across
    processes (not Python's salted ``hash``)."""
    return zlib.crc32(region.encode("utf-8")) % partitions


class RegionJudge:
    """One worker's part of the region alerts: the regions of the partitions it holds."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        book: StatusBook,
        register: DepartmentBook,
        published: Published,
        send: Send,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.book = book
        self.register = register
        self.published = published
        self._send = send
        self.clock = clock
        # partition → start of the calendar month after the latest watermark seen there
        self.next_start: dict[int, float] = {}
        self.sent = 0

    def rows(self) -> list[DepartmentSummary]:
        return self.book.department_rows(self.register, self.policy.months.lag_days)

    def view(self) -> dict[str, dict[str, dict[str, int]]]:
        """SPEC §9 ``regions`` of the whole cluster, as the status topic says."""
        return region_view(self.rows())

    def firing(self) -> list[str]:
        return sorted(a for a, s in self.book.region_states().items() if s.firing)

    def firing_states(self) -> list[tuple[str, AlertState]]:
        """(alert id, state) of every region alert firing, as last published."""
        return sorted((a, s) for a, s in self.book.region_states().items() if s.firing)

    async def on_event_time(self, partition: int, watermark: float) -> int:
        """A message of ``partition`` moved a provider's watermark: the partition's
        regions are judged when that is a later calendar month than the partition's
        event time reached before (SPEC §8.1), at that watermark."""
        if watermark < self.next_start.get(partition, 0.0):
            return 0  # the same calendar month: one comparison a message
        first = partition not in self.next_start
        self.next_start[partition] = next_month_start(watermark)
        if first:  # the partition's first message since this process began
            return 0
        return await self.judge(partition, watermark)

    async def judge(self, partition: int, at: float | None = None) -> int:
        """Judge the regions of ``partition`` at event time ``at`` (None: the latest
        watermark read from the status topic, as at a tick), publish each
        transition and then the alerts' new states; the transitions sent."""
        if at is None:
            at = self.book.watermark()
            if at <= 0:
                return 0
        n = self.settings.partitions
        rows = [
            r
            for r in self.rows()
            if r.region is not None and partition_of(r.region, n) == partition
        ]
        watch = RegionWatch(self.policy.language, replay=self.settings.replay)
        states = self.book.region_states()
        watch.alerts.states.update(
            {a: s for a, s in states.items() if partition_of(_region_of(a), n) == partition}
        )
        events = watch.evaluate(rows, at, self.clock())
        if not events:
            return 0
        sends = []
        for event in events:
            if self.published.first(event):
                value = orjson.dumps(event)
                sends.append(
                    await self._send(self.settings.topic_alerts, event["region"].encode(), value)
                )
        for sent in sends:
            await sent
        changed = {(e["region"], e["alert_id"].rsplit(":", 2)[1]) for e in events}
        records, acks = [], []
        for region, category in sorted(changed):
            prefix = gap_id(region, category, 0).rsplit(":", 1)[0] + ":"
            mine = {a: s for a, s in watch.alerts.states.items() if a.startswith(prefix)}
            key = region_state_key(region, category)
            value = encode_region_states(mine)
            records.append((key, value))
            acks.append(await self._send(self.settings.topic_provider_status, key.encode(), value))
        for ack in acks:
            await ack
        for key, value in records:  # judged on at once, before the reader brings them back
            self.book.apply(key, value)
        self.sent += len(events)
        return len(events)


def _region_of(alert_id: str) -> str:
    """``region_category_gap:<region>:<category>:<year>`` → region (a region name may
    hold a colon: the category and year are the last two fields)."""
    return alert_id.split(":", 1)[1].rsplit(":", 2)[0]
