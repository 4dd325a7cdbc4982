"""The provider-year summary of SPEC §10 and the peer-mean bookkeeping over a topic of them."""

from __future__ import annotations

from fractions import Fraction

import orjson
import pytest

from streams.domain.contracts import Contract
from streams.domain.engine import Engine
from streams.domain.model import parse_time
from streams.domain.rules import peer_mean
from streams.domain.snapshot import build_snapshot
from streams.domain.status import (
    STATUS_SCHEMA,
    StatusBook,
    digest,
    provider_statuses,
    provider_year_status,
)
from tests.conftest import make_contract

A, B, C = "12345678", "23456789", "34567890"


def _consults(make_line, agb: str, n: int, group: int, day: str = "2026-03-01", **kw):
    return [
        make_line(
            provider_agb=agb,
            service_date=day,
            consult_mode="group" if i < group else "individual",
            **kw,
        )
        for i in range(n)
    ]


@pytest.fixture
def engine(policy_with) -> Engine:
    return Engine(policy_with(**{"group_share_low.min_consults": 4}))


def test_the_summary_holds_the_snapshot_entry_contract_fields_watermark_and_open_alerts(
    engine, make_line, feed
):
    engine.apply_contract(Contract.from_event(make_contract(A, 2026, ceiling_cents=100_000)))
    lines = [
        *_consults(make_line, A, 4, 1, day="2025-11-03", client_ref="clientref-y"),
        *_consults(make_line, A, 12, 2, client_ref="clientref-x"),
        *_consults(make_line, B, 4, 4),
    ]
    feed(engine, *lines)
    engine.tick()  # A's 2026 share 1/6 < 0.5 x mean(1/6, 1): group_share_low fires
    st = engine.providers[A]
    snapshot = build_snapshot(engine.providers.values(), engine.contracts, [], engine.policy)

    by_key = dict(provider_statuses(st, engine.contracts, engine.policy))
    assert list(by_key) == [f"{A}:2025", f"{A}:2026"]
    s26, s25 = orjson.loads(by_key[f"{A}:2026"]), orjson.loads(by_key[f"{A}:2025"])

    assert s26["indicators"] == snapshot["providers"][A]["2026"]
    assert s25["indicators"] == snapshot["providers"][A]["2025"]
    assert s26["indicators"]["ceiling_utilisation"] == 12 * 10_000 / 100_000
    assert s26["contract"] == {
        "ceiling_cents": 100_000,
        "purchaser": "Team Midden",
        "provider_name": "GGZ Voorbeeld",
        "region": "Utrecht",
        "version": 1,
    }
    assert s25["contract"] is None
    # The provider's watermark: its latest accepted submitted_at, RFC 3339 in UTC.
    latest = max(parse_time(x["submitted_at"]) for x in lines if x["provider_agb"] == A)
    assert parse_time(s26["watermark"]) == latest == parse_time(s25["watermark"])
    assert s26["watermark"].endswith("Z") and s26["updated_at"] == s26["watermark"]
    # SPEC §8.2 and §10: the covered month and the pace at the watermark (2 March:
    # no month of 2026 ended 30 days before; all of 2025's did)
    assert (s26["covered_month"], s25["covered_month"]) == (0, 12)
    assert s26["pace"] == {
        "covered_month": 0,
        "expected_share": 0.0,
        "projected_cents": None,
        "ceiling_cents": 100_000,
        "pace_ratio": None,
    }
    assert s25["pace"]["projected_cents"] == 4 * 10_000  # E(12) = 1: its net
    assert s26["open_alerts"] == sorted(
        [f"ceiling_utilisation:{A}:2026:{t}" for t in (70, 90, 100)] + [f"group_share_low:{A}:2026"]
    )
    assert s25["open_alerts"] == []  # 2025 has no alert firing, 2026's are not its own
    assert s26["schema"] == STATUS_SCHEMA
    assert (s26["provider_agb"], s26["year"]) == (A, 2026)
    # No client reference, no line: indicators and identifiers of the provider only.
    for raw in by_key.values():
        assert b"clientref" not in raw
        assert b"line_id" not in raw and b"event_id" not in raw


