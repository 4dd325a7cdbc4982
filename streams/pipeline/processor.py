"""Between the Faust agents and the engine: what to persist, what to publish.

No Faust import here: the agents hand each message to ``Processor`` and write what
it returns. Per message it decodes, calls the engine, dead-letters what the engine
cannot judge (rolling the provider back to the table when processing raised), and
asks the state table (``streams/store/layout.py``: keys, journal, checkpoints,
recovery) for the writes that persist what changed.

Idempotency: a declarations message whose offset is at or below the owner's
``applied`` offset for that partition was already applied before a crash or
rebalance and is skipped whole, so reprocessing never changes a count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.domain.acceptance import DeadLetter, mask_bsn
from streams.domain.contracts import ContractError, parse_contract
from streams.domain.engine import Effects, Engine
from streams.domain.model import PROCESSING_ERROR, Counts
from streams.domain.rekey import is_agb, split_unkeyed
from streams.domain.state import ProviderState
from streams.store import codec
from streams.store.codec import Journal
from streams.store.layout import CHECKPOINT_CHUNK as CHECKPOINT_CHUNK
from streams.store.layout import CHECKPOINT_SEGMENTS as CHECKPOINT_SEGMENTS
from streams.store.layout import Chunk as Chunk
from streams.store.layout import (
    JournalLog,
    StateTable,
    Store,
    Value,
    contract_key,
    encoded,
    ledger_key,
)

log = logging.getLogger("claimwatch.worker")

# The largest message the worker decodes (its Kafka clients are set up for it, and
# so are the topics in deploy/). A larger one, which a broker without that limit
# (tansu) delivers, is dead-lettered whole as ``message_too_large``.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MESSAGE_TOO_LARGE = "message_too_large"


@dataclass(slots=True)
class Output:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # table writes, in order; None deletes the key (a changelog tombstone); a Chunk
    # is encoded when written, in this order (``encoded``)
    writes: dict[str, Value] = field(default_factory=dict)
    # publish the dirty provider statuses and wait for the broker (a tick, a status flush)
    flush: bool = False
    event_times: list[float] = field(default_factory=list)
    lines: int = 0
    # The lines of this message by outcome, whatever owns their count (a provider's
    # state or the partition's ledger): what this process counts in its metrics.
    outcomes: Counts | None = None
    skipped: bool = False
    # provider → pseudonymised batch of an unkeyed message's lines, to re-send keyed
    rekey: dict[str, bytes] = field(default_factory=dict)
    # A tick was handled: True a final one, False the timer's (the worker then judges
    # the partition's regions, streams/pipeline/regions.py)
    tick: bool | None = None

    def encoded(self) -> Iterator[tuple[str, bytes | None]]:
        """The table writes in order, checkpoint chunks encoded as they come: write
        each before taking the next."""
        return encoded(self.writes.items())


class Processor:
    """One worker's messages in, what to publish and write out (``Output``)."""

    def __init__(
        self, engine: Engine, store: Store, peers: Callable[[], dict[int, Any]] | None = None
    ) -> None:
        self.engine = engine
        # Every state the engine makes from now on records its changes for the table.
        engine.journals = Journal
        self.table = StateTable(store)
        self.peers = peers
        self.declarations_done: dict[int, int] = {}  # partition → last declarations offset seen
        self.pending_ticks: dict[int, int] = {}  # partition → declarations offset a tick waits for
        self.pending_flush: dict[int, int] = {}  # ... and a status flush
        self.owner_partition: dict[str, int] = {}
        self.ledgers: dict[int, tuple[Counts, int]] = {}
        # Owners whose provider status (streams/domain/status.py) may have changed
        # since it was last published: marked here, published off the per-message path.
        self.dirty: set[str] = set()

    # The state table's settings and bookkeeping, as the worker and tests set them.
    @property
    def store(self) -> Store:
        return self.table.store

    @store.setter
    def store(self, store: Store) -> None:
        self.table.store = store

    @property
    def logs(self) -> dict[str, JournalLog]:
        return self.table.logs

    @property
    def garbage(self) -> dict[str, list[str]]:
        return self.table.garbage

    @property
    def checkpoint_segments(self) -> int:
        return self.table.checkpoint_segments

    @checkpoint_segments.setter
    def checkpoint_segments(self, n: int) -> None:
        self.table.checkpoint_segments = n

    @property
    def checkpoint_tail_ratio(self) -> int:
        return self.table.checkpoint_tail_ratio

    @checkpoint_tail_ratio.setter
    def checkpoint_tail_ratio(self, n: int) -> None:
        self.table.checkpoint_tail_ratio = n

    @property
    def checkpoint_chunk(self) -> int:
        return self.table.checkpoint_chunk

    @checkpoint_chunk.setter
    def checkpoint_chunk(self, n: int) -> None:
        self.table.checkpoint_chunk = n

    @property
    def max_record_bytes(self) -> int | None:
        return self.table.max_record_bytes

    @max_record_bytes.setter
    def max_record_bytes(self, n: int | None) -> None:
        self.table.max_record_bytes = n

    def chunk_entries(self, st: ProviderState) -> int:
        return self.table.chunk_entries(st)

    # -- recovery -----------------------------------------------------------
    def load_owner(self, owner: str) -> ProviderState | None:
        """Rebuild an owner's state from the table, if the table has it."""
        loaded = self.table.load(owner, self.engine.new_state)
        if loaded is None:
            return None
        st, partition = loaded
        self.engine.providers[owner] = st
        self.owner_partition[owner] = partition
        return st

    def recover(self, keys: Iterable[str], partitions: set[int] | None = None) -> int:
        """Rebuild the owners and ledgers of ``partitions`` (all if None), and every
        contract, from the (local) table.

        The table is what counts: an owner already in memory is rebuilt too (after
        quick successive rebalances Faust was seen to complete a recovery twice for
        one assignment, the first time right after the assignment). A memory store
        also holds the keys of partitions this worker does not own (standbys, and
        partitions it owned before a rebalance, as they were then): their owners are
        dropped, not loaded, or a stale copy would stand in for the state another
        worker moved on."""
        if partitions is not None:
            self.forget_partitions(set(self.owner_partition.values()) - partitions)
        found = self.table.recover(keys, partitions, self.engine.new_state)
        for owner, (st, partition) in found.owners.items():
            self.engine.providers[owner] = st
            self.owner_partition[owner] = partition
        for contract in found.contracts:
            self.engine.contracts.apply(contract)
        self.ledgers.update(found.ledgers)
        # A crash between a state write and the status publication left the status
        # topic behind: the statuses of the owners rebuilt here are published again
        # (an unchanged one is skipped against what the status reader holds).
        self.dirty.update(self.logs)
        return len(found.owners)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the owners of partitions this worker no longer holds (rebalance)."""
        gone = set()
        for owner, p in list(self.owner_partition.items()):
            if p in partitions:
                self.engine.providers.pop(owner, None)
                self.table.forget(owner)
                del self.owner_partition[owner]
                gone.add(owner)
        self.dirty -= gone  # the next owner publishes them
        for p in partitions:
            self.ledgers.pop(p, None)

    def owners_of(self, partition: int) -> list[str]:
        return [o for o, p in self.owner_partition.items() if p == partition]

    # -- declarations ---------------------------------------------------------
    def _owner_state(self, owner: str, partition: int) -> ProviderState:
        st = self.engine.providers.get(owner)
        if st is None:
            st = self.load_owner(owner)
        if st is None:
            st = self.engine.state(owner)
            self.table.start(st)
        self.owner_partition[owner] = partition
        return st

    def on_declarations(
        self,
        partition: int,
        offset: int,
        key: str | None,
        raw: bytes,
        source: str = "d",
        origin: tuple[int, int] | None = None,
    ) -> Output:
        """Process a declarations message; ``source`` tells offsets of the declarations
        topic (``d``) from those of re-keyed messages on the control topic (``c``),
        whose ``origin`` is the (partition, offset) of the unkeyed message they came
        from: a copy re-sent after a crash is skipped, not counted twice."""
        out = Output()
        if source == "d":
            self.declarations_done[partition] = offset
        if key is None or not is_agb(key):
            # A key that is no AGB code places nothing: never a state key (a
            # producer's garbage keys would each add a provider to memory).
            self._unkeyed(partition, offset, raw, out)
        else:
            st = self._owner_state(key, partition)
            mark = f"{source}{partition}"
            came = f"r{origin[0]}" if origin is not None else None
            if st.applied.get(mark, -1) >= offset or (
                came is not None and st.applied.get(came, -1) >= origin[1]  # type: ignore[index]
            ):
                out.skipped = True
            else:
                before = st.counts.copy()
                if len(raw) > MAX_MESSAGE_BYTES:
                    fx = self._too_large(raw, key)
                else:
                    fx = Effects()
                    try:
                        self.engine.process(raw, key, fx)
                    except Exception as exc:  # noqa: BLE001 - a poison message must not stop the partition
                        fx = self._processing_error(raw, key, partition, exc)
                    st = self.engine.providers[key]
                # Every line of a keyed message is counted by the key's provider (a
                # line of another provider is a batch_provider_mismatch of it); after a
                # processing error, by the state rebuilt from the table, which is the
                # state ``before`` was taken from.
                out.outcomes = st.counts.since(before)
                st.applied[mark] = offset
                if came is not None:
                    st.applied[came] = origin[1]  # type: ignore[index]
                self._collect(fx, out)
                for provider in fx.touched | {key}:
                    self._owner_state(provider, partition)
                    self._persist(provider, out)
        waiting = self.pending_ticks.get(partition)
        if waiting is not None and offset >= waiting:
            del self.pending_ticks[partition]
            self._tick(partition, out)
            out.skipped = False
        waiting = self.pending_flush.get(partition)
        if waiting is not None and offset >= waiting:
            del self.pending_flush[partition]
            out.flush = True
        return out

    def _unkeyed(self, partition: int, offset: int, raw: bytes, out: Output) -> Output:
        """A message without a provider key cannot be placed by provider.

        Its lines are judged here as far as that needs no state (streams/domain/
        rekey.py): rejected ones are dead-lettered and counted in the partition's
        ledger, the others re-sent, pseudonymised and keyed by their provider, on the
        co-partitioned control topic (``out.rekey``). The ledger's offset makes a
        redelivered message a no-op.
        """
        counts, applied = self.ledgers.get(partition, (Counts(), -1))
        if applied >= offset:
            out.skipped = True
            return out
        counted = counts.copy()
        if len(raw) > MAX_MESSAGE_BYTES:  # too large to decode or to re-send
            before = self.engine.unattributed
            self.engine.unattributed = counts
            try:
                self._collect(self._too_large(raw, None), out)
            finally:
                self.engine.unattributed = before
        else:
            fx = Effects()
            try:
                fx.lines, out.rekey = split_unkeyed(
                    self.engine.decoder, raw, counts, fx.dead_letters
                )
            except Exception as exc:  # noqa: BLE001 - a poison message must not stop the partition
                log.error(
                    "unkeyed message on partition %d raised %s; dead-lettered as %s",
                    partition,
                    type(exc).__name__,
                    PROCESSING_ERROR,
                )
                counts.reject(PROCESSING_ERROR)
                fx.dead_letters = [
                    DeadLetter(None, _bounded(mask_bsn(raw)), PROCESSING_ERROR, type(exc).__name__)
                ]
                out.rekey = {}
            self._collect(fx, out)
        # The lines re-sent keyed are counted where they are processed, once.
        out.outcomes = counts.since(counted)
        self.ledgers[partition] = (counts, offset)
        out.writes[ledger_key(partition)] = codec.encode_ledger(counts, offset)
        return out

    def _processing_error(self, raw: bytes, key: str, partition: int, exc: Exception) -> Effects:
        """A message whose processing raised after its lines reached the state.

        The provider's state in memory may hold part of the message: it is rebuilt
        from the table, which holds everything up to the previous message, and the
        message is dead-lettered whole as ``processing_error`` with the exception's
        class (never its text, which may quote the input), so the partition goes on.
        Only the key's provider can have been touched: a line of another provider
        is a ``batch_provider_mismatch`` before it reaches any state.
        """
        log.error(
            "message of provider %s on partition %d raised %s; dead-lettered as %s",
            key,
            partition,
            type(exc).__name__,
            PROCESSING_ERROR,
        )
        self.engine.providers.pop(key, None)
        self.logs.pop(key, None)
        st = self._owner_state(key, partition)
        st.counts.reject(PROCESSING_ERROR)
        fx = Effects()
        fx.touched.add(key)
        fx.dead_letters.append(
            DeadLetter(key, _bounded(mask_bsn(raw)), PROCESSING_ERROR, type(exc).__name__)
        )
        return fx

    def _too_large(self, raw: bytes, key: str | None) -> Effects:
        """A message above MAX_MESSAGE_BYTES is not decoded: dead-lettered whole,
        counted for its key's provider (or the partition's ledger)."""
        fx = Effects()
        fx.dead_letters.append(
            DeadLetter(
                key,
                mask_bsn(raw),
                MESSAGE_TOO_LARGE,
                f"message of {len(raw)} bytes; at most {MAX_MESSAGE_BYTES} are read",
            )
        )
        if key is None:
            self.engine.unattributed.reject(MESSAGE_TOO_LARGE)
        else:
            self.engine.state(key).counts.reject(MESSAGE_TOO_LARGE)
            fx.touched.add(key)
        return fx

    def _collect(self, fx: Effects, out: Output) -> None:
        out.alerts.extend(fx.alerts)
        out.dead_letters.extend(fx.dead_letters)
        out.event_times.extend(fx.event_times)
        out.lines += fx.lines

    def _persist(self, owner: str, out: Output) -> None:
        st = self.engine.providers[owner]
        for key, value in self.table.persist(st, self.owner_partition[owner]):
            _put(out, key, value)
        self.dirty.add(owner)

    # -- control: contracts and ticks -----------------------------------------
    def on_control(self, partition: int, raw: bytes) -> Output:
        out = Output()
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return out
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "contract":
            try:
                contract = parse_contract(msg["contract"])
            except (ContractError, KeyError):
                return out
            fx = self.engine.apply_contract(contract)
            if self.engine.contracts.get(contract.provider, contract.year) is contract:
                key = contract_key(contract.provider, contract.year)
                out.writes[key] = codec.encode_contract(contract)
            self._collect(fx, out)
            if contract.provider in self.engine.providers:
                self.dirty.add(contract.provider)  # ceiling and contract fields of its status
                if fx.alerts:
                    self.owner_partition.setdefault(contract.provider, partition)
                    self._persist(contract.provider, out)
        elif kind == "tick":
            # A replay's final tick names the declarations offset it must follow:
            # the two topics are consumed independently, so it may arrive first.
            after = (
                msg.get("after", {}).get(str(partition))
                if isinstance(msg.get("after"), dict)
                else None
            )
            if isinstance(after, int) and self.declarations_done.get(partition, -1) < after:
                self.pending_ticks[partition] = after
            else:
                # the wall-clock timer's tick evaluates only the rules on peers (SPEC §8.1)
                self._tick(partition, out, only_peers=msg.get("final") is not True)
        elif kind == "status_flush":
            # End of input, first phase: the statuses of this partition's providers are
            # published once its declarations up to ``after`` are processed.
            after = _after(msg, partition)
            if after is not None and self.declarations_done.get(partition, -1) < after:
                self.pending_flush[partition] = after
            else:
                out.flush = True
        return out

    def _tick(self, partition: int, out: Output, only_peers: bool = False) -> None:
        """A tick: a final one (the end of a replay's input; one that waited for its
        ``after`` offset is one) evaluates every structural rule, another only
        those that read other providers' state."""
        peers = self.peers() if self.peers is not None else None
        fx = self.engine.tick(
            peers=peers, providers=self.owners_of(partition), only_peers=only_peers
        )
        self._collect(fx, out)
        for owner in sorted(fx.touched):
            self._persist(owner, out)
        out.flush = True
        out.tick = not only_peers


