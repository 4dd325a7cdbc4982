"""SPEC §2 acceptance, reason by reason in the order of the spec, and the batch envelope."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.engine import Effects, Engine

OTHER = "87654321"


def send(engine: Engine, *objs: Any, key: str | None = None) -> Effects:
    """Process each object as its own message; return the effects of all of them."""
    fx = Effects()
    for obj in objs:
        raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        engine.process(raw, key, fx)
    return fx


def batch(lines: list[Any], agb: str = "12345678") -> bytes:
    return orjson.dumps({"schema": "ggz.declaration-batch/1", "provider_agb": agb, "lines": lines})


def reasons(fx: Effects) -> list[str]:
    return [d.reason for d in fx.dead_letters]


def year(engine: Engine, agb: str = "12345678", y: str = "2026") -> dict[str, Any]:
    return engine.snapshot()["providers"][agb][y]


# -- 1. invalid_json -----------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe{}", b'{"schema": "ggz.decl'])
def test_bytes_that_are_not_json_are_dead_lettered_as_invalid_json(engine, raw):
    fx = send(engine, raw)
    assert reasons(fx) == ["invalid_json"]
    assert fx.dead_letters[0].payload == raw
    assert engine.counts().rejected == {"invalid_json": 1}
    assert engine.counts().accepted == 0


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b"42", b'"text"', b"null", b"true"])
def test_json_that_is_not_an_object_is_invalid_json(engine, raw):
    fx = send(engine, raw)
    assert reasons(fx) == ["invalid_json"]
    assert engine.counts().rejected == {"invalid_json": 1}


@pytest.mark.parametrize("bad", [7, "text", None, [1, 2]])
def test_batch_line_that_is_not_an_object_is_invalid_json_and_its_siblings_count(
    engine, make_line, bad
):
    first, last = make_line(), make_line()
    fx = send(engine, batch([first, bad, last]))
    assert reasons(fx) == ["invalid_json"]
    assert fx.dead_letters[0].payload == orjson.dumps(bad)
    assert engine.counts().accepted == 2
    assert year(engine)["consults"] == 2


# -- 2. schema -------------------------------------------------------------------

REQUIRED = [
    "schema",
    "event_id",
    "line_id",
    "kind",
    "provider_agb",
    "region",
    "client_ref",
    "trajectory_id",
    "service_date",
    "submitted_at",
    "activity",
    "setting",
    "care_demand_type",
    "diagnosis_group",
    "amount_cents",
]


@pytest.mark.parametrize("field", REQUIRED)
def test_line_missing_a_required_field_is_a_schema_rejection_naming_it(engine, make_line, field):
    fx = send(engine, make_line(**{field: ...}))
    assert reasons(fx) == ["schema"]
    detail = fx.dead_letters[0].detail
    assert f"'{field}'" in detail
    # it names the missing field, not the whole list of required ones
    others = [f for f in REQUIRED if f != field and f"'{f}'" in detail]
    assert others == []


@pytest.mark.parametrize("field", ["consult_mode", "practitioners", "digital"])
def test_consult_without_its_consult_fields_is_a_schema_rejection_naming_the_field(
    engine, make_line, field
):
    fx = send(engine, make_line(**{field: ...}))
    assert reasons(fx) == ["schema"]
    assert field in fx.dead_letters[0].detail


def test_stay_without_stay_days_is_a_schema_rejection_naming_stay_days(engine, make_line):
    fx = send(engine, make_line(activity="stay"))
    assert reasons(fx) == ["schema"]
    assert "stay_days" in fx.dead_letters[0].detail


def test_stay_and_other_lines_need_no_consult_fields(engine, make_line):
    no_consult = {"consult_mode": ..., "practitioners": ..., "digital": ...}
    fx = send(
        engine,
        make_line(activity="stay", stay_days=3, **no_consult),
        make_line(activity="other", **no_consult),
    )
    assert fx.dead_letters == []
    assert engine.counts().accepted == 2
    assert year(engine)["consults"] == 0


BOUNDARIES = [
    ("practitioners", 0, False),
    ("practitioners", 1, True),
    ("practitioners", 20, True),
    ("practitioners", 21, False),
    ("amount_cents", 0, False),
    ("amount_cents", 1, True),
    ("amount_cents", 10_000_000, True),
    ("amount_cents", 10_000_001, False),
    ("amount_cents", -100, False),
    ("care_demand_type", -1, False),
    ("care_demand_type", 0, True),
    ("care_demand_type", 21, True),
    ("care_demand_type", 22, False),
    ("setting", 0, False),
    ("setting", 1, True),
    ("setting", 8, True),
    ("setting", 9, False),
    ("event_id", "", False),
    ("event_id", "x" * 64, True),
    ("event_id", "x" * 65, False),
    ("line_id", "", False),
    ("line_id", "y" * 65, False),
    ("client_ref", "k" * 128, True),
    ("client_ref", "k" * 129, False),
    ("region", "", False),
    ("department", "D" * 64, True),
    ("department", "", False),
    ("prestatie_code", "x" * 16, True),
    ("prestatie_code", "x" * 17, False),
    ("provider_agb", "1234567", False),
    ("provider_agb", "123456789", False),
    ("provider_agb", "1234567a", False),
    ("provider_agb", "12345678\n", False),
    ("provider_agb", 12345678, False),
    ("kind", "refund", False),
    ("activity", "visit", False),
    ("consult_mode", "duo", False),
    ("diagnosis_group", "ADHD", False),
    ("diagnosis_group", "trauma", True),
    ("detox", None, True),
    ("detox", "ambulant", True),
    ("detox", "none", False),
    ("digital", "yes", False),
    ("digital", 1, False),
    ("practitioners", "2", False),
    ("practitioners", True, False),
    ("amount_cents", 10.5, False),
    ("schema", "ggz.declaration/2", False),
    ("service_date", "2026-02-30", False),
    ("service_date", "2026-13-01", False),
    ("service_date", "2026-3-01", False),
    ("service_date", "20260301", False),
    ("service_date", "2025-02-29", False),
    ("service_date", "2024-02-29", True),
    ("submitted_at", "2026-03-01T10:00:00", False),  # no offset
    ("submitted_at", "2026-03-01", False),
    ("submitted_at", "2026-03-01T25:00:00Z", False),
    ("submitted_at", "2026-02-30T10:00:00Z", False),
    ("submitted_at", "2026-03-01T10:00:00Z", True),
    ("submitted_at", "2026-03-01T10:00:00.250+05:30", True),
]


@pytest.mark.parametrize(("field", "value", "ok"), BOUNDARIES)
def test_field_values_at_and_beyond_their_schema_boundaries(engine, make_line, field, value, ok):
    fx = send(engine, make_line(**{field: value}))
    if ok:
        assert fx.dead_letters == []
        assert engine.counts().accepted == 1
    else:
        assert reasons(fx) == ["schema"]
        assert fx.dead_letters[0].detail.startswith(f"{field}:")
        assert engine.counts().accepted == 0
        assert engine.snapshot()["providers"] == {}


def test_stay_days_boundaries(engine, make_line):
    lines = [make_line(activity="stay", stay_days=n) for n in (0, 1, 366, 367)]
    fx = send(engine, *lines)
    assert reasons(fx) == ["schema", "schema"]
    assert all(d.detail.startswith("stay_days:") for d in fx.dead_letters)
    assert engine.counts().accepted == 2


def test_integers_written_with_a_fraction_of_zero_are_accepted(engine, make_line):
    # JSON Schema counts 4.0 as an integer; the line must count like its integer twin
    raw = orjson.dumps(make_line(consult_mode="group")).replace(
        b'"practitioners":1', b'"practitioners":4.0'
    )
    fx = send(engine, raw)
    assert fx.dead_letters == []
    assert year(engine)["group_ge4"] == 1


def test_amount_written_as_a_float_integer_keeps_net_cents_an_integer(engine, make_line):
    raw = orjson.dumps(make_line(amount_cents=1000)).replace(
        b'"amount_cents":1000', b'"amount_cents":1e3'
    )
    send(engine, raw)
    net = year(engine)["net_cents"]
    assert net == 1000
    assert type(net) is int


def test_service_date_with_non_ascii_digits_is_a_schema_rejection(engine, make_line):
    fx = send(engine, make_line(service_date="٢٠٢٦-03-01"))
    assert reasons(fx) == ["schema"]


def test_unknown_extra_fields_are_ignored(engine, make_line, policy):
    plain = Engine(policy)
    send(plain, make_line(line_id="same", event_id="same"))
    fx = send(
        engine,
        make_line(line_id="same", event_id="same", future_field={"nested": [1, 2]}, label_s02=True),
    )
    assert fx.dead_letters == []
    assert engine.snapshot()["providers"] == plain.snapshot()["providers"]


# -- 2b. implausible_time (SPEC §12) ------------------------------------------------------


@pytest.mark.parametrize(
    ("submitted_at", "ok"),
    [
        ("2026-03-01T00:00:00Z", True),  # on the service date
        ("2026-02-28T23:59:59Z", False),  # the day before
        ("2026-03-01T00:30:00+01:00", False),  # its UTC date is 28 February
        ("2029-12-31T23:59:59Z", True),  # the end of service year 2026 + 3
        ("2029-12-31T23:59:60Z", False),  # a leap second reads as 2030-01-01
        ("2030-01-01T00:00:00Z", False),
        ("2030-01-01T00:30:00+01:00", True),  # its UTC date is 31 December 2029
        ("9999-01-06T00:00:00Z", False),
        ("0001-01-01T00:00:00Z", False),
    ],
)
def test_a_submitted_at_before_the_service_date_or_past_the_line_index_term_is_implausible(
    engine, make_line, submitted_at, ok
):
    fx = send(engine, make_line(service_date="2026-03-01", submitted_at=submitted_at))
    assert reasons(fx) == ([] if ok else ["implausible_time"])
    assert engine.counts().accepted == (1 if ok else 0)
    if not ok:
        assert engine.counts().rejected == {"implausible_time": 1}


def test_the_term_follows_retention_line_index_years(policy_with, make_line):
    engine = Engine(policy_with(**{"retention.line_index_years": 1}))
    late, later = "2027-12-31T12:00:00Z", "2028-01-01T00:00:00Z"
    fx = send(
        engine,
        make_line(service_date="2026-12-31", submitted_at=late),
        make_line(service_date="2026-12-31", submitted_at=later),
    )
    assert reasons(fx) == ["implausible_time"]
    assert "after 2027-12-31" in fx.dead_letters[0].detail


def test_the_detail_names_the_dates_and_quotes_nothing_else(engine, make_line):
    fx = send(
        engine,
        make_line(service_date="2026-03-01", submitted_at="2026-02-01T10:00:00+01:00"),
        make_line(service_date="2026-03-01", submitted_at="9999-01-06T00:00:00Z"),
    )
    assert [d.detail for d in fx.dead_letters] == [
        "submitted_at (UTC) 2026-02-01 is before service_date 2026-03-01",
        "submitted_at (UTC) 9999-01-06 is after 2029-12-31, the end of service year 2026 "
        "plus retention.line_index_years = 3",
    ]
    assert all(d.key == "12345678" for d in fx.dead_letters)


def test_a_far_future_timestamp_changes_no_state_and_closes_no_year(engine, make_line):
    """One typo (2036 for 2026) used to move the provider's watermark ten years on and
    close every open year: all later lines were line_index_expired."""
    send(engine, make_line(service_date="2025-06-01", submitted_at="2026-01-10T10:00:00Z"))
    before = engine.providers["12345678"].watermark
    typo = make_line(service_date="2026-01-05", submitted_at="2036-01-06T10:00:00Z")
    y9999 = make_line(service_date="2026-01-05", submitted_at="9999-01-06T00:00:00Z")
    fx = send(engine, typo, y9999)
    assert reasons(fx) == ["implausible_time", "implausible_time"]
    assert engine.providers["12345678"].watermark == before
    later = make_line(service_date="2025-07-01", submitted_at="2026-02-01T10:00:00Z")
    assert send(engine, later).dead_letters == []
    assert engine.counts().accepted == 2


def test_the_last_and_first_years_a_timestamp_can_have_are_processed(engine, make_line):
    fx = send(
        engine,
        make_line(service_date="0001-01-01", submitted_at="0001-01-01T00:00:00Z"),
        make_line(service_date="9999-12-31", submitted_at="9999-12-31T23:59:59Z"),
        make_line(service_date="9999-01-01", submitted_at="9999-06-01T00:00:00Z"),
    )
    assert fx.dead_letters == []
    engine.tick()
    assert set(engine.snapshot()["providers"]["12345678"]) == {"1", "9999"}


def test_implausible_time_comes_after_schema_and_before_every_later_step(engine, make_line):
    past = {"service_date": "2026-03-01", "submitted_at": "2026-01-01T00:00:00Z"}
    fx = send(
        engine,
        make_line(**past, practitioners=0),  # schema first
        make_line(**past, client_ref="123 456 789"),  # before the BSN rule, still masked
        batch([make_line(**past, provider_agb=OTHER)]),  # before the provider check
        batch([make_line(**past)], agb="12345678"),
    )
    assert reasons(fx) == ["schema", "implausible_time", "implausible_time", "implausible_time"]
    assert orjson.loads(fx.dead_letters[1].payload)["client_ref"] == "*********"
    keyed = send(Engine(engine.policy), batch([make_line(**past)]), key=OTHER)
    assert reasons(keyed) == ["implausible_time"]  # not batch_provider_mismatch


def test_both_decode_paths_judge_the_time_alike(engine, make_line):
    """The typed path (plain ASCII) and the dict path (a non-ASCII region) give the
    same reason and detail."""
    times = ["2026-02-28T23:59:59Z", "2030-01-01T00:00:00Z", "2029-12-31T23:59:59Z"]
    plain = [make_line(submitted_at=t) for t in times]
    accented = [{**line, "region": "Súdwest-Fryslân"} for line in plain]
    assert all(orjson.dumps(line).isascii() for line in plain)
    fx_plain, fx_accented = send(engine, *plain), send(Engine(engine.policy), *accented)
    assert [(d.reason, d.detail) for d in fx_plain.dead_letters] == [
        (d.reason, d.detail) for d in fx_accented.dead_letters
    ]
    assert reasons(fx_plain) == ["implausible_time", "implausible_time"]


# -- 3. bsn_like_client_ref ---------------------------------------------------------


def test_client_ref_of_exactly_nine_digits_is_rejected_and_never_leaves_in_the_dead_letter(
    engine, make_line
):
    fx = send(engine, make_line(client_ref="123456789", diagnosis_group="adhd"))
    assert reasons(fx) == ["bsn_like_client_ref"]
    assert b"123456789" not in fx.dead_letters[0].payload
    assert "123456789" not in fx.dead_letters[0].detail
    assert engine.counts().rejected == {"bsn_like_client_ref": 1}
    assert engine.snapshot()["providers"] == {}


def test_bsn_like_line_in_a_batch_is_masked_and_its_siblings_are_processed(engine, make_line):
    fx = send(engine, batch([make_line(), make_line(client_ref="987654321"), make_line()]))
    assert reasons(fx) == ["bsn_like_client_ref"]
    assert b"987654321" not in fx.dead_letters[0].payload
    assert engine.counts().accepted == 2


@pytest.mark.parametrize("ref", ["12345678", "1234567890", "12345678a", "a12345678", "1234 5678"])
def test_client_refs_that_are_not_exactly_nine_digits_are_accepted(engine, make_line, ref):
    fx = send(engine, make_line(client_ref=ref))
    assert fx.dead_letters == []
    assert engine.counts().accepted == 1


def test_schema_is_checked_before_the_bsn_rule_and_the_bsn_is_still_masked(engine, make_line):
    fx = send(engine, make_line(client_ref="123456789", region=...))
    assert reasons(fx) == ["schema"]
    assert b"123456789" not in fx.dead_letters[0].payload


def test_bsn_in_a_message_that_is_not_json_is_masked(engine):
    raw = b'{"client_ref": "123456789", "kind": debit'
    fx = send(engine, raw)
    assert reasons(fx) == ["invalid_json"]
    assert b"123456789" not in fx.dead_letters[0].payload


def test_bsn_in_an_invalid_batch_is_masked(engine, make_line):
    raw = orjson.dumps(
        {
            "schema": "ggz.declaration-batch/1",
            "provider_agb": "bad",
            "lines": [make_line(client_ref="123456789")],
        }
    )
    fx = send(engine, raw)
    assert reasons(fx) == ["invalid_batch"]
    assert b"123456789" not in fx.dead_letters[0].payload


def test_bsn_written_with_json_unicode_escapes_is_masked_in_the_dead_letter(engine, make_line):
    escaped = "".join(f"\\u{ord(c):04x}" for c in "123456789").encode()
    raw = orjson.dumps(make_line(client_ref="123456789")).replace(b"123456789", escaped)
    fx = send(engine, raw)
    assert reasons(fx) == ["bsn_like_client_ref"]
    payload = fx.dead_letters[0].payload
    assert "123456789" not in payload.decode()
    assert orjson.loads(payload).get("client_ref") != "123456789"


# -- 4. duplicate event_id ---------------------------------------------------------------


def test_redelivered_debit_is_counted_duplicate_and_changes_nothing(engine, make_line):
    line = make_line(amount_cents=500)
    send(engine, line)
    before = engine.snapshot()["providers"]
    fx = send(engine, line)
    assert fx.dead_letters == []
    assert engine.counts().duplicate == 1
    assert engine.counts().accepted == 1
    assert engine.snapshot()["providers"] == before


def test_redelivered_credit_is_counted_duplicate_and_changes_nothing(engine, make_line):
    debit = make_line(amount_cents=500)
    credit = make_line.credit(debit)
    send(engine, debit, make_line(amount_cents=300), credit)
    before = engine.snapshot()["providers"]
    fx = send(engine, credit, debit)
    assert fx.dead_letters == []
    assert engine.counts().duplicate == 2
    assert engine.counts().duplicate_credit == 0
    assert engine.snapshot()["providers"] == before
    assert year(engine)["net_cents"] == 300


def test_repeated_event_id_on_another_line_is_ignored_as_duplicate(engine, make_line):
    send(engine, make_line(event_id="evt-1", line_id="A"))
    send(engine, make_line(event_id="evt-1", line_id="B"))
    assert engine.counts().accepted == 1
    assert engine.counts().duplicate == 1


@pytest.mark.parametrize("case", ["orphan_credit", "duplicate_line", "duplicate_credit"])
def test_redelivery_of_an_event_ignored_at_steps_5_to_7_counts_as_duplicate(
    engine, make_line, case
):
    debit = make_line()
    if case == "orphan_credit":
        event = make_line.credit(make_line())
        setup = [event]
    elif case == "duplicate_line":
        event = {**make_line(), "line_id": debit["line_id"]}
        setup = [debit, event]
    else:
        event = make_line.credit(debit)
        setup = [debit, make_line.credit(debit), event]
    send(engine, *setup)
    before = engine.counts().as_dict()
    fx = send(engine, event)
    assert fx.dead_letters == []
    after = engine.counts().as_dict()
    assert after["duplicate"] == before["duplicate"] + 1
    assert {k: v for k, v in after.items() if k != "duplicate"} == {
        k: v for k, v in before.items() if k != "duplicate"
    }


# -- 5. duplicate_line ------------------------------------------------------------------


def test_second_debit_of_a_line_is_duplicate_line_and_ignored(engine, make_line):
    first = make_line(amount_cents=1_000)
    again = {**make_line(amount_cents=9_999), "line_id": first["line_id"]}
    fx = send(engine, first, again)
    assert fx.dead_letters == []
    assert engine.counts().duplicate_line == 1
    assert engine.counts().accepted == 1
    assert year(engine)["net_cents"] == 1_000


def test_debit_of_a_credited_line_is_still_duplicate_line(engine, make_line):
    first = make_line(amount_cents=1_000)
    again = {**make_line(amount_cents=2_000), "line_id": first["line_id"]}
    send(engine, first, make_line.credit(first), again)
    assert engine.counts().duplicate_line == 1
    assert year(engine)["net_cents"] == 0


# -- 6. orphan_credit ------------------------------------------------------------------


def test_credit_for_a_line_never_debited_is_dead_lettered_as_orphan_credit(engine, make_line):
    orphan = make_line.credit(make_line())
    fx = send(engine, make_line(amount_cents=700), orphan)
    assert reasons(fx) == ["orphan_credit"]
    assert fx.dead_letters[0].key == "12345678"
    assert orjson.loads(fx.dead_letters[0].payload)["event_id"] == orphan["event_id"]
    assert engine.counts().rejected == {"orphan_credit": 1}
    assert year(engine)["net_cents"] == 700


def test_details_that_quote_an_identifier_mask_a_look_alike_of_a_bsn(engine, make_line):
    """A line id or message key is the provider's own, but the detail (a Kafka header)
    must not carry anything BSN-like (SPEC §12)."""
    orphan = make_line.credit(make_line(line_id="NL 123.456.789"))
    fx = send(engine, orphan)
    fx.dead_letters.extend(
        send(engine, batch([make_line()]), key="１２３４５６７８９").dead_letters
    )
    assert [(d.reason, d.detail) for d in fx.dead_letters] == [
        ("orphan_credit", "credit for line ********* that was never debited"),
        ("batch_provider_mismatch", "line of provider 12345678 in a message of *********"),
    ]


def test_credit_of_another_providers_line_is_an_orphan(engine, make_line):
    debit = make_line()
    fx = send(engine, debit, make_line.credit(debit, provider_agb=OTHER))
    assert reasons(fx) == ["orphan_credit"]
    assert year(engine)["net_cents"] == debit["amount_cents"]


def test_orphan_credit_alone_does_not_create_a_provider_year(engine, make_line):
    send(engine, make_line.credit(make_line()))
    assert engine.snapshot()["providers"] == {}


# -- 7. duplicate_credit ----------------------------------------------------------------


def test_second_credit_of_a_line_is_duplicate_credit_and_ignored(engine, make_line):
    debit = make_line(amount_cents=1_000)
    fx = send(
        engine, debit, make_line(amount_cents=50), make_line.credit(debit), make_line.credit(debit)
    )
    assert fx.dead_letters == []
    assert engine.counts().duplicate_credit == 1
    assert engine.counts().accepted == 3
    assert year(engine)["net_cents"] == 50


# -- batches ------------------------------------------------------------------------------


def test_batch_siblings_of_a_bad_line_are_processed_and_only_the_bad_line_is_dead_lettered(
    engine, make_line
):
    good1, bad, good2 = make_line(), make_line(practitioners=0), make_line()
    fx = send(engine, batch([good1, bad, good2]))
    assert reasons(fx) == ["schema"]
    assert orjson.loads(fx.dead_letters[0].payload) == bad
    assert fx.dead_letters[0].key == "12345678"
    assert engine.counts().accepted == 2


def test_batch_line_of_another_provider_is_batch_provider_mismatch(engine, make_line):
    foreign = make_line(provider_agb=OTHER)
    fx = send(engine, batch([make_line(), foreign, make_line()]))
    assert reasons(fx) == ["batch_provider_mismatch"]
    assert orjson.loads(fx.dead_letters[0].payload) == foreign
    assert engine.counts().accepted == 2
    assert engine.counts().rejected == {"batch_provider_mismatch": 1}
    assert OTHER not in engine.snapshot()["providers"]


def test_a_batch_of_1000_lines_is_accepted(engine, make_line):
    fx = send(engine, batch([make_line() for _ in range(1000)]))
    assert fx.dead_letters == []
    assert engine.counts().accepted == 1000


def _envelopes(make_line) -> dict[str, bytes]:
    line = make_line()
    ok = {"schema": "ggz.declaration-batch/1", "provider_agb": "12345678", "lines": [line]}
    return {
        "no lines": orjson.dumps({**ok, "lines": []}),
        "1001 lines": orjson.dumps({**ok, "lines": [line] * 1001}),
        "bad provider": orjson.dumps({**ok, "provider_agb": "1234567"}),
        "provider missing": orjson.dumps({k: v for k, v in ok.items() if k != "provider_agb"}),
        "lines not a list": orjson.dumps({**ok, "lines": line}),
        "lines missing": orjson.dumps({k: v for k, v in ok.items() if k != "lines"}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no lines",
        "1001 lines",
        "bad provider",
        "provider missing",
        "lines not a list",
        "lines missing",
    ],
)
def test_broken_batch_envelope_is_dead_lettered_whole_as_invalid_batch(engine, make_line, case):
    raw = _envelopes(make_line)[case]
    fx = send(engine, raw)
    assert reasons(fx) == ["invalid_batch"]
    assert fx.dead_letters[0].payload == raw
    assert fx.lines == 0
    assert engine.counts().accepted == 0
    assert engine.counts().rejected == {"invalid_batch": 1}


def _mixed_history(make_line) -> list[dict[str, Any]]:
    a = make_line(amount_cents=400_000, diagnosis_group="adhd", client_ref="x1")
    b = make_line(consult_mode="group", practitioners=4, digital=True, detox="clinical")
    c = make_line(care_demand_type=1, setting=5, activity="stay", stay_days=2)
    d = make_line(amount_cents=500_000, service_date="2026-02-02")
    return [
        a,
        b,
        make_line(practitioners=0),  # schema
        c,
        make_line(client_ref="111222333"),  # bsn
        a,  # duplicate
        {**make_line(), "line_id": a["line_id"]},  # duplicate_line
        make_line.credit(make_line()),  # orphan
        d,
        make_line.credit(c),
        make_line.credit(b),
        make_line.credit(b),  # duplicate_credit
        make_line(region="Utrecht-Oost"),
    ]


def test_a_batch_and_the_same_lines_sent_one_by_one_give_the_same_results(
    policy, make_line, contract_event
):
    from streams.domain.contracts import Contract

    history = _mixed_history(make_line)
    contract = Contract.from_event(contract_event(ceiling_cents=1_000_000))
    singles, batched = (Engine(policy, clock=lambda: 0.0) for _ in range(2))
    singles.apply_contract(contract)
    batched.apply_contract(contract)
    fx_single = send(singles, *history)
    fx_batch = send(batched, batch(history))
    assert singles.snapshot() == batched.snapshot()
    assert fx_single.alerts == fx_batch.alerts
    assert [a["alert_id"] for a in fx_single.alerts] == [
        "zvt_setting_mismatch:12345678:2026",  # line c
        "ceiling_utilisation:12345678:2026:70",  # line d: 40% + 1% + 1% + 50% = 92%
        "ceiling_utilisation:12345678:2026:90",
        "zvt_setting_mismatch:12345678:2026",  # credit of c
    ]
    assert [a["state"] for a in fx_single.alerts] == ["firing", "firing", "firing", "resolved"]
    assert reasons(fx_single) == reasons(fx_batch)
    assert sorted(reasons(fx_single)) == ["bsn_like_client_ref", "orphan_credit", "schema"]
    # the dead letter of a batch line is that line alone; of a single message, its bytes
    assert [orjson.loads(d.payload) for d in fx_batch.dead_letters] == [
        orjson.loads(d.payload) for d in fx_single.dead_letters
    ]


def _checked(policy: Any, obj: dict[str, Any]) -> Any:
    from streams.domain.acceptance import Decoder

    decoder = Decoder(policy)
    _, items, _ = decoder.split(orjson.dumps(obj))
    return decoder.check(items[0], None)


def test_a_line_keeps_its_service_month_and_breakdown_dimensions(policy, make_line):
    line = _checked(
        policy,
        make_line(service_date="2026-08-31", setting=5, department="kliniek", prestatie_code="CO7"),
    )
    assert (line.year, line.month, line.quarter) == (2026, 8, 3)
    assert (line.setting, line.department, line.prestatie) == (5, "kliniek", "CO7")
    bare = _checked(policy, make_line(service_date="2026-01-01"))
    assert (bare.month, bare.department, bare.prestatie) == (1, None, None)


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        ({}, True),  # a consult: consult clients (SPEC §8.4)
        ({"activity": "other", "detox": "ambulant"}, True),  # detox clients
        ({"activity": "stay", "stay_days": 2, "diagnosis_group": "adhd"}, True),
        ({"activity": "stay", "stay_days": 2}, False),  # counts no distinct client
    ],
)
def test_a_line_keeps_its_client_only_where_it_counts_a_distinct_client(
    policy, make_line, fields, kept
):
    line = _checked(policy, make_line(client_ref="k1", **fields))
    assert line.client == ("k1" if kept else None)
