"""``validate_files`` / ``line_problem``: the file check agrees with the engine's first steps."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.acceptance import Decoder
from streams.domain.contracts import ContractError, parse_contract
from streams.domain.engine import Engine
from streams.domain.policy import RetentionPolicy, load_policy
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


def _engine_reason(obj: Any) -> str | None:
    engine = Engine(load_policy())
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    fx = engine.process(raw)
    return fx.dead_letters[0].reason if fx.dead_letters else None


def _batch(*lines: Any) -> dict[str, Any]:
    return {"schema": "ggz.declaration-batch/1", "provider_agb": "12345678", "lines": list(lines)}


# submitted_at values RFC 3339 and the schema's date-time format admit, some of which
# datetime.fromisoformat alone does not read (lowercase t/z, second 60) ...
SCHEMA_VALID_TIMES = {
    "uppercase T and Z": "2026-03-01T10:00:00Z",
    "lowercase t": "2026-03-01t10:00:00Z",
    "lowercase z": "2026-03-01T10:00:00z",
    "lowercase t and z": "2026-03-01t10:00:00z",
    "fraction and lowercase z": "2026-03-01T10:00:00.123456789z",
    "leap second": "2026-06-30T23:59:60Z",
    "leap second, lowercase": "2026-06-30t23:59:60z",
    "leap second with a fraction": "2026-06-30T23:59:60.5Z",
    "leap second at an offset": "2026-07-01T01:59:60.25+02:00",
    "leap second at a negative offset": "2026-12-31T18:59:60-05:00",
    "leap second, offset without colon": "2026-06-30T23:59:60+0000",
    "offset -00:00": "2026-03-01T10:00:00-00:00",
    "offset without colon": "2026-03-01T10:00:00+0100",  # the format check admits it
}
# ... and values that are not RFC 3339, or that the format's pattern lets through but
# no calendar (or no alert's event_time) can hold.
INVALID_TIMES = {
    "missing offset": "2026-03-01T10:00:00",
    "space for T": "2026-03-01 10:00:00Z",
    "hour 24": "2026-03-01T24:00:00Z",
    "minute 60": "2026-03-01T10:60:00Z",
    "month 13": "2026-13-01T10:00:00Z",
    "february 29th 2026": "2026-02-29t10:00:00z",
    "arabic-indic digits": "\u0662\u0660\u0662\u0666-03-01T10:00:00Z",
    "before year 1 in UTC": "0001-01-01T00:00:00+01:00",
    "after year 9999 in UTC": "9999-12-31T23:59:60Z",
}
SUBMITTED_AT = {**SCHEMA_VALID_TIMES, **INVALID_TIMES}


@pytest.mark.parametrize("name", SUBMITTED_AT)
def test_the_engine_accepts_every_submitted_at_the_schema_admits_and_no_other(make_line, name):
    expected = None if name in SCHEMA_VALID_TIMES else "schema"
    assert _engine_reason(make_line(submitted_at=SUBMITTED_AT[name])) == expected


def _cases(make_line) -> dict[str, Any]:
    return {
        "valid": make_line(),
        "not json": b"{",
        "array": b"[]",
        "schema": make_line(kind="reversal"),
        "bsn": make_line(client_ref="000000000"),
        "february 29th 2025": make_line(service_date="2025-02-29"),
        "service date in arabic-indic digits": make_line(
            service_date="\u0662\u0660\u0662\u0666-03-01"
        ),
        **{
            f"submitted_at {name}": make_line(submitted_at=value)
            for name, value in SUBMITTED_AT.items()
        },
        "batch ok": _batch(make_line()),
        "batch empty": _batch(),
        "batch with a leap second": _batch(make_line(submitted_at="2026-06-30T23:59:60Z")),
        "batch with hour 24": _batch(make_line(), make_line(submitted_at="2026-03-01T24:00:00Z")),
        "batch with a line of another provider": _batch(make_line(provider_agb="87654321")),
    }


@pytest.mark.parametrize(
    "case",
    [
        "valid",
        "not json",
        "array",
        "schema",
        "bsn",
        "february 29th 2025",
        "service date in arabic-indic digits",
        *[f"submitted_at {name}" for name in SUBMITTED_AT],
        "batch ok",
        "batch empty",
        "batch with a leap second",
        "batch with hour 24",
        "batch with a line of another provider",
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


@pytest.mark.parametrize("name", SUBMITTED_AT)
def test_a_contract_updated_at_is_judged_as_the_contract_reader_judges_it(contract_event, name):
    obj = contract_event(updated_at=SUBMITTED_AT[name])
    try:
        parse_contract(obj)
    except ContractError:
        expected: str | None = "schema"
    else:
        expected = None
    assert expected == (None if name in SCHEMA_VALID_TIMES else "schema")
    found = line_problem(obj, "auto")
    assert (found[0] if found else None) == expected


# -- SPEC §12: implausible times, deep nesting, look-alikes, a check that raises ------------


def test_poison_lines_are_reported_with_the_engines_reasons(tmp_path, make_line):
    path = tmp_path / "d.ndjson"
    lines = [
        orjson.dumps(make_line(submitted_at="9999-01-06T00:00:00Z")),
        b'{"x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b"[" * 100_000,
        orjson.dumps(make_line(client_ref="１２３ ４５６ ７８９")),
        orjson.dumps(make_line(note="[[[[" * 1_000)),
        orjson.dumps(make_line(service_date="2026-03-01", submitted_at="2027-06-01T00:00:00Z")),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report, printed = check(path)
    assert [p.split(": ")[1] for p in printed] == [
        "implausible_time",
        "invalid_json",
        "invalid_json",
        "bsn_like_client_ref",
    ]
    assert printed[1].endswith("invalid_json: nested deeper than 64")
    assert "４５６" not in "".join(printed)
    for raw, found in zip(lines, printed, strict=False):
        assert _engine_reason(raw) == found.split(": ")[1]
    # the policy decides the term: with 1 year, 2027 is too late for service year 2025
    tight = dataclasses.replace(load_policy(), retention=RetentionPolicy(1))
    late = make_line(service_date="2025-03-01", submitted_at="2027-06-01T00:00:00Z")
    assert line_problem(late, "auto") is None
    assert line_problem(late, "auto", Decoder(tight))[0] == "implausible_time"


def test_a_line_whose_check_raises_is_reported_and_the_files_go_on(
    tmp_path, make_line, monkeypatch
):
    from streams.domain.acceptance import Decoder as RealDecoder

    real = RealDecoder.check

    def check_line(self: Any, item: Any, envelope: str | None) -> Any:
        if isinstance(item, dict) and item.get("event_id") == "boom":
            raise KeyError(f"client {item['client_ref']}")
        return real(self, item, envelope)

    monkeypatch.setattr(RealDecoder, "check", check_line)
    path = tmp_path / "d.ndjson"
    rows = [make_line(), make_line(event_id="boom", client_ref="secret-ref"), make_line(setting=9)]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    report, printed = check(path)
    assert printed == [
        f"{path}:2: processing_error: KeyError",
        f"{path}:3: schema: setting: must be smaller than or equal to 8",
    ]
    assert report.lines == 3
