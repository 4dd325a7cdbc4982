"""The peer of figure 7: claimwatch's per-provider aggregation written with quixstreams.

Run by ``bench/peer.py`` as its own process (``python -m bench.peer_quix …``) on the
declarations topic the claimwatch worker was timed on, with its own consumer group
and state directory. It writes what it measured to ``--json`` and exits once every
partition is processed up to ``--targets``.

What it does per message (one batch envelope of SPEC §2, keyed by provider, or one
declaration), in quixstreams' own idiom: a ``StreamingDataFrame`` with one stateful
``update`` step whose state is quixstreams' RocksDB store, scoped to the message key
(the provider) and changelogged to Kafka:

- decode with ``orjson``; an unreadable envelope counts as ``invalid_batch``;
- validate each line minimally: required fields present with the right types, enum
  values, integer ranges, the line's provider equal to the key, BSN-shaped
  ``client_ref``; dates are checked for shape only (claimwatch's schema check also
  parses ``service_date`` and ``submitted_at``);
- accept like SPEC §2 steps 4–7 with a line index in state, one RocksDB key per line
  (``l:<line_id>`` → debit event, credit event, year, quarter, ADHD client, flags,
  amount): repeated events, repeated debits and credits are counted, a credit
  reverses exactly what its debit added, an orphan credit is counted;
- keep, per provider-year (``y:<year>``), the SPEC §4 counters claimwatch keeps:
  net cents, consults, group consults, group consults with ≥ 4 and > 2
  practitioners, digital consults, clinical and ambulant detox lines, zorgvraagtype/
  setting mismatches from 2026, accepted lines, and distinct ADHD clients per quarter
  (a count per client and quarter in state, ``a:<year>:<q>:<client>``);
- write each provider-year once per message, each line-index entry once per line.

What it does not do (claimwatch does, in the same time budget): contracts and the
ceiling rule, alerts and their state machine, dead-letter messages (it only counts
rejections), the peers table, metrics, full schema validation of dates and times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

LINE_SCHEMA = "ggz.declaration/1"
BATCH_SCHEMA = "ggz.declaration-batch/1"
ACTIVITIES = frozenset(("consult", "stay", "other"))
MODES = frozenset(("individual", "group"))
DETOX = (None, "ambulant", "clinical")
DIAGNOSES = frozenset(
    (
        "adhd",
        "addiction",
        "anxiety",
        "depression",
        "psychotic",
        "personality",
        "autism",
        "eating",
        "trauma",
        "other",
    )
)
# flags of a line's contribution, so a credit subtracts exactly what its debit added
CONSULT, GROUP, GE4, OVER2, DIGITAL, DETOX_C, DETOX_A, ZVT, ADHD = (1 << i for i in range(9))
# provider-year counters: index of each in the ``y:<year>`` list
NET, CONSULTS, GROUPS, GROUP_GE4, GROUP_OVER2, DIGITALS, DETOX_CLIN, DETOX_AMB, ZVTS, LINES = range(
    10
)
_FLAG_COUNTER = (
    (CONSULT, CONSULTS),
    (GROUP, GROUPS),
    (GE4, GROUP_GE4),
    (OVER2, GROUP_OVER2),
    (DIGITAL, DIGITALS),
    (DETOX_C, DETOX_CLIN),
    (DETOX_A, DETOX_AMB),
    (ZVT, ZVTS),
)


def _text(value: Any, upper: int) -> bool:
    return type(value) is str and 0 < len(value) <= upper


def _int(value: Any, lower: int, upper: int) -> bool:
    return type(value) is int and lower <= value <= upper


def _date(value: Any) -> bool:
    return (
        type(value) is str
        and len(value) == 10
        and value[4] == "-"
        and value[7] == "-"
        and value[:4].isdigit()
        and value[5:7].isdigit()
        and value[8:].isdigit()
    )


def invalid(line: Any, key: str) -> str | None:
    """Why a line is rejected (a SPEC §2 reason), or None: a minimal check."""
    if type(line) is not dict or line.get("schema") != LINE_SCHEMA:
        return "schema"
    agb = line.get("provider_agb")
    if not (type(agb) is str and len(agb) == 8 and agb.isdigit()):
        return "schema"
    if agb != key:
        return "batch_provider_mismatch"
    if not (
        _text(line.get("event_id"), 64)
        and _text(line.get("line_id"), 64)
        and line.get("kind") in ("debit", "credit")
        and _text(line.get("region"), 64)
        and _text(line.get("client_ref"), 128)
        and _text(line.get("trajectory_id"), 64)
        and _date(line.get("service_date"))
        and type(line.get("submitted_at")) is str
        and line.get("activity") in ACTIVITIES
        and _int(line.get("setting"), 1, 8)
        and _int(line.get("care_demand_type"), 0, 21)
        and line.get("diagnosis_group") in DIAGNOSES
        and line.get("detox") in DETOX
        and _int(line.get("amount_cents"), 1, 10_000_000)
    ):
        return "schema"
    activity = line["activity"]
    if activity == "consult" and not (
        line.get("consult_mode") in MODES
        and _int(line.get("practitioners"), 1, 20)
        and type(line.get("digital")) is bool
    ):
        return "schema"
    if activity == "stay" and not _int(line.get("stay_days"), 1, 366):
        return "schema"
    client = line["client_ref"]
    if len(client) == 9 and client.isdigit():
        return "bsn_like_client_ref"
    return None


def flags_of(line: dict[str, Any], year: int) -> int:
    f = 0
    if line["activity"] == "consult":
        f |= CONSULT
        if line["digital"]:
            f |= DIGITAL
        if line["consult_mode"] == "group":
            f |= GROUP
            n = line["practitioners"]
            if n >= 4:
                f |= GE4
            if n > 2:
                f |= OVER2
    detox = line.get("detox")
    if detox == "clinical":
        f |= DETOX_C
    elif detox == "ambulant":
        f |= DETOX_A
    if year >= 2026 and line["care_demand_type"] in (1, 2) and line["setting"] in (5, 6, 8):
        f |= ZVT
    if line["diagnosis_group"] == "adhd":
        f |= ADHD
    return f


class Aggregation:
    """The ``update`` step: one message of one provider against that provider's state."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}  # outcome → lines, all providers (not state)
        self.lines = 0

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def __call__(self, value: bytes, key: str, state: Any) -> None:
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            self._count("invalid_json")
            return
        if type(obj) is dict and obj.get("schema") == BATCH_SCHEMA:
            lines = obj.get("lines")
            if not (type(lines) is list and 0 < len(lines) <= 1000):
                self._count("invalid_batch")
                return
        else:
            lines = [obj]
        self.lines += len(lines)
        years: dict[int, list[Any]] = {}  # provider-years touched, written once at the end

        def year_state(year: int) -> list[Any]:
            ys = years.get(year)
            if ys is None:
                ys = state.get(f"y:{year}") or [0] * LINES + [0, {}]
                years[year] = ys
            return ys

        def apply(entry: list[Any], sign: int) -> None:
            _debit, _credit, year, quarter, client, flags, amount = entry
            ys = year_state(year)
            ys[NET] += sign * amount
            ys[LINES] += sign
            for flag, counter in _FLAG_COUNTER:
                if flags & flag:
                    ys[counter] += sign
            if flags & ADHD:
                akey = f"a:{year}:{quarter}:{client}"
                n = (state.get(akey) or 0) + sign
                state.set(akey, n)
                if (sign > 0 and n == 1) or (sign < 0 and n == 0):
                    per_q = ys[LINES + 1]
                    per_q[str(quarter)] = per_q.get(str(quarter), 0) + sign

        for line in lines:
            reason = invalid(line, key)
            if reason is not None:
                self._count(reason)
                continue
            lkey = f"l:{line['line_id']}"
            entry = state.get(lkey)
            eid = line["event_id"]
            if line["kind"] == "debit":
                if entry is not None:
                    self._count("duplicate" if entry[0] == eid else "duplicate_line")
                    continue
                date = line["service_date"]
                year = int(date[:4])
                quarter = (int(date[5:7]) - 1) // 3 + 1
                flags = flags_of(line, year)
                client = line["client_ref"] if flags & ADHD else None
                entry = [eid, None, year, quarter, client, flags, line["amount_cents"]]
                state.set(lkey, entry)
                apply(entry, 1)
            else:
                if entry is None:
                    self._count("orphan_credit")
                    continue
                if entry[0] == eid or entry[1] == eid:
                    self._count("duplicate")
                    continue
                if entry[1] is not None:
                    self._count("duplicate_credit")
                    continue
                entry[1] = eid
                state.set(lkey, entry)
                apply(entry, -1)
            self._count("accepted")
        for year, ys in years.items():
            state.set(f"y:{year}", ys)


