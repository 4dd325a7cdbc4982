"""The ``explain`` object of an alert event (SPEC §8.3): why the alert holds.

Two sources, both read only when a transition is published (never per line):

- the finding's context (``rules.base.Found``; for the line rules,
  ``ceiling_utilisation.context`` and ``zvt_setting_mismatch.context``). It holds
  what the rule's message needs and, under the names of SPEC §8.3, the figures
  behind the finding's ``value``: ``numerator`` and ``denominator`` (every rule),
  the ``cause`` and ``contract_version`` of a ceiling transition, and where the rule
  has them ``pace`` and ``lines``. ``build`` copies exactly those names, so a rule
  explains its value by what it puts in its context;
- the provider's state, for what the rule declares in ``Rule.explains``: the
  ``breakdown`` of the lines it measures (``indicators.breakdown``), and for the
  zvt-mismatching lines, the only subset whose line ids the state keeps, their
  ``cents`` and first ``line_ids``.

Nothing in it is client data: counts, cents, versions, departments, prestatie codes
and line ids (the provider's references).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streams.domain.indicators import breakdown, dims_cells

if TYPE_CHECKING:
    from streams.domain.alerts import Finding
    from streams.domain.state import ProviderState

# The fields of ``explain`` (schemas/alert.v1.json), in the order they are written.
FIELDS = (
    "cause",
    "contract_version",
    "numerator",
    "denominator",
    "pace",
    "lines",
    "cents",
    "line_ids",
    "breakdown",
)
CAUSES = ("declarations", "contract_change")
MAX_LINE_IDS = 10  # SPEC §8.3: the first 10 mismatching line ids
LISTED = "mismatch"  # the subset whose uncredited line ids the state keeps, in order


def build(
    ctx: Mapping[str, Any],
    st: ProviderState | None = None,
    finding: Finding | None = None,
    explains: tuple[str, tuple[str, ...]] | None = None,
) -> dict[str, Any] | None:
    """The ``explain`` object of a transition: the SPEC §8.3 fields of its finding's
    context, and, given the provider's state and the rule's ``explains``, the
    breakdown of the lines it measures. None when nothing explains it (the event
    then has no ``explain``)."""
    out = {name: ctx[name] for name in FIELDS if name in ctx}
    if st is not None and finding is not None and explains is not None:
        subset, dimensions = measured(explains, finding.detail)
        if subset == LISTED:
            out.update(_listed(st, finding.year))
        out["breakdown"] = breakdown(st, finding.year, subset, dimensions)
    if "line_ids" in out:
        out["line_ids"] = list(out["line_ids"])[:MAX_LINE_IDS]
    return {name: out[name] for name in FIELDS if name in out} or None


def measured(
    explains: tuple[str, tuple[str, ...]], detail: str | None
) -> tuple[str, tuple[str, ...]]:
    """A rule's ``explains`` for one alert: ``"adhd"`` is the ADHD lines of the
    alert's quarter (detail ``Qn``, subset ``adhd<n>``)."""
    subset, dimensions = explains
    if subset == "adhd":
        subset = f"adhd{(detail or 'Q0')[1:]}"
    return subset, dimensions


def _listed(st: ProviderState, year: int) -> dict[str, Any]:
    """Net lines and cents of the year's uncredited zvt-mismatching debits, and the
    first ``MAX_LINE_IDS`` of their line ids in arrival order. The cents come from
    a scan of the year's line index (at a transition only): a line of the year is
    only accepted while its index is held, so at a transition it is."""
    ys = st.years[year]
    index = st.lines.get(year)
    cents = 0
    if index is not None:  # every uncredited mismatching debit, not only the ids kept
        cents = sum(cents for cents, _ in dims_cells(index, LISTED, len(st.dims)).values())
    return {"lines": ys.mismatch, "cents": cents, "line_ids": ys.mismatch_line_ids(MAX_LINE_IDS)}
