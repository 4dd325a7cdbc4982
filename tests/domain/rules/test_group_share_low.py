"""group_share_low (streams/domain/rules/group_share_low.py) against the peer mean."""

from __future__ import annotations

import pytest

from tests.domain.rules.rule_helpers import AGB, HALF, consults, published, tick_ids


@pytest.mark.parametrize(
    ("total", "group", "fires"),
    [(200, 49, True), (200, 50, False), (200, 51, False), (199, 0, False), (200, 0, True)],
)
def test_group_share_low_below_half_the_peer_mean_with_min_consults(
    eng, line, send, total, group, fires
):
    send(
        eng,
        *consults(line, group, consult_mode="group"),
        *consults(line, total - group, digital=True),
    )
    got = tick_ids(eng, peers=HALF)
    assert ((f"group_share_low:{AGB}:2026", "firing") in got) is fires
    assert eng.tick(peers=HALF).alerts == []  # a second tick publishes nothing new


def test_group_share_low_uses_the_peer_mean_of_the_providers_held(eng, line, send):
    send(
        eng,
        *consults(line, 10, consult_mode="group", digital=True),
        *consults(line, 190, digital=True),
        *consults(line, 100, consult_mode="group", digital=True, provider_agb="87654321"),
        *consults(line, 100, digital=True, provider_agb="87654321"),
        *consults(line, 199, consult_mode="group", digital=True, provider_agb="11111111"),
    )
    fx = eng.tick()
    (event,) = published(fx)  # mean of 0.05 and 0.5 (the third has too few consults)
    assert event["alert_id"] == f"group_share_low:{AGB}:2026"
    assert event["value"] == 0.05
    assert event["threshold"] == pytest.approx(0.1375)


def test_group_share_low_resolves_when_the_share_recovers(eng, line, send):
    send(eng, *consults(line, 200, digital=True))
    assert tick_ids(eng, peers=HALF) == [(f"group_share_low:{AGB}:2026", "firing")]
    send(eng, *consults(line, 67, consult_mode="group", digital=True))  # 67/267 = 0.2509
    assert tick_ids(eng, peers=HALF) == [(f"group_share_low:{AGB}:2026", "resolved")]
    assert tick_ids(eng, peers=HALF) == []


def test_group_share_low_judges_one_peer_mean_under_each_policys_factor() -> None:
    # the bound factor x mean is kept per mean object: two policies judging against
    # the same mean (an operator's changed factor, the offline replay and a worker in
    # one process) must each get their own
    from fractions import Fraction

    from streams.domain.indicators import YearState
    from streams.domain.rules.base import Tick
    from streams.domain.rules.group_share_low import GroupSharePolicy, evaluate

    ys = YearState()
    ys.consults, ys.group_consults = 200, 40  # 0.2
    mean = Fraction(1, 2)
    tick = Tick(2026, None, mean)
    for factor, low in ((0.5, True), (0.3, False), (0.5, True)):
        ((finding, _),) = evaluate(ys, tick, GroupSharePolicy(factor, 100, "warning"))
        assert finding.fire is low and finding.threshold == factor * 0.5