def test_the_summary_of_a_provider_year_follows_its_state(engine, make_line, feed):
    feed(engine, *_consults(make_line, A, 4, 1))
    st = engine.providers[A]
    before = provider_year_status(st, 2026, None, [], engine.policy)
    feed(engine, *_consults(make_line, A, 2, 2))
    after = provider_year_status(st, 2026, None, [], engine.policy)
    assert (before["indicators"]["consults"], after["indicators"]["consults"]) == (4, 6)
    assert (before["indicators"]["group_consults"], after["indicators"]["group_consults"]) == (1, 3)
    assert after["watermark"] > before["watermark"]


def _status(agb: str, year: int, consults: int, group: int) -> bytes:
    return orjson.dumps(
        {
            "schema": STATUS_SCHEMA,
            "provider_agb": agb,
            "year": year,
            "indicators": {"consults": consults, "group_consults": group},
        }
    )


def test_the_book_takes_the_peer_mean_of_every_provider_year_with_the_one_function():
    book = StatusBook()
    book.apply(f"{A}:2026".encode(), _status(A, 2026, 200, 20))
    book.apply(f"{B}:2026".encode(), _status(B, 2026, 300, 150))
    book.apply(f"{C}:2026".encode(), _status(C, 2026, 100, 100))  # too few consults
    book.apply(f"{C}:2025".encode(), _status(C, 2025, 400, 100))
    assert book.means(200) == {2026: Fraction(3, 10), 2025: Fraction(1, 4)}
    assert book.means(200)[2026] == peer_mean([(200, 20), (300, 150), (100, 100)], 200)[0]
    assert book.means(50)[2026] == Fraction(1, 10 * 3) + Fraction(1, 6) + Fraction(1, 3)
    assert sorted(book.pairs()[2026]) == [(100, 100), (200, 20), (300, 150)]


def test_a_later_value_replaces_the_earlier_one_and_a_tombstone_deletes_the_key():
    book = StatusBook()
    book.apply(f"{A}:2026".encode(), _status(A, 2026, 200, 20))
    book.apply(f"{B}:2026".encode(), _status(B, 2026, 200, 100))
    assert book.means(200)[2026] == Fraction(3, 10)
    book.apply(f"{A}:2026".encode(), _status(A, 2026, 400, 200))  # A moved on
    assert book.means(200)[2026] == Fraction(1, 2)
    assert len(book) == 2
    book.apply(f"{B}:2026".encode(), None)  # tombstone
    assert book.means(200) == {2026: Fraction(1, 2)}
    assert f"{B}:2026" not in book
    book.apply(f"{A}:2026".encode(), None)
    assert book.means(200) == {} and len(book) == 0
    book.apply(f"{A}:2026".encode(), None)  # a tombstone of an unknown key is no error
    assert len(book) == 0


def test_a_value_that_is_no_summary_drops_its_key_and_is_counted():
    book = StatusBook()
    book.apply(f"{A}:2026".encode(), _status(A, 2026, 200, 20))
    book.apply(f"{B}:2026".encode(), _status(B, 2026, 200, 100))
    for bad in (b"{", b"[]", b'{"year": 2026}', _status(A, 2026, 200, 20).replace(b"20}", b'"x"}')):
        book.apply(f"{A}:2026".encode(), _status(A, 2026, 200, 20))
        book.apply(f"{A}:2026".encode(), bad)
        assert f"{A}:2026" not in book, bad
        assert book.means(200) == {2026: Fraction(1, 2)}
    assert book.malformed == 4
    book.apply(None, _status(C, 2026, 200, 0))  # no key: not a provider-year
    assert book.malformed == 5 and len(book) == 1


def test_the_digest_tells_a_published_summary_from_a_changed_one():
    book = StatusBook()
    value = _status(A, 2026, 200, 20)
    assert book.digest(f"{A}:2026") is None
    book.apply(f"{A}:2026".encode(), value)
    assert book.digest(f"{A}:2026") == digest(value)
    assert digest(_status(A, 2026, 200, 21)) != digest(value)
