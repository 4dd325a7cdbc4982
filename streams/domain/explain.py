"""The ``explain`` object of an alert event (SPEC §8.3): why the alert holds.

A rule's findings come with a context (``rules.base.Found``; for the line rules,
``ceiling_utilisation.context`` and ``zvt_setting_mismatch.context``). The context
holds what the rule's message needs, and, under the names of SPEC §8.3, the figures
behind the finding's ``value``: ``numerator`` and ``denominator`` (every rule), the
``cause`` and ``contract_version`` of a ceiling transition, and, where the rule has
them, ``breakdown``, ``pace``, ``lines``, ``cents`` and ``line_ids``. ``build`` takes
exactly those names, so a rule explains itself by what it puts in its context, and a
new rule needs nothing here. Nothing in it is client data: counts, cents, versions,
and line ids (the provider's references).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def build(ctx: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``explain`` object of a transition from its finding's context; None when
    the context explains nothing (the event then has no ``explain``)."""
    out = {name: ctx[name] for name in FIELDS if name in ctx}
    if "line_ids" in out:
        out["line_ids"] = list(out["line_ids"])[:MAX_LINE_IDS]
    return out or None
