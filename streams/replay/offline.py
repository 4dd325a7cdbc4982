"""Offline replay: archived declarations through the engine, without Kafka.

Declarations are processed in file order; contract and department register events
are merged in by event time (one whose ``updated_at`` ≤ a line's ``submitted_at`` is
applied before that line). The structural rules are evaluated at each provider's
month boundaries and at the end, region_category_gap over all providers once per
calendar month and at the end (SPEC §8.1, §9). The result is the reference the
streaming pipeline must reproduce (SPEC §6).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from streams.domain.engine import ContractFeed, Effects, Engine
from streams.domain.errors import InputError
from streams.domain.policy import Policy
from streams.domain.regions import RegionWatch
from streams.replay.files import iter_blocks, read_contracts, read_departments


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    lines: int
    counts: dict[str, Any]
    alerts: int
    firing: int
    seconds: float

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


class _Sink:
    """Writes NDJSON records as they come, so a long replay keeps memory flat."""

    def __init__(self, path: Path | None) -> None:
        self.fh: IO[bytes] | None = _open_out(path) if path is not None else None
        self.n = 0

    def write(self, record: dict[str, Any]) -> None:
        self.n += 1
        if self.fh is not None:
            self.fh.write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def _open_out(path: Path) -> IO[bytes]:
    try:
        return path.open("wb")
    except OSError as exc:
        raise InputError(f"{path}: cannot be written ({exc.strerror or exc})") from None


def replay_offline(
    files: Sequence[str | Path],
    policy: Policy,
    *,
    contracts: str | Path | None = None,
    departments: str | Path | None = None,
    alerts_out: str | Path | None = None,
    snapshot_out: str | Path | None = None,
    rejected_out: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    replay_flag: bool = True,
) -> tuple[ReplaySummary, Engine]:
    """Run the archives through a fresh engine; write alerts and the snapshot.

    ``progress(bytes_done, bytes_total)`` is called now and then when given.
    ``replay_flag`` marks alert events with ``"replay": true`` (SPEC §6).
    """
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    pending = read_contracts(contracts) if contracts is not None else []
    register = read_departments(departments) if departments is not None else []
    # No transaction to roll back to here: a line whose processing fails is counted
    # and dead-lettered as processing_error, and the replay goes on (SPEC §12).
    engine = Engine(policy, replay=replay_flag, contain=True)
    engine.region_watch = RegionWatch(policy.language, replay=replay_flag)
    alerts = _Sink(Path(alerts_out) if alerts_out is not None else None)
    rejected = _Sink(Path(rejected_out) if rejected_out is not None else None)
    started = time.perf_counter()
    fx = Effects()
    feed = ContractFeed(pending, register)

    process_block = engine.process_block
    total = sum(p.stat().st_size for p in paths)
    done_before = 0
    lines = 0
    try:
        for p in paths:
            tick_progress = None
            if progress is not None:
                base = done_before

                def tick_progress(pos: int, base: int = base) -> None:
                    progress(base + pos, total)

            for block in iter_blocks(p, tick_progress):
                lines += process_block(block, fx, feed)
                if fx.alerts or fx.dead_letters:
                    _drain(fx, alerts, rejected)
                fx.event_times.clear()  # the offline replay needs neither
                fx.touched.clear()
            done_before += p.stat().st_size
        feed.apply_rest(engine, fx)
        engine.tick(effects=fx)
        _drain(fx, alerts, rejected)
    finally:
        alerts.close()
        rejected.close()
    seconds = time.perf_counter() - started
    snapshot = engine.snapshot()
    if snapshot_out is not None:
        out = Path(snapshot_out)
        try:
            out.write_bytes(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2) + b"\n")
        except OSError as exc:
            raise InputError(f"{out}: cannot be written ({exc.strerror or exc})") from None
    firing = sum(len(st.alerts.firing()) for st in engine.providers.values())
    firing += len(engine.region_watch.firing())
    summary = ReplaySummary(lines, snapshot["counts"], alerts.n, firing, seconds)
    return summary, engine


def _drain(fx: Effects, alerts: _Sink, rejected: _Sink) -> None:
    for event in fx.alerts:
        alerts.write(event)
    for letter in fx.dead_letters:
        rejected.write(
            {
                "reason": letter.reason,
                "detail": letter.detail,
                "provider_agb": letter.key,
                "payload": letter.payload.decode("utf-8", "replace"),
            }
        )
    fx.alerts.clear()
    fx.dead_letters.clear()
