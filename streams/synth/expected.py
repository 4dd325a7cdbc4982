"""What a correct monitor sees in the generated history, as judged by the domain
engine itself: the content of ``planted.json``.

`EnginePass` runs `streams.domain.engine.Engine` over the lines as they are
written (one pass, in process, contracts merged in by event time as the offline
replay does) and ticks the structural rules once at the end. A plant is reported
as an anomaly when the engine raised its alert; otherwise it is listed under
``skipped`` with what the engine saw. In ``expected`` of an anomaly, ``value``,
``threshold`` and ``event_time`` are those of the alert's firing event: for the
line-driven rules (ceiling, zvt mismatch) at the line that fires it, for the
structural rules at the end of the input. The other keys are the engine's
indicators of that provider-year.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from streams.domain.alerts import alert_id
from streams.domain.contracts import parse_contract
from streams.domain.engine import ContractFeed, Effects, Engine
from streams.domain.indicators import YearState
from streams.domain.policy import DEFAULT_POLICY_PATH, Policy
from streams.domain.rules import ceiling_utilisation
from streams.synth.history import History
from streams.synth.plants import Plant

BLOCK_LINES = 128  # about the lines of one block the offline replay reads (64 KiB)


class EnginePass:
    """The domain engine over a history's lines, block by block."""

    def __init__(self, policy: Policy, contracts: list[bytes]) -> None:
        # Nothing to roll back to, as in the offline replay: a failing line is
        # counted and dead-lettered, and the pass goes on.
        self.engine = Engine(policy, replay=True, contain=True)
        self.fx = Effects()
        self.feed = ContractFeed([parse_contract(orjson.loads(c)) for c in contracts])
        self.fired: dict[str, dict[str, Any]] = {}  # alert id -> its first firing event

    def lines(self, values: list[bytes]) -> None:
        """Process whole lines (each ending with a newline), in order.

        In blocks of the offline replay's size: a block holding a malformed line is
        split and decoded again, which costs in proportion to its length."""
        process_block, fx, feed = self.engine.process_block, self.fx, self.feed
        for start in range(0, len(values), BLOCK_LINES):
            process_block(b"".join(values[start : start + BLOCK_LINES]), fx, feed)
        self._drain()

    def finish(self) -> None:
        """Apply the remaining contracts and evaluate the structural rules once."""
        self.feed.apply_rest(self.engine, self.fx)
        self.engine.tick(effects=self.fx)
        self._drain()

    def _drain(self) -> None:
        fx = self.fx
        for event in fx.alerts:
            if event["state"] == "firing":
                self.fired.setdefault(event["alert_id"], event)
        fx.alerts.clear()
        fx.dead_letters.clear()
        fx.event_times.clear()
        fx.touched.clear()

    def firing(self, agb: str, aid: str) -> bool:
        st = self.engine.providers.get(agb)
        state = st.alerts.states.get(aid) if st is not None else None
        return state is not None and state.firing

    def year(self, agb: str, year: int) -> YearState:
        st = self.engine.providers.get(agb)
        ys = st.years.get(year) if st is not None else None
        return ys if ys is not None else YearState()


def report(history: History, run: EnginePass) -> dict[str, Any]:
    """The content of planted.json; call after the history is emitted and `run` finished."""
    peers = {y: run.engine.peer_means().get(y) for y in history.years}
    anomalies: list[dict[str, Any]] = []
    skipped = list(history.planting.skipped)
    for plant in history.planting.plants:
        found = _judge(plant, run, history.policy, peers)
        if found is None:
            continue  # the ceiling plant without a contract: cannot happen in a history
        aid, holds, expected = found
        p = plant.provider
        if holds:
            anomalies.append(
                {
                    "provider_agb": p.agb,
                    "provider_name": p.name,
                    "year": plant.year,
                    "rule": plant.rule,
                    "alert_id": aid,
                    "expected": expected,
                }
            )
        else:
            reason = (
                f"planted at {p.agb} in {plant.year} but the engine raised no {aid} "
                f"at this size: {expected}"
            )
            skipped.append({"rule": plant.rule, "reason": reason})
    writer = history.writer
    options = asdict(history.options)
    return {
        "schema": "claimwatch.planted/1",
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "policy": _source(history.policy),
        "anomalies": anomalies,
        "skipped": skipped,
        "faults": dict(writer.faults),
        "counts": dict(writer.counts),
        "acceptance": _acceptance(writer.counts),
        "peers": {
            str(y): {"group_share_mean": float(m) if m is not None else None}
            for y, m in peers.items()
        },
    }


def _source(policy: Policy) -> str:
    """Where the thresholds came from; the shipped defaults by name, not by path, so
    that two checkouts write the same bytes."""
    return "defaults" if Path(policy.source) == DEFAULT_POLICY_PATH else policy.source


