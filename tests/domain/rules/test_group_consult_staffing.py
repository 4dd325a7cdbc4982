"""group_consult_staffing (streams/domain/rules/group_consult_staffing.py)."""

from __future__ import annotations

import pytest

from tests.domain.rules.rule_helpers import AGB, group_consults, published, tick_ids


@pytest.mark.parametrize(
    ("ge4", "small", "fires"),
    [
        (9, 0, False),
        (10, 190, True),
        (10, 191, False),
        (10, 0, True),
        (11, 189, True),
        (20, 100, True),
    ],
)
def test_group_consult_staffing_needs_min_count_and_min_share(eng, line, send, ge4, small, fires):
    send(eng, *group_consults(line, ge4, small))
    got = tick_ids(eng)
    assert ((f"group_consult_staffing:{AGB}:2026", "firing") in got) is fires
    assert tick_ids(eng) == []


def test_group_consult_staffing_resolves_when_credits_bring_it_below_min_count(eng, line, send):
    lines = group_consults(line, 10, 0)
    send(eng, *lines)
    (fired,) = published(eng.tick())
    assert fired["value"] == 1.0
    send(eng, line.credit(lines[0]))
    assert tick_ids(eng) == [(f"group_consult_staffing:{AGB}:2026", "resolved")]