def peak_rss() -> int:
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as f:
        for row in f:
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peer_quix")
    p.add_argument("--broker", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--targets", required=True, help='JSON {"<partition>": last offset}')
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--session-timeout-ms", type=int, default=10_000)
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    started = time.perf_counter()

    from quixstreams import Application, message_context

    targets = {int(k): int(v) for k, v in orjson.loads(args.targets).items()}
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
        # As the claimwatch worker: tansu finishes a group join after session / 2.
        consumer_extra_config={
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": max(250, min(3000, args.session_timeout_ms // 4)),
        },
    )
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="bytes")
    sdf = app.dataframe(topic)
    aggregate = Aggregation()
    marks: dict[str, float] = {}
    remaining = dict(targets)

    def step(value: bytes, key: str, timestamp: int, headers: Any, state: Any) -> None:
        if "first" not in marks:
            marks["first"] = time.perf_counter()
            marks["first_cpu"] = time.process_time()  # all threads of the process
        aggregate(value, key, state)
        ctx = message_context()
        if remaining.get(ctx.partition, -1) <= ctx.offset:
            remaining.pop(ctx.partition, None)
            if not remaining:
                marks["last"] = time.perf_counter()
                app.stop()
        elif time.perf_counter() - started > args.timeout:
            app.stop(fail=True)

    sdf.update(step, stateful=True, metadata=True)

    # The final checkpoint writes the state to RocksDB and its changelog: part of the work.
    context = app._processing_context  # noqa: SLF001 - the bench times the final flush
    commit = context.commit_checkpoint

    def timed_commit(*a: Any, **kw: Any) -> Any:
        out = commit(*a, **kw)
        if kw.get("force") and "last" in marks and "flushed" not in marks:
            marks["flushed"] = time.perf_counter()
            marks["flushed_cpu"] = time.process_time()
        return out

    context.commit_checkpoint = timed_commit  # type: ignore[method-assign]
    app.run()
    ended = time.perf_counter()
    if "last" not in marks:
        print(f"quixstreams did not reach the end offsets {remaining}", file=sys.stderr)
        return 1
    flushed = marks.get("flushed", ended)
    window = flushed - marks["first"]
    cpu_s = marks.get("flushed_cpu", time.process_time()) - marks["first_cpu"]
    result = {
        "lines": aggregate.lines,
        "outcomes": aggregate.counts,
        "window_s": window,
        "lines_per_s": aggregate.lines / window,
        "cpu_s": cpu_s,
        "lines_per_cpu_s": aggregate.lines / cpu_s if cpu_s > 0 else 0.0,
        "final_checkpoint_s": flushed - marks["last"],
        "startup_s": marks["first"] - started,
        "total_s": ended - started,
        "peak_rss": peak_rss(),
        "quixstreams": _version("quixstreams"),
        "confluent_kafka": _version("confluent-kafka"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    sys.exit(main())
