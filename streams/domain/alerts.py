"""The alert state machine and the alert event (``schemas/alert.v1.json``).

An alert is identified by ``<rule>:<agb>:<year>[:<detail>]``. Rules
(streams/domain/rules/, which also word the messages) produce
``Finding``s (does the condition hold, has it cleared); ``AlertBook.observe`` turns a
finding into a transition only when the state changes, so evaluating the same state
twice (a redelivery, a second tick) never publishes anything twice. Each transition
gets the next ``sequence`` number of its alert id.

The wording helpers at the end (``euros``, ``number``, ``pct``, ``who``) format what rule
messages and ``claimwatch explain`` show purchasers, in Dutch (the default) or
English (policy ``[messages] language``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, NamedTuple

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
    message: str,
    explain: dict[str, Any] | None = None,
    department: str | None = None,
) -> dict[str, Any]:
    """The alert event for one transition; ``message`` is its rule's sentence
    (``rules.message``), ``explain`` the figures behind it (``explain.build``,
    SPEC §8.3), left out when there are none.

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
        "message": message,
        "sequence": state.sequence,
    }
    if department is not None:  # a department rule's alert (SPEC §9)
        event["department"] = department
    if explain:
        event["explain"] = explain
    if replay:
        event["replay"] = True
    return event


# -- wording ----------------------------------------------------------------------------

Language = Literal["nl", "en"]
LANGUAGES: tuple[Language, ...] = ("nl", "en")


# Month names for purchaser text, by language (1 = January at index 0).
MONTH_NAMES: dict[Language, tuple[str, ...]] = {
    "nl": (
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def euros(cents: int, language: Language = "nl") -> str:
    """Whole euros, rounded half to even: ``€ 1.234.567`` (nl), ``€1,234,567`` (en)."""
    whole = round(Fraction(cents, 100))
    digits = f"{abs(whole):,}"
    sign = "-" if whole < 0 else ""
    if language == "nl":
        return f"€ {sign}{digits.replace(',', '.')}"
    return f"{sign}€{digits}"


def number(n: int, language: Language = "nl") -> str:
    """A count with thousands grouped: ``1.234`` (nl), ``1,234`` (en)."""
    return f"{n:,}".replace(",", ".") if language == "nl" else f"{n:,}"


def pct(x: float | None, language: Language = "nl") -> str:
    """A share as a percentage with one decimal, a whole one without: ``72,5%``,
    ``70%`` (nl), ``72.5%`` (en); ``n.v.t.``/``n/a`` when undefined."""
    if x is None:
        return "n.v.t." if language == "nl" else "n/a"
    text = f"{x * 100:.1f}".removesuffix(".0")
    if text == "-0":
        text = "0"
    return f"{text.replace('.', ',') if language == 'nl' else text}%"


def who(provider: str, name: str | None, language: Language = "nl") -> str:
    """The provider as a message names it: by contract name and AGB code."""
    if language == "nl":
        return f"{name} (AGB-code {provider})" if name else f"Zorgaanbieder met AGB-code {provider}"
    return f"{name} ({provider})" if name else f"Provider {provider}"
