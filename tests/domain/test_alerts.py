"""The alert state machine and the alert event (streams/domain/alerts.py, SPEC §5).

A transition is published only when an alert's state changes: a finding that holds
while the alert fires, or a finding between fire and clear (hysteresis), changes
nothing but the current value. Each transition takes the next sequence number of its
alert id. The event carries the contract's fields, or nulls without a contract, and
is valid against ``alert.v1.json``.
"""

from __future__ import annotations

import re
from typing import Any

import fastjsonschema
import pytest

from streams.domain import schemas
from streams.domain.alerts import (
    AlertBook,
    AlertState,
    Finding,
    alert_id,
    build_event,
    euros,
    number,
    pct,
    who,
)
from streams.domain.contracts import Contract
from streams.domain.model import parse_time
from streams.domain.rules import RULES, message
from tests.conftest import AGB

AID = f"ceiling_utilisation:{AGB}:2026:70"
VALIDATE = schemas.validator(schemas.ALERT)
ID_PATTERN = schemas.load_schema(schemas.ALERT)["properties"]["alert_id"]["pattern"]


def finding(
    *,
    fire: bool,
    clear: bool,
    value: float | None = 0.75,
    severity: str = "warning",
    detail: str | None = "70",
) -> Finding:
    return Finding("ceiling_utilisation", 2026, detail, fire, clear, value, 0.70, severity)


FIRE = finding(fire=True, clear=False)
HOLD = finding(fire=False, clear=False, value=0.69)  # below 0.70, above 0.68: hysteresis
CLEAR = finding(fire=False, clear=True, value=0.60)


# -- the state machine ---------------------------------------------------------------------


def test_a_first_firing_is_a_transition_with_sequence_one():
    book = AlertBook()
    new = book.observe(AID, FIRE)
    assert new == AlertState(True, 1, "warning", 0.75)
    assert book.firing() == [(AID, new)]


def test_a_finding_that_still_holds_is_no_transition_but_keeps_the_value_current():
    book = AlertBook()
    book.observe(AID, FIRE)
    assert book.observe(AID, finding(fire=True, clear=False, value=0.8)) is None
    assert book.states[AID] == AlertState(True, 1, "warning", 0.8)


def test_between_fire_and_clear_a_firing_alert_stays_firing():
    book = AlertBook()
    book.observe(AID, FIRE)
    assert book.observe(AID, HOLD) is None
    assert book.states[AID].firing
    assert book.states[AID].value == 0.69  # the value is current, the state is not changed


def test_a_clear_resolves_a_firing_alert_with_the_next_sequence_and_its_severity():
    book = AlertBook()
    book.observe(AID, finding(fire=True, clear=False, severity="high"))
    resolved = book.observe(AID, finding(fire=False, clear=True, value=0.5, severity="warning"))
    assert resolved == AlertState(False, 2, "high", 0.5)
    assert book.firing() == []


def test_a_clear_of_an_alert_that_is_not_firing_is_no_transition():
    book = AlertBook()
    assert book.observe(AID, CLEAR) is None
    assert AID not in book.states
    book.observe(AID, FIRE)
    book.observe(AID, CLEAR)
    assert book.observe(AID, CLEAR) is None
    assert book.states[AID].sequence == 2


def test_firing_again_after_a_resolve_takes_the_next_sequence_number():
    book = AlertBook()
    sequences = [
        s.sequence for f in (FIRE, CLEAR, HOLD, FIRE, FIRE, CLEAR) if (s := book.observe(AID, f))
    ]
    assert sequences == [1, 2, 3, 4]


def test_sequences_are_per_alert_id():
    book = AlertBook()
    other = f"ceiling_utilisation:{AGB}:2026:90"
    book.observe(AID, FIRE)
    book.observe(AID, CLEAR)
    new = book.observe(other, finding(fire=True, clear=False, detail="90"))
    assert new is not None and new.sequence == 1


