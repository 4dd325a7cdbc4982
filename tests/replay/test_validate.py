"""``validate_files`` / ``line_problem``: the file check agrees with the engine's first steps."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.engine import Engine
from streams.domain.policy import load_policy
from streams.replay.validate import line_problem, validate_files


def check(path: Path, **kw: Any):
    out = io.StringIO()
    report = validate_files([path], out=out, **kw)
    return report, out.getvalue().splitlines()


def test_valid_declaration_contract_and_batch_have_no_problem(make_line, contract_event):
    assert line_problem(make_line(), "auto") is None
    assert line_problem(contract_event(), "auto") is None
    batch = {
        "schema": "ggz.declaration-batch/1",
        "provider_agb": "12345678",
        "lines": [make_line()],
    }
    assert line_problem(batch, "auto") is None


def test_batch_reports_its_first_bad_line_by_index(make_line):
    batch = {
        "schema": "ggz.declaration-batch/1",
        "provider_agb": "12345678",
        "lines": [make_line(), make_line(client_ref="123456789"), make_line(region=...)],
    }
    reason, detail = line_problem(batch, "auto")
    assert reason == "bsn_like_client_ref"
    assert detail.startswith("lines[1]: ")
    assert "123456789" not in detail


def test_report_counts_lines_and_reasons(tmp_path, make_line):
    path = tmp_path / "d.ndjson"
    path.write_bytes(
        b"\n".join([orjson.dumps(make_line()), b"{", b"", orjson.dumps(make_line(setting=9)), b"7"])
    )  # no newline at the end: the last line still counts
    report, printed = check(path)
    assert (report.files, report.lines, report.bad) == (1, 4, 3)
    assert dict(report.by_reason) == {"invalid_json": 2, "schema": 1}
    assert printed[0].startswith(f"{path}:2: invalid_json: ")
    assert printed[1] == f"{path}:4: schema: setting: must be smaller than or equal to 8"
    assert printed[2].startswith(f"{path}:5: invalid_json: ")
    assert report.summary().startswith("3 of 4 lines in 1 file(s) are invalid")


def test_crlf_line_endings_are_read_as_lines(tmp_path, make_line):
    path = tmp_path / "d.ndjson"
    path.write_bytes(b"\r\n".join(orjson.dumps(make_line()) for _ in range(3)) + b"\r\n")
    report, printed = check(path)
    assert (report.lines, report.bad, printed) == (3, 0, [])
    assert report.summary() == "3 lines in 1 file(s): all valid"


SCHEMA_VALID_TIMES = (
    "BUG: a submitted_at that RFC 3339 and the JSON Schema allow (second 60, a lowercase "
    "'z' offset) passes `claimwatch validate`, but the engine dead-letters it as `schema` "
    "because datetime.fromisoformat cannot parse it"
)


def _engine_reason(obj: Any) -> str | None:
    engine = Engine(load_policy())
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    fx = engine.process(raw)
    return fx.dead_letters[0].reason if fx.dead_letters else None


def _cases(make_line) -> dict[str, Any]:
    return {
        "valid": make_line(),
        "not json": b"{",
        "array": b"[]",
        "schema": make_line(kind="reversal"),
        "bsn": make_line(client_ref="000000000"),
        "missing offset": make_line(submitted_at="2026-03-01T10:00:00"),
        "offset without colon": make_line(submitted_at="2026-03-01T10:00:00+0100"),
        "february 29th 2025": make_line(service_date="2025-02-29"),
        "leap second": make_line(submitted_at="2026-06-30T23:59:60Z"),
        "lowercase z": make_line(submitted_at="2026-03-01T10:00:00z"),
        "batch ok": {
            "schema": "ggz.declaration-batch/1",
            "provider_agb": "12345678",
            "lines": [make_line()],
        },
        "batch empty": {
            "schema": "ggz.declaration-batch/1",
            "provider_agb": "12345678",
            "lines": [],
        },
    }


@pytest.mark.parametrize(
    "case",
    [
        "valid",
        "not json",
        "array",
        "schema",
        "bsn",
        "missing offset",
        "offset without colon",
        "february 29th 2025",
        *[
            pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=SCHEMA_VALID_TIMES))
            for case in ("leap second", "lowercase z")
        ],
        "batch ok",
        "batch empty",
    ],
)
def test_validate_and_the_engine_agree_on_a_line(make_line, case):
    obj = _cases(make_line)[case]
    if isinstance(obj, bytes):
        try:
            decoded = orjson.loads(obj)
        except orjson.JSONDecodeError:
            found = ("invalid_json", "")
        else:
            found = line_problem(decoded, "auto")
    else:
        found = line_problem(obj, "auto")
    assert (found[0] if found else None) == _engine_reason(obj)
