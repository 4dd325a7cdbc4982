"""Alertmanager configuration: validity, routing to purchasers, inhibition, the e-mail template.

Routing is checked with `amtool config routes test`; inhibition with a real
Alertmanager started on a free local port (no clustering, a temporary data dir).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import ALERTMANAGER, alerting_rules, load_yaml

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


# ---------------------------------------------------------------- digests and case systems

DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """An Alertmanager duration ("168h", "1w", "4h30m") in seconds."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * DURATION_UNITS[u] for n, u in parts)


def purchasing_routes() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(route, its receiver) for every route that matches team="purchasing"."""
    config = load_yaml(CONFIG)
    receivers = {r["name"]: r for r in config["receivers"]}
    return [
        (route, receivers[route["receiver"]])
        for route in config["route"]["routes"]
        if 'team="purchasing"' in route.get("matchers", [])
    ]


def setting(route: dict[str, Any], key: str) -> Any:
    """A route's own value for key, else the root route's (Alertmanager's inheritance)."""
    return route.get(key, load_yaml(CONFIG)["route"].get(key))


def test_purchasers_get_email_as_a_weekly_business_hours_digest_per_rule() -> None:
    email_routes = [(r, rc) for r, rc in purchasing_routes() if "email_configs" in rc]
    assert len(email_routes) >= 2  # the northern team and the purchasing desk
    intervals = {i["name"]: i["time_intervals"] for i in load_yaml(CONFIG)["time_intervals"]}
    for route, receiver in email_routes:
        name = receiver["name"]
        # One mail per purchaser and rule, whatever the number of provider-years.
        assert sorted(setting(route, "group_by")) == ["alertname", "purchaser"], name
        assert seconds(setting(route, "repeat_interval")) >= 7 * 86400, name
        # Flushes come every group_interval from the group's creation, at any hour:
        # at most half the 10-hour window, or every flush of a group may miss it.
        assert seconds(setting(route, "group_interval")) <= 5 * 3600, name
        assert route["active_time_intervals"] == ["business-hours"], name
        assert "mute_time_intervals" not in route, name
        for mail in receiver["email_configs"]:
            assert "claimwatch.digest.text" in mail["text"], name
            assert "claimwatch.digest.html" in mail["html"], name
            assert "claimwatch.digest.subject" in mail["headers"]["Subject"], name
    assert intervals["business-hours"] == [
        {
            "weekdays": ["monday:friday"],
            "times": [{"start_time": "08:00", "end_time": "18:00"}],
            "location": "Europe/Amsterdam",
        }
    ]


def test_case_system_webhooks_keep_one_notification_per_provider_year_at_any_hour() -> None:
    webhook_routes = [(r, rc) for r, rc in purchasing_routes() if "webhook_configs" in rc]
    assert webhook_routes
    for route, receiver in webhook_routes:
        assert {"alertname", "provider", "year"} <= set(setting(route, "group_by")), receiver
        assert "purchaser" not in setting(route, "group_by"), receiver
        assert "active_time_intervals" not in route and "mute_time_intervals" not in route


# Severity info: an underrun or a group share that does not rise is for the next
# review, not for a case system or a notification at night.
INFO = CEILING | {"alertname": "ClaimwatchCeilingUnderrun", "severity": "info"}


def digest_only(receiver: dict[str, Any]) -> bool:
    """Whether a receiver only sends the e-mail digest (no webhook, no other channel)."""
    channels = {key for key in receiver if key.endswith("_configs")}
    return channels == {"email_configs"} and all(
        "claimwatch.digest.text" in mail["text"] for mail in receiver["email_configs"]
    )


@pytest.mark.parametrize(
    ("purchaser", "receiver"),
    [
        pytest.param("inkoop-ggz-noord", "inkoop-ggz-noord", id="team-with-a-digest"),
        pytest.param("inkoop-ggz-zuid", "purchasing-desk", id="webhook-team-not-its-case-system"),
        pytest.param("inkoop-ggz-west", "purchasing-desk", id="team-without-route"),
        pytest.param(None, "purchasing-desk", id="contract-without-purchaser"),
    ],
)
def test_info_alerts_go_to_a_digest_and_never_to_a_case_system(
    amtool: str, purchaser: str | None, receiver: str
) -> None:
    labels = INFO | ({"purchaser": purchaser} if purchaser else {})
    assert route(amtool, labels) == receiver
    receivers = {r["name"]: r for r in load_yaml(CONFIG)["receivers"]}
    assert digest_only(receivers[receiver]), receiver
    # The same alert at warning goes where the team's other alerts go.
    if purchaser == "inkoop-ggz-zuid":
        assert route(amtool, labels | {"severity": "warning"}) == "inkoop-ggz-zuid"


def test_every_route_an_info_alert_can_take_is_a_business_hours_digest() -> None:
    config = load_yaml(CONFIG)
    receivers = {r["name"]: r for r in config["receivers"]}
    (info,) = [r for r in config["route"]["routes"] if 'severity="info"' in r.get("matchers", [])]
    assert info["matchers"] == ['team="purchasing"', 'severity="info"']

    def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node] + [r for child in node.get("routes", []) for r in walk(child)]

    for node in walk(info):
        # Time intervals are not inherited by child routes: each names its own.
        assert node.get("active_time_intervals") == ["business-hours"], node["receiver"]
        assert digest_only(receivers[node["receiver"]]), node["receiver"]
        assert sorted(node.get("group_by", info["group_by"])) == ["alertname", "purchaser"]
    assert seconds(info["repeat_interval"]) >= 7 * 86400


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