def test_an_alert_book_survives_json():
    book = AlertBook()
    book.observe(AID, FIRE)
    book.observe("zvt_setting_mismatch:12345678:2026", finding(fire=True, clear=False, value=None))
    book.observe("zvt_setting_mismatch:12345678:2026", CLEAR)
    again = AlertBook.from_json(book.to_json())
    assert again.states == book.states
    # and it goes on the same way: a firing alert does not fire twice
    assert again.observe(AID, FIRE) is None
    assert again.observe(AID, CLEAR) == AlertState(False, 2, "warning", 0.60)


# -- alert ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "year", "detail", "expected"),
    [
        ("ceiling_utilisation", 2026, "70", "ceiling_utilisation:12345678:2026:70"),
        ("adhd_growth", 2025, "Q2", "adhd_growth:12345678:2025:Q2"),
        ("zvt_setting_mismatch", 2026, None, "zvt_setting_mismatch:12345678:2026"),
        ("group_share_low", 2026, "", "group_share_low:12345678:2026"),
    ],
)
def test_an_alert_id_is_rule_agb_year_and_detail_when_there_is_one(rule, year, detail, expected):
    aid = alert_id(rule, AGB, year, detail)
    assert aid == expected
    assert re.fullmatch(ID_PATTERN, aid)


# -- the event ------------------------------------------------------------------------------

CONTRACT = Contract(AGB, 2026, 1_000_000, "Team Midden", "GGZ Voorbeeld", "Utrecht", 2, 0.0)
EVENT_TIME = parse_time("2026-03-02T10:15:00+01:00")
DETECTED = parse_time("2026-06-01T00:00:00Z")


def event(
    state: AlertState,
    contract: Contract | None,
    replay: bool = False,
    f: Finding = FIRE,
    explain: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return build_event(
        finding=f,
        provider=AGB,
        state=state,
        contract=contract,
        event_time=EVENT_TIME,
        detected_at=DETECTED,
        replay=replay,
        message="Het plafond is voor 70% benut.",
        explain=explain,
    )


def test_the_event_has_every_field_of_spec_section_5_and_is_valid():
    got = event(AlertState(True, 1, "warning", 0.75), CONTRACT)
    VALIDATE(got)
    assert got == {
        "schema": "ggz.alert/1",
        "alert_id": AID,
        "rule": "ceiling_utilisation",
        "state": "firing",
        "severity": "warning",
        "provider_agb": AGB,
        "provider_name": "GGZ Voorbeeld",
        "year": 2026,
        "purchaser": "Team Midden",
        "region": "Utrecht",
        "value": 0.75,
        "threshold": 0.70,
        "event_time": "2026-03-02T09:15:00Z",
        "detected_at": "2026-06-01T00:00:00Z",
        "message": "Het plafond is voor 70% benut.",
        "sequence": 1,
    }


def test_without_a_contract_name_purchaser_and_region_are_null_and_the_event_is_valid():
    got = event(AlertState(True, 1, "warning", 0.75), None)
    VALIDATE(got)
    assert (got["provider_name"], got["purchaser"], got["region"]) == (None, None, None)


def test_a_resolved_transition_says_resolved_with_its_own_sequence_and_value():
    got = event(AlertState(False, 2, "high", 0.6), CONTRACT, f=CLEAR)
    VALIDATE(got)
    assert (got["state"], got["sequence"], got["severity"]) == ("resolved", 2, "high")
    assert got["value"] == 0.60  # the finding's value: what the alert reads now


def test_a_replays_event_says_so_and_a_live_one_has_no_replay_field():
    live = event(AlertState(True, 1, "warning", 0.75), CONTRACT)
    replayed = event(AlertState(True, 1, "warning", 0.75), CONTRACT, replay=True)
    VALIDATE(replayed)
    assert "replay" not in live
    assert replayed == {**live, "replay": True}


def test_an_event_with_a_field_the_schema_does_not_name_would_be_refused():
    # the schema is closed (additionalProperties: false): the checks above can fail
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        VALIDATE({**event(AlertState(True, 1, "warning", 0.75), CONTRACT), "client_ref": "x"})


def test_the_explain_object_is_carried_and_valid_and_absent_when_there_is_none():
    why = {
        "cause": "contract_change",
        "contract_version": 2,
        "numerator": 750_000,
        "denominator": 1_000_000,
    }
    got = event(AlertState(True, 1, "warning", 0.75), CONTRACT, explain=why)
    VALIDATE(got)
    assert got["explain"] == why
    assert "explain" not in event(AlertState(True, 1, "warning", 0.75), CONTRACT)


def test_the_schema_refuses_an_unknown_cause_and_allows_the_info_severity():
    got = event(AlertState(True, 1, "info", 0.75), CONTRACT, explain={"cause": "weather"})
    with pytest.raises(fastjsonschema.JsonSchemaException):
        VALIDATE(got)
    VALIDATE({**got, "explain": {"cause": "declarations"}})


# -- wording ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "nl", "en"),
    [
        (123_456_789, "€ 1.234.568", "€1,234,568"),
        (100_000, "€ 1.000", "€1,000"),
        (99, "€ 1", "€1"),
        (50, "€ 0", "€0"),  # half to even
        (150, "€ 2", "€2"),
        (0, "€ 0", "€0"),
        (-250_000, "€ -2.500", "-€2,500"),
    ],
)
def test_euros_are_whole_with_dutch_or_english_thousands(cents, nl, en):
    assert (euros(cents), euros(cents, "en")) == (nl, en)


