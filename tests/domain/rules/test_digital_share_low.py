"""digital_share_low (streams/domain/rules/digital_share_low.py)."""

from __future__ import annotations

import pytest

from tests.domain.rules.rule_helpers import AGB, consults, tick_ids


@pytest.mark.parametrize(
    ("total", "digital", "fires"),
    [(200, 49, True), (200, 50, False), (199, 0, False), (200, 0, True)],
)
def test_digital_share_low_below_a_quarter_with_min_200_consults(
    eng, line, send, total, digital, fires
):
    send(
        eng,
        *consults(line, digital, digital=True, consult_mode="group"),
        *consults(line, total - digital, consult_mode="group"),
    )
    got = tick_ids(eng)
    assert ((f"digital_share_low:{AGB}:2026", "firing") in got) is fires
    assert tick_ids(eng) == []


def test_digital_share_low_resolves_when_the_target_is_met(eng, line, send):
    send(eng, *consults(line, 200, consult_mode="group"))
    assert tick_ids(eng) == [(f"digital_share_low:{AGB}:2026", "firing")]
    send(eng, *consults(line, 67, digital=True, consult_mode="group"))  # 67/267 > 0.25
    assert tick_ids(eng) == [(f"digital_share_low:{AGB}:2026", "resolved")]