def alert(purchaser: str, provider: str, year: str = "2026", **extra: str) -> dict[str, str]:
    return {
        "alertname": "ClaimwatchCeilingUtilisation",
        "team": "purchasing",
        "severity": "warning",
        "detail": "70",
        "purchaser": purchaser,
        "provider": provider,
        "year": year,
        "alert_id": f"ceiling_utilisation:{provider}:{year}:70",
    } | extra


def test_a_purchasers_alerts_share_one_digest_and_the_webhook_gets_one_per_provider(
    alertmanager: str,
) -> None:
    noord = [alert("inkoop-ggz-noord", p) for p in ("11111111", "22222222", "33333333")]
    noord.append(alert("inkoop-ggz-noord", "22222222", year="2025"))
    noord_other_rule = alert(
        "inkoop-ggz-noord", "44444444", alertname="ClaimwatchDigitalShareLow", detail="0"
    )
    zuid = [alert("inkoop-ggz-zuid", p) for p in ("55555555", "66666666")]
    posted = noord + [noord_other_rule] + zuid
    http_json(f"{alertmanager}/api/v2/alerts", [{"labels": labels} for labels in posted])

    def groups() -> dict[str, list[list[dict[str, str]]]]:
        by_receiver: dict[str, list[list[dict[str, str]]]] = {}
        for group in http_json(f"{alertmanager}/api/v2/alerts/groups"):
            alerts = [a["labels"] for a in group["alerts"]]
            by_receiver.setdefault(group["receiver"]["name"], []).append(alerts)
        return by_receiver

    deadline = time.monotonic() + 15
    while sum(len(a) for g in groups().values() for a in g) < len(posted):
        assert time.monotonic() < deadline, groups()
        time.sleep(0.2)
    found = groups()

    # E-mail: one digest per purchaser and rule, holding every provider-year.
    digests = {frozenset(a["alertname"] for a in g): g for g in found["inkoop-ggz-noord"]}
    assert len(found["inkoop-ggz-noord"]) == 2, found["inkoop-ggz-noord"]
    ceiling = digests[frozenset({"ClaimwatchCeilingUtilisation"})]
    key = lambda a: (a["provider"], a["year"])  # noqa: E731
    assert sorted(map(key, ceiling)) == sorted(map(key, noord))
    assert digests[frozenset({"ClaimwatchDigitalShareLow"})] == [noord_other_rule]
    # Webhook: one notification (one case) per provider-year.
    cases = sorted(key(a) for g in found["inkoop-ggz-zuid"] for a in g)
    assert len(found["inkoop-ggz-zuid"]) == 2 and cases == sorted(map(key, zuid))


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


