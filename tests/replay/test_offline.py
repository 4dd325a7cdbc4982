"""``replay_offline`` end to end on small archives written in tmp_path (SPEC §6)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest

from streams.domain import schemas
from streams.domain.errors import InputError
from streams.domain.model import parse_time
from streams.domain.policy import load_policy
from streams.replay.offline import replay_offline

A, B, C = "11111111", "22222222", "33333333"
ALERT = fastjsonschema.compile(schemas.load_schema(schemas.ALERT))
INDICATORS = {
    "departments",  # SPEC §9
    "net_cents",
    "ceiling_utilisation",
    "consults",
    "group_consults",
    "group_share",
    "group_ge4",
    "group_over2_share",
    "detox_clinical",
    "detox_ambulant",
    "clinical_detox_share",
    "adhd_clients",
    "adhd_growth",
    "digital_share",
    "zvt_setting_mismatch",
    # SPEC §8.1, §8.2, §8.4
    "net_cents_by_month",
    "covered_month",
    "projected_cents",
    "pace_ratio",
    "detox_clients_all",
    "detox_clients_clinical",
    "clinical_detox_client_share",
    "consult_clients",
    "digital_clients",
    "digital_client_share",
}


def write_ndjson(path: Path, records: list[Any]) -> Path:
    path.write_bytes(
        b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)
    )
    return path


def replay(
    tmp_path: Path, lines: list[Any], contracts: list[dict[str, Any]] | None = None, **kw: Any
):
    from streams.domain.policy import load_policy

    files = kw.pop("files", None) or [write_ndjson(tmp_path / "declarations.ndjson", lines)]
    contract_file = write_ndjson(tmp_path / "contracts.ndjson", contracts) if contracts else None
    alerts_out, snapshot_out = tmp_path / "alerts.ndjson", tmp_path / "snapshot.json"
    summary, engine = replay_offline(
        files,
        kw.pop("policy", None) or load_policy(),
        contracts=contract_file,
        alerts_out=alerts_out,
        snapshot_out=snapshot_out,
        **kw,
    )
    alerts = [orjson.loads(x) for x in alerts_out.read_bytes().splitlines()]
    return alerts, orjson.loads(snapshot_out.read_bytes()), summary


def without_detected_at(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "detected_at"} for a in alerts]


@pytest.fixture
def history(make_line) -> list[Any]:
    """Three providers: A with a contract and a bit of everything, B with stay lines only,
    C with nothing accepted; plus one line of each dead-letter reason."""
    a1 = make_line(
        provider_agb=A,
        amount_cents=300_000,
        consult_mode="group",
        practitioners=4,
        digital=True,
        diagnosis_group="adhd",
        client_ref="k1",
    )
    a2 = make_line(
        provider_agb=A,
        amount_cents=200_000,
        detox="clinical",
        diagnosis_group="adhd",
        client_ref="k2",
        service_date="2026-04-02",
    )
    a3 = make_line(
        provider_agb=A,
        amount_cents=100_000,
        diagnosis_group="adhd",
        client_ref="k1",
        service_date="2025-01-20",
    )
    b1 = make_line(
        provider_agb=B,
        activity="stay",
        stay_days=4,
        consult_mode=...,
        practitioners=...,
        digital=...,
        amount_cents=50_000,
    )
    return [
        a1,
        a2,
        a3,
        b1,
        a1,  # duplicate
        {**make_line(provider_agb=A), "line_id": a1["line_id"]},  # duplicate_line
        make_line.credit(a2),
        make_line.credit(a2),  # duplicate_credit
        make_line.credit(make_line(provider_agb=A, service_date="2024-06-01")),  # orphan
        b"{broken",  # invalid_json
        make_line(provider_agb=C, amount_cents=0),  # schema
        make_line(provider_agb=C, client_ref="123456789"),  # bsn_like_client_ref
        {
            "schema": "ggz.declaration-batch/1",
            "provider_agb": B,
            "lines": [make_line(provider_agb=C)],
        },
        {"schema": "ggz.declaration-batch/1", "provider_agb": B, "lines": []},  # invalid_batch
    ]


def test_snapshot_has_exactly_the_shape_of_spec_section_6(tmp_path, history, contract_event):
    _, snap, _ = replay(tmp_path, history, [contract_event(provider=A, ceiling_cents=1_000_000)])
    assert set(snap) == {"providers", "peers", "regions", "counts"}
    assert set(snap["providers"]) == {A, B}  # C never had an accepted line
    assert set(snap["providers"][A]) == {"2025", "2026"}  # the orphan's 2024 is not a year of A
    assert set(snap["providers"][B]) == {"2026"}
    for years in snap["providers"].values():
        for indicators in years.values():
            assert set(indicators) == INDICATORS
    assert set(snap["peers"]) == {"2025", "2026"}
    for peer in snap["peers"].values():
        assert "group_share_mean" in peer
    assert snap["counts"] == {
        "accepted": 5,
        "duplicate": 1,
        "duplicate_line": 1,
        "duplicate_credit": 1,
        "rejected": {
            "invalid_json": 1,
            "schema": 1,
            "bsn_like_client_ref": 1,
            "orphan_credit": 1,
            "batch_provider_mismatch": 1,
            "invalid_batch": 1,
        },
    }


def test_snapshot_values_nulls_and_adhd_quarters(tmp_path, history, contract_event):
    _, snap, _ = replay(tmp_path, history, [contract_event(provider=A, ceiling_cents=1_000_000)])
    a26 = snap["providers"][A]["2026"]
    assert a26["net_cents"] == 300_000
    assert a26["ceiling_utilisation"] == 0.3
    assert (a26["consults"], a26["group_consults"], a26["group_ge4"]) == (1, 1, 1)
    assert a26["group_share"] == 1.0 and isinstance(a26["group_share"], float)
    assert a26["group_over2_share"] == 1.0
    assert a26["digital_share"] == 1.0
    assert (a26["detox_clinical"], a26["detox_ambulant"]) == (0, 0)
    assert a26["clinical_detox_share"] is None
    # Q2 had an ADHD line (credited since): listed with no client left
    assert a26["adhd_clients"] == {"2026-Q1": 1, "2026-Q2": 0}
    assert a26["adhd_growth"] == {"2026-Q1": 0.0, "2026-Q2": None}
    a25 = snap["providers"][A]["2025"]
    assert a25["adhd_clients"] == {"2025-Q1": 1}
    assert a25["adhd_growth"] == {"2025-Q1": None}
    assert a25["ceiling_utilisation"] is None  # contract is for 2026 only
    b26 = snap["providers"][B]["2026"]
    assert b26["ceiling_utilisation"] is None
    for ratio in ("group_share", "group_over2_share", "clinical_detox_share", "digital_share"):
        assert b26[ratio] is None
    assert b26["adhd_clients"] == {} and b26["adhd_growth"] == {}
    assert snap["peers"]["2026"]["group_share_mean"] is None  # nobody has 200 consults


def test_contract_updated_after_some_lines_applies_only_from_then(
    tmp_path, make_line, contract_event
):
    lines = [
        make_line(provider_agb=A, amount_cents=650_000, submitted_at="2026-03-01T10:00:00Z"),
        make_line(provider_agb=A, amount_cents=10_000, submitted_at="2026-03-02T10:00:00Z"),
        make_line(provider_agb=A, amount_cents=200_000, submitted_at="2026-03-04T10:00:00Z"),
    ]
    contracts = [
        # listed out of order: the replay sorts by updated_at
        contract_event(
            provider=A, ceiling_cents=2_000_000, version=2, updated_at="2026-03-03T00:00:00Z"
        ),
        contract_event(
            provider=A, ceiling_cents=900_000, version=1, updated_at="2026-03-02T10:00:00Z"
        ),
    ]
    alerts, snap, _ = replay(tmp_path, lines, contracts)
    # Line 1 (650k) alone is 72% of v1's 900k, but v1 only comes in at its updated_at,
    # before line 2 (same instant: the contract first); v2 (2M) the day after brings it
    # back to 33%, resolved at the contract's time; line 3 makes 43%.
    assert [(a["alert_id"], a["state"], a["event_time"]) for a in alerts] == [
        (f"ceiling_utilisation:{A}:2026:70", "firing", "2026-03-02T10:00:00Z"),
        (f"ceiling_utilisation:{A}:2026:70", "resolved", "2026-03-03T00:00:00Z"),
    ]
    assert alerts[0]["value"] == pytest.approx(650_000 / 900_000)
    assert alerts[1]["value"] == pytest.approx(660_000 / 2_000_000)
    assert snap["providers"][A]["2026"]["ceiling_utilisation"] == pytest.approx(0.43)


def test_contract_that_arrives_before_any_line_of_its_provider_fires_on_the_crossing_line(
    tmp_path, make_line, contract_event
):
    lines = [
        make_line(provider_agb=A, amount_cents=700_000, submitted_at="2026-03-01T10:00:00+01:00")
    ]
    alerts, _, _ = replay(
        tmp_path, lines, [contract_event(provider=A, updated_at="2025-12-01T00:00:00Z")]
    )
    assert [(a["alert_id"], a["event_time"]) for a in alerts] == [
        (f"ceiling_utilisation:{A}:2026:70", "2026-03-01T09:00:00Z")
    ]


def test_contract_updated_after_the_last_line_is_applied_at_the_end(
    tmp_path, make_line, contract_event
):
    lines = [make_line(provider_agb=A, amount_cents=950_000, submitted_at="2026-03-01T10:00:00Z")]
    contracts = [
        contract_event(provider=A, ceiling_cents=1_000_000, updated_at="2026-12-31T23:00:00Z")
    ]
    alerts, _, _ = replay(tmp_path, lines, contracts)
    assert [(a["alert_id"], a["event_time"]) for a in alerts] == [
        (f"ceiling_utilisation:{A}:2026:70", "2026-12-31T23:00:00Z"),
        (f"ceiling_utilisation:{A}:2026:90", "2026-12-31T23:00:00Z"),
    ]


def test_alerts_are_written_in_emission_order_marked_as_replay(tmp_path, make_line, contract_event):
    lines = [
        make_line(provider_agb=A, amount_cents=700_000),
        make_line(provider_agb=B, care_demand_type=1, setting=8),
        make_line(provider_agb=A, amount_cents=200_000),
        *[make_line(provider_agb=B, activity="other", detox="clinical") for _ in range(20)],
    ]
    alerts, _, summary = replay(tmp_path, lines, [contract_event(provider=A)])
    assert [(a["alert_id"], a["state"]) for a in alerts] == [
        (f"ceiling_utilisation:{A}:2026:70", "firing"),
        (f"zvt_setting_mismatch:{B}:2026", "firing"),
        (f"ceiling_utilisation:{A}:2026:90", "firing"),
        (f"clinical_detox_high:{B}:2026", "firing"),  # the final tick comes last
    ]
    for a in alerts:
        ALERT(a)
        assert a["replay"] is True
    assert summary.alerts == 4
    assert summary.firing == 4


def test_alerts_carry_no_replay_flag_when_asked_not_to(tmp_path, make_line, contract_event):
    alerts, _, _ = replay(
        tmp_path,
        [make_line(provider_agb=A, amount_cents=700_000)],
        [contract_event(provider=A)],
        replay_flag=False,
    )
    assert len(alerts) == 1 and "replay" not in alerts[0]


def test_tick_rules_are_evaluated_once_at_the_end_of_the_replay(tmp_path, make_line):
    clinical = [make_line(provider_agb=A, activity="other", detox="clinical") for _ in range(20)]
    ambulant = [make_line(provider_agb=A, activity="other", detox="ambulant") for _ in range(21)]
    # high after the first 20 lines, no longer at the end: never published
    alerts, _, _ = replay(tmp_path, clinical + ambulant)
    assert alerts == []
    # high at the end: published once, with the provider's last event time
    last = make_line(provider_agb=A, activity="other", submitted_at="2026-09-09T09:09:09Z")
    alerts, _, _ = replay(tmp_path, ambulant[:5] + clinical + [last])
    assert [(a["alert_id"], a["state"], a["event_time"]) for a in alerts] == [
        (f"clinical_detox_high:{A}:2026", "firing", "2026-09-09T09:09:09Z")
    ]


def test_gzip_input_gives_the_same_outputs_as_plain(tmp_path, history, contract_event):
    contracts = [contract_event(provider=A, ceiling_cents=500_000)]
    plain_dir, gz_dir = tmp_path / "plain", tmp_path / "gz"
    plain_dir.mkdir()
    gz_dir.mkdir()
    plain = write_ndjson(plain_dir / "d.ndjson", history)
    packed = gz_dir / "d.ndjson.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected = replay(plain_dir, [], contracts, files=[plain])
    got = replay(gz_dir, [], contracts, files=[packed])
    assert without_detected_at(got[0]) == without_detected_at(expected[0])
    assert got[1] == expected[1]
    assert expected[0]  # the history did produce alerts


def test_several_files_are_replayed_in_the_order_given(tmp_path, make_line, contract_event):
    debit = make_line(provider_agb=A, amount_cents=800_000)
    first = write_ndjson(tmp_path / "1.ndjson", [debit])
    second = write_ndjson(tmp_path / "2.ndjson", [make_line.credit(debit)])
    alerts, snap, _ = replay(tmp_path, [], [contract_event(provider=A)], files=[first, second])
    assert [a["state"] for a in alerts] == ["firing", "resolved"]
    assert snap["counts"]["rejected"] == {}
    alerts, snap, _ = replay(tmp_path, [], [contract_event(provider=A)], files=[second, first])
    assert snap["counts"]["rejected"] == {"orphan_credit": 1}
    assert [a["state"] for a in alerts] == ["firing"]


def test_blank_lines_are_skipped(tmp_path, make_line):
    path = tmp_path / "d.ndjson"
    path.write_bytes(b"\n" + orjson.dumps(make_line()) + b"\n\n  \n" + orjson.dumps(make_line()))
    _, snap, summary = replay(tmp_path, [], files=[path])
    assert snap["counts"]["accepted"] == 2
    assert snap["counts"]["rejected"] == {}
    assert summary.lines == 2


def test_dead_letters_are_written_with_their_reason_and_without_a_bsn(tmp_path, history):
    rejected = tmp_path / "rejected.ndjson"
    replay(tmp_path, history, rejected_out=rejected)
    letters = [orjson.loads(x) for x in rejected.read_bytes().splitlines()]
    assert sorted(x["reason"] for x in letters) == sorted(
        [
            "orphan_credit",
            "invalid_json",
            "schema",
            "bsn_like_client_ref",
            "batch_provider_mismatch",
            "invalid_batch",
        ]
    )
    assert b"123456789" not in rejected.read_bytes()


def test_a_missing_input_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        replay(tmp_path, [], files=[tmp_path / "absent.ndjson"])


def test_a_bad_contract_line_raises_input_error_naming_file_and_line(
    tmp_path, make_line, contract_event
):
    bad = contract_event(ceiling_cents=0)
    with pytest.raises(InputError, match=r"contracts.ndjson:2: schema: ceiling_cents"):
        replay(tmp_path, [make_line()], [contract_event(), bad])


def test_archive_lines_decoded_together_give_what_one_at_a_time_gives(tmp_path):
    """``Engine.process_lines`` (the replay's path: a group of lines in one decode)
    against ``Engine.process`` per line, on a history with malformed, BSN-shaped,
    duplicate and credit lines and contracts merged by event time."""
    from streams.domain.engine import ContractFeed, Effects, Engine
    from streams.domain.policy import load_policy
    from streams.replay.files import read_contracts
    from streams.synth.generate import GenerateOptions, generate

    made = generate(
        tmp_path, GenerateOptions(providers=6, lines=6_000, seed=11, malformed_rate=0.01)
    )
    raws = [r for r in made.declarations_path.read_bytes().split(b"\n") if r.strip()]
    policy = load_policy()

    def run(grouped: bool) -> tuple[Engine, Effects]:
        engine, fx = Engine(policy, clock=lambda: 0.0), Effects()
        feed = ContractFeed(read_contracts(made.contracts_path))
        if grouped:
            for start in range(0, len(raws), 64):
                engine.process_lines(raws[start : start + 64], fx, feed)
        else:
            for raw in raws:
                engine.process(raw, None, fx, feed)
        feed.apply_rest(engine, fx)
        engine.tick(effects=fx)
        return engine, fx

    (one, fx_one), (grouped, fx_grouped) = run(False), run(True)
    assert fx_grouped.alerts == fx_one.alerts
    assert fx_grouped.dead_letters == fx_one.dead_letters
    assert grouped.snapshot() == one.snapshot()
    reasons = {letter.reason for letter in fx_one.dead_letters}
    assert {"invalid_json", "schema", "bsn_like_client_ref"} <= reasons
    # both ways were taken: groups decoded in one call, and groups sent back line by line
    decoded = [
        one.decoder.split_lines(raws[s : s + 64]) is not None for s in range(0, len(raws), 64)
    ]
    assert any(decoded) and not all(decoded)


def test_archive_blocks_decoded_at_once_give_what_one_line_at_a_time_gives(tmp_path):
    """``Engine.process_block`` (the replay's path: a block of whole lines in one
    decode) against ``Engine.process`` per line, with the lines a decode of the whole
    block could read otherwise put into blocks that decode at once without them:
    blank and whitespace-only lines, two objects on one line (alone, and beside a
    blank line so that the number of values matches the number of lines). A leading
    space and CRLF endings decode alike either way."""
    from streams.domain.engine import ContractFeed, Effects, Engine
    from streams.domain.policy import load_policy
    from streams.replay.files import read_contracts
    from streams.synth.generate import GenerateOptions, generate

    made = generate(
        tmp_path, GenerateOptions(providers=6, lines=4_000, seed=12, malformed_rate=0.005)
    )
    lines = [r for r in made.declarations_path.read_bytes().split(b"\n") if r]
    policy = load_policy()
    probe = Engine(policy)

    def block_of(group: list[bytes]) -> bytes:
        return b"\n".join(group) + b"\n"

    groups = [lines[s : s + 37] for s in range(0, len(lines), 37)]
    clean = [i for i, g in enumerate(groups) if probe.decoder.split_block(block_of(g))]
    good = [r for i in clean for r in groups[i]]

    def fresh(raw: bytes, tag: bytes) -> bytes:  # the same line under new ids
        return raw.replace(b'"line_id":"', b'"line_id":"' + tag).replace(
            b'"event_id":"', b'"event_id":"' + tag
        )

    two_on_one = fresh(good[5], b"a-") + b" " + fresh(good[6], b"b-")
    awkward = [
        [b""],
        [b"  \t"],
        [two_on_one],
        [b"", fresh(good[8], b"d-") + fresh(good[9], b"e-")],
    ]
    spoiled = clean[1 : 1 + len(awkward)]
    for i, extra in zip(spoiled, awkward, strict=True):
        groups[i][10:10] = extra
    crlf = clean[-1]
    groups[crlf] = [raw + b"\r" for raw in groups[crlf]]
    spaced = clean[-2]
    groups[spaced][3:3] = [b" " + fresh(good[7], b"c-")]

    def run(blocks: bool) -> tuple[Engine, Effects, list[bool]]:
        engine, fx = Engine(policy, clock=lambda: 0.0), Effects()
        feed = ContractFeed(read_contracts(made.contracts_path))
        fast: list[bool] = []
        for group in groups:
            if blocks:
                block = block_of(group)
                fast.append(engine.decoder.split_block(block) is not None)
                assert engine.process_block(block, fx, feed) == sum(1 for r in group if r.strip())
            else:
                for raw in group:
                    if raw.strip():
                        engine.process(raw, None, fx, feed)
        feed.apply_rest(engine, fx)
        engine.tick(effects=fx)
        return engine, fx, fast

    (one, fx_one, _), (blocked, fx_blocked, fast) = run(False), run(True)
    assert fx_blocked.alerts == fx_one.alerts
    assert fx_blocked.dead_letters == fx_one.dead_letters
    assert blocked.snapshot() == one.snapshot()
    reasons = {letter.reason for letter in fx_one.dead_letters}
    assert {"invalid_json", "bsn_like_client_ref"} <= reasons
    assert two_on_one in [letter.payload for letter in fx_one.dead_letters]
    # each awkward line sends its block the long way; the others stay fast
    assert [fast[i] for i in spoiled] == [False] * len(awkward)
    assert fast[crlf] and fast[spaced] and not all(fast)


def test_poison_lines_are_counted_and_the_replay_goes_on(tmp_path, make_line):
    """A year-9999 timestamp (ValueError) and deep nesting (RecursionError) used to end
    the offline replay in a traceback."""
    good = [make_line() for _ in range(300)]
    poison = [
        make_line(submitted_at="9999-01-06T00:00:00Z"),
        b'{"x": ' + b"[" * 3_000 + b"]" * 3_000 + b"}",
        {**make_line(), "future": [[[[[[[[[[[[1]]]]]]]]]]]]},  # 13 deep: fine
        b"[" * 100_000,
        make_line(  # plausible: accepted (another provider: it would close this one's years)
            provider_agb=B, service_date="9999-12-31", submitted_at="9999-12-31T23:59:59Z"
        ),
        make_line(client_ref="NL 123.456.789"),
    ]
    records: list[Any] = [*good[:150], *poison, *good[150:]]
    path = write_ndjson(tmp_path / "d.ndjson", records)
    summary, _ = replay_offline(
        [path],
        load_policy(),
        alerts_out=tmp_path / "a",
        snapshot_out=tmp_path / "s",
        rejected_out=tmp_path / "r",
    )
    assert summary.lines == 306
    assert summary.counts["accepted"] == 302
    assert summary.counts["rejected"] == {
        "implausible_time": 1,
        "invalid_json": 2,
        "bsn_like_client_ref": 1,
    }
    rejected = [orjson.loads(r) for r in (tmp_path / "r").read_bytes().splitlines()]
    assert [r["detail"] for r in rejected if r["reason"] == "invalid_json"] == [
        "nested deeper than 64"
    ] * 2
    assert "123.456.789" not in (tmp_path / "r").read_text()


def test_a_line_whose_processing_fails_after_acceptance_is_counted_once_and_the_rest_goes_on(
    tmp_path, make_line, contract_event, monkeypatch
):
    """The offline replay has no transaction to roll back to: the line counts as
    processing_error instead of accepted, and the replay goes on (SPEC §12)."""
    from streams.domain.engine import Engine

    lines = [make_line(provider_agb=A, amount_cents=n) for n in (7_500_000, 1_600_000, 1_000)]
    failing_at = lines[1]["submitted_at"]
    real = Engine._check_ceiling

    def check_ceiling(self: Engine, st: Any, year: int, event_time: float, fx: Any) -> None:
        if event_time == parse_time(failing_at):
            raise ArithmeticError("client c1")
        real(self, st, year, event_time, fx)

    monkeypatch.setattr(Engine, "_check_ceiling", check_ceiling)
    contracts = write_ndjson(
        tmp_path / "c.ndjson", [contract_event(provider_agb=A, ceiling_cents=10_000_000)]
    )
    path = write_ndjson(tmp_path / "d.ndjson", lines)
    summary, _ = replay_offline(
        [path], load_policy(), contracts=contracts, rejected_out=tmp_path / "r"
    )
    assert summary.counts["accepted"] == 2
    assert summary.counts["rejected"] == {"processing_error": 1}
    (letter,) = [orjson.loads(r) for r in (tmp_path / "r").read_bytes().splitlines()]
    assert (letter["reason"], letter["detail"]) == ("processing_error", "ArithmeticError")


# -- the department register (SPEC §9) -------------------------------------------------


def _register(department: str, category: str, region: str, updated_at: str) -> dict[str, Any]:
    return {
        "schema": "ggz.department/1",
        "provider_agb": A,
        "department": department,
        "name": department.title(),
        "category": category,
        "region": region,
        "version": 1,
        "updated_at": updated_at,
    }


def _ward_months(make_line: Any, last: int) -> list[Any]:
    """20 clients a month in ward "bw" of A from January to ``last`` 2026, each month
    submitted early the next; then one line a month of another team up to November."""
    out = []
    for m in range(1, 12):
        at = f"2026-{m + 1:02d}-03T08:00:00Z"
        n = 20 if m <= last else 0
        out += [
            make_line(
                provider_agb=A, department="bw", service_date=f"2026-{m:02d}-10", submitted_at=at
            )
            for _ in range(n)
        ]
        out.append(make_line(provider_agb=A, service_date=f"2026-{m:02d}-11", submitted_at=at))
    return out


def test_the_register_makes_a_ward_judged_and_places_it_in_its_region(tmp_path, make_line):
    register = tmp_path / "departments.ndjson"
    # registered after its first lines: a register entry counts from its updated_at on
    write_ndjson(register, [_register("bw", "secured", "Twente", "2026-03-01T00:00:00Z")])
    alerts, snap, summary = replay(tmp_path, _ward_months(make_line, last=6), departments=register)
    got = [(a["alert_id"], a["state"], a["event_time"]) for a in alerts]
    stopped = f"department_stopped:{A}:2026:bw"
    # July and August silent: judged stopped once August is covered, at the line
    # submitted on 3 October (August ended 1 September + 30 days)
    assert (stopped, "firing", "2026-10-03T08:00:00Z") in got
    gap = "region_category_gap:Twente:secured:2026"
    assert (gap, "firing") in [(a, s) for a, s, _ in got]
    (event,) = [a for a in alerts if a["alert_id"] == gap]
    assert event["provider_agb"] is None and event["region"] == "Twente" and event["replay"]
    assert snap["regions"] == {"Twente": {"secured": {"active_departments": 0, "clients": 0}}}
    assert snap["providers"][A]["2026"]["departments"]["bw"]["category"] == "secured"
    assert summary.firing >= 2


def test_without_the_register_the_same_ward_is_other_and_nothing_fires(tmp_path, make_line):
    alerts, snap, _ = replay(tmp_path, _ward_months(make_line, last=6))
    assert not [a for a in alerts if "bw" in a["alert_id"] or a["rule"] == "region_category_gap"]
    assert snap["regions"] == {}  # setting 1: "other"


def test_a_bad_register_line_stops_the_replay_with_one_line(tmp_path, make_line):
    register = tmp_path / "departments.ndjson"
    write_ndjson(register, [_register("bw", "ward", "Twente", "2026-03-01T00:00:00Z")])
    with pytest.raises(InputError, match=r"departments.ndjson:1: schema: category"):
        replay(tmp_path, [make_line()], departments=register)


def test_passing_over_settled_years_changes_no_alert_and_no_figure(tmp_path, monkeypatch):
    """The engine judges an earlier year again only when something its rules read
    changed (engine._inputs): on a generated history with plants, credits,
    departments and two service years, the replay gives the same alerts and snapshot
    as one that judges every year at every month boundary, with fewer years judged.
    (What makes a settled year be judged again: tests/domain/test_engine.py.)"""
    from streams.domain import engine as engine_module
    from streams.synth.generate import GenerateOptions, generate

    made = generate(tmp_path / "history", GenerateOptions(providers=12, lines=20_000, seed=7))
    judged: dict[str, int] = {}
    real_project = engine_module.project

    def run(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        judged[name] = 0

        def counted(*args: Any) -> Any:
            judged[name] += 1
            return real_project(*args)

        monkeypatch.setattr(engine_module, "project", counted)  # once per year judged
        out = tmp_path / name
        out.mkdir()
        replay_offline(
            [made.declarations_path],
            load_policy(),
            contracts=made.contracts_path,
            departments=made.departments_path,
            alerts_out=out / "alerts.ndjson",
            snapshot_out=out / "snapshot.json",
        )
        alerts = [orjson.loads(raw) for raw in (out / "alerts.ndjson").read_bytes().splitlines()]
        for alert in alerts:
            del alert["detected_at"]  # the wall clock
        return alerts, orjson.loads((out / "snapshot.json").read_bytes())

    settled = run("settled")
    monkeypatch.setattr(engine_module, "_inputs", lambda *args: None)  # every year, always
    every = run("every")
    assert settled == every
    assert len(settled[0]) > 50
    assert judged["settled"] < judged["every"] * 0.9
