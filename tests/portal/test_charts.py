"""The provider page's SVG chart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from streams.portal.charts import SpendChart, render_spend_chart

SVG = "{http://www.w3.org/2000/svg}"


def points(svg: str, cls: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)
    line = next(e for e in root.iter(f"{SVG}polyline") if e.get("class") == cls)
    return [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]  # type: ignore[misc]


def chart(**over) -> SpendChart:
    fields = dict(
        year=2026,
        by_month=[200] * 6 + [0] * 6,
        expected_shares=[m / 12 for m in range(13)],
        ceiling_cents=1200,
        covered_month=5,
        projected_cents=2400,
        earlier_ceilings=[(1, 1500)],
        contract_version=2,
    )
    fields.update(over)
    return SpendChart(**fields)  # type: ignore[arg-type]


def test_an_over_spenders_curve_runs_above_the_expected_line() -> None:
    svg = str(render_spend_chart(chart()))
    actual, expected = points(svg, "actual"), points(svg, "expected")
    assert len(actual) == 7 and len(expected) == 13  # months 0..6 spent, 0..12 expected
    for (xa, ya), (xe, ye) in zip(actual[1:], expected[1:7], strict=True):
        assert xa == xe and ya < ye  # SVG y grows downwards: above means smaller


def test_the_ceiling_versions_covered_month_and_landing_are_marked() -> None:
    svg = str(render_spend_chart(chart()))
    assert "plafond (versie 2): € 12" in svg
    assert "plafond versie 1: € 15" in svg
    assert 'class="covered"' in svg and "afgedekt t/m mei" in svg
    assert "verwachte landing: € 24" in svg


def test_without_a_contract_only_the_spend_is_drawn_and_text_is_escaped() -> None:
    svg = str(
        render_spend_chart(
            chart(
                expected_shares=None, ceiling_cents=None, projected_cents=None, earlier_ceilings=()
            )
        )
    )
    ET.fromstring(svg)  # well-formed
    assert 'class="expected"' not in svg and 'class="ceiling"' not in svg
    assert not re.search(r"<(?!/?(svg|line|text|polyline|circle|title)\b)", svg)
