"""ceiling_underrun (streams/domain/rules/ceiling_underrun.py): a projected landing
well below the ceiling (SPEC §8.2), from six covered months; and the pace rules'
transitions in the offline replay and the streaming worker alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.domain.policy import load_policy
from streams.domain.rules import ceiling_underrun
from streams.pipeline.processor import contract_control, tick_control
from streams.replay.offline import replay_offline
from tests.conftest import make_contract
from tests.domain.rules.pace_helpers import CEILING, judged, opening, spend
from tests.domain.rules.rule_helpers import AGB, ALERT
from tests.pipeline.feed import Feed

ID = f"ceiling_underrun:{AGB}:2026"
P = load_policy().of(ceiling_underrun.RULE)


@pytest.mark.parametrize(
    ("projected", "month", "fire"),
    [
        (1_080_000, 6, True),  # exactly 0.90
        (1_080_001, 6, False),
        (0, 5, False),  # min_months 6
        (None, 6, False),
    ],
)
def test_fires_at_the_threshold_from_min_months(projected, month, fire):
    ((finding, ctx),) = judged(ceiling_underrun.evaluate, P, projected, month)
    assert finding.fire is fire and finding.severity == "info"
    assert ctx["pace"]["projected_cents"] == projected


@pytest.mark.parametrize(("projected", "clear"), [(1_104_000, False), (1_104_001, True)])
def test_resolves_above_threshold_plus_the_margin(projected, clear):
    ((finding, _),) = judged(ceiling_underrun.evaluate, P, projected, 7)
    assert (finding.fire, finding.clear) == (False, clear)


OTHER = "87654321"


def underrun_history(make_line: Any) -> list[dict[str, Any]]:
    """GGZ Voorbeeld spends 85,000 a month of 2026 (0.85 of 1,200,000), each month's
    line submitted on the 5th of the next: a month boundary each. July's (M = 5) judges
    nothing; August's (M = 6: January-June) fires the underrun. A late June line of
    100,000 in September lifts the pace: resolved at October's first line (M = 8).

    OTHER (1,200,000 too) spends 110,000 in each of January-March: 1.10 at its first
    May line (M = 3), and after March's line is credited, 0.55 at its first June line
    (M = 4): its pace alert fires and resolves. Lines in submission order."""

    def other(day: str, cents: int, submitted: str) -> dict[str, Any]:
        return make_line(
            provider_agb=OTHER, service_date=day, amount_cents=cents, submitted_at=submitted
        )

    out = [other(f"2026-0{m}-15", 110_000, "2026-03-20T10:00:00Z") for m in (1, 2, 3)]
    for m in range(1, 9):
        out += spend(make_line, {m: 85_000}, f"2026-{m + 1:02d}-05T09:00:00Z")
        if m == 4:
            out.append(other("2025-12-31", 1, "2026-05-06T10:00:00Z"))
            out.append(make_line.credit(out[2], submitted_at="2026-05-20T10:00:00Z"))
        if m == 5:
            out.append(other("2025-12-31", 1, "2026-06-06T10:00:00Z"))
    out += spend(make_line, {6: 100_000}, "2026-09-20T09:00:00Z")
    out.append(opening(make_line, "2026-10-02T08:00:00Z"))
    return out


def _pace_transitions(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    found = [
        (a["alert_id"], a["state"], a["sequence"], a["event_time"], a["value"])
        for a in alerts
        if a["rule"] in ("ceiling_pace_high", "ceiling_underrun")
    ]
    return sorted(found, key=lambda t: (t[3], t[0], t[2]))  # by event time


def test_an_underrun_is_dated_in_its_month_offline_and_streaming_alike(line, tmp_path: Path):
    lines = underrun_history(line)
    contracts = [
        make_contract(AGB, ceiling_cents=CEILING, provider_name="GGZ Voorbeeld"),
        make_contract(OTHER, ceiling_cents=CEILING, provider_name="GGZ Ander"),
    ]
    policy = load_policy()

    declarations, contract_file = tmp_path / "d.ndjson", tmp_path / "c.ndjson"
    declarations.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in lines))
    contract_file.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in contracts))
    alerts_out = tmp_path / "alerts.ndjson"
    replay_offline([declarations], policy, contracts=contract_file, alerts_out=alerts_out)
    offline = [orjson.loads(x) for x in alerts_out.read_bytes().splitlines()]

    feed = Feed(policy, partitions=2)
    for c in contracts:
        feed.control(feed.partition_of(c["provider_agb"]), contract_control(c))
    for obj in lines:  # one provider's lines keyed, the other's re-keyed by the worker
        key = AGB if obj["provider_agb"] == AGB else None
        feed.declarations(key, orjson.dumps(obj))
    for p in range(feed.partitions):
        feed.control(p, tick_control(final=True))

    # 6 x 85,000 / (6/12) = 1,020,000 = 0.85 (September's 7 x 85,000 / (7/12) too);
    # October, 8 months: (8 x 85,000 + 100,000) / (8/12) = 1,170,000 = 0.975 > 0.92
    pace = f"ceiling_pace_high:{OTHER}:2026"
    expected = [
        (pace, "firing", 1, "2026-05-06T10:00:00Z", 1.1),
        (pace, "resolved", 2, "2026-06-06T10:00:00Z", 0.55),
        (ID, "firing", 1, "2026-08-05T09:00:00Z", 0.85),
        (ID, "resolved", 2, "2026-10-02T08:00:00Z", 0.975),
    ]
    assert _pace_transitions(offline) == expected
    assert _pace_transitions(feed.alerts) == expected
    for event in offline:
        ALERT(event)
    (firing,) = [a for a in offline if a["state"] == "firing" and a["alert_id"] == ID]
    assert firing["severity"] == "info"
    assert "maar 85% van het zorgkostenplafond van € 12.000 (prognose na juni)" in firing["message"]