def test_operations_email_lists_firing_and_resolved_alerts(amtool: str, tmp_path: Path) -> None:
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


def test_the_digest_tells_a_purchaser_in_dutch_how_many_alerts_and_lists_each_provider(
    amtool: str, tmp_path: Path
) -> None:
    def firing(provider: str, name: str, severity: str, percent: str) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": ceiling(provider, "2026", severity) | {"provider_name": name},
            "annotations": {
                "summary": f"{name} ({provider}) has declared {percent}% of its 2026 cost ceiling",
                "description": f"Net declared care is at {percent}.4% (EUR 1.23M of EUR 1.3M).",
                "dashboard": f"http://grafana.example.org/d/x?var-provider={provider}",
            },
            "startsAt": "2026-03-02T09:15:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": provider,
        }

    alerts = [
        firing("11111111", "GGZ Noorderlicht", "high", "90"),
        firing("22222222", "Lentis Ambulant", "warning", "70"),
        firing("33333333", "Zorggroep Wad", "critical", "100"),
    ]
    resolved = firing("44444444", "Accare", "warning", "70") | {
        "status": "resolved",
        "endsAt": "2026-03-05T10:00:00Z",
    }
    payload = {
        "receiver": "inkoop-ggz-noord",
        "status": "firing",
        "alerts": alerts + [resolved],
        "groupLabels": {
            "alertname": "ClaimwatchCeilingUtilisation",
            "purchaser": "inkoop-ggz-noord",
        },
        "commonLabels": {"alertname": "ClaimwatchCeilingUtilisation"},
        "commonAnnotations": {},
        "externalURL": "http://localhost:9093",
    }
    data = tmp_path / "digest.json"
    data.write_text(json.dumps(payload))
    subject = render(amtool, "claimwatch.digest.subject", data).strip()
    assert subject == "claimwatch: 3 meldingen voor inkoper inkoop-ggz-noord: zorgkostenplafond"

    text = render(amtool, "claimwatch.digest.text", data)
    active, gone = text.split("Opgelost (1):")
    assert active.startswith("3 meldingen voor inkoper inkoop-ggz-noord: zorgkostenplafond.")
    for item in alerts:
        labels, annotations = item["labels"], item["annotations"]
        entry = f"- {labels['provider_name']} ({labels['provider']}), 2026, ernst "
        assert entry in active, entry
        # The rule's own text, amounts included, reaches the purchaser unchanged.
        assert f"  {annotations['summary']}\n  {annotations['description']}\n" in active
        assert f"Kenmerk: {labels['alert_id']}" in active
    assert "ernst hoog" in active and "ernst kritiek" in active and "ernst waarschuwing" in active
    assert "Accare" not in active and "- Accare (44444444), 2026" in gone
    assert "opgelost 2026-03-05 10:00 UTC" in gone

    html = render(amtool, "claimwatch.digest.html", data, html=True)
    assert "Actief (3)" in html and "Opgelost (1)" in html
    assert html.count('<a href="http://grafana.example.org/d/x?var-provider=') == 4
    assert "<strong>Zorggroep Wad</strong>" in html

    one = tmp_path / "one.json"
    one.write_text(json.dumps(payload | {"alerts": alerts[:1]}))
    assert render(amtool, "claimwatch.digest.subject", one).strip() == (
        "claimwatch: 1 melding voor inkoper inkoop-ggz-noord: zorgkostenplafond"
    )


