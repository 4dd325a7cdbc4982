"""``Worker.handle`` (step 2 of streams/kafka/commit.py): a message's results are
sent before the state that records them is written (dead letters and re-keyed lines
acknowledged; alerts not yet acknowledged written to the partition's outbox first, and
sent again at recovery where the topic lacks them), and an alert transition already on
the alerts topic is not sent again."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from streams.domain.policy import DEFAULT_POLICY_PATH, Policy, load_policy, parse_policy
from streams.domain.rules import RULES
from streams.pipeline.processor import contract_control, tick_control
from streams.replay.offline import replay_offline
from tests.conftest import AGB, make_contract
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


def fed(outbox: Callable[[Feed], Any], store: dict[str, Any] | None = None) -> tuple[Feed, Any]:
    """A one-partition feed whose worker sends to ``outbox(feed)``."""
    feed = Feed(load_policy(), partitions=1, store=store)
    feed.outbox = feed.worker.outbox = outbox(feed)
    return feed, feed.outbox


def witnessed() -> tuple[Feed, Witness]:
    return fed(lambda feed: Witness(feed.store))


def test_an_alert_is_sent_before_the_state_that_records_it_is_written(make_line):
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


class Answer:
    """A broker's answer to an alert, given when the test says (each ``Feed`` message
    runs in an event loop of its own, so no asyncio future outlives it)."""

    def __init__(self) -> None:
        self.given = False

    def done(self) -> bool:
        return self.given

    def cancelled(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        return None


class Unanswered(Recorder):
    """An outbox whose broker has not acknowledged any alert yet."""

    def __init__(self, alerts_topic: str) -> None:
        super().__init__()
        self.alerts_topic = alerts_topic
        self.waiting: list[Answer] = []

    async def send(self, topic: str, key: Any, value: bytes, headers: Any = None) -> Any:
        done = await super().send(topic, key, value, headers)
        if topic != self.alerts_topic:
            return done
        self.waiting.append(Answer())
        return self.waiting[-1]


class Writes(dict[str, Any]):
    """A state table that remembers the order of its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.order.append(key)
        super().__setitem__(key, value)


def unanswered() -> tuple[Feed, Unanswered]:
    return fed(lambda feed: Unanswered(feed.settings.topic_alerts), Writes())


def test_an_unacknowledged_alert_is_in_the_outbox_written_before_the_state(make_line):
    feed, outbox = unanswered()
    feed.control(0, contract_control(contract(20_000)))
    feed.declarations(AGB, batch(make_line()))  # 50 %: no alert yet
    assert "a:0" not in feed.store
    writes = len(feed.store.order)
    feed.declarations(AGB, batch(make_line()))  # 100 %: 70, 90 and 100 % fire
    order = feed.store.order[writes:]
    assert order.index("a:0") < order.index(f"h:{AGB}")
    outboxed = orjson.loads(feed.store["a:0"])
    assert [a["alert_id"] for a in outboxed] == [a["alert_id"] for a in feed.alerts]
    assert len(outboxed) == 3


def test_the_outbox_keeps_only_what_is_still_unacknowledged(make_line):
    feed, outbox = unanswered()
    feed.control(0, contract_control(contract(40_000)))
    feed.declarations(AGB, batch(make_line(), make_line()))  # 50 %
    feed.declarations(AGB, batch(make_line()))  # 75 %: 70 % fires
    ids = [a["alert_id"] for a in orjson.loads(feed.store["a:0"])]
    assert ids == [f"ceiling_utilisation:{AGB}:2026:70"]
    outbox.waiting[0].given = True  # the broker has the 70 % now
    feed.declarations(AGB, batch(make_line()))  # 100 %: 90 and 100 % fire
    ids = [a["alert_id"] for a in orjson.loads(feed.store["a:0"])]
    assert ids == [f"ceiling_utilisation:{AGB}:2026:{t}" for t in (90, 100)]


