"""region_category_gap judged once per region by the cluster (streams/pipeline/regions.py).

Two judges stand for two workers: each reads every record of one shared status topic
(as every worker's status reader does) and judges the regions of the partitions it
holds. The topic is a list here; the broker test in test_streaming.py runs the same
code in two worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson

from streams.domain import schemas
from streams.domain.departments import Department, DepartmentBook
from streams.domain.model import parse_time
from streams.domain.policy import load_policy
from streams.domain.status import STATUS_SCHEMA, StatusBook
from streams.kafka.commit import Published
from streams.pipeline.regions import RegionJudge, partition_of
from streams.pipeline.settings import Settings
from streams.portal.model import Model

SETTINGS = Settings(broker="127.0.0.1:9", partitions=4)
POLICY = load_policy()
WATERMARK = "2026-08-31T12:00:00Z"  # latest covered month: July 2026 (lag 30 days)


class Topics:
    """The broker: records per topic in order, acknowledged at once."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[bytes | None, bytes]]] = {}

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.records.setdefault(topic, []).append((key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def alerts(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for _k, v in self.records.get(SETTINGS.topic_alerts, [])]


class Judge:
    """One worker's side: its status book (fed from the topic), register, judge."""

    def __init__(self, topics: Topics, register: Iterable[Department]) -> None:
        self.topics = topics
        self.book = StatusBook()
        self.departments = DepartmentBook()
        for entry in register:
            self.departments.apply(entry)
        self.read = 0
        self.judge = RegionJudge(
            SETTINGS,
            POLICY,
            self.book,
            self.departments,
            Published(),
            topics.send,
            clock=lambda: parse_time("2026-09-01T00:00:00Z"),
        )

    def catch_up(self) -> None:
        records = self.topics.records.get(SETTINGS.topic_provider_status, [])
        for key, value in records[self.read :]:
            self.book.apply(key, value)
        self.read = len(records)

    def tick(self, partitions: Iterable[int]) -> None:
        self.catch_up()
        for p in partitions:
            asyncio.run(self.judge.judge(p))


def status(agb: str, clients_by_month: dict[str, int], category: str = "acute") -> bytes:
    """A provider-year summary as a worker publishes it (streams/domain/status.py),
    with what the region view reads: departments, watermark, contract region."""
    departments = {
        "crisis": {
            "category": category,
            "clients_by_month": clients_by_month,
            "consults": 1,
            "stay_days": 0,
            "net_cents": 100,
        }
    }
    return orjson.dumps(
        {
            "schema": STATUS_SCHEMA,
            "provider_agb": agb,
            "year": 2026,
            "indicators": {"consults": 10, "group_consults": 0, "departments": departments},
            "contract": {"region": "Contractregio"},
            "watermark": WATERMARK,
            "updated_at": WATERMARK,
        }
    )


def entry(agb: str, region: str) -> Department:
    return Department(agb, "crisis", "Crisisdienst", "acute", region, 1, 0.0)


TWENTE_8 = 3  # zlib.crc32(b"Twente") % 8
ACTIVE = {f"2026-{m:02d}": 30 for m in range(1, 7)}


def test_the_judge_of_a_region_is_the_owner_of_one_partition_the_same_in_every_process() -> None:
    # crc32, not Python's salted hash: a fixed value, whatever the process
    assert (partition_of("Twente", 8), partition_of("Twente", 4)) == (TWENTE_8, TWENTE_8 % 4)
    regions = [f"Regio {i}" for i in range(38)]
    assert len({partition_of(r, 4) for r in regions}) == 4  # spread over the partitions


def test_two_workers_publish_each_region_transition_once_also_across_a_rebalance() -> None:
    topics = Topics()
    register = [entry("10000001", "Twente"), entry("10000002", "Twente")]
    a, b = Judge(topics, register), Judge(topics, register)
    # both crisis teams had clients in January to June and none in July: a gap
    topics.records[SETTINGS.topic_provider_status] = [
        (b"10000001:2026", status("10000001", {**ACTIVE, "2026-07": 0})),
        (b"10000002:2026", status("10000002", {**ACTIVE})),
    ]
    a.tick([0, 1])
    b.tick([2, 3])
    gap = "region_category_gap:Twente:acute:2026"
    assert [(x["alert_id"], x["state"], x["sequence"]) for x in topics.alerts()] == [
        (gap, "firing", 1)
    ]
    event = topics.alerts()[0]
    assert event["provider_agb"] is None and event["purchaser"] is None
    assert event["region"] == "Twente" and "Twente" in event["message"]
    # the alert schema admits it, and the purchaser page files it under its region
    assert schemas.check(schemas.ALERT, event) is None
    page = Model()
    page.apply_alert(b"Twente", orjson.dumps(event))
    assert [h.alert_id for h in page.region_alerts("Twente")] == [gap]
    assert page.malformed["alerts"] == 0
    # the next round of ticks, by the same owners: nothing new
    a.tick([0, 1])
    b.tick([2, 3])
    assert len(topics.alerts()) == 1
    # a rebalance: the partitions change hands, and the new owners (fresh processes,
    # nothing in memory) resume from the states on the status topic
    a2, b2 = Judge(topics, register), Judge(topics, register)
    a2.tick([2, 3])
    b2.tick([0, 1])
    assert len(topics.alerts()) == 1, topics.alerts()
    # a crisis team has clients again in July: resolved, once
    topics.records[SETTINGS.topic_provider_status].append(
        (b"10000002:2026", status("10000002", {**ACTIVE, "2026-07": 4}))
    )
    for _ in range(2):
        a2.tick([2, 3])
        b2.tick([0, 1])
    assert [(x["alert_id"], x["state"], x["sequence"]) for x in topics.alerts()] == [
        (gap, "firing", 1),
        (gap, "resolved", 2),
    ]


def test_the_region_view_comes_from_every_provider_on_the_status_topic() -> None:
    topics = Topics()
    # one department in its register region, one without an entry: its provider's
    # contract region
    judge = Judge(topics, [entry("10000001", "Twente")])
    topics.records[SETTINGS.topic_provider_status] = [
        (b"10000001:2026", status("10000001", {**ACTIVE, "2026-07": 5})),
        (b"10000002:2026", status("10000002", {**ACTIVE, "2026-07": 0}, category="secured")),
        (b"region:Twente:acute", b"not a state record"),
    ]
    judge.catch_up()
    assert judge.judge.view() == {
        "Contractregio": {"secured": {"active_departments": 0, "clients": 0}},
        "Twente": {"acute": {"active_departments": 1, "clients": 5}},
    }
    assert judge.book.malformed == 1  # the unreadable state record, skipped
    assert len(judge.book) == 2


def test_the_region_view_follows_the_register_and_the_topic_after_it_was_read() -> None:
    # the rows are kept between two judgements (one per partition a month): a
    # register entry or a summary read later must still move the view
    topics = Topics()
    judge = Judge(topics, [])
    topics.records[SETTINGS.topic_provider_status] = [
        (b"10000001:2026", status("10000001", {**ACTIVE, "2026-07": 5})),
    ]
    judge.catch_up()
    assert judge.judge.view() == {
        "Contractregio": {"acute": {"active_departments": 1, "clients": 5}}
    }
    judge.departments.apply(entry("10000001", "Twente"))
    assert judge.judge.view() == {"Twente": {"acute": {"active_departments": 1, "clients": 5}}}
    judge.departments.remove("10000001", "crisis")
    assert judge.judge.view() == {
        "Contractregio": {"acute": {"active_departments": 1, "clients": 5}}
    }
    topics.records[SETTINGS.topic_provider_status].append(
        (b"10000001:2026", status("10000001", {**ACTIVE, "2026-07": 7}))
    )
    judge.catch_up()
    assert judge.judge.view() == {
        "Contractregio": {"acute": {"active_departments": 1, "clients": 7}}
    }
