"""The newcomer's rule (example_digital_setting5.py): registered from a test, its
policy section read by the generic parser, its tallies counted from the lines, and
its alert firing and resolving through the engine with credits, in the offline
replay's engine and in a streaming worker's (hashed line index, journal).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

import pytest

from streams.domain.engine import Engine
from streams.domain.errors import PolicyError
from streams.domain.indicators import YearState
from streams.domain.model import FIRST_TALLY_BIT
from streams.domain.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from streams.domain.rules import RULES, register, unregister
from streams.store.codec import Journal
from tests.domain.rules import example_digital_setting5 as example
from tests.domain.rules.rule_helpers import AGB, NOW, ids, published

ALERT_ID = f"digital_setting5_high:{AGB}:2026"
DEFAULTS = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


@pytest.fixture
def registered() -> Iterator[None]:
    register(example.RULE)
    try:
        yield
    finally:
        unregister(example.RULE.name)


@pytest.fixture
def policy_with_rule(registered: None) -> Policy:
    return parse_policy(tomllib.loads(DEFAULTS + example.POLICY))


def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The example rule's alert events (other rules may fire on the same lines)."""
    return [e for e in events if e["rule"] == example.RULE.name]


def setting5(line: Any, n: int, digital: bool) -> list[dict[str, Any]]:
    return [line(setting=5, digital=digital) for _ in range(n)]


@pytest.mark.parametrize("journal", [False, True], ids=["offline", "streaming"])
def test_the_new_rule_fires_and_resolves_through_the_engine_with_credits(
    policy_with_rule, line, send, journal
):
    eng = Engine(policy_with_rule, clock=lambda: NOW, journal=journal)
    if journal:
        eng.journals = Journal  # as the streaming worker's processor sets it
    digital = setting5(line, 4, True)
    # 4 of 12 consults in setting 5 digital (33%); digital consults elsewhere and
    # non-consults in setting 5 do not count
    send(
        eng,
        *digital,
        *setting5(line, 8, False),
        line(setting=3, digital=True),
        line(setting=5, activity="other"),
    )
    ys = eng.providers[AGB].years[2026]
    assert (ys.tally("digital_setting5"), ys.tally("consults_setting5")) == (4, 12)
    (fired,) = mine(published(eng.tick()))
    assert (fired["alert_id"], fired["state"], fired["severity"]) == (ALERT_ID, "firing", "warning")
    assert fired["value"] == pytest.approx(4 / 12)
    assert fired["threshold"] == 0.30
    assert "33,3% van de 12 consulten in setting 5" in fired["message"]
    assert fired["explain"] == {"numerator": 4, "denominator": 12}
    assert mine(eng.tick().alerts) == []
    # a credit takes back what its debit added: 3 of 11 (27%) resolves
    send(eng, line.credit(digital[0]))
    assert (ys.tally("digital_setting5"), ys.tally("consults_setting5")) == (3, 11)
    assert [i for i in ids(eng.tick()) if i[0] == ALERT_ID] == [(ALERT_ID, "resolved")]


def test_exactly_the_maximum_share_does_not_fire(policy_with_rule, line, send):
    eng = Engine(policy_with_rule, clock=lambda: NOW)
    send(eng, *setting5(line, 3, True), *setting5(line, 7, False))  # 30% exactly
    assert [i for i in ids(eng.tick()) if i[0] == ALERT_ID] == []
    send(eng, line(setting=5, digital=True))  # 4 of 11
    assert [i for i in ids(eng.tick()) if i[0] == ALERT_ID] == [(ALERT_ID, "firing")]


def test_the_new_rule_gets_free_flag_bits_and_gives_them_back():
    before = dict(RULES.tally_flags())  # other tally rules, if the package has any
    register(example.RULE)
    try:
        added = sorted(set(dict(RULES.tally_flags())) - set(before))
        assert len(added) == 2 and all(b >= 1 << FIRST_TALLY_BIT for b in added)
        assert not set(added) & set(before)
    finally:
        unregister(example.RULE.name)
    assert dict(RULES.tally_flags()) == before


def test_tallies_travel_by_name_and_a_record_without_one_reads_as_zero(
    policy_with_rule, line, send
):
    eng = Engine(policy_with_rule, clock=lambda: NOW, journal=True)
    eng.journals = Journal
    send(eng, *setting5(line, 2, True))
    record = eng.providers[AGB].years[2026].to_json()
    assert {k: record["tallies"][k] for k in ("digital_setting5", "consults_setting5")} == {
        "digital_setting5": 2,
        "consults_setting5": 2,
    }
    assert YearState.from_json(record) == eng.providers[AGB].years[2026]
    del record["tallies"]  # a checkpoint written before the rule existed
    assert YearState.from_json(record).tally("digital_setting5") == 0


def test_the_policy_must_hold_the_new_rules_section_and_only_registered_ones(registered):
    with pytest.raises(PolicyError, match=r"\[digital_setting5_high\] is missing"):
        parse_policy(tomllib.loads(DEFAULTS))
    with pytest.raises(PolicyError, match=r"digital_setting5_high\.max_share must be between"):
        parse_policy(tomllib.loads(DEFAULTS + example.POLICY.replace("0.30", "1.5")))
    unregister(example.RULE.name)
    with pytest.raises(PolicyError, match=r"\[digital_setting5_high\] is not a known section"):
        parse_policy(tomllib.loads(DEFAULTS + example.POLICY))
    register(example.RULE)
