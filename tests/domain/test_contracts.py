"""Contract events (streams/domain/contracts.py, SPEC §3): parsing refuses with one
reason that names the field, and per (provider, year) the highest version wins."""

from __future__ import annotations

import pytest

from streams.domain.contracts import Contract, ContractBook, ContractError, parse_contract
from streams.domain.model import parse_time
from tests.conftest import AGB, make_contract

OTHER = "87654321"


def contract(
    provider: str = AGB, year: int = 2026, version: int = 1, ceiling: int = 100
) -> Contract:
    return parse_contract(
        make_contract(provider=provider, year=year, version=version, ceiling_cents=ceiling)
    )


# -- parsing --------------------------------------------------------------------------------


def test_a_valid_event_becomes_a_contract_with_its_time_in_unix_seconds():
    got = parse_contract(make_contract(ceiling_cents=750_000, version=3))
    assert got == Contract(
        AGB,
        2026,
        750_000,
        "Team Midden",
        "GGZ Voorbeeld",
        "Utrecht",
        3,
        parse_time("2026-01-01T00:00:00Z"),
    )
    assert got.key == f"{AGB}:2026"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema": "ggz.contract/2"}, "schema: "),
        ({"provider_agb": "1234567"}, "provider_agb: must match pattern"),
        ({"year": 1999}, "year: must be bigger than or equal to 2000"),
        ({"ceiling_cents": 0}, "ceiling_cents: must be bigger than or equal to 1"),
        ({"ceiling_cents": 10.5}, "ceiling_cents: must be integer"),
        ({"version": 0}, "version: must be bigger than or equal to 1"),
        ({"purchaser": ""}, "purchaser: must be longer than or equal to 1"),
        ({"purchaser": ...}, "(object): must contain ['purchaser']"),
        ({"updated_at": "2026-13-01T00:00:00Z"}, "updated_at: must be date-time"),
        # the format admits these; the calendar or the range of an alert's time does not
        ({"updated_at": "0000-01-01T00:00:00Z"}, "updated_at: year 0 is out of range"),
        ({"updated_at": "0001-01-01T00:00:00+01:00"}, "updated_at: the instant is outside"),
    ],
)
def test_an_invalid_event_is_one_contract_error_naming_the_field(change, reason):
    obj = make_contract()
    for key, value in change.items():
        if value is Ellipsis:
            del obj[key]
        else:
            obj[key] = value
    with pytest.raises(ContractError) as info:
        parse_contract(obj)
    assert str(info.value).startswith(reason)
    # one line for the log, never a chained traceback
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


@pytest.mark.parametrize("obj", [None, [], "text", 5])
def test_a_value_that_is_not_an_object_is_a_contract_error(obj):
    with pytest.raises(ContractError, match=r"^\(object\): must be object"):
        parse_contract(obj)


def test_a_contract_error_is_a_value_error_for_callers_that_catch_those():
    assert issubclass(ContractError, ValueError)


# -- the book: the latest version wins ---------------------------------------------------------


def test_a_higher_version_replaces_the_current_one():
    book = ContractBook()
    assert book.apply(contract(version=1, ceiling=100)) is True
    assert book.apply(contract(version=3, ceiling=300)) is True
    assert book.get(AGB, 2026) == contract(version=3, ceiling=300)


def test_an_older_or_equal_version_changes_nothing():
    book = ContractBook()
    book.apply(contract(version=2, ceiling=200))
    assert book.apply(contract(version=1, ceiling=100)) is False
    assert book.apply(contract(version=2, ceiling=999)) is False  # a redelivery, or a repeat
    assert book.get(AGB, 2026) == contract(version=2, ceiling=200)


def test_versions_are_per_provider_and_year():
    book = ContractBook()
    book.apply(contract(version=5))
    assert book.apply(contract(year=2025, version=1)) is True
    assert book.apply(contract(provider=OTHER, version=1)) is True
    assert len(book) == 3
    assert {c.key for c in book} == {f"{AGB}:2026", f"{AGB}:2025", f"{OTHER}:2026"}
    assert book.get(OTHER, 2025) is None


def test_the_hot_path_lookup_sees_what_get_sees():
    book = ContractBook()
    book.apply(contract(version=1))
    book.apply(contract(version=2, ceiling=222))
    current = book.lookup((AGB, 2026))
    assert current is book.get(AGB, 2026)
    assert current is not None and current.ceiling_cents == 222
    assert book.lookup((OTHER, 2026)) is None


# -- digital_target (SPEC §8.4) -------------------------------------------------------------


def test_digital_target_is_optional_and_read_as_a_fraction():
    assert parse_contract(make_contract()).digital_target is None
    assert parse_contract(make_contract(digital_target=0.3)).digital_target == 0.3
    got = parse_contract(make_contract(digital_target=1))
    assert got.digital_target == 1.0 and isinstance(got.digital_target, float)


@pytest.mark.parametrize("target", [-0.01, 1.01, "0.3", True, None])
def test_a_digital_target_outside_0_to_1_is_a_contract_error_naming_it(target):
    with pytest.raises(ContractError, match="digital_target"):
        parse_contract(make_contract(digital_target=target))
