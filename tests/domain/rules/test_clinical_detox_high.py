"""clinical_detox_high (streams/domain/rules/clinical_detox_high.py)."""

from __future__ import annotations

import pytest

from tests.domain.rules.rule_helpers import AGB, detox, tick_ids


@pytest.mark.parametrize(
    ("clinical", "ambulant", "fires"),
    [(19, 0, False), (10, 10, True), (9, 11, False), (11, 9, True), (20, 0, True)],
)
def test_clinical_detox_high_at_half_with_min_20_detox_lines(
    eng, line, send, clinical, ambulant, fires
):
    send(eng, *detox(line, clinical, ambulant))
    got = tick_ids(eng)
    assert ((f"clinical_detox_high:{AGB}:2026", "firing") in got) is fires


def test_clinical_detox_high_resolves_when_ambulant_detox_grows(eng, line, send):
    send(eng, *detox(line, 10, 10))
    assert tick_ids(eng) == [(f"clinical_detox_high:{AGB}:2026", "firing")]
    send(eng, *detox(line, 0, 1))
    assert tick_ids(eng) == [(f"clinical_detox_high:{AGB}:2026", "resolved")]