def test_recovery_sends_what_the_outbox_holds_and_the_alerts_topic_lacks(make_line):
    crashed, _ = unanswered()
    crashed.control(0, contract_control(contract(20_000)))
    crashed.declarations(AGB, batch(make_line(), make_line()))  # 70, 90 and 100 % fire
    sent = crashed.outbox.to(crashed.settings.topic_alerts)
    # The worker died with its state written and only the 70 % acknowledged.
    again = Feed(load_policy(), partitions=1, store=dict(crashed.store)).recover()
    first = orjson.loads(sent[0].value)
    again.worker.published.marks = {(first["alert_id"], first["sequence"])}
    asyncio.run(again.worker.resend([0]))
    resent = again.outbox.to(again.settings.topic_alerts)
    assert [(s.key, s.value) for s in resent] == [(s.key, s.value) for s in sent[1:]]
    asyncio.run(again.worker.resend([0]))  # now counted as sent: never twice
    assert len(again.outbox.to(again.settings.topic_alerts)) == 2


def test_an_outbox_that_holds_no_alert_events_sends_nothing_and_raises_nothing():
    feed = Feed(load_policy(), partitions=3)
    event = {"alert_id": "ceiling_utilisation:12345678:2026:70", "sequence": 1}
    feed.store["a:0"] = b"not json"
    feed.store["a:1"] = orjson.dumps({"alert_id": "x"})
    feed.store["a:2"] = orjson.dumps([event, 7, {**event, "provider_agb": "12345678"}])
    asyncio.run(feed.worker.resend([0, 1, 2]))
    assert [a["provider_agb"] for a in feed.alerts] == ["12345678"]


# -- month boundaries (SPEC §8.1): the worker and the offline replay alike ------------

OTHER = "87654321"


def _boundary_history(make_line) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two providers' lines over January-May 2026 (in submission order) and their
    contracts. AGB's group consults with 4 practitioners become a problem in January
    (staffing: seen at the first February line) and are credited in March (resolved
    at the first April line); OTHER's clinical detox stays of February fire at the first
    March line and an ambulant wave in April resolves it at the first May line. Each
    month-opening line would, if it were counted, change the figure the rule judges.
    OTHER's last clinical stays (May) are judged at the end of input."""
    lines: list[dict[str, Any]] = []

    def at(day: str, agb: str, **fields: Any) -> dict[str, Any]:
        obj = make_line(provider_agb=agb, service_date=day[:10], submitted_at=day, **fields)
        lines.append(obj)
        return obj

    group = {"consult_mode": "group", "practitioners": 4}
    staffed = [at(f"2026-01-{d:02d}T10:00:00Z", AGB, **group) for d in (5, 6, 7)]
    at("2026-01-08T10:00:00Z", OTHER)
    at("2026-02-02T10:00:00Z", AGB, consult_mode="group", practitioners=2)  # boundary
    for d in (3, 4, 5, 6):
        at(f"2026-02-{d:02d}T10:00:00Z", OTHER, activity="stay", stay_days=1, detox="clinical")
    at("2026-03-02T10:00:00Z", OTHER, activity="other", detox="ambulant")  # boundary
    for debit in staffed[:2]:
        credit = make_line.credit(debit, submitted_at="2026-03-10T10:00:00Z")
        lines.append(credit)
    at("2026-04-01T00:00:00Z", AGB, **group)  # boundary: the credits count now
    for d in (2, 3, 6, 7):
        at(f"2026-04-{d:02d}T10:00:00Z", OTHER, activity="other", detox="ambulant")
    at("2026-05-04T10:00:00Z", OTHER, activity="other", detox="ambulant")  # boundary
    for d in (10, 11):
        at(f"2026-05-{d:02d}T10:00:00Z", OTHER, activity="stay", stay_days=1, detox="clinical")
    at("2026-05-20T10:00:00Z", AGB)  # boundary: April's group consult counts now
    contracts = [
        make_contract(AGB, ceiling_cents=10_000_000, provider_name="GGZ A"),
        make_contract(OTHER, ceiling_cents=10_000_000, provider_name="GGZ B"),
    ]
    return lines, contracts


