"""``Worker.handle`` (step 2 of streams/kafka/commit.py): a message's results are
acknowledged before the state that records them is written, and an alert transition
already on the alerts topic is not sent again."""

from __future__ import annotations

from typing import Any

from streams.domain.policy import load_policy
from streams.pipeline.processor import contract_control
from tests.conftest import AGB
from tests.pipeline.feed import Feed, Recorder
from tests.pipeline.test_agents import batch, contract


class Witness(Recorder):
    """Records, with every send, the state table as it was at that moment."""

    def __init__(self, store: dict[str, Any]) -> None:
        super().__init__()
        self.store = store
        self.tables: list[dict[str, Any]] = []

    async def send(self, topic: str, key: Any, value: bytes, headers: Any = None) -> Any:
        self.tables.append(dict(self.store))
        return await super().send(topic, key, value, headers)


def witnessed() -> tuple[Feed, Witness]:
    feed = Feed(load_policy(), partitions=1)
    witness = Witness(feed.store)
    feed.outbox = feed.worker.outbox = witness
    return feed, witness


def test_an_alert_is_acknowledged_before_the_state_that_records_it_is_written(make_line):
    feed, witness = witnessed()
    feed.control(0, contract_control(contract(20_000)))
    feed.declarations(AGB, batch(make_line()))  # 50 %: no alert yet
    before = feed.store[f"h:{AGB}"]
    feed.declarations(AGB, batch(make_line()))  # 100 %: 70, 90 and 100 % fire
    alerts = [i for i, s in enumerate(witness.sent) if s.topic == feed.settings.topic_alerts]
    assert len(alerts) == 3
    for i in alerts:  # the header the alerts' message writes was not there yet
        assert witness.tables[i][f"h:{AGB}"] == before
    assert feed.store[f"h:{AGB}"] != before


def test_rekeyed_lines_are_acknowledged_before_the_ledger_is_written(make_line):
    feed, witness = witnessed()
    feed.declarations(None, batch(make_line()))
    (i,) = [i for i, s in enumerate(witness.sent) if s.topic == feed.settings.topic_control]
    assert "l:0" not in witness.tables[i] and "l:0" in feed.store


def test_a_transition_already_on_the_alerts_topic_is_not_sent_again(make_line):
    lines = [make_line(), make_line()]
    first = Feed(load_policy(), partitions=1)
    first.control(0, contract_control(contract(20_000)))
    first.declarations(AGB, batch(*lines))
    assert len(first.alerts) == 3
    # A worker whose state write was lost in a crash processes the message again; the
    # alerts topic (read at recovery into ``published``) has its transitions already.
    again = Feed(load_policy(), partitions=1)
    again.worker.published.marks = {(a["alert_id"], a["sequence"]) for a in first.alerts}
    again.control(0, contract_control(contract(20_000)))
    again.declarations(AGB, batch(*lines))
    assert again.alerts == []
    assert again.engine.snapshot()["providers"] == first.engine.snapshot()["providers"]