def test_the_digest_names_the_pace_rules_and_info_severity_in_dutch(
    amtool: str, tmp_path: Path
) -> None:
    def item(alertname: str, severity: str) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": {
                "alertname": alertname,
                "team": "purchasing",
                "severity": severity,
                "purchaser": "inkoop-ggz-noord",
                "provider": "12345678",
                "provider_name": "GGZ Noorderlicht",
                "year": "2026",
            },
            "annotations": {"summary": "s", "description": "d"},
            "startsAt": "2026-07-01T09:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": alertname,
        }

    for alertname, severity, rule_nl, severity_nl in (
        (
            "ClaimwatchCeilingUnderrun",
            "info",
            "onderbesteding van het zorgkostenplafond",
            "ter informatie",
        ),
        (
            "ClaimwatchCeilingPaceHigh",
            "warning",
            "bestedingstempo boven het zorgkostenplafond",
            "waarschuwing",
        ),
    ):
        data = tmp_path / f"{alertname}.json"
        data.write_text(
            json.dumps(
                {
                    "receiver": "inkoop-ggz-noord",
                    "status": "firing",
                    "alerts": [item(alertname, severity)],
                    "groupLabels": {"alertname": alertname, "purchaser": "inkoop-ggz-noord"},
                    "commonLabels": {"alertname": alertname},
                    "commonAnnotations": {},
                    "externalURL": "http://localhost:9093",
                }
            )
        )
        subject = render(amtool, "claimwatch.digest.subject", data).strip()
        assert subject == f"claimwatch: 1 melding voor inkoper inkoop-ggz-noord: {rule_nl}"
        assert f", ernst {severity_nl}, " in render(amtool, "claimwatch.digest.text", data)


def test_mails_link_each_alert_to_its_portal_page_when_prometheus_names_the_portal(
    amtool: str, tmp_path: Path
) -> None:
    alert = {
        "status": "firing",
        "labels": ceiling("12345678", "2026", "high") | {"provider_name": "GGZ Noorderlicht"},
        "annotations": {
            "summary": "GGZ Noorderlicht (12345678) has declared 90% of its 2026 cost ceiling",
            "dashboard": "http://localhost:3000/d/claimwatch-purchasing/claimwatch-purchasing",
            # the rule's annotation, from Prometheus's portal_url external label
            "portal": "https://inkoop.example.org/alerts/ceiling_utilisation:12345678:2026:90",
        },
        "startsAt": "2026-03-02T09:15:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "1",
    }
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps(
            {
                "receiver": "inkoop-ggz-noord",
                "status": "firing",
                "alerts": [alert],
                "groupLabels": {
                    "alertname": "ClaimwatchCeilingUtilisation",
                    "purchaser": "inkoop-ggz-noord",
                },
                "commonLabels": {"alertname": "ClaimwatchCeilingUtilisation"},
                "commonAnnotations": {},
                "externalURL": "http://localhost:9093",
            }
        )
    )
    page = "https://inkoop.example.org/alerts/ceiling_utilisation:12345678:2026:90"
    text = render(amtool, "claimwatch.email.text", data)
    assert f"Portal: {page}" in text and "localhost:3000" not in text
    digest = render(amtool, "claimwatch.digest.text", data)
    assert f"Portaal: {page}" in digest and "localhost:3000" not in digest
    for template in ("claimwatch.email.html", "claimwatch.digest.html"):
        html = render(amtool, template, data, html=True)
        assert f'<a href="{page}">' in html and "localhost:3000" not in html


def test_prometheus_names_the_portal_for_the_alert_links_and_keeps_it_off_the_labels() -> None:
    config = load_yaml(ALERTMANAGER.parent / "prometheus" / "prometheus.yml")
    assert config["global"]["external_labels"]["portal_url"].startswith("http")
    # an annotation, not a label: a new portal address must not give alerts a new identity
    dropped = config["alerting"]["alert_relabel_configs"][0]
    assert dropped["action"] == "labeldrop" and "portal_url" in dropped["regex"].split("|")
    rules = load_yaml(ALERTMANAGER.parent / "prometheus" / "rules" / "claimwatch-alerts.yml")
    purchasing = [r for g in rules["groups"] for r in g["rules"] if "alert_id" in r.get("expr", "")]
    assert purchasing and all(
        "$externalLabels.portal_url" in r["annotations"].get("portal", "") for r in purchasing
    )


