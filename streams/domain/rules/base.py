"""What a rule is: the ``Rule`` object, the typed parameters of its policy section,
the line facts it may ask to have counted, and the helpers rule modules share.

A rule module (one per rule, in this package) declares everything about its rule:
the dataclass of its policy section, whose fields say how each key is read
(``fraction``, ``count``, ``severity``, ...), the indicator it reads, how it
evaluates a provider-year into findings, and the message of a transition. The
registry (``registry.py``) collects the modules; ``policy.py``, the engine, the
alert events, the metrics and the deployment tests all read it.

Thresholds are compared in exact arithmetic (integers, ``Fraction``) so a value
exactly at a threshold is decided the same way on every machine and in every
summation order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from streams.domain.alerts import Finding, Language
from streams.domain.contracts import Contract
from streams.domain.departments import DepartmentView
from streams.domain.indicators import DIMENSIONS, SUBSETS, YearState
from streams.domain.pace import Pace

P = TypeVar("P")
SEVERITIES = ("info", "warning", "high", "critical")  # lowest first
# A finding and its context: what its message and its explanation need
# (``numerator``/``denominator`` of the value and more, see streams/domain/explain.py).
Found = list[tuple[Finding, dict[str, Any]]]
Message = Callable[[str, int, Finding, bool, dict[str, Any], Language], str]


# -- the parameters of a policy section ----------------------------------------------


class ParamError(ValueError):
    """A section's values that are each in range but wrong together; ``key`` is the
    one the policy error names."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key} {why}")
        self.key = key
        self.why = why


@dataclass(frozen=True, slots=True)
class Param:
    """How one key of a rule's policy section is read and checked.

    ``kind``: ``number`` (in ``lower..upper``), ``integer`` (whole, in
    ``lower..upper``), ``numbers`` (a non-empty list of numbers in ``(0, upper]``),
    ``integers`` (a non-empty list of whole numbers in ``lower..upper``, read as a
    frozenset), ``severity`` or ``severities`` (one of ``SEVERITIES``, or a
    non-empty list of them)."""

    kind: Literal["number", "integer", "numbers", "integers", "severity", "severities"]
    lower: float = 0
    upper: float = 0


def _param(param: Param) -> Any:
    return field(metadata={"param": param})


def fraction(upper: float = 1.0) -> Any:
    """A number in 0..upper (a share, a factor, a growth)."""
    return _param(Param("number", 0.0, upper))


def number(lower: float, upper: float) -> Any:
    return _param(Param("number", lower, upper))


def count() -> Any:
    """A whole number of lines, consults, clients: 0..10**9."""
    return _param(Param("integer", 0, 10**9))


def integer(lower: int, upper: int) -> Any:
    return _param(Param("integer", lower, upper))


def fractions(upper: float) -> Any:
    """A non-empty list of numbers in (0, upper], as a tuple."""
    return _param(Param("numbers", 0.0, upper))


def integer_set(lower: int, upper: int) -> Any:
    """A non-empty list of whole numbers in lower..upper, as a frozenset."""
    return _param(Param("integers", lower, upper))


def severity() -> Any:
    return _param(Param("severity"))


def severities() -> Any:
    """A non-empty list of severities, as a tuple."""
    return _param(Param("severities"))


