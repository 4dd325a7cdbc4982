"""A broker-free stand-in for the ingest agent of ``streams/pipeline/app.py``.

It calls ``Processor`` exactly as the agent does (declarations at increasing offsets,
a keyless message that names its provider re-sent keyed on the control topic, table
writes applied only when the message was not skipped or re-keyed), and builds the
dead-letter headers with the same function the agent uses. The security tests run
hostile input through it without a broker.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from streams.domain.acceptance import DeadLetter
from streams.domain.engine import Engine
from streams.domain.model import Counts
from streams.domain.policy import Policy
from streams.pipeline.app import dead_letter_headers
from streams.pipeline.processor import Output, Processor, tick_control

# SPEC §2, §6 and §12: the only reasons a line or message may be dead-lettered with,
# plus line_index_expired (the retention policy, docs/operations.md "Retention").
SPEC_REASONS = frozenset(
    {
        "invalid_json",
        "schema",
        "implausible_time",
        "bsn_like_client_ref",
        "processing_error",
        "orphan_credit",
        "batch_provider_mismatch",
        "invalid_batch",
        "line_index_expired",
    }
)


@dataclass
class Published:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    headers: list[dict[str, bytes]] = field(default_factory=list)


class WorkerSim:
    def __init__(self, policy: Policy, partitions: int = 4, clock: Any = None) -> None:
        kw = {"clock": clock} if clock is not None else {}
        self.engine = Engine(policy, journal=True, **kw)
        self.store: dict[str, bytes] = {}
        self.processor = Processor(self.engine, self.store)
        self.partitions = partitions
        self._offsets = {p: itertools.count() for p in range(partitions)}
        self._control = {p: itertools.count() for p in range(partitions)}
        self.published = Published()

    def partition_of(self, key: str | None) -> int:
        return 0 if key is None else sum(key.encode()) % self.partitions

    def declarations(self, key: str | None, raw: bytes) -> list[Output]:
        """One message on the declarations topic, and its re-keyed copy if any."""
        p = self.partition_of(key)
        offset = next(self._offsets[p])
        out = self.processor.on_declarations(p, offset, key, raw)
        outs = [out]
        self._apply(out)
        for provider, payload in out.rekey.items():  # as the agent: re-sent, then applied
            q = self.partition_of(provider)
            rekeyed = self.processor.on_declarations(
                q, next(self._control[q]), provider, payload, source="c", origin=(p, offset)
            )
            self._apply(rekeyed)
            outs.append(rekeyed)
        return outs

    def tick(self) -> list[Output]:
        outs = []
        for p in range(self.partitions):
            next(self._control[p])
            out = self.processor.on_control(p, tick_control())
            self._apply(out)
            outs.append(out)
        return outs

    def control(self, partition: int, raw: bytes) -> Output:
        next(self._control[partition])
        out = self.processor.on_control(partition, raw)
        self._apply(out)
        return out

    def _apply(self, out: Output) -> None:
        if out.skipped:
            return
        self.published.alerts.extend(out.alerts)
        self.published.dead_letters.extend(out.dead_letters)
        self.published.headers.extend(dead_letter_headers(d) for d in out.dead_letters)
        for k, v in out.encoded():
            if v is None:  # a tombstone: the agent deletes the key (del state[k])
                self.store.pop(k, None)
            else:
                self.store[k] = v

    def totals(self) -> Counts:
        """Every outcome counted anywhere: providers, unattributed, partition ledgers."""
        total = self.engine.counts()
        for counts, _offset in self.processor.ledgers.values():
            total.add(counts)
        return total


def outcomes(c: Counts) -> int:
    return (
        c.accepted + c.duplicate + c.duplicate_line + c.duplicate_credit + sum(c.rejected.values())
    )


def diff(after: Counts, before: Counts) -> dict[str, int]:
    d = {
        "accepted": after.accepted - before.accepted,
        "duplicate": after.duplicate - before.duplicate,
        "duplicate_line": after.duplicate_line - before.duplicate_line,
        "duplicate_credit": after.duplicate_credit - before.duplicate_credit,
    }
    for reason in set(after.rejected) | set(before.rejected):
        d[f"rejected:{reason}"] = after.rejected.get(reason, 0) - before.rejected.get(reason, 0)
    return {k: n for k, n in d.items() if n}