def _acceptance(counts: dict[str, int]) -> dict[str, Any]:
    """Counts a correct consumer reports (SPEC §6 snapshot), from what was written."""
    return {
        "accepted": counts["debit"] + counts["correction"] + counts["credit"],
        "duplicate": counts["redelivery"],
        "duplicate_line": counts["duplicate_line"],
        "duplicate_credit": counts["duplicate_credit"],
        "rejected": {
            "invalid_json": counts["malformed_invalid_json"],
            "schema": counts["malformed_missing_field"],
            "bsn_like_client_ref": counts["malformed_bsn_client_ref"],
            "orphan_credit": counts["orphan_credit"],
            "batch_provider_mismatch": 0,
            "invalid_batch": 0,
        },
    }


def _judge(
    plant: Plant, run: EnginePass, policy: Policy, peers: dict[int, Any]
) -> tuple[str, bool, dict[str, Any]] | None:
    """(alert id, whether the engine raised it, what it saw) of one plant."""
    agb, y = plant.provider.agb, plant.year
    ys = run.year(agb, y)
    if plant.rule == "ceiling_utilisation":
        return _judge_ceiling(plant, run, policy, ys)
    aid = alert_id(plant.rule, agb, y, plant.detail)
    event = run.fired.get(aid, {})
    expected = {
        "value": event.get("value"),
        "threshold": event.get("threshold"),
        **_INDICATORS[plant.rule](plant, run, ys, peers),
    }
    return aid, run.firing(agb, aid), expected


def _judge_ceiling(
    plant: Plant, run: EnginePass, policy: Policy, ys: YearState
) -> tuple[str, bool, dict[str, Any]] | None:
    """The early plant holds when the first threshold fired before July."""
    agb, y = plant.provider.agb, plant.year
    contract = run.engine.contracts.get(agb, y)
    if contract is None:
        return None
    ids = [
        alert_id(f.rule, agb, y, f.detail)
        for f in ceiling_utilisation.findings(ys, contract, policy.ceiling, y)
    ]
    event = run.fired.get(ids[0], {})
    crossed = event.get("event_time", "")
    expected = {
        "value": event.get("value"),
        "threshold": event.get("threshold"),
        "event_time": crossed,
        "ceiling_cents": contract.ceiling_cents,
        "final_utilisation": ys.net_cents / contract.ceiling_cents,
        "later_alert_ids": [aid for aid in ids[1:] if aid in run.fired],
    }
    return ids[0], f"{y}-01" < crossed < f"{y}-07", expected


Indicators = Callable[[Plant, EnginePass, YearState, dict[int, Any]], dict[str, Any]]


def _quarter(plant: Plant, run: EnginePass, ys: YearState, _: dict[int, Any]) -> dict[str, Any]:
    q = int((plant.detail or "Q0")[1:])
    y = plant.year
    return {
        "quarter": f"{y}-Q{q}",
        "adhd_clients": ys.adhd_clients(q),
        "base_quarter": f"{y - 1}-Q{q}",
        "base_clients": run.year(plant.provider.agb, y - 1).adhd_clients(q),
    }


def _first_event(plant: Plant, run: EnginePass, ys: YearState, _: Any) -> dict[str, Any]:
    aid = alert_id(plant.rule, plant.provider.agb, plant.year, plant.detail)
    return {
        "mismatch_lines": ys.mismatch,
        "event_time": run.fired.get(aid, {}).get("event_time"),
    }


def _peer(plant: Plant, _: EnginePass, ys: YearState, peers: dict[int, Any]) -> dict[str, Any]:
    mean = peers.get(plant.year)
    return {
        "consults": ys.consults,
        "group_consults": ys.group_consults,
        "peer_group_share_mean": float(mean) if mean is not None else None,
    }


# What each rule's plant reports besides the alert's value and threshold: the
# engine's indicators of the provider-year. With a rule registry, a rule would
# name the indicators it reads and this table would go.
_INDICATORS: dict[str, Indicators] = {
    "group_share_low": _peer,
    "group_consult_staffing": lambda plant, run, ys, _: {
        "group_ge4": ys.group_ge4,
        "group_consults": ys.group_consults,
        "group_ge4_share": ys.group_ge4_share,
    },
    "clinical_detox_high": lambda plant, run, ys, _: {
        "detox_clinical": ys.detox_clinical,
        "detox_ambulant": ys.detox_ambulant,
    },
    "adhd_growth": _quarter,
    "zvt_setting_mismatch": _first_event,
    "digital_share_low": lambda plant, run, ys, _: {
        "consults": ys.consults,
        "digital_consults": ys.digital,
    },
}
