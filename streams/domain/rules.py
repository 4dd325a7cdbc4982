"""The alert rules of SPEC §5 as pure functions from indicator state to findings.

Line-driven rules (ceiling, zorgvraagtype/setting mismatch) run after every accepted
line and contract change; structural rules run on a tick. Thresholds are compared in
exact arithmetic (integers, ``Fraction``) so a value exactly at a threshold is
decided the same way on every machine and in every summation order.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from functools import cache
from typing import Any

from streams.domain.alerts import Finding
from streams.domain.contracts import Contract
from streams.domain.indicators import YearState
from streams.domain.policy import Policy


@cache
def _exact(x: float) -> Fraction:
    """The decimal the operator wrote (0.05 means 5/100, not the nearest double)."""
    return Fraction(repr(x))


def _at_least(numerator: int, denominator: int, threshold: float) -> bool:
    return denominator > 0 and Fraction(numerator, denominator) >= _exact(threshold)


def ceiling_findings(ys: YearState, contract: Contract, policy: Policy, year: int) -> list[Finding]:
    """One finding per ceiling threshold; hysteresis: clears below threshold − margin."""
    cp = policy.ceiling
    net, ceiling = ys.net_cents, contract.ceiling_cents
    value = net / ceiling
    findings = []
    for threshold, bp, severity in zip(cp.thresholds, cp.thresholds_bp, cp.severities, strict=True):
        findings.append(
            Finding(
                "ceiling_utilisation",
                year,
                str(bp // 100) if bp % 100 == 0 else f"{bp / 100:g}".replace(".", "-"),
                fire=net * 10_000 >= bp * ceiling,
                clear=net * 10_000 < (bp - cp.margin_bp) * ceiling,
                value=value,
                threshold=threshold,
                severity=severity,
            )
        )
    return findings


def mismatch_finding(ys: YearState, policy: Policy, year: int) -> Finding:
    count = ys.mismatch
    return Finding(
        "zvt_setting_mismatch",
        year,
        None,
        fire=count > 0,
        clear=count == 0,
        value=float(count),
        threshold=1.0,
        severity=policy.mismatch.severity,
    )


def _holds(
    rule: str,
    year: int,
    detail: str | None,
    holds: bool,
    value: float | None,
    threshold: float,
    severity: str,
) -> Finding:
    return Finding(rule, year, detail, holds, not holds, value, threshold, severity)


def structural_findings(
    ys: YearState,
    previous: YearState | None,
    year: int,
    peer_mean: Fraction | None,
    policy: Policy,
) -> list[tuple[Finding, dict[str, Any]]]:
    """Tick rules for one provider-year, each with the context its message needs."""
    out: list[tuple[Finding, dict[str, Any]]] = []

    gs = policy.group_share
    share = ys.group_share
    low = (
        peer_mean is not None
        and ys.consults >= gs.min_consults
        and Fraction(ys.group_consults, ys.consults) < _exact(gs.factor) * peer_mean
    )
    threshold = float(_exact(gs.factor) * peer_mean) if peer_mean is not None else None
    out.append(
        (
            Finding("group_share_low", year, None, low, not low, share, threshold, gs.severity),
            {"peer_mean": float(peer_mean) if peer_mean is not None else None},
        )
    )

    st = policy.staffing
    staffed = ys.group_ge4 >= st.min_count and _at_least(
        ys.group_ge4, ys.group_consults, st.min_share
    )
    out.append(
        (
            _holds(
                "group_consult_staffing",
                year,
                None,
                staffed,
                ys.group_ge4_share,
                st.min_share,
                st.severity,
            ),
            {"group_ge4": ys.group_ge4},
        )
    )

    dx = policy.detox
    detox_lines = ys.detox_clinical + ys.detox_ambulant
    high = detox_lines >= dx.min_lines and _at_least(ys.detox_clinical, detox_lines, dx.threshold)
    out.append(
        (
            _holds(
                "clinical_detox_high",
                year,
                None,
                high,
                ys.clinical_detox_share,
                dx.threshold,
                dx.severity,
            ),
            {"detox_lines": detox_lines},
        )
    )

    ad = policy.adhd
    for quarter in ys.adhd_quarters():
        clients = ys.adhd_clients(quarter)
        base = previous.adhd_clients(quarter) if previous is not None else 0
        growth = clients / base - 1 if base > 0 else None
        grows = (
            base >= ad.min_base and base > 0 and Fraction(clients, base) - 1 >= _exact(ad.threshold)
        )
        out.append(
            (
                _holds(
                    "adhd_growth", year, f"Q{quarter}", grows, growth, ad.threshold, ad.severity
                ),
                {"clients": clients, "base": base},
            )
        )

    dg = policy.digital
    digital_low = ys.consults >= dg.min_consults and Fraction(ys.digital, ys.consults) < _exact(
        dg.target
    )
    out.append(
        (
            _holds(
                "digital_share_low",
                year,
                None,
                digital_low,
                ys.digital_share,
                dg.target,
                dg.severity,
            ),
            {},
        )
    )
    return out


def peer_mean(pairs: Iterable[tuple[int, int]], min_consults: int) -> tuple[Fraction | None, int]:
    """Mean group share over providers with >= min_consults consults, exactly.

    ``pairs`` are (consults, group_consults) of the providers of one year. The exact
    mean does not depend on the order providers are summed in, so every worker and
    the offline replay agree on it to the last bit.
    """
    total = Fraction(0)
    n = 0
    for consults, group in pairs:
        if consults >= min_consults and consults > 0:
            total += Fraction(group, consults)
            n += 1
    return (total / n if n else None), n