# -- line facts a rule has counted ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """A count of accepted lines a rule needs beyond the named indicators.

    ``counts`` sees the line as the decoder has it (the typed record of
    ``acceptance.Decoder.check``: ``activity``, ``digital``, ``setting``,
    ``care_demand_type``, ``diagnosis_group``, ...) and says whether it counts. The
    registry allots the tally a flag bit of the line-index entry, the decoder sets
    it, and ``YearState.tally(name)`` is the net count: a credit subtracts what its
    debit added.
    """

    name: str
    counts: Callable[[Any], bool]


# -- the rule -------------------------------------------------------------------------


class Tick(NamedTuple):
    """What a structural rule sees of one provider-year besides its own state."""

    year: int
    previous: YearState | None  # the provider's state of the year before, if any
    peer_mean: Fraction | None  # mean group share of the year's peers (group_share_low)
    # The evaluation's event time (SPEC §8.1): the submitted_at of the line that crossed
    # a month boundary, or at the end of input the provider's watermark. No rule reads
    # it: the engine passes over a year whose other inputs are as they were at its last
    # evaluation (engine._inputs, which must learn of anything else a rule reads).
    at: float = 0.0
    # The covered month M of ``year`` at ``at`` (months.covered_month), 0..12.
    covered_month: int = 0
    # The provider-year's current contract (ceiling, digital_target), None without one.
    contract: Contract | None = None
    # The spend projection at ``covered_month`` (pace.project, policy [pace]): the
    # engine computes it once for both pace rules.
    pace: Pace | None = None
    # The provider's departments at its latest covered month (SPEC §9), for the
    # department rules; None where no engine built it (a rule's unit test).
    departments: DepartmentView | None = None


@dataclass(frozen=True)
class Rule(Generic[P]):
    """One alert rule.

    ``params`` is the dataclass of the rule's policy section (section name = rule
    name; its defaults are that section of ``streams/policy.default.toml``).
    ``kind``: a ``structural`` rule is evaluated by ``evaluate`` at each event-time
    month boundary of a provider and at the end of input (SPEC §8.1); a ``line``
    rule (ceiling, zvt mismatch) after every accepted line, by the engine, which
    calls its module directly. ``peers``: the rule reads other providers' state
    (through ``Tick.peer_mean``), so the streaming worker's wall-clock tick
    evaluates it too; for such a rule only the set firing once all input is
    processed is the same in streaming and offline. ``reads`` names the indicator it reads (a
    ``YearState`` field or tally). ``message`` makes the sentence of a transition
    from (who, year, finding, firing, context, language), in the language the
    policy's ``[messages]`` section names (``alerts.pct``/``euros`` format figures).
    ``explains`` is what the ``explain`` of a transition breaks down (SPEC §8.3):
    the subset of the provider-year's lines the rule measures (``indicators.SUBSETS``,
    or ``"adhd"``: the ADHD lines of the finding's quarter, detail ``Q1``..``Q4``)
    and the dimensions to group them by (``indicators.DIMENSIONS``); None: no
    breakdown (a rule that does not measure lines).
    """

    name: str
    kind: Literal["line", "structural"]
    params: type[P]
    reads: str
    message: Message
    evaluate: Callable[[YearState, Tick, P], Found] | None = None
    tallies: Sequence[Tally] = ()
    peers: bool = False
    explains: tuple[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        if self.explains is not None:
            subset, dimensions = self.explains
            if subset != "adhd" and subset not in SUBSETS:
                raise ValueError(f"rule {self.name}: explains unknown subset {subset!r}")
            unknown = [d for d in dimensions if d not in DIMENSIONS]
            if unknown or not dimensions:
                raise ValueError(f"rule {self.name}: explains by unknown dimensions {unknown}")
        if (self.kind == "structural") != (self.evaluate is not None):
            raise ValueError(f"rule {self.name}: a structural rule, and only one, has evaluate")
        if self.peers and self.kind != "structural":
            raise ValueError(f"rule {self.name}: only a structural rule reads its peers")


# -- shared by rule modules ----------------------------------------------------------


@cache
@functools.lru_cache(maxsize=1024)
def exact(x: float) -> Fraction:
    """The decimal the operator wrote (0.05 means 5/100, not the nearest double).
    Cached: a policy has a few dozen thresholds, asked at every evaluation."""
    return Fraction(repr(x))


def at_least(numerator: int, denominator: int, threshold: float) -> bool:
    """numerator / denominator >= threshold, exactly (integers, no Fraction a call)."""
    if denominator <= 0:
        return False
    t = exact(threshold)
    return numerator * t.denominator >= t.numerator * denominator


def below(numerator: int, denominator: int, threshold: float) -> bool:
    """numerator / denominator < threshold, exactly (integers)."""
    if denominator <= 0:
        return False
    t = exact(threshold)
    return numerator * t.denominator < t.numerator * denominator


def holds(
    rule: str,
    year: int,
    detail: str | None,
    condition: bool,
    value: float | None,
    threshold: float | None,
    severity: str,
) -> Finding:
    """A finding without hysteresis: fires while the condition holds, clears when not."""
    return Finding(rule, year, detail, condition, not condition, value, threshold, severity)


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None
