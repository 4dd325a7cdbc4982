"""The golden history: a 43-line, three-provider history whose alerts and indicators were
worked out by hand (tests/golden/README.md) and written down in tests/golden/expected.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.policy import load_policy
from streams.replay.offline import replay_offline

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
EXPECTED = orjson.loads((GOLDEN / "expected.json").read_bytes())


def approx(value: Any) -> Any:
    """``expected`` with every float compared to 1e-12 (hand-written decimals)."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12, abs=1e-12)
    if isinstance(value, dict):
        return {k: approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx(v) for v in value]
    return value


def run(
    tmp_path: Path, declarations: Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    alerts_out, snapshot_out = tmp_path / "alerts.ndjson", tmp_path / "snapshot.json"
    replay_offline(
        [declarations or GOLDEN / "declarations.ndjson"],
        load_policy(GOLDEN / "policy.toml"),
        contracts=GOLDEN / "contracts.ndjson",
        alerts_out=alerts_out,
        snapshot_out=snapshot_out,
    )
    alerts = [orjson.loads(x) for x in alerts_out.read_bytes().splitlines()]
    return alerts, orjson.loads(snapshot_out.read_bytes())


def test_golden_alerts_in_order_with_ids_states_times_and_values(tmp_path):
    alerts, _ = run(tmp_path)
    wanted = EXPECTED["alerts"]
    got = [{k: a.get(k) for k in w} for a, w in zip(alerts, wanted, strict=False)]
    assert [a["alert_id"] for a in alerts] == [w["alert_id"] for w in wanted]
    assert got == approx(wanted)
    assert all(a["replay"] is True for a in alerts)


def test_golden_alerts_name_provider_and_purchaser_from_the_contract(tmp_path):
    alerts, _ = run(tmp_path)
    names = {(a["provider_agb"], a["provider_name"], a["purchaser"], a["region"]) for a in alerts}
    assert names == {
        ("10000001", "GGZ Noorderzon", "Team Noord", "Groningen"),
        ("20000002", "Praktijk Maasdal", "Team Zuid", "Zuid-Limburg"),
        ("30000003", None, None, None),  # no contract: nothing from its lines
    }


def test_golden_snapshot_indicators(tmp_path):
    _, snapshot = run(tmp_path)
    assert snapshot["providers"] == approx(EXPECTED["snapshot"]["providers"])


def test_golden_snapshot_peers_and_counts(tmp_path):
    _, snapshot = run(tmp_path)
    peers = {
        year: {"group_share_mean": p["group_share_mean"]} for year, p in snapshot["peers"].items()
    }
    assert peers == approx(EXPECTED["snapshot"]["peers"])
    assert snapshot["counts"] == EXPECTED["snapshot"]["counts"]
    # the one department is "other" (setting 1, no register): no cruciale region view
    assert snapshot["regions"] == EXPECTED["snapshot"]["regions"]


def test_golden_history_as_batches_gives_the_same_results(tmp_path):
    """The same history with each provider's consecutive lines in one batch message."""
    messages: list[bytes] = []
    run_of: list[Any] = []
    for raw in (GOLDEN / "declarations.ndjson").read_bytes().splitlines():
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if run_of and (obj is None or obj["provider_agb"] != run_of[0]["provider_agb"]):
            messages.append(_batch(run_of))
            run_of = []
        if obj is None:
            messages.append(raw)
        else:
            run_of.append(obj)
    if run_of:
        messages.append(_batch(run_of))
    assert len(messages) < 43
    batched = tmp_path / "batched.ndjson"
    batched.write_bytes(b"\n".join(messages) + b"\n")
    (tmp_path / "b").mkdir()
    alerts, snapshot = run(tmp_path / "b", batched)
    plain_alerts, plain_snapshot = run(tmp_path)
    assert snapshot == plain_snapshot
    strip = lambda xs: [{k: v for k, v in a.items() if k != "detected_at"} for a in xs]  # noqa: E731
    assert strip(alerts) == strip(plain_alerts)


def _batch(lines: list[Any]) -> bytes:
    return orjson.dumps(
        {
            "schema": "ggz.declaration-batch/1",
            "provider_agb": lines[0]["provider_agb"],
            "lines": lines,
        }
    )