@pytest.mark.parametrize(
    ("share", "nl", "en"),
    [(0.725, "72,5%", "72.5%"), (0.7, "70%", "70%"), (1 / 3, "33,3%", "33.3%"), (0.0, "0%", "0%")],
)
def test_percentages_have_a_decimal_comma_and_drop_a_zero_decimal(share, nl, en):
    assert (pct(share), pct(share, "en")) == (nl, en)
    assert (pct(None), pct(None, "en")) == ("n.v.t.", "n/a")


def test_counts_group_thousands():
    assert (number(1_234_567), number(1_234_567, "en"), number(12)) == (
        "1.234.567",
        "1,234,567",
        "12",
    )


def test_a_provider_is_named_by_contract_name_and_agb_code():
    assert who(AGB, "GGZ Voorbeeld") == f"GGZ Voorbeeld (AGB-code {AGB})"
    assert who(AGB, None) == f"Zorgaanbieder met AGB-code {AGB}"
    assert who(AGB, None, "en") == f"Provider {AGB}"


@pytest.mark.parametrize("rule_name", RULES.names())
@pytest.mark.parametrize("firing", [True, False])
def test_every_rule_words_its_transitions_in_dutch_by_default_and_in_english(rule_name, firing):
    f = Finding(rule_name, 2026, "Q2", firing, not firing, 0.125, 0.25, "warning")
    ctx = {
        "numerator": 7_654_321,
        "denominator": 9_876_543,
        "peer_mean": 0.3,
        "factor": 0.5,
        "cause": "declarations",
        "contract_version": 1,
    }
    nl = message(f, firing, AGB, "GGZ Voorbeeld", ctx)
    en = message(f, firing, AGB, "GGZ Voorbeeld", ctx, "en")
    assert f"GGZ Voorbeeld (AGB-code {AGB})" in nl and "2026" in nl
    # zvt says lines, department_stopped months without clients: not a share
    if rule_name not in ("zvt_setting_mismatch", "department_stopped"):
        assert "12,5%" in nl and "12.5%" not in nl
        assert "12.5%" in en and "12,5%" not in en
    assert "7654321" not in nl and "7,654,321" not in nl  # counts and cents grouped, Dutch
    for english in ("EUR", " of its ", "consults", "threshold", "n/a"):
        assert english not in nl, (english, nl)
