"""Alertmanager configuration: validity, routing to purchasers, inhibition, the e-mail template.

Routing is checked with `amtool config routes test`; inhibition with a real
Alertmanager started on a free local port (no clustering, a temporary data dir).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import ALERTMANAGER, alerting_rules, load_yaml

CONFIG = ALERTMANAGER / "alertmanager.yml"


def test_config_is_valid(amtool: str) -> None:
    result = subprocess.run(
        [amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "1 templates" in result.stdout


def route(amtool: str, labels: dict[str, str]) -> str:
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}"]
        + [f"{k}={v}" for k, v in labels.items()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


CEILING = {
    "alertname": "ClaimwatchCeilingUtilisation",
    "team": "purchasing",
    "provider": "12345678",
    "year": "2026",
    "severity": "warning",
    "region": "Groningen",
}


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        pytest.param(
            CEILING | {"purchaser": "inkoop-ggz-noord"}, "inkoop-ggz-noord", id="noord-by-email"
        ),
        pytest.param(
            CEILING | {"purchaser": "inkoop-ggz-zuid", "severity": "critical"},
            "inkoop-ggz-zuid",
            id="zuid-by-webhook",
        ),
        pytest.param(
            CEILING | {"purchaser": "inkoop-ggz-west"}, "purchasing-desk", id="team-without-route"
        ),
        pytest.param(
            {k: v for k, v in CEILING.items()}, "purchasing-desk", id="contract-without-purchaser"
        ),
        pytest.param(
            {
                "alertname": "ClaimwatchWorkerDown",
                "team": "operations",
                "severity": "high",
                "instance": "172.18.0.7:6066",
            },
            "operations",
            id="pipeline-alert",
        ),
        pytest.param(
            {
                "alertname": "ClaimwatchConsumerLagGrowing",
                "team": "operations",
                "purchaser": "inkoop-ggz-noord",
            },
            "operations",
            id="pipeline-alert-never-to-purchaser",
        ),
        pytest.param({"alertname": "SomethingElse"}, "operations", id="unlabelled-default"),
        pytest.param(
            {"alertname": "Foreign", "purchaser": "inkoop-ggz-noord"},
            "operations",
            id="purchaser-label-without-team",
        ),
    ],
)
def test_alerts_route_to_the_purchaser_that_owns_the_contract(
    amtool: str, labels: dict[str, str], receiver: str
) -> None:
    assert route(amtool, labels) == receiver


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_every_prometheus_alert_reaches_its_owner(amtool: str, rule: dict[str, Any]) -> None:
    # The labels the rule sets, plus a purchaser as the worker's gauge would carry it.
    labels = {"alertname": rule["alert"], **rule.get("labels", {}), "purchaser": "inkoop-ggz-noord"}
    expected = {"purchasing": "inkoop-ggz-noord", "operations": "operations"}[labels["team"]]
    assert route(amtool, labels) == expected


def test_every_receiver_is_used_by_a_route() -> None:
    config = load_yaml(CONFIG)

    def receivers(node: dict[str, Any]) -> set[str]:
        found = {node["receiver"]} if "receiver" in node else set()
        for child in node.get("routes", []):
            found |= receivers(child)
        return found

    assert {r["name"] for r in config["receivers"]} == receivers(config["route"])
    assert config["route"]["group_by"] == ["alertname", "provider", "year"]


def test_inhibition_rules_guard_both_sides_against_missing_labels() -> None:
    # A label missing on both sides counts as equal: without `=~".+"` on both sides
    # a malformed alert would mute everything.
    for rule in load_yaml(CONFIG)["inhibit_rules"]:
        for label in rule.get("equal", []):
            guard = f'{label}=~".+"'
            assert guard in rule["source_matchers"], (label, rule)
            assert guard in rule["target_matchers"], (label, rule)


# ---------------------------------------------------------------- a real Alertmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


@pytest.fixture
def alertmanager(alertmanager_binary: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            alertmanager_binary,
            f"--config.file={CONFIG}",
            f"--storage.path={tmp_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        "alertmanager did not start:\n"
                        + (tmp_path / "alertmanager.log").read_text()
                    )
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def ceiling(provider: str | None, year: str | None, severity: str) -> dict[str, str]:
    labels = {
        "alertname": "ClaimwatchCeilingUtilisation",
        "team": "purchasing",
        "severity": severity,
        "purchaser": "inkoop-ggz-noord",
        "detail": {"critical": "100", "high": "90", "warning": "70"}[severity],
    }
    if provider is not None:
        labels["provider"] = provider
    if year is not None:
        labels["year"] = year
    labels["alert_id"] = f"ceiling_utilisation:{provider}:{year}:{labels['detail']}"
    return labels


def test_higher_ceiling_alerts_mute_lower_ones_of_the_same_provider_year(alertmanager: str) -> None:
    alerts = {
        "p1-critical": ceiling("11111111", "2026", "critical"),
        "p1-high": ceiling("11111111", "2026", "high"),
        "p1-warning": ceiling("11111111", "2026", "warning"),
        "p2-high": ceiling("22222222", "2026", "high"),
        "p2-warning": ceiling("22222222", "2026", "warning"),
        "p2-warning-2025": ceiling("22222222", "2025", "warning"),
        "p3-warning": ceiling("33333333", "2026", "warning"),
        # Malformed alerts without provider and year: must mute nothing, not even each other.
        "bare-critical": ceiling(None, None, "critical"),
        "bare-warning": ceiling(None, None, "warning"),
        "no-worker": {
            "alertname": "ClaimwatchNoWorkerUp",
            "team": "operations",
            "severity": "critical",
        },
        "worker-down": {
            "alertname": "ClaimwatchWorkerDown",
            "team": "operations",
            "severity": "high",
            "instance": "172.18.0.7:6066",
        },
    }
    http_json(f"{alertmanager}/api/v2/alerts", [{"labels": labels} for labels in alerts.values()])
    muted = {"p1-high", "p1-warning", "p2-warning", "worker-down"}

    def states() -> dict[str, bool]:
        by_labels = {
            json.dumps(a["labels"], sort_keys=True): a
            for a in http_json(f"{alertmanager}/api/v2/alerts")
        }
        return {
            name: bool(by_labels[json.dumps(labels, sort_keys=True)]["status"]["inhibitedBy"])
            for name, labels in alerts.items()
            if json.dumps(labels, sort_keys=True) in by_labels
        }

    deadline = time.monotonic() + 15
    while True:
        current = states()
        if len(current) == len(alerts) and {n for n, m in current.items() if m} >= muted:
            break
        assert time.monotonic() < deadline, f"inhibition did not settle: {current}"
        time.sleep(0.2)
    assert {name for name, is_muted in current.items() if is_muted} == muted


# ---------------------------------------------------------------- the e-mail template


def render(amtool: str, template: str, data: Path, html: bool = False) -> str:
    result = subprocess.run(
        [
            amtool,
            "template",
            "render",
            f"--template.glob={ALERTMANAGER / 'templates' / '*.tmpl'}",
            f'--template.text={{{{ template "{template}" . }}}}',
            f"--template.data={data}",
            *(["--template.type=html"] if html else []),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_email_reads_as_a_message_to_the_purchaser(amtool: str, tmp_path: Path) -> None:
    firing = {
        "status": "firing",
        "labels": ceiling("12345678", "2026", "high")
        | {"provider_name": "GGZ Noorderlicht", "region": "Groningen"},
        "annotations": {
            "summary": "GGZ Noorderlicht (12345678) has declared 90% of its 2026 cost ceiling",
            "description": "Net declared care is at 93% of the 2026 zorgkostenplafond.",
            "dashboard": "http://localhost:3000/d/claimwatch-purchasing/claimwatch-purchasing?var-provider=12345678",
        },
        "startsAt": "2026-03-02T09:15:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "1",
    }
    resolved = firing | {
        "status": "resolved",
        "labels": ceiling("12345678", "2026", "warning") | {"provider_name": "GGZ Noorderlicht"},
        "annotations": {
            "summary": "GGZ Noorderlicht (12345678) has declared 70% of its 2026 cost ceiling",
            "description": "Back under 68%.",
        },
        "endsAt": "2026-03-05T10:00:00Z",
        "fingerprint": "2",
    }
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps(
            {
                "receiver": "inkoop-ggz-noord",
                "status": "firing",
                "alerts": [firing, resolved],
                "groupLabels": {
                    "alertname": "ClaimwatchCeilingUtilisation",
                    "provider": "12345678",
                    "year": "2026",
                },
                "commonLabels": {
                    "alertname": "ClaimwatchCeilingUtilisation",
                    "provider": "12345678",
                    "provider_name": "GGZ Noorderlicht",
                    "year": "2026",
                },
                "commonAnnotations": {},
                "externalURL": "http://localhost:9093",
            }
        )
    )

    subject = render(amtool, "claimwatch.email.subject", data)
    assert (
        subject.strip()
        == "[FIRING:1] ClaimwatchCeilingUtilisation GGZ Noorderlicht (12345678) 2026"
    )

    text = render(amtool, "claimwatch.email.text", data)
    firing_part, resolved_part = text.split("Resolved:")
    assert "has declared 90% of its 2026 cost ceiling [high]" in firing_part
    assert "Net declared care is at 93%" in firing_part
    assert "Dashboard: http://localhost:3000/d/claimwatch-purchasing/" in firing_part
    assert "Alert id: ceiling_utilisation:12345678:2026:90" in firing_part
    assert "has declared 70%" in resolved_part and "resolved: 2026-03-05 10:00 UTC" in resolved_part

    html = render(amtool, "claimwatch.email.html", data, html=True)
    assert '<a href="http://localhost:3000/d/claimwatch-purchasing/' in html
    assert (
        "<strong>GGZ Noorderlicht (12345678) has declared 90% of its 2026 cost ceiling</strong>"
        in html
    )
