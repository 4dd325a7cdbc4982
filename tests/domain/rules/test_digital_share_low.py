"""digital_share_low (streams/domain/rules/digital_share_low.py): distinct consult
clients with a digital consult, from service year 2026, against the contract's
digital_target or the policy's (SPEC §8.4)."""

from __future__ import annotations

import pytest

from tests.domain.rules.rule_helpers import AGB, CLIENT, consults, contract, published, tick_ids

ID = f"digital_share_low:{AGB}:2026"


@pytest.mark.parametrize(
    ("total", "digital", "fires"),
    [(100, 24, True), (100, 25, False), (99, 0, False), (100, 0, True)],
)
def test_digital_share_low_below_a_quarter_with_min_100_consult_clients(
    eng, line, send, total, digital, fires
):
    send(eng, *consults(line, digital, digital=True), *consults(line, total - digital))
    got = tick_ids(eng)
    assert ((ID, "firing") in got) is fires
    assert tick_ids(eng) == []


def test_digital_share_counts_clients_not_consults(eng, line, send):
    # 30 clients with one digital consult each, 90 with four face-to-face consults
    # each: 30 of 390 consults (7.7%), but 30 of 120 clients: exactly the 25% target
    send(eng, *consults(line, 30, digital=True))
    for c in range(90):
        send(eng, *[line(client_ref=f"{CLIENT}f{c}") for _ in range(4)])
    assert tick_ids(eng) == []
    send(eng, line(client_ref=f"{CLIENT}new"))  # 30/121 < 0.25
    (event,) = published(eng.tick())
    assert (event["alert_id"], event["threshold"]) == (ID, 0.25)
    assert (event["explain"]["numerator"], event["explain"]["denominator"]) == (30, 121)
    assert "30 van 121 cliënten" in event["message"]


def test_a_client_stays_digital_until_its_last_digital_consult_is_credited(eng, line, send):
    digital = consults(line, 25, digital=True)
    twice = line(client_ref=digital[0]["client_ref"], digital=True)
    send(eng, *digital, twice, *consults(line, 75))
    assert tick_ids(eng) == []  # 25/100
    send(eng, line.credit(twice))
    assert tick_ids(eng) == []  # the client keeps a digital consult
    send(eng, line.credit(digital[0]))  # 24/99: and below 100 consult clients
    send(eng, *consults(line, 1))  # 24/100
    assert tick_ids(eng) == [(ID, "firing")]


def test_service_years_before_from_year_are_not_judged(eng, line, send):
    send(eng, *consults(line, 100, service_date="2025-06-01"))
    assert not [i for i in tick_ids(eng) if i[0].startswith("digital_share_low")]


def test_the_contracts_digital_target_replaces_the_policys(eng, line, send):
    eng.apply_contract(contract(10**9, digital_target=0.1))
    send(eng, *consults(line, 10, digital=True), *consults(line, 90))
    assert tick_ids(eng) == []  # 10% meets the agreed 10%
    send(eng, *consults(line, 1))  # 10/101
    (event,) = [a for a in published(eng.tick()) if a["rule"] == "digital_share_low"]
    assert (event["state"], event["threshold"]) == ("firing", 0.1)
    assert "doelstelling van 10%" in event["message"]


def test_digital_share_low_resolves_when_the_target_is_met(eng, line, send):
    send(eng, *consults(line, 100))
    assert tick_ids(eng) == [(ID, "firing")]
    send(eng, *consults(line, 34, digital=True))  # 34/134 > 0.25
    assert tick_ids(eng) == [(ID, "resolved")]