# ---------------------------------------------------------------- cruciale ggz (SPEC §9)


def department(
    alertname: str, purchaser: str, dept: str, provider: str = "12345678"
) -> dict[str, str]:
    rule = {
        "ClaimwatchDepartmentActivityDrop": ("department_activity_drop", "warning"),
        "ClaimwatchDepartmentStopped": ("department_stopped", "high"),
    }[alertname]
    return {
        "alertname": alertname,
        "team": "purchasing",
        "severity": rule[1],
        "purchaser": purchaser,
        "provider": provider,
        "provider_name": "GGZ Noorderlicht",
        "year": "2026",
        "detail": dept,
        "department": dept,
        "alert_id": f"{rule[0]}:{provider}:2026:{dept}",
    }


def gap(purchaser: str | None, region: str, category: str) -> dict[str, str]:
    labels = {
        "alertname": "ClaimwatchRegionCategoryGap",
        "team": "purchasing",
        "severity": "high",
        "region": region,
        "category": category,
        "year": "2026",
        "alert_id": f"region_category_gap:{region}:{category}:2026",
    }
    return labels | ({"purchaser": purchaser} if purchaser else {})


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        pytest.param(
            department("ClaimwatchDepartmentStopped", "inkoop-ggz-noord", "kliniek"),
            "inkoop-ggz-noord",
            id="department-to-the-providers-purchaser",
        ),
        pytest.param(
            department("ClaimwatchDepartmentActivityDrop", "inkoop-ggz-zuid", "crisis"),
            "inkoop-ggz-zuid",
            id="department-to-a-webhook",
        ),
        pytest.param(
            gap("inkoop-ggz-noord", "Groningen", "secured"), "inkoop-ggz-noord", id="gap-by-email"
        ),
        pytest.param(
            gap("inkoop-ggz-zuid", "Utrecht", "secured"), "inkoop-ggz-zuid", id="gap-by-webhook"
        ),
        pytest.param(gap(None, "Zeeland", "acute"), "purchasing-desk", id="gap-without-purchaser"),
    ],
)
def test_cruciale_alerts_route_like_the_purchasers_other_alerts(
    amtool: str, labels: dict[str, str], receiver: str
) -> None:
    assert route(amtool, labels) == receiver


def test_a_case_system_gets_one_case_per_department_and_per_region_gap(alertmanager: str) -> None:
    zuid = [
        department("ClaimwatchDepartmentActivityDrop", "inkoop-ggz-zuid", "crisis-a"),
        department("ClaimwatchDepartmentActivityDrop", "inkoop-ggz-zuid", "crisis-b"),
        gap("inkoop-ggz-zuid", "Utrecht", "secured"),
        gap("inkoop-ggz-zuid", "Utrecht", "acute"),
        gap("inkoop-ggz-zuid", "Twente", "acute"),
    ]
    noord = [
        gap("inkoop-ggz-noord", "Utrecht", "secured"),
        gap("inkoop-ggz-noord", "Twente", "acute"),
    ]
    posted = zuid + noord
    http_json(f"{alertmanager}/api/v2/alerts", [{"labels": labels} for labels in posted])

    def groups() -> dict[str, list[list[dict[str, str]]]]:
        by_receiver: dict[str, list[list[dict[str, str]]]] = {}
        for group in http_json(f"{alertmanager}/api/v2/alerts/groups"):
            by_receiver.setdefault(group["receiver"]["name"], []).append(
                [a["labels"] for a in group["alerts"]]
            )
        return by_receiver

    deadline = time.monotonic() + 15
    while sum(len(a) for g in groups().values() for a in g) < len(posted):
        assert time.monotonic() < deadline, groups()
        time.sleep(0.2)
    found = groups()
    # the webhook: every department and every region gap a case of its own
    assert sorted(len(g) for g in found["inkoop-ggz-zuid"]) == [1] * len(zuid)
    # e-mail: the region gaps of a purchaser in one digest
    assert [len(g) for g in found["inkoop-ggz-noord"]] == [2]


