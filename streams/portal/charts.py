"""The provider page's chart, drawn on the server as SVG (SPEC §11): cumulative spend
per service month against the expected curve E(M) × ceiling (SPEC §8.2) and the
ceiling, with the covered month, the projected landing and the contract versions
marked.

Plain string building: the chart is a handful of lines and labels, and every text
in it goes through ``escape``. The expected shares come in computed
(streams/portal/pages.py, from the domain's ``pace.expected_share``): this module
only draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from streams.domain.alerts import MONTH_NAMES, euros

WIDTH, HEIGHT = 760, 360
LEFT, RIGHT, TOP, BOTTOM = 92, 24, 20, 64


@dataclass(frozen=True, slots=True)
class SpendChart:
    year: int
    by_month: Sequence[int]  # net cents per service month, January first
    expected_shares: Sequence[float] | None  # E(0)..E(12); None: no ceiling to scale
    ceiling_cents: int | None
    covered_month: int
    projected_cents: int | None
    # (version, ceiling cents) of earlier contract versions, oldest first
    earlier_ceilings: Sequence[tuple[int, int]] = ()
    contract_version: int | None = None

    def cumulative(self) -> list[int]:
        """Cumulative net cents at the end of months 0..last, where last is the
        covered month or the last month with spend, whichever is later."""
        last = max([self.covered_month] + [m + 1 for m, c in enumerate(self.by_month) if c != 0])
        out = [0]
        for m in range(last):
            out.append(out[-1] + self.by_month[m])
        return out


def _x(month: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * month / 12


def _scale(top_cents: int) -> float:
    return (HEIGHT - TOP - BOTTOM) / top_cents if top_cents > 0 else 0.0


def _top(chart: SpendChart, cum: list[int]) -> int:
    values = [*cum, chart.ceiling_cents or 0, chart.projected_cents or 0]
    values += [c for _, c in chart.earlier_ceilings]
    return max(max(values) * 11 // 10, 100)


def render_spend_chart(chart: SpendChart) -> Markup:
    cum = chart.cumulative()
    top = _top(chart, cum)
    k = _scale(top)

    def y(cents: float) -> float:
        return HEIGHT - BOTTOM - cents * k

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(f"Besteding {chart.year} tegen verwachting en plafond")}">'
    ]
    parts += _axes(chart.year, top, y)
    if chart.ceiling_cents:
        parts += _ceilings(chart, y)
    if chart.expected_shares is not None and chart.ceiling_cents:
        pts = " ".join(
            f"{_x(m):.1f},{y(float(s) * chart.ceiling_cents):.1f}"
            for m, s in enumerate(chart.expected_shares)
        )
        parts.append(
            f'<polyline class="expected" points="{pts}" fill="none" stroke="#6b7280" '
            'stroke-width="2" stroke-dasharray="6 4"><title>verwachte besteding</title></polyline>'
        )
    pts = " ".join(f"{_x(m):.1f},{y(c):.1f}" for m, c in enumerate(cum))
    parts.append(
        f'<polyline class="actual" points="{pts}" fill="none" stroke="#1d4ed8" stroke-width="3">'
        "<title>gedeclareerd (cumulatief)</title></polyline>"
    )
    for m, c in enumerate(cum[1:], 1):
        parts.append(
            f'<circle cx="{_x(m):.1f}" cy="{y(c):.1f}" r="3" fill="#1d4ed8">'
            f"<title>t/m {escape(MONTH_NAMES['nl'][m - 1])}: {escape(euros(c))}</title></circle>"
        )
    parts += _covered(chart, cum, y)
    parts.append(_legend(chart))
    parts.append("</svg>")
    return Markup("".join(parts))


def _axes(year: int, top: int, y: Callable[[float], float]) -> list[str]:
    out = [
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>',
    ]
    for m in range(1, 13):
        label = escape(MONTH_NAMES["nl"][m - 1][:3])
        out.append(
            f'<text x="{_x(m - 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
            f'text-anchor="middle">{label}</text>'
        )
    out.append(
        f'<text x="{_x(6):.1f}" y="{HEIGHT - BOTTOM + 32}" font-size="11" text-anchor="middle">'
        f"servicemaand {year}</text>"
    )
    for i in range(5):
        cents = top * i // 4
        yy = y(cents)
        out.append(
            f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{WIDTH - RIGHT}" y2="{yy:.1f}" stroke="#e5e7eb"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end">'
            f"{escape(euros(cents))}</text>"
        )
    return out


def _ceilings(chart: SpendChart, y: Callable[[float], float]) -> list[str]:
    assert chart.ceiling_cents
    out = []
    for version, cents in chart.earlier_ceilings:
        yy = y(cents)
        out.append(
            f'<line class="ceiling-earlier" x1="{LEFT}" y1="{yy:.1f}" x2="{WIDTH - RIGHT}" '
            f'y2="{yy:.1f}" stroke="#f59e0b" stroke-dasharray="2 4"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{yy - 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#b45309">plafond versie {version}: {escape(euros(cents))}</text>'
        )
    yy = y(chart.ceiling_cents)
    label = f" (versie {chart.contract_version})" if chart.contract_version else ""
    out.append(
        f'<line class="ceiling" x1="{LEFT}" y1="{yy:.1f}" x2="{WIDTH - RIGHT}" y2="{yy:.1f}" '
        'stroke="#dc2626" stroke-width="2"/>'
        f'<text x="{LEFT + 6}" y="{yy - 5:.1f}" font-size="12" fill="#dc2626">'
        f"plafond{label}: {escape(euros(chart.ceiling_cents))}</text>"
    )
    return out


def _covered(chart: SpendChart, cum: list[int], y: Callable[[float], float]) -> list[str]:
    """The covered month, and the projected landing drawn from it to December."""
    m = chart.covered_month
    if not m:
        return []
    x = _x(m)
    # the label stands left of the line late in the year, where the right has no room
    anchor, dx = ("end", -4) if m > 9 else ("start", 4)
    out = [
        f'<line class="covered" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#9ca3af" stroke-dasharray="3 3"/>'
        f'<text x="{x + dx:.1f}" y="{TOP + 12}" font-size="11" fill="#4b5563" '
        f'text-anchor="{anchor}">'
        f"afgedekt t/m {escape(MONTH_NAMES['nl'][m - 1])}</text>"
    ]
    if chart.projected_cents is not None:
        out.append(
            f'<line class="projected" x1="{x:.1f}" y1="{y(cum[m]):.1f}" x2="{_x(12):.1f}" '
            f'y2="{y(chart.projected_cents):.1f}" stroke="#1d4ed8" stroke-dasharray="8 4"/>'
            f'<circle cx="{_x(12):.1f}" cy="{y(chart.projected_cents):.1f}" r="5" fill="none" '
            f'stroke="#1d4ed8"><title>verwachte landing: {escape(euros(chart.projected_cents))}'
            "</title></circle>"
        )
    return out


def _legend(chart: SpendChart) -> str:
    items = [("#1d4ed8", "", "gedeclareerd, cumulatief")]
    if chart.expected_shares is not None and chart.ceiling_cents:
        items.append(("#6b7280", "6 4", "verwacht: E(M) × plafond"))
    if chart.projected_cents is not None:
        items.append(("#1d4ed8", "8 4", "verwachte landing bij dit tempo"))
    out = []
    for i, (colour, dash, text) in enumerate(items):
        x = LEFT + 12 + i * 210
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x}" y1="{HEIGHT - 12}" x2="{x + 24}" y2="{HEIGHT - 12}" '
            f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
            f'<text x="{x + 30}" y="{HEIGHT - 8}" font-size="11">'
            f"{escape(text)}</text>"
        )
    return "".join(out)
