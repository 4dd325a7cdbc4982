"""Grafana provisioning and dashboards (deploy/grafana): valid models whose queries parse."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_helpers import DASHBOARDS, GRAFANA, REPO, load_yaml

PANEL_TYPES = {
    "timeseries",
    "stat",
    "bargauge",
    "table",
    "gauge",
    "text",
    "row",
    "state-timeline",
    "barchart",
}


def model(name: str) -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_a_valid_grafana_model(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == f"claimwatch-{path.stem}"
    assert dashboard["title"] and dashboard["id"] is None
    assert "claimwatch" in dashboard["tags"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "datasource" in variables
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        assert panel["type"] in PANEL_TYPES, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        assert panel.get("description"), f"{panel['title']} needs a description"
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}", panel[
                "title"
            ]


def test_operations_dashboard_shows_stream_health() -> None:
    exprs = " ".join(t["expr"] for p in panels(model("operations")) for t in p.get("targets", []))
    for needle in (
        "sum by (result) (rate(claimwatch_lines_total",
        "claimwatch_consumer_lag_messages",
        'claimwatch_lines_total{result="rejected"}',
        "sum by (rule, state) (increase(claimwatch_alerts_total",
        "histogram_quantile(0.5, sum by (le) (rate(claimwatch_event_lag_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(claimwatch_event_lag_seconds_bucket",
        'up{job="claimwatch"}',
    ):
        assert needle in exprs, needle


def test_purchasing_dashboard_filters_by_region_purchaser_and_provider() -> None:
    variables = {v["name"]: v for v in model("purchasing")["templating"]["list"]}
    for name in ("region", "purchaser", "provider", "year"):
        assert variables[name]["definition"].startswith("label_values("), name
        assert variables[name]["definition"].endswith(f", {name})"), name
    for panel in panels(model("purchasing")):
        for target in panel["targets"]:
            if (
                "claimwatch_provider_" in target["expr"]
                or "claimwatch_alert_firing" in target["expr"]
            ):
                for name in ("region", "purchaser", "provider", "year"):
                    assert f'{name}=~"${name}"' in target["expr"], (panel["title"], name)


def test_names_purchaser_and_region_come_from_provider_info_joined_in() -> None:
    """The gauges carry provider and year only (docs/metrics.md): a filter on region or
    purchaser anywhere but on claimwatch_provider_info would leave a panel empty."""
    variables = {v["name"]: v for v in model("purchasing")["templating"]["list"]}
    for name in ("region", "purchaser", "provider", "year"):
        assert variables[name]["definition"].startswith("label_values(claimwatch_provider_info")
    joined = 0
    for panel in panels(model("purchasing")):
        for target in panel["targets"]:
            expr = target["expr"]
            outside = re.sub(r"claimwatch_provider_info\{[^}]*\}", "", expr)
            assert "region=~" not in outside and "purchaser=~" not in outside, panel["title"]
            if re.search(r"claimwatch_(provider_(?!info)|alert_firing)", expr):
                assert "group_left (provider_name, purchaser, region)" in expr, panel["title"]
                assert "topk by (provider, year) (1, claimwatch_provider_info{" in expr
                joined += 1
    assert joined >= 15


def test_provider_bars_show_the_top_twenty_not_every_provider() -> None:
    for panel in panels(model("purchasing")):
        if panel["type"] != "bargauge":
            continue
        for target in panel["targets"]:
            if "claimwatch_provider_" in target["expr"]:
                assert target["expr"].startswith(("topk(20, ", "bottomk(20, ")), panel["title"]


def test_policy_figures_come_from_the_policy_gauge_not_the_dashboard() -> None:
    exprs = [t["expr"] for p in panels(model("purchasing")) for t in p.get("targets", [])]
    text = " ".join(exprs)
    assert 'claimwatch_policy_threshold{rule="group_share_low", parameter="factor"}' in text
    assert 'claimwatch_policy_threshold{rule="digital_share_low", parameter="target"}' in text
    assert not any(re.match(r"\s*0\.\d+\s*\*", e) for e in exprs)


def test_operations_dashboard_shows_worker_memory_and_cpu() -> None:
    exprs = " ".join(t["expr"] for p in panels(model("operations")) for t in p.get("targets", []))
    assert 'process_resident_memory_bytes{job="claimwatch"}' in exprs
    assert 'process_cpu_seconds_total{job="claimwatch"}' in exprs


def test_purchasing_dashboard_has_a_panel_per_indicator() -> None:
    by_metric = {}
    for panel in panels(model("purchasing")):
        for target in panel["targets"]:
            for metric in re.findall(r"claimwatch_[a-z0-9_]+", target["expr"]):
                by_metric.setdefault(metric, panel)
    assert by_metric["claimwatch_provider_ceiling_utilisation_ratio"]["type"] == "bargauge"
    for metric in (
        "claimwatch_provider_group_consult_share_ratio",
        "claimwatch_peer_group_consult_share_mean_ratio",
        "claimwatch_provider_group_consults_4plus_practitioners",
        # the rules judge detox and digital care by clients (SPEC 8.4), and so does the board
        "claimwatch_provider_clinical_detox_client_share_ratio",
        "claimwatch_provider_adhd_growth_ratio",
        "claimwatch_provider_digital_client_share_ratio",
        "claimwatch_provider_zvt_setting_mismatch_lines",
        "claimwatch_provider_pace_ratio",
        "claimwatch_alert_firing",
    ):
        assert metric in by_metric, metric
    adhd = by_metric["claimwatch_provider_adhd_growth_ratio"]["description"]
    assert "proxy" in adhd and "DSM chapter 01" in adhd and "own diagnosis registration" in adhd
    digital = by_metric["claimwatch_provider_digital_client_share_ratio"]
    steps = digital["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.25]
    assert by_metric["claimwatch_alert_firing"]["type"] == "table"


def test_purchasing_dashboard_draws_expected_by_now_next_to_the_spend() -> None:
    # One chart holds the spend, the spend of the covered months and the expected line,
    # per provider, so a purchaser sees an early over-spender months before 70%.
    charts = [
        p
        for p in panels(model("purchasing"))
        if p["type"] == "timeseries"
        and "claimwatch_provider_expected_by_now_euros" in " ".join(t["expr"] for t in p["targets"])
    ]
    assert len(charts) == 1
    (chart,) = charts
    exprs = {t["expr"]: t["legendFormat"] for t in chart["targets"]}
    for metric in (
        "claimwatch_provider_net_declared_euros",
        "claimwatch_provider_covered_declared_euros",
        "claimwatch_provider_expected_by_now_euros",
    ):
        (legend,) = [legend for expr, legend in exprs.items() if metric in expr]
        assert "{{provider_name}}" in legend, metric
    assert chart["fieldConfig"]["defaults"]["unit"] == "currencyEUR"


def test_the_pace_panel_colours_at_the_thresholds_of_the_shipped_policy() -> None:
    policy = tomllib.loads((REPO / "streams" / "policy.default.toml").read_text(encoding="utf-8"))
    high = policy["ceiling_pace_high"]["threshold"]
    under = policy["ceiling_underrun"]["threshold"]
    (pace,) = [
        p
        for p in panels(model("purchasing"))
        if p["type"] == "bargauge"
        and any("claimwatch_provider_pace_ratio" in t["expr"] for t in p["targets"])
    ]
    steps = pace["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, under, high]
    assert f"{high:.0%}" in pace["description"] and f"{under:.0%}" in pace["description"]
    assert pace["fieldConfig"]["defaults"]["unit"] == "percentunit"


def grafana_to_promql(text: str) -> str:
    """A dashboard query as Prometheus would receive it, for a syntax check."""
    selector = re.fullmatch(r"label_values\((.*),\s*\w+\)", text.strip(), re.DOTALL)
    if selector:
        text = selector.group(1)
    text = (
        text.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
    )
    return re.sub(r"\$\{?(\w+)\}?", ".*", text)


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    exprs = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        exprs += [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
        exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}:check", "expr": grafana_to_promql(e)}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_an_invalid_query_would_be_caught(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [
                            {
                                "record": "x:y:z",
                                "expr": grafana_to_promql(
                                    "sum by (le (rate(claimwatch_lines_total[$__rate_interval]))"
                                ),
                            }
                        ],
                    }
                ]
            }
        )
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def test_provisioning_points_at_the_prometheus_service_and_the_dashboards() -> None:
    (datasource,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "claimwatch.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# ---------------------------------------------------------------- cruciale ggz (SPEC §9)


def test_the_cruciale_dashboard_grids_regions_by_the_six_categories() -> None:
    from streams.domain.departments import CRUCIAL

    dashboard = model("cruciale-ggz")
    assert dashboard["title"].endswith("Cruciale ggz")
    grids = [
        p
        for p in panels(dashboard)
        if any(t["id"] == "groupingToMatrix" for t in p.get("transformations", []))
    ]
    metrics = set()
    for panel in grids:
        (matrix,) = [t for t in panel["transformations"] if t["id"] == "groupingToMatrix"]
        assert matrix["options"]["rowField"] == "region", panel["title"]
        assert matrix["options"]["columnField"] == "category", panel["title"]
        (organize,) = [t for t in panel["transformations"] if t["id"] == "organize"]
        order = organize["options"]["indexByName"]
        assert sorted((i, c) for c, i in order.items() if c in CRUCIAL) == [
            (i + 1, c) for i, c in enumerate(CRUCIAL)
        ], panel["title"]
        (target,) = panel["targets"]
        metrics |= set(re.findall(r"claimwatch_region_\w+", target["expr"]))
        # every worker exports the cluster's region view: one value, never a sum
        assert target["expr"].startswith("max by (region, category) ("), panel["title"]
    assert metrics == {"claimwatch_region_active_departments", "claimwatch_region_clients"}


def test_the_region_view_is_never_summed_over_workers() -> None:
    for panel in panels(model("cruciale-ggz")):
        for target in panel.get("targets", []):
            for match in re.finditer(r"claimwatch_region_\w+", target["expr"]):
                before = target["expr"][: match.start()]
                # the innermost aggregation around a region series is a max
                assert re.search(r"max by \([^)]*\) \($", before), (panel["title"], target["expr"])


def test_departments_under_pressure_are_the_department_alerts_with_their_department() -> None:
    (table,) = [
        p
        for p in panels(model("cruciale-ggz"))
        if p["type"] == "table" and p["title"] == "Departments under pressure"
    ]
    (target,) = table["targets"]
    expr = target["expr"]
    assert 'rule=~"department_activity_drop|department_stopped"' in expr
    assert '"department", "$1", "detail", "(.*)"' in expr
    assert "group_left (provider_name, purchaser, region)" in expr
    assert 'claimwatch_provider_info{region=~"$region", purchaser=~"$purchaser"' in expr
    (organize,) = table["transformations"]
    assert organize["options"]["renameByName"]["department"] == "Department"
