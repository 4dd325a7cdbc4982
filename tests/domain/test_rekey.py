"""Lines of an unkeyed message, judged and sent on pseudonymised (streams/domain/rekey.py).

What leaves ``split_unkeyed`` is one batch per provider holding only what the state
needs: never a client reference or a trajectory id. The state reads the pseudonym as
the key it stands for, so the re-sent lines give exactly the results of the original
lines sent keyed. The Kafka side (the control topic, its headers) is tested in
tests/pipeline/test_agents.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain import schemas
from streams.domain.acceptance import BATCH_SCHEMA, DeadLetter, Decoder
from streams.domain.engine import Effects, Engine
from streams.domain.model import Counts
from streams.domain.rekey import CLIENT_KEY_MARK, client_token, pseudonymised, split_unkeyed
from streams.domain.state import key_of
from tests.conftest import AGB

OTHER = "87654321"
SECRET = "client-secret-ref"


def batch(lines: list[Any], agb: str = AGB) -> bytes:
    return orjson.dumps({"schema": BATCH_SCHEMA, "provider_agb": agb, "lines": lines})


def split(raw: bytes, policy: Any) -> tuple[int, dict[str, bytes], Counts, list[DeadLetter]]:
    counts, dead = Counts(), list[DeadLetter]()
    judged, batches = split_unkeyed(Decoder(policy), raw, counts, dead)
    return judged, batches, counts, dead


# -- the pseudonym ---------------------------------------------------------------------------


def test_a_client_token_is_the_mark_and_the_states_key_in_15_hex_digits():
    token = client_token(SECRET)
    assert token == CLIENT_KEY_MARK + format(key_of(SECRET), "015x")
    assert len(token) == 16 and SECRET not in token
    assert client_token(SECRET) == token != client_token(SECRET + "x")


def test_a_pseudonymised_line_keeps_what_the_state_needs_and_drops_the_rest(make_line):
    line = make_line(client_ref=SECRET, trajectory_id="traj-7", unknown="x", detox="clinical")
    out = pseudonymised(line)
    assert out["client_ref"] == client_token(SECRET)
    assert out["trajectory_id"] == "-"
    assert "unknown" not in out
    rest = {k: v for k, v in line.items() if k not in ("client_ref", "trajectory_id", "unknown")}
    assert {k: v for k, v in out.items() if k not in ("client_ref", "trajectory_id")} == rest
    assert schemas.check(schemas.DECLARATION, out) is None  # it is still a declaration


# -- split_unkeyed ---------------------------------------------------------------------------


def test_a_single_unkeyed_line_comes_back_as_a_batch_of_its_provider(policy, make_line):
    line = make_line(client_ref=SECRET, trajectory_id="traj-7")
    judged, batches, counts, dead = split(orjson.dumps(line), policy)
    assert (judged, dead, counts.as_dict()) == (0, [], Counts().as_dict())  # counted later
    (sent,) = batches.values()
    assert list(batches) == [AGB]
    obj = orjson.loads(sent)
    assert (obj["schema"], obj["provider_agb"]) == (BATCH_SCHEMA, AGB)
    assert schemas.check(schemas.BATCH, obj) is None
    assert obj["lines"] == [pseudonymised(line)]
    assert SECRET.encode() not in sent and b"traj-7" not in sent


def test_a_batch_is_judged_its_bad_lines_dead_lettered_and_its_good_ones_sent_in_order(
    policy, make_line
):
    good = [make_line(client_ref=f"{SECRET}-{i}") for i in range(3)]
    bsn = make_line(client_ref="123456782")  # nine digits: a BSN look-alike
    no_amount = make_line(client_ref=f"{SECRET}-bad", amount_cents=...)
    foreign = make_line(provider_agb=OTHER, client_ref=f"{SECRET}-foreign")
    raw = batch([good[0], bsn, good[1], no_amount, foreign, good[2]])
    judged, batches, counts, dead = split(raw, policy)
    assert judged == 3
    assert [d.reason for d in dead] == ["bsn_like_client_ref", "schema", "batch_provider_mismatch"]
    assert all(d.key == AGB for d in dead)
    assert counts.rejected == {"bsn_like_client_ref": 1, "schema": 1, "batch_provider_mismatch": 1}
    assert counts.accepted == 0
    assert b"123456782" not in dead[0].payload  # masked in the dead letter
    assert list(batches) == [AGB]
    sent = batches[AGB]
    assert orjson.loads(sent)["lines"] == [pseudonymised(line) for line in good]
    assert SECRET.encode() not in sent and b"123456782" not in sent


def test_unkeyed_single_lines_of_several_providers_each_go_to_their_provider(policy, make_line):
    for agb in (AGB, OTHER):
        _, batches, _, _ = split(orjson.dumps(make_line(provider_agb=agb)), policy)
        assert list(batches) == [agb]
        assert orjson.loads(batches[agb])["provider_agb"] == agb


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b'{"schema": "ggz.declaration-batch/1", "lines": []}', "invalid_batch"),
    ],
)
def test_a_message_that_is_not_even_a_batch_is_one_dead_letter_and_nothing_is_sent(
    policy, raw, reason
):
    judged, batches, counts, dead = split(raw, policy)
    assert (judged, batches) == (0, {})
    assert [(d.key, d.reason) for d in dead] == [(None, reason)]
    assert counts.rejected == {reason: 1}


# -- the round trip through the state ----------------------------------------------------------


def worker_engine(policy: Any) -> Engine:
    """An engine whose states key by hashes, as the worker's do (only the worker re-keys)."""
    return Engine(policy, clock=lambda: 0.0, journal=True)


