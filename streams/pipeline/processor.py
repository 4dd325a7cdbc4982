"""Between the Faust agents and the engine: what to persist, what to publish.

No Faust import here: the agents hand each message to ``Processor`` and write what
it returns. State lives in one table (a ``MutableMapping[str, bytes]``) per worker,
keyed so that everything of a provider sits in the provider's partition:

``h:<owner>``          header: counters, alert states, watermark, applied offsets,
                       where the journal starts and ends, which checkpoint is current
``j:<owner>:<n>``      journal segment n: the line-index changes of one message
``k:<owner>:<g>:<i>``  chunk i of checkpoint g: line index, event ids and indicators
``c:<agb>:<year>``     the contract version in force
``l:<partition>``      ledger of a partition: rejections of messages without a key

Only the changes of a message are written (one journal segment, one header), never
the whole provider, so a write costs the size of the message, not of the state.

The journal is bounded by checkpoints: once an owner's journal holds
``CHECKPOINT_SEGMENTS`` segments *and* at least ``1/CHECKPOINT_TAIL_RATIO`` as many
records as its line index has entries (so a checkpoint's size is paid for by the
journal it replaces), and whenever the retention policy dropped a service year, the
message writes the owner's whole state as a new checkpoint instead of a segment,
then the header that points at it, then tombstones (``None`` values: the agent
deletes those keys) for the old segments and the previous checkpoint. The compacted
changelog keeps one checkpoint and a short journal per owner; recovery reads the
checkpoint, then the journal after it. Keys a crash between those writes left behind
(no header points at them) are found at recovery and deleted with the owner's next
write.

Idempotency: a declarations message whose offset is at or below the owner's
``applied`` offset for that partition was already applied before a crash or
rebalance and is skipped whole, so reprocessing never changes a count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.domain.acceptance import DeadLetter, mask_bsn
from streams.domain.contracts import Contract, ContractError, parse_contract
from streams.domain.engine import Effects, Engine
from streams.domain.model import PROCESSING_ERROR, Counts
from streams.domain.rekey import is_agb, split_unkeyed
from streams.domain.state import Journal, ProviderState

Store = MutableMapping[str, bytes]
log = logging.getLogger("claimwatch.worker")

# The largest message the worker decodes (its Kafka clients are set up for it, and
# so are the topics in deploy/). A larger one, which a broker without that limit
# (tansu) delivers, is dead-lettered whole as ``message_too_large``.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MESSAGE_TOO_LARGE = "message_too_large"

# 2: journal records and line index per service year, checkpoints; 3: identifiers
# as 60-bit keys, checkpoints as packed arrays; 4: journal segments as packed arrays;
# 5: 16 flag bits in a packed line-index entry
STATE_FORMAT = 5
CHECKPOINT_SEGMENTS = 64  # journal segments of an owner before a checkpoint is considered
CHECKPOINT_TAIL_RATIO = 4  # ...and journal records >= index entries / this ratio
# Index entries (and event ids) per checkpoint record at most: about 1.1 MB. Fewer
# where the changelog's max.message.bytes asks for it (``chunk_entries``).
CHECKPOINT_CHUNK = 50_000
# The most a checkpoint entry takes in a chunk: a line-index or client entry is two
# int64 in base64 (21⅓ bytes), an event id one (10⅔); the rest of the JSON is per
# year and kind, not per entry.
CHECKPOINT_ENTRY_BYTES = 22
# Room kept in a chunk for its JSON framing, and below the topic's limit for the
# record batch's own headers.
CHECKPOINT_MARGIN_BYTES = 16 * 1024
MIN_CHUNK_ENTRIES = 1_000  # below this, a chunk is mostly framing: the limit is wrong


@dataclass(slots=True)
class JournalLog:
    """Where an owner's persisted state lies: checkpoint ``generation`` (``chunks``
    records, none when 0) plus journal segments ``base`` .. ``end`` - 1 holding
    ``records`` journal records."""

    end: int = 0
    base: int = 0
    generation: int = 0
    chunks: int = 0
    records: int = 0


class Chunk:
    """A checkpoint chunk's table value, encoded only when it is written.

    The chunks of one checkpoint share one generator and are encoded in key order,
    one at a time, so the writer can hand each to the changelog before the next is
    made: a large provider's checkpoint (tens of MB at a million lines) then never
    sits in memory whole, as JSON, base64 and producer copies at once."""

    __slots__ = ("_source",)

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source

    def encode(self) -> bytes:
        return next(self._source)


@dataclass(slots=True)
class Output:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # table writes, in order; None deletes the key (a changelog tombstone); a Chunk
    # is encoded when written, in this order (``encoded``)
    writes: dict[str, bytes | Chunk | None] = field(default_factory=dict)
    # publish the dirty provider statuses and wait for the broker (a tick, a status flush)
    flush: bool = False
    event_times: list[float] = field(default_factory=list)
    lines: int = 0
    skipped: bool = False
    # provider → pseudonymised batch of an unkeyed message's lines, to re-send keyed
    rekey: dict[str, bytes] = field(default_factory=dict)

    def encoded(self) -> Iterator[tuple[str, bytes | None]]:
        """The table writes in order, checkpoint chunks encoded as they come: write
        each before taking the next."""
        for key, value in self.writes.items():
            yield key, value.encode() if isinstance(value, Chunk) else value


class Processor:
    def __init__(
        self, engine: Engine, store: Store, peers: Callable[[], dict[int, Any]] | None = None
    ) -> None:
        self.engine = engine
        self.store = store
        self.peers = peers
        self.declarations_done: dict[int, int] = {}  # partition → last declarations offset seen
        self.pending_ticks: dict[int, int] = {}  # partition → declarations offset a tick waits for
        self.pending_flush: dict[int, int] = {}  # ... and a status flush
        self.logs: dict[str, JournalLog] = {}
        # owner → keys of the table its header no longer points at (left by a crash
        # between a checkpoint's writes): deleted with the owner's next write
        self.garbage: dict[str, list[str]] = {}
        self.checkpoint_segments = CHECKPOINT_SEGMENTS
        self.checkpoint_tail_ratio = CHECKPOINT_TAIL_RATIO
        self.checkpoint_chunk = CHECKPOINT_CHUNK
        # The changelog's max.message.bytes, read from the broker at the first
        # recovery (streams/kafka/limits.py); None: not known, chunks of
        # ``checkpoint_chunk`` entries.
        self.max_record_bytes: int | None = None
        self.owner_partition: dict[str, int] = {}
        self.ledgers: dict[int, tuple[Counts, int]] = {}
        # Owners whose provider status (streams/domain/status.py) may have changed
        # since it was last published: marked here, published off the per-message path.
        self.dirty: set[str] = set()

    # -- recovery -----------------------------------------------------------
    def load_owner(self, owner: str) -> ProviderState | None:
        """Rebuild an owner's state from the table, if the table has it: its
        checkpoint, then the journal segments after it, then the header."""
        raw = self.store.get(f"h:{owner}")
        if raw is None:
            return None
        header = _decode(raw)
        if header.get("format") != STATE_FORMAT:
            raise RuntimeError(
                f"the state table holds provider {owner} in the format of an earlier "
                "claimwatch version; rebuild state under a new CLAIMWATCH_APP_ID "
                "(docs/operations.md, 'Recovering')"
            )
        log = JournalLog(*header["log"])
        st = self.engine.new_state(owner)
        st.journal = Journal()
        for i in range(log.chunks):
            chunk = self.store.get(f"k:{owner}:{log.generation}:{i}")
            if chunk is None:  # pragma: no cover - written before its header
                raise RuntimeError(f"checkpoint chunk {i} of {owner} missing from the state table")
            st.restore_checkpoint(_decode(chunk))
        for n in range(log.base, log.end):
            segment = self.store.get(f"j:{owner}:{n}")
            if segment is None:  # pragma: no cover - written before its header
                raise RuntimeError(f"journal segment {n} of {owner} missing from the state table")
            st.replay_journal(_decode(segment))
        st.restore_header(header)
        self.engine.providers[owner] = st
        self.logs[owner] = log
        self.owner_partition[owner] = header["partition"]
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
        worker moved on. Unreferenced journal and checkpoint keys are looked for afresh,
        among the owners loaded here only (an owner not loaded has no log to judge
        its keys by)."""
        if partitions is not None:
            self.forget_partitions(set(self.owner_partition.values()) - partitions)
        self.garbage.clear()
        n = 0
        keys = list(keys)
        for key in keys:
            if key.startswith("h:"):
                if self._owned(key, partitions):
                    self.load_owner(key[2:])
                    n += 1
            elif key.startswith("c:"):
                raw = self.store.get(key)
                if raw is not None:
                    self.engine.contracts.apply(Contract(*_decode(raw)))
            elif key.startswith("l:"):
                raw = self.store.get(key)
                if raw is not None and (partitions is None or int(key[2:]) in partitions):
                    counts, offset = _decode(raw)
                    self.ledgers[int(key[2:])] = (Counts.from_dict(counts), offset)
        for key in keys:
            owner = _unreferenced(key, self.logs)
            if owner is not None and (partitions is None or owner in self.logs):
                self.garbage.setdefault(owner, []).append(key)
        # A crash between a state write and the status publication left the status
        # topic behind: the statuses of the owners rebuilt here are published again
        # (an unchanged one is skipped against what the status reader holds).
        self.dirty.update(self.logs)
        return n

    def _owned(self, header_key: str, partitions: set[int] | None) -> bool:
        if partitions is None:
            return True
        raw = self.store.get(header_key)
        return raw is not None and _decode(raw)["partition"] in partitions

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the owners of partitions this worker no longer holds (rebalance)."""
        gone = set()
        for owner, p in list(self.owner_partition.items()):
            if p in partitions:
                self.engine.providers.pop(owner, None)
                self.logs.pop(owner, None)
                self.garbage.pop(owner, None)
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
            st.journal = Journal()
            self.logs[owner] = JournalLog()
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
                if len(raw) > MAX_MESSAGE_BYTES:
                    fx = self._too_large(raw, key)
                else:
                    fx = Effects()
                    try:
                        self.engine.process(raw, key, fx)
                    except Exception as exc:  # noqa: BLE001 - a poison message must not stop the partition
                        fx = self._processing_error(raw, key, partition, exc)
                    st = self.engine.providers[key]
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
        self.ledgers[partition] = (counts, offset)
        out.writes[f"l:{partition}"] = orjson.dumps([counts.as_dict(), offset])
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
        log = self.logs.get(owner)
        if log is None:
            log = self.logs[owner] = JournalLog()
        for key in self.garbage.pop(owner, ()):  # unreferenced: safe to delete first
            _put(out, key, None)
        journal = st.journal
        tombstones: list[str] = []
        if journal:
            st.journal = Journal()
            log.records += len(journal)
        if st.dropped or (
            journal
            and log.end + 1 - log.base >= self.checkpoint_segments
            and log.records * self.checkpoint_tail_ratio >= st.index_entries()
        ):
            # The checkpoint replaces the segment this message would have written.
            st.dropped = False
            tombstones = [f"j:{owner}:{n}" for n in range(log.base, log.end)]
            tombstones += [f"k:{owner}:{log.generation}:{i}" for i in range(log.chunks)]
            log.generation += 1
            # Encoded when written (Chunk), from the state as it is now: the writes
            # of a message are made before the next message is processed.
            entries = self.chunk_entries(st)
            n = st.checkpoint_chunks(entries)
            source = Chunk(orjson.dumps(c) for c in st.iter_checkpoint(entries))
            for i in range(n):
                _put(out, f"k:{owner}:{log.generation}:{i}", source)
            log.base, log.chunks, log.records = log.end, n, 0
        elif journal:
            _put(out, f"j:{owner}:{log.end}", orjson.dumps(journal.pack()))
            log.end += 1
        header = st.header()
        header["format"] = STATE_FORMAT
        header["log"] = [log.end, log.base, log.generation, log.chunks, log.records]
        header["partition"] = self.owner_partition[owner]
        _put(out, f"h:{owner}", orjson.dumps(header))
        for key in tombstones:  # only once the header no longer points at them
            _put(out, key, None)
        self.dirty.add(owner)

    def chunk_entries(self, st: ProviderState) -> int:
        """Entries per checkpoint chunk of ``st``, so that every chunk stays below the
        changelog's max.message.bytes: the first chunk also carries the indicators of
        every year, whose size is measured, not assumed."""
        if self.max_record_bytes is None:
            return self.checkpoint_chunk
        years = len(orjson.dumps({str(y): ys.to_json() for y, ys in st.years.items()}))
        room = self.max_record_bytes - CHECKPOINT_MARGIN_BYTES - years
        if room < CHECKPOINT_ENTRY_BYTES * MIN_CHUNK_ENTRIES:
            raise RuntimeError(
                f"the indicators of provider {st.provider} take {years} bytes: a checkpoint "
                f"chunk cannot stay below the changelog's max.message.bytes "
                f"({self.max_record_bytes}); raise it (docs/operations.md, 'Topics')"
            )
        return min(self.checkpoint_chunk, room // CHECKPOINT_ENTRY_BYTES)

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
                out.writes[f"c:{contract.provider}:{contract.year}"] = orjson.dumps(
                    list(_contract_fields(contract))
                )
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
                self._tick(partition, out)
        elif kind == "status_flush":
            # End of input, first phase: the statuses of this partition's providers are
            # published once its declarations up to ``after`` are processed.
            after = _after(msg, partition)
            if after is not None and self.declarations_done.get(partition, -1) < after:
                self.pending_flush[partition] = after
            else:
                out.flush = True
        return out

    def _tick(self, partition: int, out: Output) -> None:
        peers = self.peers() if self.peers is not None else None
        fx = self.engine.tick(peers=peers, providers=self.owners_of(partition))
        self._collect(fx, out)
        for owner in sorted(fx.touched):
            self._persist(owner, out)
        out.flush = True


def _unreferenced(key: str, logs: dict[str, JournalLog]) -> str | None:
    """The owner of a journal or checkpoint key its header does not point at."""
    if key.startswith("j:"):
        owner, _, n = key[2:].rpartition(":")
        log = logs.get(owner)
        if log is None or not n.isdigit() or not log.base <= int(n) < log.end:
            return owner
    elif key.startswith("k:"):
        owner, _, rest = key[2:].rpartition(":")
        owner, _, generation = owner.rpartition(":")
        log = logs.get(owner)
        if (
            log is None
            or not (generation.isdigit() and rest.isdigit())
            or int(generation) != log.generation
            or int(rest) >= log.chunks
        ):
            return owner
    return None


def _bounded(payload: bytes) -> bytes:
    return payload if len(payload) <= MAX_MESSAGE_BYTES else payload[:MAX_MESSAGE_BYTES]


def _put(out: Output, key: str, value: bytes | Chunk | None) -> None:
    """Add a table write at the end of the message's writes (order is what makes a
    crash between two writes safe: chunks, then header, then tombstones)."""
    out.writes.pop(key, None)
    out.writes[key] = value


def _decode(value: Any) -> Any:
    """A table value: bytes as written, or already JSON-decoded when Faust restored it
    from the changelog (its changelog reader applies the app's json serializer)."""
    if isinstance(value, bytes | bytearray | memoryview | str):
        return orjson.loads(value)
    return value


def _contract_fields(c: Contract) -> tuple[Any, ...]:
    return (
        c.provider,
        c.year,
        c.ceiling_cents,
        c.purchaser,
        c.provider_name,
        c.region,
        c.version,
        c.updated_at,
    )


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