def _bounded(payload: bytes) -> bytes:
    return payload if len(payload) <= MAX_MESSAGE_BYTES else payload[:MAX_MESSAGE_BYTES]


def _put(out: Output, key: str, value: Value) -> None:
    """Add a table write at the end of the message's writes (order is what makes a
    crash between two writes safe: chunks, then header, then tombstones)."""
    out.writes.pop(key, None)
    out.writes[key] = value


def contract_control(contract_obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "contract", "contract": contract_obj})


def tick_control(final: bool = False, after: dict[int, int] | None = None) -> bytes:
    """A tick; ``after`` maps partition → declarations offset to process first."""
    msg: dict[str, Any] = {"type": "tick", "final": final}
    if after:
        msg["after"] = {str(p): o for p, o in after.items()}
    return orjson.dumps(msg)


def status_flush_control(after: dict[int, int] | None = None) -> bytes:
    """A status flush (the first phase of a replay's end, streams/replay/producer.py);
    ``after`` as for ticks."""
    msg: dict[str, Any] = {"type": "status_flush"}
    if after:
        msg["after"] = {str(p): o for p, o in after.items()}
    return orjson.dumps(msg)


def tick_of(raw: bytes) -> bool | None:
    """Whether a control message is a final tick (True), another tick (False), or no
    tick at all (None)."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict) or msg.get("type") != "tick":
        return None
    return msg.get("final") is True


def _after(msg: dict[str, Any], partition: int) -> int | None:
    after = msg.get("after")
    value = after.get(str(partition)) if isinstance(after, dict) else None
    return value if isinstance(value, int) else None