def test_a_stopped_department_mutes_its_own_drop_only(alertmanager: str) -> None:
    alerts = {
        "stopped": department("ClaimwatchDepartmentStopped", "inkoop-ggz-noord", "kliniek"),
        "drop-same": department("ClaimwatchDepartmentActivityDrop", "inkoop-ggz-noord", "kliniek"),
        "drop-other": department("ClaimwatchDepartmentActivityDrop", "inkoop-ggz-noord", "crisis"),
        "drop-other-provider": department(
            "ClaimwatchDepartmentActivityDrop", "inkoop-ggz-noord", "kliniek", provider="87654321"
        ),
    }
    http_json(f"{alertmanager}/api/v2/alerts", [{"labels": labels} for labels in alerts.values()])

    def muted() -> dict[str, bool]:
        by_id = {a["labels"]["alert_id"]: a for a in http_json(f"{alertmanager}/api/v2/alerts")}
        return {
            name: bool(by_id[labels["alert_id"]]["status"]["inhibitedBy"])
            for name, labels in alerts.items()
            if labels["alert_id"] in by_id
        }

    deadline = time.monotonic() + 15
    while len(current := muted()) < len(alerts) or not current["drop-same"]:
        assert time.monotonic() < deadline, f"inhibition did not settle: {current}"
        time.sleep(0.2)
    assert {name for name, is_muted in current.items() if is_muted} == {"drop-same"}


def test_the_digest_names_departments_and_region_gaps_in_dutch(amtool: str, tmp_path: Path) -> None:
    def item(labels: dict[str, str], summary: str) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": summary, "description": "d"},
            "startsAt": "2026-07-01T09:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": labels["alert_id"],
        }

    cases = (
        (
            [
                item(
                    department("ClaimwatchDepartmentStopped", "inkoop-ggz-noord", "kliniek:west"),
                    "s",
                )
            ],
            "afdeling zonder cliënten",
            "- GGZ Noorderlicht (12345678), afdeling kliniek:west, 2026, ernst hoog, ",
            "afdeling kliniek:west",
        ),
        (
            [
                item(gap("inkoop-ggz-noord", "Utrecht", "secured"), "s"),
                item(gap("inkoop-ggz-noord", "Twente", "hs_ggz"), "s"),
            ],
            "cruciale ggz ontbreekt in de regio",
            "- regio Utrecht, beveiligde zorg, 2026, ernst hoog, ",
            "<strong>regio Twente</strong><br>hoogspecialistische ggz",
        ),
        (
            [
                item(
                    department("ClaimwatchDepartmentActivityDrop", "inkoop-ggz-noord", "crisis"),
                    "s",
                )
            ],
            "sterke daling van het aantal cliënten van een afdeling",
            "- GGZ Noorderlicht (12345678), afdeling crisis, 2026, ernst waarschuwing, ",
            "afdeling crisis",
        ),
    )
    for alerts, rule_nl, line, html_part in cases:
        alertname = alerts[0]["labels"]["alertname"]
        data = tmp_path / f"{alertname}.json"
        data.write_text(
            json.dumps(
                {
                    "receiver": "inkoop-ggz-noord",
                    "status": "firing",
                    "alerts": alerts,
                    "groupLabels": {"alertname": alertname, "purchaser": "inkoop-ggz-noord"},
                    "commonLabels": {"alertname": alertname},
                    "commonAnnotations": {},
                    "externalURL": "http://localhost:9093",
                }
            )
        )
        n = len(alerts)
        subject = render(amtool, "claimwatch.digest.subject", data).strip()
        word = "melding" if n == 1 else "meldingen"
        assert subject == f"claimwatch: {n} {word} voor inkoper inkoop-ggz-noord: {rule_nl}"
        text = render(amtool, "claimwatch.digest.text", data)
        assert line in text, text
        assert html_part in render(amtool, "claimwatch.digest.html", data, html=True)
