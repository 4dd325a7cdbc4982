"""Prometheus, Alertmanager and a webhook receiver on loopback, configured from deploy/.

The configurations are derived from the shipped files, not written beside them:
scrape targets, intervals, `for:` durations of purchasing alerts, Alertmanager's
group timing and receiver endpoints are rewritten; rules, expressions, labels,
annotations, routes, matchers and inhibition stay exactly as shipped. A change
to deploy/ that breaks delivery to a purchaser breaks the end-to-end test.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import yaml

from streams.local.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"

# Seconds instead of the production 15 s / 30 s, so a crossing reaches the webhook in a few.
FAST = "1s"
# Addresses of the compose stack's other services, as the shipped prometheus.yml names them.
COMPOSE_SERVICES = {"localhost:9090": "prometheus", "alertmanager:9093": "alertmanager"}


# ---------------------------------------------------------------- configurations


def fast_rules(doc: dict[str, Any]) -> dict[str, Any]:
    """A rule file with evaluation intervals and purchasing `for:` durations shortened."""
    for group in doc["groups"]:
        if "interval" in group:
            group["interval"] = FAST
        for rule in group["rules"]:
            # Pipeline alerts keep their minutes: none of them may fire during the test.
            if rule.get("labels", {}).get("team") == "purchasing" and "for" in rule:
                rule["for"] = FAST
    return doc


def prometheus_config(out: Path, workers: list[str], prometheus: str, alertmanager: str) -> Path:
    """deploy/prometheus/prometheus.yml with local targets; its rule files copied into ``out``."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval=FAST, scrape_timeout=FAST, evaluation_interval=FAST)

    rule_files = []
    for name in config["rule_files"]:
        doc = yaml.safe_load((PROMETHEUS_DIR / name).read_text(encoding="utf-8"))
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump(fast_rules(doc)), encoding="utf-8")
        rule_files.append(str(target))
    config["rule_files"] = rule_files

    for am in config["alerting"]["alertmanagers"]:
        for key in [k for k in am if k.endswith("_sd_configs")]:
            del am[key]
        am["static_configs"] = [{"targets": [alertmanager]}]

    local = {"prometheus": prometheus, "alertmanager": alertmanager}
    jobs = []
    for job in config["scrape_configs"]:
        for key in ("scrape_interval", "scrape_timeout"):
            job.pop(key, None)
        if job["job_name"] == "claimwatch":
            # The rules select job="claimwatch"; only discovery changes (compose DNS → loopback).
            for key in [k for k in job if k.endswith("_sd_configs")]:
                del job[key]
            job["static_configs"] = [{"targets": workers}]
            jobs.append(job)
            continue
        if any(k.endswith("_sd_configs") for k in job):
            continue
        targets = [
            local[COMPOSE_SERVICES[t]]
            for sc in job.get("static_configs", [])
            for t in sc.get("targets", [])
            if t in COMPOSE_SERVICES
        ]
        if targets:
            job["static_configs"] = [{"targets": targets}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    assert any(j["job_name"] == "claimwatch" for j in jobs), "prometheus.yml has no claimwatch job"

    out.mkdir(parents=True, exist_ok=True)
    path = out / "prometheus.yml"
    path.write_text(dump(config), encoding="utf-8")
    return path


def alertmanager_config(out: Path, webhook: str) -> Path:
    """deploy/alertmanager/alertmanager.yml with fast group timing, no business-hours
    window, and every receiver turned into a webhook at ``<webhook>/<receiver name>``, so
    the test sees who got what."""
    config = yaml.safe_load((ALERTMANAGER_DIR / "alertmanager.yml").read_text(encoding="utf-8"))
    config["templates"] = [str(ALERTMANAGER_DIR / t) for t in config.get("templates", [])]

    def fast(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = FAST
        # Business-hours digests would hold a weekend run's mail until Monday; the
        # windows themselves are checked in tests/deploy/test_alertmanager.py.
        route.pop("active_time_intervals", None)
        for child in route.get("routes", []):
            fast(child)

    config["route"]["group_wait"] = FAST
    config["route"]["group_interval"] = FAST
    fast(config["route"])

    receivers = []
    for receiver in config["receivers"]:
        configs = [c for k, v in receiver.items() if k.endswith("_configs") for c in v]
        hook: dict[str, Any] = {"send_resolved": any(c.get("send_resolved") for c in configs)}
        # A shipped webhook keeps its own options (max_alerts …); only its URL is local.
        hook.update(next(iter(receiver.get("webhook_configs", [])), {}))
        hook["url"] = f"{webhook}/{urllib.parse.quote(receiver['name'])}"
        receivers.append({"name": receiver["name"], "webhook_configs": [hook]})
    config["receivers"] = receivers

    out.mkdir(parents=True, exist_ok=True)
    path = out / "alertmanager.yml"
    path.write_text(dump(config), encoding="utf-8")
    return path


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


# ---------------------------------------------------------------- processes


class Server:
    """A server process on a loopback port, its log in a file; ``stop()`` always ends it."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.name} did not become ready:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def start_prometheus(binary: str, config: Path, data: Path, port: int) -> Server:
    return Server(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
        data.parent / "prometheus.log",
    )


def start_alertmanager(binary: str, config: Path, data: Path, port: int) -> Server:
    return Server(
        "alertmanager",
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={data}",
            "--data.retention=192h",  # as docker-compose.yml: beyond the weekly repeat
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: a single instance
        ],
        port,
        data.parent / "alertmanager.log",
    )


def get_json(url: str, **params: str) -> Any:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def rfc3339(text: str) -> float:
    """Unix seconds of Prometheus' RFC 3339 timestamps (nanoseconds, trailing Z)."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert m, text
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float(f"0.{m.group(2) or 0}")


@dataclass
class Stack:
    """The running servers of one test."""

    cluster: Cluster
    prometheus: Server
    alertmanager: Server
    webhook: WebhookReceiver


# ---------------------------------------------------------------- the webhook


class WebhookReceiver:
    """Records every Alertmanager notification: (receiver path, JSON body)."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        received = self._received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received(urllib.parse.unquote(self.path.lstrip("/")), json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _received(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.notifications.append((path, body))

    def alerts(
        self, where: Callable[[dict[str, Any]], bool] = lambda a: True
    ) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert of every notification so far."""
        with self._lock:
            return [
                (path, a) for path, body in self.notifications for a in body["alerts"] if where(a)
            ]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
