"""Rules and dashboards query only metrics the worker exports (docs/metrics.md is the contract)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.deploy.deploy_helpers import (
    ALERT_RULES,
    DASHBOARDS,
    RECORDING_RULES,
    metrics_doc_tables,
    recording_rules,
    rules_of,
)

METRIC = re.compile(r"(?<![A-Za-z0-9_:])claimwatch_[A-Za-z0-9_]+")
RECORDED = re.compile(r"(?<![A-Za-z0-9_:])claimwatch:[A-Za-z0-9_:]+")
# Sample names derived from a family: a histogram's series, and client_python's *_created.
SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def exported_metric_names() -> set[str]:
    """Names of the samples the worker's own collector exposes, counters with `_total`.

    Scraped from `streams.pipeline.metrics.WorkerMetrics` over an engine that holds a provider
    with every indicator, a contract, a spend pace and a firing alert, so every family has
    samples.
    """
    from prometheus_client.parser import text_string_to_metric_families

    from streams.domain.contracts import Contract
    from streams.domain.engine import Engine
    from streams.domain.policy import load_policy
    from streams.pipeline.metrics import WorkerMetrics

    engine = Engine(load_policy())
    year = datetime.now(UTC).year
    engine.apply_contract(
        Contract("12345678", year, 100_000, "inkoop-ggz-noord", "GGZ Test", "Twente", 1, 0.0)
    )
    base = {
        "schema": "ggz.declaration/1",
        "kind": "debit",
        "provider_agb": "12345678",
        "region": "Twente",
        "client_ref": "c-1",
        "trajectory_id": "t",
        "service_date": f"{year}-02-01",
        # Five months of the year covered (SPEC 8.1, lag 30 days): enough for a projection.
        "submitted_at": f"{year}-07-01T10:00:00+02:00",
        "activity": "consult",
        "consult_mode": "group",
        "practitioners": 4,
        "digital": True,
        "setting": 5,
        "care_demand_type": 1,
        "diagnosis_group": "adhd",
        "detox": "clinical",
        "amount_cents": 90_000,
    }
    for i, y in enumerate((year - 1, year)):
        line = {**base, "event_id": f"e{i}", "line_id": f"l{i}", "service_date": f"{y}-02-01"}
        engine.process(orjson.dumps(line))
    for i in range(250):  # enough consults for the peer mean
        engine.process(
            orjson.dumps(
                {
                    **base,
                    "event_id": f"p{i}",
                    "line_id": f"p{i}",
                    "consult_mode": "individual",
                    "amount_cents": 100,
                }
            )
        )
    metrics = WorkerMetrics(engine)
    metrics.consumer_lag = {("ggz.declarations.v1", 0): 3}
    metrics.dead_letters = {"schema": 1}
    metrics.last_event = 1_780_000_000.0  # absent until a declarations message is processed
    # The cluster's region view (SPEC §9) with a gap firing: a secured ward that stopped.
    from streams.domain.regions import DepartmentSummary, RegionWatch, region_view

    rows = [DepartmentSummary("12345678", "ward", "secured", "Twente", (year, 5), (4,) * 6 + (0,))]
    watch = RegionWatch()
    watch.evaluate(rows, 0.0, 0.0)
    metrics.region_source = lambda: region_view(rows)
    metrics.gap_source = watch.alerts.firing
    body, _ = metrics.exposition()
    names = set()
    for family in text_string_to_metric_families(body.decode()):
        if family.type == "histogram":
            names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
    return names


def promql_of_rules(path: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL-bearing text) of a rule file: expressions and annotation templates."""
    for rule in rules_of(path):
        name = rule.get("alert") or rule.get("record")
        yield f"{path.name}:{name}", rule["expr"]
        for key, text in rule.get("annotations", {}).items():
            yield f"{path.name}:{name}:{key}", text


