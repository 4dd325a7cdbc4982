"""planted.json is the domain engine's judgement of the generated history: the
offline replay of the written files raises exactly the planted alerts with the
values recorded, and a plant the engine does not confirm is reported as skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import main
from streams.domain.policy import load_policy
from streams.replay.offline import replay_offline
from streams.synth import plants
from streams.synth.generate import GenerateOptions, GenerateSummary, generate

OPTIONS = GenerateOptions(providers=12, lines=20_000, seed=7)
# Large enough for the plants judged on clients (digital: 100 consult clients).
LARGER = GenerateOptions(providers=20, lines=60_000, seed=7)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    return generate(tmp_path_factory.mktemp("made"), OPTIONS)


def _replayed(made: GenerateSummary, tmp: Path) -> dict[str, dict[str, Any]]:
    """alert id -> first firing event of the offline replay of the written files."""
    out = tmp / "alerts.ndjson"
    replay_offline(
        [made.declarations_path],
        load_policy(),
        contracts=made.contracts_path,
        departments=made.departments_path,
        alerts_out=out,
    )
    fired: dict[str, dict[str, Any]] = {}
    for line in out.read_bytes().splitlines():
        event = orjson.loads(line)
        if event["state"] == "firing":
            fired.setdefault(event["alert_id"], event)
    return fired


def test_the_offline_replay_raises_every_planted_alert_with_the_recorded_values(
    made: GenerateSummary, tmp_path: Path
) -> None:
    fired = _replayed(made, tmp_path)
    assert made.planted
    for a in made.planted:
        event = fired[a.alert_id]
        assert (event["value"], event["threshold"]) == (
            a.expected["value"],
            a.expected["threshold"],
        ), a.alert_id
        if "event_time" in a.expected:
            assert event["event_time"] == a.expected["event_time"]


def test_the_recorded_peer_mean_is_the_engines(made: GenerateSummary, tmp_path: Path) -> None:
    _, engine = replay_offline(
        [made.declarations_path], load_policy(), contracts=made.contracts_path
    )
    planted = orjson.loads(made.planted_path.read_bytes())
    for year, mean in engine.peer_means().items():
        assert planted["peers"][str(year)]["group_share_mean"] == float(mean)  # type: ignore[arg-type]


def test_a_plant_the_engine_does_not_confirm_is_skipped_with_what_it_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plants, "DIGITAL_BELOW", 1.4)  # planted above the target instead
    summary = generate(tmp_path, LARGER)
    assert "digital_share_low" not in {a.rule for a in summary.planted}
    reasons = [s for s in summary.skipped if s.startswith("digital_share_low")]
    assert len(reasons) == 1  # planted in 2026 only: the S01 label exists from then
    for reason in reasons:
        assert "the engine raised no digital_share_low:" in reason
        assert "'digital_clients'" in reason


def test_generate_on_the_command_line_plants_past_the_policy_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    text = Path(load_policy().source).read_text(encoding="utf-8")
    policy.write_text(text.replace("target = 0.25", "target = 0.08"), encoding="utf-8")
    out = tmp_path / "history"
    argv = ["generate", "--out", str(out), "--lines", "60000", "--providers", "20"]
    assert main([*argv, "--seed", "7", "--policy", str(policy)]) == 0
    planted = orjson.loads((out / "planted.json").read_bytes())
    digital = [a for a in planted["anomalies"] if a["rule"] == "digital_share_low"]
    assert digital and all(a["expected"]["threshold"] == 0.08 for a in digital)
    assert planted["policy"] == str(policy)
    assert "planted anomalies" in capsys.readouterr().out
    # before the command, as for the other commands
    assert main(["--policy", str(policy), *argv, "--seed", "7"]) == 0
    assert orjson.loads((out / "planted.json").read_bytes()) == planted
