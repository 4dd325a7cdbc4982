"""The portal in a real browser: a small generated history processed by a real worker
on the embedded broker, the portal (``claimwatch portal``) over its topics, and
Debian's chromium, headless, loading the overview, a provider page and an alert
page. The figures shown are checked against the offline snapshot of the same
history; ``claimwatch snapshot`` is checked against it too. Screenshots are kept
under var/test-artefacts/portal/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from streams.domain.alerts import MONTH_NAMES, euros
from streams.local.cluster import Cluster, free_port
from streams.pipeline.settings import Settings
from streams.synth.generate import GenerateOptions, generate
from tests.deploy.deploy_helpers import need_binary
from tests.pipeline.harness import finish, offline_reference, produce

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ARTEFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artefacts" / "portal"
FAST_REBALANCE = {"CLAIMWATCH_REBALANCE_TIMEOUT_SECONDS": "6"}


class Texts(HTMLParser):
    """The text of every element with an id, and the rows of tables by id."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.rows: dict[str, list[str]] = {}  # data-agb → the row's text
        self.by_class: dict[str, str] = {}  # the text of the first element of a class
        self.table_rows: dict[str, int] = {}  # table id → its rows (header included)
        self._open: list[tuple[str, str | None, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("br", "input", "meta", "img", "link"):
            return
        if tag == "tr":
            for _tag, ident, _agb, _cls in self._open:
                if ident:
                    self.table_rows[ident] = self.table_rows.get(ident, 0) + 1
        cls = a.get("class")
        if cls and cls not in self.by_class:
            self.by_class[cls] = ""
        else:
            cls = None
        self._open.append((tag, a.get("id"), a.get("data-agb"), cls))
        if a.get("id"):
            self.by_id[a["id"] or ""] = ""
        if a.get("data-agb"):
            self.rows[a["data-agb"] or ""] = []

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _tag, ident, agb, cls in self._open:
            if cls:
                self.by_class[cls] += data
            if ident:
                self.by_id[ident] += data
            if agb and data.strip():
                self.rows[agb].append(data.strip())


def chromium(url: str, shot: Path, profile: Path) -> Texts:
    """The DOM chromium built for ``url`` (after its scripts ran), and a screenshot."""
    binary = need_binary("chromium")
    common = [
        binary,
        "--headless",
        "--no-sandbox",  # the tests may run as root (containers)
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,1600",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, check=True, timeout=120
    ).stdout.decode()
    subprocess.run(
        [*common, "--hide-scrollbars", f"--screenshot={shot}", url],
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert shot.stat().st_size > 10_000, f"{shot}: no page was drawn"
    parser = Texts()
    parser.feed(dom)
    return parser


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the portal exited: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:  # noqa: S310
                if orjson.loads(r.read())["ready"]:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the portal was not ready in time: {log.read_text()[-2000:]}")


@pytest.fixture
def processed(tmp_path: Path, policy) -> Any:  # type: ignore[no-untyped-def]
    history = tmp_path / "history"
    generate(history, GenerateOptions(providers=6, lines=5000, seed=3))
    files, contracts = [history / "declarations.ndjson"], history / "contracts.ndjson"
    reference = offline_reference(files, contracts, policy, tmp_path)
    cluster = Cluster(
        Settings(partitions=4, tick_seconds=3600.0), var_dir=tmp_path / "var", env=FAST_REBALANCE
    )
    cluster.start_broker()
    try:
        cluster.create_topics()
        cluster.add_worker()
        cluster.wait_ready()
        online = finish(cluster, produce(cluster, files, contracts), policy)
        yield cluster, reference, online
    finally:
        cluster.stop()


def test_chromium_shows_the_offline_figures_on_overview_provider_and_alert_pages(
    processed, tmp_path: Path
) -> None:
    cluster, reference, online = processed
    s = cluster.settings
    env = {
        **os.environ,
        "CLAIMWATCH_BROKER": s.broker or "",
        "CLAIMWATCH_PORTAL_BIND": "127.0.0.1",
        "CLAIMWATCH_PORTAL_PORT": str(port := free_port()),
        "CLAIMWATCH_TOPIC_ALERTS": s.topic_alerts,
        "CLAIMWATCH_TOPIC_PROVIDER_STATUS": s.topic_provider_status,
        "CLAIMWATCH_PRODUCER_IDEMPOTENCE": "false",
    }
    env.pop("CLAIMWATCH_PORTAL_TOKEN", None)

    # claimwatch snapshot: the status topic merged equals the offline snapshot
    out = tmp_path / "cluster-snapshot.json"
    subprocess.run(
        [sys.executable, "-m", "streams", "snapshot", "--out", str(out)],
        env=env,
        check=True,
        timeout=300,
    )
    merged = orjson.loads(out.read_bytes())
    offline = reference["snapshot"]
    assert merged["providers"] == offline["providers"]
    assert merged["peers"] == offline["peers"]
    assert set(merged["firing"]) == reference["firing"]

    log = tmp_path / "portal.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "portal"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(port, proc, log)
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        print(f"screenshots in {ARTEFACTS}")
        base = f"http://127.0.0.1:{port}"
        profile = tmp_path / "chromium"
        check_pages(base, offline, reference, profile)
    finally:
        proc.terminate()
        proc.wait(30)
    assert "Traceback" not in log.read_text()


def check_pages(
    base: str, offline: dict[str, Any], reference: dict[str, Any], profile: Path
) -> None:
    overview = chromium(f"{base}/?year=2026", ARTEFACTS / "overview.png", profile)
    in_2026 = {agb: y["2026"] for agb, y in offline["providers"].items() if "2026" in y}
    assert set(overview.rows) == set(in_2026)
    for agb, ind in in_2026.items():
        assert euros(ind["net_cents"]) in overview.rows[agb], agb
        if ind["projected_cents"] is not None:
            assert euros(ind["projected_cents"]) in overview.rows[agb], agb
    assert overview.by_id["provider-count"].strip() == str(len(in_2026))

    # the planted over-spender: a pace alert firing at the end
    pace = sorted(a for a in reference["firing"] if a.startswith("ceiling_pace_high:"))
    assert pace, "the history should plant an over-spender"
    _rule, agb, year = pace[0].split(":")
    ind = offline["providers"][agb][year]
    page = chromium(f"{base}/providers/{agb}?year={year}", ARTEFACTS / "provider.png", profile)
    assert page.by_id["net"].strip() == euros(ind["net_cents"])
    assert page.by_id["projected"].strip() == euros(ind["projected_cents"])
    assert page.by_id["covered"].strip() == MONTH_NAMES["nl"][ind["covered_month"] - 1]
    departments = ind.get("departments") or {}
    if departments:  # one row a department (and the header), each month's clients
        assert page.table_rows["departments"] == 1 + len(departments)
        for entry in departments.values():
            for n in entry["clients_by_month"].values():
                assert str(n) in page.by_id["departments"]
    else:
        assert page.by_id["no-departments"].strip() == "geen afdelingsgegevens"

    transitions = [a for a in reference["alerts"] if a["alert_id"] == pace[0]]
    alert = chromium(f"{base}/alerts/{quote(pace[0])}", ARTEFACTS / "alert.png", profile)
    assert alert.by_id["alert-id"].strip() == pace[0]
    assert alert.by_id["state"].strip() == "actief"
    assert alert.by_id["message"].strip() == transitions[-1]["message"]
    assert alert.table_rows["transitions"] == 1 + len(transitions)  # a header row
    explain = transitions[-1]["explain"]
    assert alert.by_class["numerator"].strip() == euros(explain["numerator"])
    assert alert.by_class["denominator"].strip() == euros(explain["denominator"])
    assert euros(explain["pace"]["projected_cents"]) in alert.by_class["pace"]
