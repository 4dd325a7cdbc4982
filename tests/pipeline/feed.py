"""A broker-free feed for the real ``Worker.handle`` (streams/pipeline/worker.py).

The worker is built with a ``dict`` as its state table and an outbox that records what
it sends; the feed numbers messages per partition as a topic would, calls
``Worker.handle`` for each, and delivers what the worker sent to its control topic (a
keyless message's lines, re-keyed by provider) back to it, as the broker would. Only
the broker is stood in for: the handler, the processor and the publishing are the
production code. The security and checkpoint tests run input through it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.domain.model import Counts
from streams.domain.policy import Policy
from streams.pipeline.processor import Output, tick_control
from streams.pipeline.settings import Settings
from streams.pipeline.worker import Worker

SETTINGS = Settings(broker="127.0.0.1:9", app_id="feed", partitions=4)

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
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Recorder:
    """An outbox that records every send; the broker acknowledges at once."""

    sent: list[Sent] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: dict[str, bytes] | None = None,
    ) -> Any:
        self.sent.append(Sent(topic, key, value, dict(headers or {})))
        acknowledged = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    async def drain(self) -> None:
        return None

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]


@dataclass
class Message:
    """What the handler reads of a Faust message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] | None = None


class Feed:
    def __init__(
        self,
        policy: Policy,
        partitions: int = 4,
        clock: Any = None,
        store: dict[str, Any] | None = None,
    ) -> None:
        self.store: dict[str, Any] = {} if store is None else store
        self.outbox = Recorder()
        self.settings = SETTINGS.with_(partitions=partitions)
        self.worker = Worker(
            self.settings, policy, state=self.store, outbox=self.outbox, clock=clock
        )
        self.partitions = partitions
        self.offsets: dict[int, Iterator[int]] = {p: itertools.count() for p in range(partitions)}
        self.control_offsets = {p: itertools.count() for p in range(partitions)}
        self._relayed = 0  # control-topic sends already delivered back

    @property
    def engine(self) -> Any:
        return self.worker.engine

    @property
    def processor(self) -> Any:
        return self.worker.processor

    def recover(self) -> Feed:
        """Rebuild the worker's state from its table, as after a restart."""
        self.processor.recover(list(self.store))
        return self

    def partition_of(self, key: str | None) -> int:
        return 0 if key is None else sum(key.encode()) % self.partitions

    def handle(self, message: Message) -> Output:
        return asyncio.run(self.worker.handle(message))

    def declarations(self, key: str | None, raw: bytes) -> list[Output]:
        """One message on the declarations topic, then what it re-keyed onto the
        control topic, delivered back."""
        p = self.partition_of(key)
        topic = self.settings.topic_declarations
        message = Message(topic, p, next(self.offsets[p]), key.encode() if key else None, raw)
        return [self.handle(message), *self._relay()]

    def _relay(self) -> list[Output]:
        outs = []
        control = self.settings.topic_control
        for sent in self.outbox.sent[self._relayed :]:
            self._relayed += 1
            if sent.topic == control and sent.key is not None:
                q = self.partition_of(sent.key.decode())
                message = Message(
                    control, q, next(self.control_offsets[q]), sent.key, sent.value, sent.headers
                )
                outs.append(self.handle(message))
        return outs

    def control(self, partition: int, raw: bytes) -> Output:
        topic = self.settings.topic_control
        offset = next(self.control_offsets[partition])
        return self.handle(Message(topic, partition, offset, None, raw))

    def tick(self) -> list[Output]:
        return [self.control(p, tick_control()) for p in range(self.partitions)]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return [orjson.loads(s.value) for s in self.outbox.to(self.settings.topic_alerts)]

    @property
    def dead_letters(self) -> list[Sent]:
        return self.outbox.to(self.settings.topic_rejected)

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
