"""``claimwatch demo`` stops the broker and workers it started however it is ended:
Ctrl-C, a closed terminal (SIGHUP) or a kill (SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.broker


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent's pid
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_demo_stops_what_it_started_on_a_signal(
    tmp_path: Path,
    make_line,  # type: ignore[no-untyped-def]
    sig: signal.Signals,
) -> None:
    archive = tmp_path / "lines.ndjson"
    archive.write_bytes(b"".join(orjson.dumps(make_line()) + b"\n" for _ in range(20)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMWATCH_")}
    err = tmp_path / "demo.err"
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams", "demo", "--input", str(archive)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err.open("wb"),
        # Ctrl-C as in a terminal: a shell without job control starts a background
        # job (`make test &`, a CI runner) with SIGINT ignored, and the demo would
        # inherit that and rightly ignore the SIGINT this test sends
        preexec_fn=_default_sigint,
    )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and demo.poll() is None:
            started = _children(demo.pid)
            if len(started) >= 2 and b"claimwatch demo" in err.read_bytes():
                break  # printed once the workers hold their partitions
            time.sleep(0.2)
        assert demo.poll() is None, err.read_text()
        assert len(started) >= 2, "the broker and a worker should be running"
        demo.send_signal(sig)
        demo.wait(timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in started):
            time.sleep(0.1)
        assert not [p for p in started if _alive(p)], f"left running after {sig.name}"
    finally:
        if demo.poll() is None:
            demo.kill()
        for p in started | _children(demo.pid):  # what a failed run left behind
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_the_live_view_shows_where_each_year_lands_at_its_pace() -> None:
    """The view's ceiling table carries the projection (SPEC §8.2) next to the spend:
    the projected landing in euros, its share of the ceiling and the covered month,
    or why there is none yet."""
    from rich.console import Console

    from streams.domain.policy import load_policy
    from streams.local.demo import LiveView

    view = LiveView(None, load_policy())  # type: ignore[arg-type]  # render needs no cluster
    view.top = [
        ("11111111", "2026", 84_000_000, 0.84, 5, 120_000_000, 1.2),
        ("22222222", "2026", 10_000_000, 0.1, 2, None, None),
    ]
    console = Console(record=True, width=200)
    console.print(view.render())
    text = console.export_text()
    assert "€ 1.200.000 (120% of ceiling, month 5)" in text
    assert "after 2 covered months: not yet" in text
    assert "€ 840.000" in text


def test_the_demo_starts_the_portal_and_prints_its_address(tmp_path: Path, make_line) -> None:  # type: ignore[no-untyped-def]
    import re
    import urllib.request

    archive = tmp_path / "lines.ndjson"
    archive.write_bytes(b"".join(orjson.dumps(make_line()) + b"\n" for _ in range(20)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMWATCH_")}
    err = tmp_path / "demo.err"
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams", "demo", "--input", str(archive)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err.open("wb"),
        preexec_fn=_default_sigint,
    )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        providers: list[str] = []
        while time.monotonic() < deadline and demo.poll() is None and not providers:
            started |= _children(demo.pid)
            found = re.search(rb"purchaser portal: (http://127\.0\.0\.1:\d+/)", err.read_bytes())
            if found:
                try:
                    url = found.group(1).decode() + "api/overview"
                    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
                        providers = [r["agb"] for r in orjson.loads(resp.read())["providers"]]
                except OSError:
                    pass
            time.sleep(0.3)
        assert demo.poll() is None, err.read_text()
        assert providers == ["12345678"], err.read_text()
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
        for p in started | _children(demo.pid):
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_the_live_view_shows_department_and_region_alerts_apart() -> None:
    """Department and region alerts (SPEC §9) get a table of their own: the other
    alerts of a large history would scroll them out of the last twelve."""
    from rich.console import Console

    from streams.domain.policy import load_policy
    from streams.local.demo import LiveView

    view = LiveView(None, load_policy())  # type: ignore[arg-type]  # render needs no cluster
    view.crucial.appendleft(
        {
            "state": "firing",
            "severity": "high",
            "provider_agb": "11111111",
            "department": "crisis",
            "region": "Twente",
            "message": "Afdeling crisis: geen cliënten meer",
        }
    )
    view.crucial.appendleft(
        {
            "state": "firing",
            "severity": "high",
            "provider_agb": None,
            "region": "Twente",
            "message": "Regio Twente: geen enkele afdeling",
        }
    )
    console = Console(record=True, width=200)
    console.print(view.render())
    text = console.export_text()
    assert "Cruciale ggz" in text
    assert "11111111 crisis" in text and "region Twente" in text
    assert "Regio Twente: geen enkele afdeling" in text


def test_the_demo_streams_the_register_and_its_alerts_match_the_offline_replay(
    tmp_path: Path,
) -> None:
    """``demo --input … --departments … --until-idle``: the register reaches the
    workers, and the department and region alerts firing at the end are the offline
    replay's."""
    from streams.domain.policy import load_policy
    from streams.replay.offline import replay_offline
    from streams.synth.generate import GenerateOptions, generate

    history = tmp_path / "history"
    generate(history, GenerateOptions(providers=12, lines=20_000, seed=11))
    files = [history / "declarations.ndjson"]
    contracts, register = history / "contracts.ndjson", history / "departments.ndjson"
    _summary, engine = replay_offline(
        files, load_policy(), contracts=contracts, departments=register, replay_flag=False
    )
    crucial = ("department_", "region_category_gap:")
    offline = {a for st in engine.providers.values() for a, _ in st.alerts.firing()}
    offline |= set(engine.region_watch.firing() if engine.region_watch else ())
    offline = {a for a in offline if a.startswith(crucial)}
    assert any(a.startswith("region_category_gap:") for a in offline)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMWATCH_")}
    snapshot_out = tmp_path / "snapshot.json"
    alerts_out = tmp_path / "alerts.ndjson"
    args = ["demo", "--input", str(files[0]), "--contracts", str(contracts)]
    args += ["--departments", str(register), "--until-idle"]
    args += ["--alerts-out", str(alerts_out), "--snapshot-out", str(snapshot_out)]
    done = subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=600,
        preexec_fn=_default_sigint,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    latest: dict[str, str] = {}
    for raw in alerts_out.read_bytes().splitlines():
        a = orjson.loads(raw)
        latest[a["alert_id"]] = a["state"]
    streamed = {a for a, state in latest.items() if state == "firing" and a.startswith(crucial)}
    assert streamed == offline
    assert orjson.loads(snapshot_out.read_bytes())["regions"]
