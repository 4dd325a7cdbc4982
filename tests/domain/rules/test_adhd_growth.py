"""adhd_growth (streams/domain/rules/adhd_growth.py): per quarter, against the same
quarter a year earlier."""

from __future__ import annotations

import pytest

from tests.domain.rules.rule_helpers import AGB, adhd_clients, published, tick_ids


@pytest.mark.parametrize(
    ("base", "now", "fires"),
    [(40, 50, True), (40, 49, False), (30, 38, True), (30, 37, False), (29, 100, False)],
)
def test_adhd_growth_at_a_quarter_of_growth_over_a_base_of_30(eng, line, send, base, now, fires):
    send(
        eng,
        *adhd_clients(line, base, "2025-05-01", "old"),
        *adhd_clients(line, now, "2026-06-01", "new"),
    )
    fx = eng.tick()
    got = [a for a in published(fx) if a["rule"] == "adhd_growth"]
    if fires:
        (event,) = got
        assert event["alert_id"] == f"adhd_growth:{AGB}:2026:Q2"
        assert event["value"] == pytest.approx(now / base - 1)
        assert event["threshold"] == 0.25
    else:
        assert got == []


def test_adhd_growth_resolves_when_credits_remove_clients(eng, line, send):
    now = adhd_clients(line, 50, "2026-04-01")
    send(eng, *adhd_clients(line, 40, "2025-04-01", "old"), *now)
    assert tick_ids(eng) == [(f"adhd_growth:{AGB}:2026:Q2", "firing")]
    send(eng, line.credit(now[0]))
    assert tick_ids(eng) == [(f"adhd_growth:{AGB}:2026:Q2", "resolved")]