def promql_of_dashboard(path: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of a Grafana dashboard: panel targets and template variable queries."""
    model = json.loads(path.read_text(encoding="utf-8"))

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(model.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"{path.name}:{panel['title']}:{target['refId']}", target["expr"]
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        yield (
            f"{path.name}:${variable['name']}",
            query["query"] if isinstance(query, dict) else query,
        )
        yield f"{path.name}:${variable['name']}:definition", variable.get("definition", "")


def all_promql() -> list[tuple[str, str]]:
    found = [*promql_of_rules(RECORDING_RULES), *promql_of_rules(ALERT_RULES)]
    for path in DASHBOARDS:
        found.extend(promql_of_dashboard(path))
    return found


def base_name(name: str, exported: set[str]) -> str:
    if name in exported:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if base in exported:
                return base
            # A counter `x_total` is exposed with its creation time as `x_created`.
            if suffix == "_created" and f"{base}_total" in exported:
                return f"{base}_total"
    return name


def unknown_metrics(sources: list[tuple[str, str]], exported: set[str]) -> dict[str, set[str]]:
    unknown: dict[str, set[str]] = {}
    for where, text in sources:
        for name in METRIC.findall(text):
            if base_name(name, exported) not in exported:
                unknown.setdefault(name, set()).add(where)
    return unknown


def test_the_contract_lists_the_metrics_of_spec_section_7() -> None:
    exported = exported_metric_names()
    assert len(exported) >= 20
    assert {
        "claimwatch_alert_firing",
        "claimwatch_lines_total",
        "claimwatch_event_lag_seconds",
        "claimwatch_provider_ceiling_utilisation_ratio",
    } <= exported


def test_docs_metrics_md_lists_exactly_the_metrics_the_worker_exports() -> None:
    exported = exported_metric_names()
    # process_* and python_gc_* are prometheus-client's collectors, documented in prose
    ours = {name for name in exported if name.startswith("claimwatch_")}
    families = {name for name in ours if base_name(name, ours - {name}) == name}
    documented = {row["metric"] for row in metrics_doc_tables()}
    assert families - documented == set(), "exported, not in docs/metrics.md"
    assert documented - families == set(), "in docs/metrics.md, not exported"


def test_rules_and_dashboards_query_something() -> None:
    sources = all_promql()
    assert any(where.startswith("claimwatch-alerts.yml") for where, _ in sources)
    assert {Path(p).name for p in DASHBOARDS} == {
        "cruciale-ggz.json",
        "operations.json",
        "purchasing.json",
    }
    assert sum(len(METRIC.findall(text)) for _, text in sources) > 50


def test_every_metric_used_by_rules_and_dashboards_is_exported() -> None:
    unknown = unknown_metrics(all_promql(), exported_metric_names())
    assert not unknown, "not in the metrics contract: " + "; ".join(
        f"{name} (in {', '.join(sorted(places))})" for name, places in sorted(unknown.items())
    )


def test_every_recording_rule_used_is_defined() -> None:
    defined = {rule["record"] for rule in recording_rules()}
    used = {name: where for where, text in all_promql() for name in RECORDED.findall(text)}
    assert used, "dashboards are expected to use some recording rules"
    assert not set(used) - defined, {name: used[name] for name in set(used) - defined}


def test_recording_rule_names_follow_level_metric_operation() -> None:
    for rule in recording_rules():
        assert re.fullmatch(r"claimwatch:[a-z0-9_]+(:[a-z0-9_]+)?", rule["record"]), rule["record"]


@pytest.mark.parametrize(
    ("expr", "unknown"),
    [
        ("rate(claimwatch_lines_total[5m])", set()),
        (
            "histogram_quantile(0.9, sum by (le) (rate(claimwatch_event_lag_seconds_bucket[5m])))",
            set(),
        ),
        ("claimwatch_event_lag_seconds_count + claimwatch_lines_created", set()),
        ("sum(claimwatch_lines_totl)", {"claimwatch_lines_totl"}),
        ('max(claimwatch_provider_consult{job="claimwatch"})', {"claimwatch_provider_consult"}),
        ("claimwatch_provider_consults / claimwatch_peer_providers", {"claimwatch_peer_providers"}),
        ("claimwatch:lines:rate5m", set()),
    ],
)
def test_the_check_catches_names_outside_the_contract(expr: str, unknown: set[str]) -> None:
    exported = {
        "claimwatch_lines_total",
        "claimwatch_event_lag_seconds",
        "claimwatch_provider_consults",
    }
    assert set(unknown_metrics([("test", expr)], exported)) == unknown