def _own_state_transitions(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The transitions of the structural rules that read only the provider's own
    state, as (alert_id, state, sequence, event_time, value): SPEC §8.1 promises them
    equal in streaming and offline (peer rules: only the final firing set)."""
    own = {r.name for r in RULES.structural() if not r.peers}
    found = [
        (a["alert_id"], a["state"], a["sequence"], a["event_time"], a["value"])
        for a in alerts
        if a["rule"] in own
    ]
    # by event time: the worker publishes the end of input partition by partition
    return sorted(found, key=lambda t: (t[3], t[0], t[2]))


def test_streaming_and_offline_give_the_same_month_boundary_transitions(make_line, tmp_path):
    policy = boundary_policy()
    lines, contracts = _boundary_history(make_line)

    feed = Feed(policy, partitions=2)
    for c in contracts:
        feed.control(feed.partition_of(c["provider_agb"]), contract_control(c))
    for i, obj in enumerate(lines):
        if i == 9:  # a wall-clock tick, when OTHER's detox already holds: not decided by it
            feed.tick()
        # one provider's lines keyed, the other's unkeyed (re-keyed by the worker)
        feed.declarations(AGB if obj["provider_agb"] == AGB else None, orjson.dumps(obj))
    for p in range(feed.partitions):  # a replay's final tick: the end of input
        feed.control(p, tick_control(final=True))

    declarations = tmp_path / "declarations.ndjson"
    declarations.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in lines))
    contract_file = tmp_path / "contracts.ndjson"
    contract_file.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in contracts))
    alerts_out = tmp_path / "alerts.ndjson"
    replay_offline([declarations], policy, contracts=contract_file, alerts_out=alerts_out)
    offline = [orjson.loads(x) for x in alerts_out.read_bytes().splitlines()]

    streaming = _own_state_transitions(feed.alerts)
    assert streaming == _own_state_transitions(offline)
    # ... and they are the month each problem appeared and went, not the end of input
    assert streaming == [
        (f"group_consult_staffing:{AGB}:2026", "firing", 1, "2026-02-02T10:00:00Z", 1.0),
        (f"clinical_detox_high:{OTHER}:2026", "firing", 1, "2026-03-02T10:00:00Z", 1.0),
        (f"group_consult_staffing:{AGB}:2026", "resolved", 2, "2026-04-01T00:00:00Z", 0.5),
        (f"clinical_detox_high:{OTHER}:2026", "resolved", 2, "2026-05-04T10:00:00Z", 4 / 9),
        # the end of input, at OTHER's watermark: 6 clinical of 12 detox lines
        (f"clinical_detox_high:{OTHER}:2026", "firing", 3, "2026-05-11T10:00:00Z", 0.5),
        (f"group_consult_staffing:{AGB}:2026", "firing", 3, "2026-05-20T10:00:00Z", 2 / 3),
    ]
    assert feed.engine.snapshot()["providers"] == offline_snapshot(tmp_path, policy, lines)


def boundary_policy() -> Policy:
    """The shipped policy with minimum counts small enough for a few lines."""
    raw = tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw["group_consult_staffing"].update(min_count=1, min_share=0.6)
    raw["clinical_detox_high"].update(min_clients=4, threshold=0.5)
    return parse_policy(raw)


def offline_snapshot(tmp_path: Path, policy: Policy, lines: list[dict[str, Any]]) -> Any:
    declarations = tmp_path / "again.ndjson"
    declarations.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in lines))
    _summary, engine = replay_offline(
        [declarations], policy, contracts=tmp_path / "contracts.ndjson"
    )
    return engine.snapshot()["providers"]
