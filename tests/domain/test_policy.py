"""The policy file: shipped defaults, strict checking with one-line errors, and its effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.contracts import Contract
from streams.domain.engine import Engine
from streams.domain.errors import PolicyError
from streams.domain.policy import DEFAULT_POLICY_PATH, SEVERITIES, load_policy

DEFAULTS = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


def test_shipped_defaults_load_with_the_values_of_spec_section_5():
    p = load_policy()
    assert p.ceiling.thresholds == (0.70, 0.90, 1.00)
    assert p.ceiling.severities == ("warning", "high", "critical")
    assert p.ceiling.thresholds_bp == (7000, 9000, 10000)
    assert p.ceiling.margin_bp == 200
    assert (p.group_share.factor, p.group_share.min_consults) == (0.5, 200)
    assert (p.staffing.min_count, p.staffing.min_share) == (10, 0.05)
    assert (p.detox.threshold, p.detox.min_clients) == (0.5, 20)
    assert (p.adhd.threshold, p.adhd.min_base) == (0.25, 30)
    assert p.mismatch.care_demand_types == frozenset({1, 2})
    assert p.mismatch.settings == frozenset({5, 6, 8})
    assert p.mismatch.from_year == 2026
    assert (p.digital.target, p.digital.min_clients, p.digital.from_year) == (0.25, 100, 2026)
    assert p.tick_seconds == 60


def test_a_copy_of_the_defaults_loads_the_same_policy(tmp_path):
    copy = tmp_path / "policy.toml"
    copy.write_text(DEFAULTS, encoding="utf-8")
    loaded = load_policy(copy)
    assert loaded.source == str(copy)
    assert {**_fields(loaded), "source": None} == {**_fields(load_policy()), "source": None}


def _fields(policy: Any) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in policy.__slots__}


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BROKEN = {
    "unknown key": (
        ("[digital_share_low]\n", "[digital_share_low]\ntargett = 0.3\n"),
        "digital_share_low.targett",
    ),
    "unknown section": (("[tick]\n", "[alerting]\nx = 1\n\n[tick]\n"), "alerting"),
    "missing key": (("min_base = 30\n", ""), "adhd_growth.min_base"),
    "missing section": ((DEFAULTS[DEFAULTS.index("[tick]") :], ""), "[tick]"),
    "wrong type": (("min_count = 10", 'min_count = "10"'), "group_consult_staffing.min_count"),
    "float for a count": (
        ("min_clients = 20", "min_clients = 20.5"),
        "clinical_detox_high.min_clients",
    ),
    "bool for a number": (("factor = 0.5", "factor = true"), "group_share_low.factor"),
    "fraction above 1": (("target = 0.25", "target = 1.5"), "digital_share_low.target"),
    "negative fraction": (
        ("min_share = 0.05", "min_share = -0.05"),
        "group_consult_staffing.min_share",
    ),
    "negative count": (("min_consults = 200", "min_consults = -1"), "group_share_low.min_consults"),
    "setting out of range": (
        ("settings = [5, 6, 8]", "settings = [5, 6, 9]"),
        "zvt_setting_mismatch.settings",
    ),
    "zvt out of range": (
        ("care_demand_types = [1, 2]", "care_demand_types = [1, 22]"),
        "zvt_setting_mismatch.care_demand_types",
    ),
    "empty list": (("settings = [5, 6, 8]", "settings = []"), "zvt_setting_mismatch.settings"),
    "non-increasing thresholds": (
        ("thresholds = [0.70, 0.90, 1.00]", "thresholds = [0.70, 0.70, 1.00]"),
        "ceiling_utilisation.thresholds",
    ),
    "decreasing thresholds": (
        ("thresholds = [0.70, 0.90, 1.00]", "thresholds = [0.90, 0.70, 1.00]"),
        "ceiling_utilisation.thresholds",
    ),
    "zero threshold": (
        ("thresholds = [0.70, 0.90, 1.00]", "thresholds = [0.0, 0.90, 1.00]"),
        "ceiling_utilisation.thresholds",
    ),
    "severity per threshold": (
        ('severities = ["warning", "high", "critical"]', 'severities = ["warning", "high"]'),
        "ceiling_utilisation.severities",
    ),
    "unknown severity": (
        ('severity = "high"', 'severity = "urgent"'),
        "zvt_setting_mismatch.severity",
    ),
    "tick too fast": (("interval_seconds = 60", "interval_seconds = 0"), "tick.interval_seconds"),
    "nan": (("threshold = 0.5", "threshold = nan"), "clinical_detox_high.threshold"),
    "unknown language": (('language = "nl"', 'language = "fr"'), "messages.language"),
}


def test_messages_are_dutch_unless_the_policy_says_english(tmp_path):
    assert load_policy().language == "nl"
    path = tmp_path / "policy.toml"
    path.write_text(_edit(DEFAULTS, 'language = "nl"', 'language = "en"'), encoding="utf-8")
    assert load_policy(path).language == "en"
    start = DEFAULTS.index("[messages]")
    end = DEFAULTS.find("\n[", start)
    rest = DEFAULTS[end + 1 :] if end >= 0 else ""
    path.write_text(DEFAULTS[:start] + rest, encoding="utf-8")  # an older file without it
    older = load_policy(path)
    assert older.language == "nl" and older.defaulted == ("messages",)


@pytest.mark.parametrize("case", list(BROKEN))
def test_invalid_policy_raises_policy_error_in_one_line_naming_the_key(tmp_path, case):
    (old, new), key = BROKEN[case]
    path = tmp_path / "policy.toml"
    path.write_text(_edit(DEFAULTS, old, new), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    assert key in message
    assert str(path) in message


def test_invalid_toml_raises_policy_error_in_one_line(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("[ceiling_utilisation\nthresholds = [0.7\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "\n" not in str(info.value)
    assert "TOML" in str(info.value)


@pytest.mark.parametrize("make", [lambda p: p / "absent.toml", lambda p: p])
def test_missing_or_unreadable_policy_file_raises_policy_error(tmp_path, make):
    path: Path = make(tmp_path)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_policy_that_is_not_utf8_raises_policy_error(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_bytes(b"\xff\xfe[tick]\n")
    with pytest.raises(PolicyError):
        load_policy(path)


def _line(n: int, amount: int) -> bytes:
    return orjson.dumps(
        {
            "schema": "ggz.declaration/1",
            "event_id": f"e{n}",
            "line_id": f"l{n}",
            "kind": "debit",
            "provider_agb": "12345678",
            "region": "R",
            "client_ref": "c",
            "trajectory_id": "t",
            "service_date": "2026-03-01",
            "submitted_at": "2026-03-01T10:00:00Z",
            "activity": "other",
            "setting": 1,
            "care_demand_type": 3,
            "diagnosis_group": "other",
            "amount_cents": amount,
        }
    )


def test_a_custom_policy_file_changes_when_the_ceiling_alert_fires(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        _edit(DEFAULTS, "thresholds = [0.70, 0.90, 1.00]", "thresholds = [0.60, 0.90, 1.00]"),
        encoding="utf-8",
    )
    contract = Contract("12345678", 2026, 1_000_000, "T", "N", "R", 1, 0.0)
    results = {}
    for name, policy in (("default", load_policy()), ("custom", load_policy(path))):
        engine = Engine(policy)
        engine.apply_contract(contract)
        fx = engine.process(_line(1, 650_000))
        results[name] = [a["alert_id"] for a in fx.alerts]
    assert results == {"default": [], "custom": ["ceiling_utilisation:12345678:2026:60"]}


def test_a_custom_resolve_margin_changes_when_the_ceiling_alert_resolves(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        _edit(DEFAULTS, "resolve_margin = 0.02", "resolve_margin = 0.0"), encoding="utf-8"
    )
    contract = Contract("12345678", 2026, 1_000_000, "T", "N", "R", 1, 0.0)
    engine = Engine(load_policy(path))
    engine.apply_contract(contract)
    engine.process(_line(1, 690_000))
    engine.process(_line(2, 10_000))
    credit = _credit(_line(2, 10_000))
    fx = engine.process(credit)
    assert [(a["alert_id"], a["state"]) for a in fx.alerts] == [
        ("ceiling_utilisation:12345678:2026:70", "resolved")
    ]


def _credit(raw: bytes) -> bytes:
    obj = orjson.loads(raw)
    return orjson.dumps({**obj, "kind": "credit", "event_id": obj["event_id"] + "-credit"})


# -- [months] (SPEC §8.1) -----------------------------------------------------------------


def test_months_lag_days_defaults_to_30_and_an_operators_file_may_leave_it_out(tmp_path):
    assert load_policy().months.lag_days == 30
    start = DEFAULTS.index("[months]")
    end = DEFAULTS.index("\n[", start + 1) + 1
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULTS[:start] + DEFAULTS[end:], encoding="utf-8")
    ours = load_policy(path)
    assert ours.months.lag_days == 30 and ours.defaulted == ("months",)
    path.write_text(DEFAULTS.replace("lag_days = 30", "lag_days = 45"), encoding="utf-8")
    assert load_policy(path).months.lag_days == 45


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("-1", "months.lag_days must be between 0 and 366, not -1"),
        ("30.5", "months.lag_days must be a whole number, not 30.5"),
    ],
)
def test_a_bad_lag_days_is_one_error_naming_it(tmp_path, value, error):
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULTS.replace("lag_days = 30", f"lag_days = {value}"), encoding="utf-8")
    with pytest.raises(PolicyError, match=error.replace(".", r"\.")):
        load_policy(path)


def test_info_is_a_severity_below_warning(tmp_path):
    assert SEVERITIES[0] == "info" and SEVERITIES.index("info") < SEVERITIES.index("warning")
    start = DEFAULTS.index("[digital_share_low]")
    end = DEFAULTS.index("\n[", start)
    section = DEFAULTS[start:end].replace('severity = "warning"', 'severity = "info"')
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULTS[:start] + section + DEFAULTS[end:], encoding="utf-8")
    assert load_policy(path).digital.severity == "info"
