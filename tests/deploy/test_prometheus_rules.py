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
    REPO,
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
    A ``group_left (...)`` join keeps the left side's labels (its first aggregation) and
    adds the ones it names from the right side.
    """
    by_clauses = [
        {label.strip() for label in clause.split(",") if label.strip()}
        for clause in re.findall(r"\bby\s*\(([^)]*)\)", expr)
    ]
    joined = re.findall(r"\bgroup_left\s*\(([^)]*)\)", expr)
    if joined:
        left = by_clauses[0] if by_clauses else set(metric_labels)
        added = {label.strip() for clause in joined for label in clause.split(",")}
        return set(static) | left | (added - {""})
    kept = set.intersection(*by_clauses) if by_clauses else set(metric_labels)
    for clause in re.findall(r"\bwithout\s*\(([^)]*)\)", expr):
        kept -= {label.strip() for label in clause.split(",")}
    return set(static) | kept


def alert_gauge_labels() -> set[str]:
    (row,) = [r for r in metrics_doc_tables() if r["metric"] == "claimwatch_alert_firing"]
    return set(re.findall(r"`([a-z_]+)`", row["labels"]))


def test_alert_gauge_labels_are_read_from_the_metrics_contract() -> None:
    assert {"alert_id", "rule", "provider", "year", "severity", "detail"} <= alert_gauge_labels()
    # the descriptive labels are joined in from claimwatch_provider_info
    assert not {"provider_name", "purchaser", "region"} & alert_gauge_labels()


def test_carried_labels_follow_the_aggregation() -> None:
    labels = {"provider", "year", "severity", "instance"}
    assert carried_labels("max by (provider) (m)", {"severity": "x"}, labels) == {
        "provider",
        "severity",
    }
    assert carried_labels("m == 1", {}, labels) == labels
    assert carried_labels("max without (instance) (m)", {}, labels) == labels - {"instance"}
    join = (
        "max by (provider, year) (m) * on (provider, year) group_left (purchaser, region)"
        " topk by (provider, year) (1, info)"
    )
    assert carried_labels(join, {}, labels) == {"provider", "year", "purchaser", "region"}


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
        if rule.get("labels", {}).get("team") != "purchasing" or rule["alert"] in REGION_ALERTS:
            continue
        annotations = rule["annotations"]
        assert "$labels.provider_name" in annotations["summary"], rule["alert"]
        assert annotations["description"].strip(), rule["alert"]
        assert link in annotations["dashboard"], rule["alert"]
        for var in ("purchaser", "provider", "year"):
            assert f"var-{var}={{{{ $labels.{var}" in annotations["dashboard"], (rule["alert"], var)


REGION_ALERTS = {"ClaimwatchRegionCategoryGap"}


def test_the_region_gap_names_its_region_and_links_to_the_cruciale_dashboard() -> None:
    cruciale = json.loads(next(p for p in DASHBOARDS if p.name == "cruciale-ggz.json").read_text())
    (rule,) = [r for r in alerting_rules() if r["alert"] in REGION_ALERTS]
    annotations = rule["annotations"]
    assert (
        "$labels.region" in annotations["summary"] and "$labels.category" in annotations["summary"]
    )
    assert f"/d/{cruciale['uid']}/" in annotations["dashboard"]
    for var in ("region", "year"):
        assert f"var-{var}={{{{ $labels.{var}" in annotations["dashboard"], var
    assert rule["labels"]["team"] == "purchasing"


def test_the_region_gap_joins_its_purchasers_once_per_cruciale_category() -> None:
    """Many purchasers of a region cannot be joined to many gaps of that region in one
    PromQL join: one branch per category, and every category of SPEC §9 has its branch."""
    from streams.domain.departments import CRUCIAL

    (rule,) = [r for r in alerting_rules() if r["alert"] in REGION_ALERTS]
    expr = rule["expr"]
    branches = re.findall(r'claimwatch_region_category_gap_firing\{category="([a-z_]+)"\}', expr)
    assert sorted(branches) == sorted(CRUCIAL)
    assert expr.count("group_left (alert_id, category, year, severity)") == len(CRUCIAL)
    # a region without purchasers still alerts
    assert "unless on (region) claimwatch_region_purchaser" in expr


def test_links_come_from_external_labels_never_a_host_written_in_a_rule() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    defined = set(config["global"]["external_labels"])
    text = ALERT_RULES.read_text(encoding="utf-8")
    assert "localhost" not in text and "http://" not in text and "https://" not in text
    used = set(re.findall(r"\$externalLabels\.(\w+)", text))
    assert used == {"grafana_url", "runbook_url", "portal_url"}
    assert used <= defined
    for rule in alerting_rules():
        link = rule["annotations"].get("dashboard")
        if link is not None:
            assert link.startswith("{{ $externalLabels.grafana_url }}/d/"), rule["alert"]


def test_the_link_labels_are_dropped_from_the_alerts_sent_to_alertmanager() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    links = set(config["global"]["external_labels"])
    (drop,) = config["alerting"]["alert_relabel_configs"]
    assert drop["action"] == "labeldrop"
    assert {label for label in links if re.fullmatch(drop["regex"], label)} == links


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the headings of docs/runbook.md."""
    anchors = set()
    for line in (REPO / "docs" / "runbook.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#+\s+(.*)", line)
        if heading:
            text = heading.group(1).strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_a_runbook_section(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    prefix = "{{ $externalLabels.runbook_url }}#"
    assert url.startswith(prefix), rule["alert"]
    anchor = url[len(prefix) :]
    assert anchor == rule["alert"].lower()
    assert anchor in runbook_anchors(), f"docs/runbook.md has no section {rule['alert']}"


def test_policy_figures_in_the_texts_come_from_the_policy_gauge() -> None:
    """Texts quote the policy the worker runs with (the promtool cases feed it values
    other than the shipped defaults), never a number written by hand."""
    quoting = {
        "ClaimwatchGroupShareLow": ("group_share_low", "factor"),
        "ClaimwatchGroupShareNotRising": ("group_share_not_rising", "min_rise"),
        "ClaimwatchDigitalShareLow": ("digital_share_low", "target"),
        "ClaimwatchCeilingUnderrun": ("ceiling_underrun", "threshold"),
        "ClaimwatchDepartmentActivityDrop": ("department_activity_drop", "drop_factor"),
        "ClaimwatchDepartmentStopped": ("department_stopped", "min_clients"),
    }
    rules = {r["alert"]: r for r in alerting_rules()}
    for alert, (rule, parameter) in quoting.items():
        text = rules[alert]["annotations"]["description"]
        assert f'claimwatch_policy_threshold{{rule="{rule}",parameter="{parameter}"}}' in text
        assert not re.search(r"\b(0\.[56]|25 ?%|10 ?%|60 ?%|20 clients)", text), alert


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
