"""What a correct monitor sees in the generated history, as judged by the domain
engine itself: the content of ``planted.json``.

`EnginePass` runs `streams.domain.engine.Engine` over the lines as they are
written (one pass, in process, contracts and the department register merged in by
event time as the offline replay does; the engine evaluates the structural rules at
each provider's month boundaries, and region_category_gap once a calendar month)
and ticks them once more at the end. Nothing here re-computes a rule.

A plant that must fire is reported under ``anomalies`` when the engine raised its
alert, with ``when``: the month (``YYYY-MM``) of its first firing transition, and
in ``expected`` the ``value``, ``threshold``, ``event_time`` and ``explain`` (less
its breakdown) of that event, whether it still fires at the end, and the engine's
indicators of the provider-year. A plant that must not fire (``Plant.fires``) is
reported under ``must_not_fire`` when the engine raised nothing, with what it saw.
Either way, a plant the engine does not bear out is listed under ``skipped`` with
what the engine saw, and so is a plant of a rule this release does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from streams.domain import regions
from streams.domain.alerts import alert_id
from streams.domain.contracts import parse_contract
from streams.domain.departments import parse_department, year_departments
from streams.domain.engine import ContractFeed, Effects, Engine
from streams.domain.indicators import YearState
from streams.domain.policy import DEFAULT_POLICY_PATH, Policy
from streams.domain.rules import RULES, ceiling_utilisation
from streams.synth.history import History
from streams.synth.plants import Plant

BLOCK_LINES = 128  # about the lines of one block the offline replay reads (64 KiB)


class EnginePass:
    """The domain engine over a history's lines, block by block."""

    def __init__(
        self, policy: Policy, contracts: list[bytes], departments: list[bytes] | None = None
    ) -> None:
        # Nothing to roll back to, as in the offline replay: a failing line is
        # counted and dead-lettered, and the pass goes on.
        self.engine = Engine(policy, replay=True, contain=True)
        self.engine.region_watch = regions.RegionWatch(policy.language, replay=True)
        self.fx = Effects()
        self.feed = ContractFeed(
            [parse_contract(orjson.loads(c)) for c in contracts],
            [parse_department(orjson.loads(d)) for d in departments or ()],
        )
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
    quiet: list[dict[str, Any]] = []
    skipped = list(history.planting.skipped)
    for plant in history.planting.plants:
        p = plant.provider
        if plant.rule not in RULES and plant.rule != regions.RULE:
            reason = f"{plant.case} planted at {p.agb} in {plant.year}, but this release has no rule {plant.rule}"
            skipped.append({"rule": plant.rule, "reason": reason})
            continue
        found = _judge(plant, run, history.policy, peers)
        if found is None:
            continue  # a ceiling plant without a contract: cannot happen in a history
        aid, holds, expected = found
        entry = {
            "provider_agb": p.agb,
            "provider_name": p.name,
            "year": plant.year,
            "rule": plant.rule,
            "case": plant.case,
            "alert_id": aid,
        }
        if holds and plant.fires:
            event_time = expected["event_time"]
            anomalies.append({**entry, "when": event_time[:7], "expected": expected})
        elif holds:
            quiet.append({**entry, "seen": expected})
        else:
            how = "but the engine raised no" if plant.fires else "to raise no"
            but = "" if plant.fires else ", but the engine raised it"
            reason = f"{plant.case} planted at {p.agb} in {plant.year} {how} {aid}{but} at this size: {expected}"
            skipped.append({"rule": plant.rule, "reason": reason})
    writer = history.writer
    options = asdict(history.options)
    return {
        "schema": "claimwatch.planted/1",
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "policy": _source(history.policy),
        "anomalies": anomalies,
        "must_not_fire": quiet,
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
    """(alert id, whether the engine bore the plant out, what it saw) of one plant."""
    agb, y = plant.provider.agb, plant.year
    ys = run.year(agb, y)
    if plant.rule == "ceiling_utilisation":
        return _judge_ceiling(plant, run, policy, ys)
    if plant.rule == regions.RULE:
        return _judge_region(plant, run)
    aid = alert_id(plant.rule, agb, y, plant.detail)
    seen = _INDICATORS[plant.rule](plant, run, ys, peers)
    event = run.fired.get(aid)
    if not plant.fires:
        return aid, event is None, seen
    return aid, event is not None, {**_event(run, agb, aid, event), **seen}


def _event(run: EnginePass, agb: str, aid: str, event: dict[str, Any] | None) -> dict[str, Any]:
    """What the first firing event of an alert says (nulls when there was none)."""
    event = event or {}
    explain = {k: v for k, v in (event.get("explain") or {}).items() if k != "breakdown"}
    return {
        "value": event.get("value"),
        "threshold": event.get("threshold"),
        "event_time": event.get("event_time"),
        "firing_at_end": run.firing(agb, aid),
        "explain": explain or None,
    }


def _judge_region(plant: Plant, run: EnginePass) -> tuple[str, bool, dict[str, Any]]:
    """A region's secured category: its only secured ward closed (SPEC §9)."""
    aid = regions.gap_id(plant.detail or "", "secured", plant.year)
    event = run.fired.get(aid) or {}
    watch = run.engine.region_watch
    return (
        aid,
        bool(event),
        {
            "value": event.get("value"),
            "threshold": event.get("threshold"),
            "event_time": event.get("event_time"),
            "firing_at_end": watch is not None and aid in watch.firing(),
            "explain": None,
            **_department(plant, run, "forensisch"),
        },
    )


def _department(plant: Plant, run: EnginePass, department: str | None = None) -> dict[str, Any]:
    """The clients per month of the planted department, as the snapshot shows them."""
    st = run.engine.providers.get(plant.provider.agb)
    name = department or plant.detail or ""
    entry = year_departments(st, plant.year, run.engine.departments).get(name) if st else None
    return {"department": name, "clients_by_month": entry["clients_by_month"] if entry else {}}


def _judge_ceiling(
    plant: Plant, run: EnginePass, policy: Policy, ys: YearState
) -> tuple[str, bool, dict[str, Any]] | None:
    """The first threshold: the early plant crosses it before July by its lines, the
    lowered one on the contract event that lowers the ceiling."""
    agb, y = plant.provider.agb, plant.year
    contract = run.engine.contracts.get(agb, y)
    if contract is None:
        return None
    ids = [
        alert_id(f.rule, agb, y, f.detail)
        for f in ceiling_utilisation.findings(ys, contract, policy.ceiling, y)
    ]
    event = run.fired.get(ids[0])
    expected = {
        **_event(run, agb, ids[0], event),
        "ceiling_cents": contract.ceiling_cents,
        "contract_version": contract.version,
        "final_utilisation": ys.net_cents / contract.ceiling_cents,
        "later_alert_ids": [aid for aid in ids[1:] if aid in run.fired],
    }
    crossed = expected["event_time"] or ""
    cause = (expected["explain"] or {}).get("cause")
    if plant.case == "lowered_ceiling":
        holds = event is not None and cause == "contract_change"
    else:
        holds = f"{y}-01" < crossed < f"{y}-07" and cause != "contract_change"
    return ids[0], holds, expected


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


def _mismatch(plant: Plant, run: EnginePass, ys: YearState, _: Any) -> dict[str, Any]:
    return {"mismatch_lines": ys.mismatch}


def _peer(plant: Plant, _: EnginePass, ys: YearState, peers: dict[int, Any]) -> dict[str, Any]:
    mean = peers.get(plant.year)
    return {
        "consults": ys.consults,
        "group_consults": ys.group_consults,
        "peer_group_share_mean": float(mean) if mean is not None else None,
    }


def _spend(plant: Plant, run: EnginePass, ys: YearState, _: Any) -> dict[str, Any]:
    """Net cents by service month of the year and the year before (the profile its
    projection is weighted by), and the ceiling; for the seasonal provider, whether
    the year before, projected by an even spread (it has no year before it), fired."""
    agb, y = plant.provider.agb, plant.year
    contract = run.engine.contracts.get(agb, y)
    out: dict[str, Any] = {
        "net_cents_by_month": list(ys.by_month),
        "previous_net_cents_by_month": list(run.year(agb, y - 1).by_month),
        "ceiling_cents": contract.ceiling_cents if contract is not None else None,
    }
    if not plant.fires:
        before = alert_id(plant.rule, agb, y - 1, plant.detail)
        out["previous_year_alert_id"] = before
        out["previous_year_fired"] = before in run.fired
    return out


def _not_rising(plant: Plant, run: EnginePass, ys: YearState, _: Any) -> dict[str, Any]:
    before = run.year(plant.provider.agb, plant.year - 1)
    return {
        "consults": ys.consults,
        "group_consults": ys.group_consults,
        "previous_consults": before.consults,
        "previous_group_consults": before.group_consults,
    }


# What each rule's plant reports besides its event: the engine's indicators of the
# provider-year.
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
        "detox_clients_clinical": ys.detox_clients_clinical,
        "detox_clients_all": ys.detox_clients_all,
    },
    "adhd_growth": _quarter,
    "zvt_setting_mismatch": _mismatch,
    "digital_share_low": lambda plant, run, ys, _: {
        "consults": ys.consults,
        "digital_consults": ys.digital,
        "consult_clients": ys.consult_clients,
        "digital_clients": ys.digital_clients,
    },
    "ceiling_pace_high": _spend,
    "ceiling_underrun": _spend,
    "group_share_not_rising": _not_rising,
    "department_activity_drop": lambda plant, run, ys, _: _department(plant, run),
    "department_stopped": lambda plant, run, ys, _: _department(plant, run),
}
