"""Prometheus configuration, rules and their promtool unit tests (deploy/prometheus)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.domain.rules.base import SEVERITIES
from tests.deploy.deploy_helpers import (
    ALERT_RULES,
    DASHBOARDS,
    PROMETHEUS,
    RECORDING_RULES,
    REGISTRY_RULES,
    ROUTING_LABELS,
    SPEC_RULES,
    alerting_rules,
    load_yaml,
    metrics_doc_tables,
)

UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_prometheus_config_is_valid_and_loads_both_rule_files(promtool: str) -> None:
    # rule_files are relative to prometheus.yml; run from its directory like the container does.
    result = run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout + result.stderr


def test_prometheus_config_lists_every_rule_file() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    listed = {(PROMETHEUS / p).resolve() for p in config["rule_files"]}
    on_disk = {p.resolve() for p in (PROMETHEUS / "rules").glob("*.yml")}
    assert listed == on_disk


def test_rule_files_are_valid(promtool: str) -> None:
    result = run(
        [promtool, "check", "rules", str(RECORDING_RULES), str(ALERT_RULES)], cwd=PROMETHEUS
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    result = run([promtool, "test", "rules", *map(str, UNIT_TESTS)], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_fail_when_an_expectation_is_wrong(promtool: str, tmp_path: Path) -> None:
    # The harness itself must be able to fail: a wrong expected annotation is caught.
    text = (PROMETHEUS / "tests" / "purchasing-alerts.test.yml").read_text(encoding="utf-8")
    assert "Net declared care is at 93%" in text
    broken = tmp_path / "broken.test.yml"
    broken.write_text(
        text.replace("Net declared care is at 93%", "Net declared care is at 94%")
        # rule_files are relative to the test file: point the copy at the real rules.
        .replace("../rules/", f"{PROMETHEUS / 'rules'}/")
    )
    result = run([promtool, "test", "rules", str(broken)], cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    assert "94%" in result.stdout + result.stderr


def carried_labels(expr: str, static: dict[str, str], metric_labels: set[str]) -> set[str]:
    """Labels an alert produced by ``expr`` carries: static ones plus those the expression keeps.

    An aggregation keeps only its ``by (...)`` labels; a plain selector keeps the metric's.
    """
    by_clauses = [
        {label.strip() for label in clause.split(",") if label.strip()}
        for clause in re.findall(r"\bby\s*\(([^)]*)\)", expr)
    ]
    kept = set.intersection(*by_clauses) if by_clauses else set(metric_labels)
    for clause in re.findall(r"\bwithout\s*\(([^)]*)\)", expr):
        kept -= {label.strip() for label in clause.split(",")}
    return set(static) | kept


def alert_gauge_labels() -> set[str]:
    (row,) = [r for r in metrics_doc_tables() if r["metric"] == "claimwatch_alert_firing"]
    return set(re.findall(r"`([a-z_]+)`", row["labels"]))


def test_alert_gauge_labels_are_read_from_the_metrics_contract() -> None:
    assert {
        "alert_id",
        "rule",
        "provider",
        "year",
        "severity",
        "purchaser",
        "region",
        "detail",
    } <= (alert_gauge_labels())


def test_carried_labels_follow_the_aggregation() -> None:
    labels = {"provider", "year", "severity", "instance"}
    assert carried_labels("max by (provider) (m)", {"severity": "x"}, labels) == {
        "provider",
        "severity",
    }
    assert carried_labels("m == 1", {}, labels) == labels
    assert carried_labels("max without (instance) (m)", {}, labels) == labels - {"instance"}


@pytest.mark.parametrize("spec_rule", SPEC_RULES)
def test_every_spec_rule_has_one_alerting_rule_carrying_the_routing_labels(spec_rule: str) -> None:
    selector = re.compile(r'claimwatch_alert_firing\{[^}]*\brule="' + re.escape(spec_rule) + '"')
    matching = [r for r in alerting_rules() if selector.search(r["expr"])]
    assert len(matching) == 1, f"{spec_rule}: {[r['alert'] for r in matching]}"
    (rule,) = matching
    carried = carried_labels(rule["expr"], rule.get("labels", {}), alert_gauge_labels())
    missing = set(ROUTING_LABELS) - carried
    assert not missing, f"{rule['alert']} does not carry {sorted(missing)}"
    assert rule.get("labels", {}).get("team") == "purchasing"


def _pages(alert: dict[str, Any], rule: str) -> bool:
    """Whether ``alert`` fires for a ``claimwatch_alert_firing`` series of ``rule``: its
    selector names the rule (``rule="x"``) or excludes a list without it (``rule!~"a|b"``)."""
    expr = alert["expr"]
    if "claimwatch_alert_firing" not in expr:
        return False
    named = re.findall(r'\brule="([a-z0-9_]+)"', expr)
    excluded = re.findall(r'\brule!~"([a-z0-9_|]+)"', expr)
    if named:
        return rule in named
    return bool(excluded) and rule not in excluded[0].split("|")


@pytest.mark.parametrize("rule", [*REGISTRY_RULES, "a_rule_added_later"])
def test_every_rule_of_the_registry_pages_through_exactly_one_alert(rule: str) -> None:
    paging = [a["alert"] for a in alerting_rules() if _pages(a, rule)]
    assert len(paging) == 1, f"{rule}: {paging}"
    if rule not in SPEC_RULES:
        assert paging == ["ClaimwatchRuleFiring"]


def test_the_generic_alert_excludes_exactly_the_rules_with_an_alert_of_their_own() -> None:
    (generic,) = [a for a in alerting_rules() if a["alert"] == "ClaimwatchRuleFiring"]
    (excluded,) = re.findall(r'\brule!~"([a-z0-9_|]+)"', generic["expr"])
    assert sorted(excluded.split("|")) == sorted(SPEC_RULES)
    assert set(SPEC_RULES) <= set(REGISTRY_RULES)
    carried = carried_labels(generic["expr"], generic.get("labels", {}), alert_gauge_labels())
    assert not set(ROUTING_LABELS) - carried
    assert generic["labels"]["team"] == "purchasing"


def test_purchasing_alerts_explain_themselves_and_link_to_the_purchasing_dashboard() -> None:
    purchasing = json.loads(next(p for p in DASHBOARDS if p.name == "purchasing.json").read_text())
    link = f"/d/{purchasing['uid']}/"
    for rule in alerting_rules():
        if rule.get("labels", {}).get("team") != "purchasing":
            continue
        annotations = rule["annotations"]
        assert "$labels.provider_name" in annotations["summary"], rule["alert"]
        assert annotations["description"].strip(), rule["alert"]
        assert link in annotations["dashboard"], rule["alert"]
        for var in ("purchaser", "provider", "year"):
            assert f"var-{var}={{{{ $labels.{var}" in annotations["dashboard"], (rule["alert"], var)


def test_pipeline_alerts_cover_worker_down_lag_dead_letters_and_silence() -> None:
    ops = {
        r["alert"]: r for r in alerting_rules() if r.get("labels", {}).get("team") == "operations"
    }
    exprs = " ".join(r["expr"] for r in ops.values())
    assert 'up{job="claimwatch"} == 0' in exprs
    assert "claimwatch_consumer_lag_messages" in exprs
    assert "claimwatch_dead_letters_total" in exprs
    assert "claimwatch_last_event_timestamp_seconds" in exprs
    for name, rule in ops.items():
        assert rule["labels"].get("severity") in SEVERITIES, name
        assert "summary" in rule["annotations"], name


def unit_test_cases() -> dict[str, dict[str, int]]:
    """Per alert name: how many promtool cases expect it firing and not firing."""
    cases: dict[str, dict[str, int]] = {}
    for path in UNIT_TESTS:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in group.get("alert_rule_test", []):
                kind = "firing" if case.get("exp_alerts") else "not_firing"
                counts = cases.setdefault(case["alertname"], {"firing": 0, "not_firing": 0})
                counts[kind] += 1
    return cases


@pytest.mark.parametrize("alert", [r["alert"] for r in alerting_rules()])
def test_every_alerting_rule_has_firing_and_not_firing_unit_tests(alert: str) -> None:
    counts = unit_test_cases().get(alert, {"firing": 0, "not_firing": 0})
    assert counts["firing"] >= 1, f"{alert}: no promtool case where it fires"
    assert counts["not_firing"] >= 1, f"{alert}: no promtool case where it stays silent"


def test_every_promtool_case_names_an_existing_alert() -> None:
    names = {r["alert"] for r in alerting_rules()}
    assert set(unit_test_cases()) <= names