def _history(make_line: Any) -> list[dict[str, Any]]:
    """ADHD lines of two clients in two quarters, a credit, a line of another provider."""
    a = make_line(client_ref="client-a", diagnosis_group="adhd", service_date="2026-02-01")
    return [
        a,
        make_line(client_ref="client-a", diagnosis_group="adhd", service_date="2026-05-01"),
        make_line(client_ref="client-b", diagnosis_group="adhd", service_date="2026-02-02"),
        make_line(client_ref="client-b", diagnosis_group="adhd", service_date="2026-02-03"),
        make_line.credit(a),
        make_line(provider_agb=OTHER, client_ref="client-a", diagnosis_group="adhd"),
    ]


def test_re_sent_lines_give_the_results_of_the_original_lines_sent_keyed(policy, make_line):
    history = _history(make_line)
    keyed, rekeyed = worker_engine(policy), worker_engine(policy)
    fx_keyed, fx_rekeyed = Effects(), Effects()
    for line in history:
        keyed.process(orjson.dumps(line), line["provider_agb"], fx_keyed)
        _, batches, _, _ = split(orjson.dumps(line), policy)
        for agb, sent in batches.items():
            rekeyed.process(sent, agb, fx_rekeyed)
    assert rekeyed.snapshot() == keyed.snapshot()
    assert rekeyed.snapshot()["providers"][AGB]["2026"]["adhd_clients"] == {
        "2026-Q1": 1,  # client-a's Q1 line was credited; client-b counts once
        "2026-Q2": 1,
    }
    assert fx_rekeyed.alerts == fx_keyed.alerts
    for agb in (AGB, OTHER):
        got, want = rekeyed.providers[agb].clients, keyed.providers[agb].clients
        assert {y: dict(t.items()) for y, t in got.items()} == {
            y: dict(t.items()) for y, t in want.items()
        }


def test_a_client_counts_once_whether_its_lines_came_keyed_or_pseudonymised(policy, make_line):
    engine = worker_engine(policy)
    first = make_line(client_ref="client-a", diagnosis_group="adhd")
    second = make_line(client_ref="client-a", diagnosis_group="adhd")
    engine.process(orjson.dumps(first), AGB)
    _, batches, _, _ = split(orjson.dumps(second), policy)
    engine.process(batches[AGB], AGB)
    assert engine.counts().accepted == 2
    assert engine.snapshot()["providers"][AGB]["2026"]["adhd_clients"] == {"2026-Q1": 1}


TOKEN_A = client_token("client-a")


@pytest.mark.parametrize(
    "odd",
    [
        CLIENT_KEY_MARK + "z" * 15,  # not hex
        TOKEN_A.upper(),  # client-a's key, but not in lower case
        TOKEN_A + "0",  # 16 digits
        TOKEN_A[:-1],  # 14 digits
        CLIENT_KEY_MARK,
    ],
    ids=["not hex", "upper case", "16 digits", "14 digits", "mark alone"],
)
def test_a_client_ref_that_only_looks_like_a_pseudonym_is_a_client_of_its_own(
    policy, make_line, odd
):
    engine = worker_engine(policy)
    for ref in ("client-a", odd, TOKEN_A):
        engine.process(orjson.dumps(make_line(client_ref=ref, diagnosis_group="adhd")), AGB)
    assert engine.counts().accepted == 3
    assert engine.snapshot()["providers"][AGB]["2026"]["adhd_clients"] == {"2026-Q1": 2}
