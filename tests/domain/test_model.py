"""``parse_time``: every timestamp the schema's date-time format admits, as unix seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from streams.domain.model import Counts, format_time, is_agb, parse_time

MIDNIGHT = datetime(2026, 7, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-01T00:00:00Z", MIDNIGHT),
        ("2026-07-01t00:00:00Z", MIDNIGHT),
        ("2026-07-01T00:00:00z", MIDNIGHT),
        ("2026-07-01t00:00:00z", MIDNIGHT),
        ("2026-07-01T02:00:00+02:00", MIDNIGHT),
        ("2026-07-01t02:00:00+0200", MIDNIGHT),
        ("2026-06-30T19:00:00-05:00", MIDNIGHT),
        ("2026-07-01T00:00:00-00:00", MIDNIGHT),
        ("2026-07-01T00:00:00.25z", MIDNIGHT + 0.25),
    ],
)
def test_offsets_separators_and_fractions_of_one_instant(text: str, expected: float) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-30T23:59:60Z", MIDNIGHT),
        ("2026-06-30t23:59:60z", MIDNIGHT),
        ("2026-06-30T23:59:60.5Z", MIDNIGHT + 0.5),
        ("2026-07-01T01:59:60.25+02:00", MIDNIGHT + 0.25),
        ("2026-06-30T18:59:60-05:00", MIDNIGHT),
        ("2026-06-30T23:59:60+0000", MIDNIGHT),
    ],
)
def test_a_leap_second_is_read_as_the_second_after_59(text: str, expected: float) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T24:00:00Z",
        "2026-03-01t24:00:00z",  # the slow path checks the calendar too
        "2026-03-01T10:60:00Z",
        "2026-03-01T10:00:61Z",
        "2026-13-01T10:00:00Z",
        "2026-02-29T10:00:60Z",
        "2026-04-31t10:00:00z",
        "2026-03-01T10:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC: no alert could carry it
        "9999-12-31T23:59:60Z",  # year 10000 in UTC
        "\u0662\u0660\u0662\u0666-03-01T10:00:00Z",
        "2026-03-01T10:00:00Z\n",
        "not a time",
    ],
)
def test_an_impossible_calendar_or_instant_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_the_first_and_last_instants_an_alert_can_carry() -> None:
    first = parse_time("0001-01-01T00:00:00Z")
    last = parse_time("9999-12-31T23:59:59Z")
    assert (format_time(first), format_time(last)) == (
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    )


def test_a_line_submitted_in_a_leap_second_alerts_at_the_next_second(engine, make_line) -> None:
    mismatch = make_line(
        care_demand_type=1, setting=5, activity="stay", stay_days=3
    )  # fires zvt_setting_mismatch on this line, with its event time
    mismatch["submitted_at"] = "2026-06-30t23:59:60.5z"
    fx = engine.process(orjson.dumps(mismatch))
    assert fx.dead_letters == []
    (alert,) = fx.alerts
    assert alert["event_time"] == "2026-07-01T00:00:00.500000Z"


@pytest.mark.parametrize(
    ("value", "agb"),
    [
        ("12345678", True),
        ("1234567", False),
        ("123456789", False),
        ("1234567a", False),
        ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", False),  # Arabic-Indic digits
        (12345678, False),
        (None, False),
    ],
)
def test_an_agb_code_is_exactly_eight_ascii_digits(value, agb):
    assert is_agb(value) is agb


def test_the_decoder_names_no_provider_whose_agb_has_other_scripts_digits(engine):
    raw = orjson.dumps({"provider_agb": "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"})
    assert engine.decoder.provider_of(raw) is None
    assert engine.decoder.provider_of(orjson.dumps({"provider_agb": "12345678"})) == "12345678"


def test_counts_since_a_copy_are_what_was_counted_in_between() -> None:
    counts = Counts(accepted=5, duplicate=1, rejected={"schema": 2, "invalid_json": 1})
    before = counts.copy()
    counts.accepted += 2
    counts.duplicate_credit += 1
    counts.reject("schema")
    counts.reject("orphan_credit")
    assert before == Counts(accepted=5, duplicate=1, rejected={"schema": 2, "invalid_json": 1})
    assert counts.since(before) == Counts(
        accepted=2, duplicate_credit=1, rejected={"schema": 1, "orphan_credit": 1}
    )
    assert counts.since(counts.copy()) == Counts()
    assert counts.total() == 5 + 2 + 1 + 1 + 3 + 1 + 1
