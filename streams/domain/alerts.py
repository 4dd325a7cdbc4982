"""The alert state machine and the alert event (``schemas/alert.v1.json``).

An alert is identified by ``<rule>:<agb>:<year>[:<detail>]``. Rules produce
``Finding``s (does the condition hold, has it cleared); ``AlertBook.observe`` turns a
finding into a transition only when the state changes, so evaluating the same state
twice (a redelivery, a second tick) never publishes anything twice. Each transition
gets the next ``sequence`` number of its alert id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.domain.contracts import Contract
from streams.domain.model import format_time


class Finding(NamedTuple):
    rule: str
    year: int
    detail: str | None
    fire: bool  # the condition holds: fire if not firing
    clear: (
        bool  # the condition is gone: resolve if firing (differs from `not fire` with hysteresis)
    )
    value: float | None
    threshold: float | None
    severity: str


@dataclass(slots=True)
class AlertState:
    firing: bool
    sequence: int
    severity: str
    value: float | None


class AlertBook:
    """Alert states of one provider."""

    __slots__ = ("states",)

    def __init__(self, states: dict[str, AlertState] | None = None) -> None:
        self.states: dict[str, AlertState] = states if states is not None else {}

    def observe(self, alert_id: str, finding: Finding) -> AlertState | None:
        """Apply a finding; return the new state when it is a transition."""
        state = self.states.get(alert_id)
        firing = state is not None and state.firing
        if not firing and finding.fire:
            seq = state.sequence + 1 if state else 1
            new = AlertState(True, seq, finding.severity, finding.value)
        elif firing and finding.clear:
            assert state is not None
            new = AlertState(False, state.sequence + 1, state.severity, finding.value)
        else:
            if state is not None and state.firing:
                state.value = finding.value  # keep the current value for metrics
            return None
        self.states[alert_id] = new
        return new

    def firing(self) -> list[tuple[str, AlertState]]:
        return [(aid, s) for aid, s in self.states.items() if s.firing]

    def to_json(self) -> dict[str, list[Any]]:
        return {aid: [s.firing, s.sequence, s.severity, s.value] for aid, s in self.states.items()}

    @classmethod
    def from_json(cls, raw: dict[str, list[Any]]) -> AlertBook:
        return cls(
            {aid: AlertState(bool(v[0]), int(v[1]), str(v[2]), v[3]) for aid, v in raw.items()}
        )


def alert_id(rule: str, provider: str, year: int, detail: str | None) -> str:
    base = f"{rule}:{provider}:{year}"
    return f"{base}:{detail}" if detail else base


def build_event(
    *,
    finding: Finding,
    provider: str,
    state: AlertState,
    contract: Contract | None,
    event_time: float,
    detected_at: float,
    replay: bool,
    context: dict[str, Any],
) -> dict[str, Any]:
    """The alert event for one transition; ``context`` feeds the message text.

    Provider name, purchaser and region come from the contract of the provider-year
    (the insurer's own data), and are null without one, as the alert schema allows.
    Never a line's region: that is the provider's free text, which must not reach
    purchasers' systems or metrics unchecked (docs/operations.md).
    """
    aid = alert_id(finding.rule, provider, finding.year, finding.detail)
    name = contract.provider_name if contract else None
    event: dict[str, Any] = {
        "schema": "ggz.alert/1",
        "alert_id": aid,
        "rule": finding.rule,
        "state": "firing" if state.firing else "resolved",
        "severity": state.severity,
        "provider_agb": provider,
        "provider_name": name,
        "year": finding.year,
        "purchaser": contract.purchaser if contract else None,
        "region": contract.region if contract else None,
        "value": finding.value,
        "threshold": finding.threshold,
        "event_time": format_time(event_time),
        "detected_at": format_time(detected_at),
        "message": message(finding, state.firing, provider, name, context),
        "sequence": state.sequence,
    }
    if replay:
        event["replay"] = True
    return event


def _who(provider: str, name: str | None) -> str:
    return f"{name} ({provider})" if name else f"Provider {provider}"


def _euros(cents: int) -> str:
    return f"EUR {cents / 100:,.0f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def message(
    finding: Finding, firing: bool, provider: str, name: str | None, ctx: dict[str, Any]
) -> str:
    """One English sentence a purchaser understands. Never contains a client reference."""
    who = _who(provider, name)
    y = finding.year
    text = _MESSAGES[finding.rule](who, y, finding, firing, ctx)
    return text


def _ceiling(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    used = f"{_euros(ctx['net_cents'])} of {_euros(ctx['ceiling_cents'])}"
    if firing:
        return f"{who} has reached {_pct(f.value)} of its {y} cost ceiling ({used}), passing the {_pct(f.threshold)} threshold."
    return f"{who} is back below the {_pct(f.threshold)} threshold of its {y} cost ceiling at {_pct(f.value)} ({used})."


def _group_share(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    mean = _pct(ctx.get("peer_mean"))
    if firing:
        return f"{who} declared {_pct(f.value)} of its {y} consults as group consults, under half the peer average of {mean}."
    return f"{who}'s {y} group-consult share ({_pct(f.value)}) is no longer far below the peer average of {mean}."


def _staffing(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    n = ctx.get("group_ge4", 0)
    if firing:
        return f"{who} declared {n} group consults in {y} with 4 or more practitioners ({_pct(f.value)} of its group consults); at most 2 are expected."
    return f"{who}'s {y} group consults with 4 or more practitioners are back within bounds ({n}, {_pct(f.value)})."


def _detox(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    if firing:
        return f"{who} delivered {_pct(f.value)} of its {y} detoxification clinically ({ctx.get('detox_lines', 0)} detox lines); ambulant detox is expected where possible."
    return f"{who}'s {y} clinical detoxification share is back below {_pct(f.threshold)} ({_pct(f.value)})."


def _adhd(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    q = f.detail
    if firing:
        return (
            f"{who} treated {ctx.get('clients', 0)} ADHD clients in {y}-{q}, {_pct(f.value)} more than in the same quarter a year earlier "
            f"({ctx.get('base', 0)}); ADHD is the provider's registered diagnosis group."
        )
    return f"{who}'s ADHD client growth in {y}-{q} is back below {_pct(f.threshold)} ({_pct(f.value)})."


def _mismatch(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    if firing:
        return f"{who} declared care for zorgvraagtype 1 or 2 in a clinical or high-specialist setting in {y}, which is not reimbursed from 2026."
    return f"{who}'s {y} declarations of zorgvraagtype 1 or 2 in a clinical or high-specialist setting have all been credited."


def _digital(who: str, y: int, f: Finding, firing: bool, ctx: dict[str, Any]) -> str:
    if firing:
        return f"{who} delivered {_pct(f.value)} of its {y} consults digitally (label S01), under the {_pct(f.threshold)} target."
    return f"{who}'s {y} digital consult share reached {_pct(f.value)}, meeting the {_pct(f.threshold)} target."


_MESSAGES: dict[str, Callable[[str, int, Finding, bool, dict[str, Any]], str]] = {
    "ceiling_utilisation": _ceiling,
    "group_share_low": _group_share,
    "group_consult_staffing": _staffing,
    "clinical_detox_high": _detox,
    "adhd_growth": _adhd,
    "zvt_setting_mismatch": _mismatch,
    "digital_share_low": _digital,
}
RULES = tuple(_MESSAGES)
