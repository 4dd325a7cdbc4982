"""The state table's layout: which keys hold what, and how an owner is written and read.

State lives in one table (a ``MutableMapping[str, bytes]``) per worker, keyed so
that everything of a provider sits in the provider's partition (values: see
``streams/store/codec.py``):

``h:<owner>``          header: counters, alert states, watermark, applied offsets,
                       where the journal starts and ends, which checkpoint is current
``j:<owner>:<n>``      journal segment n: the line-index changes of one message
``k:<owner>:<g>:<i>``  chunk i of checkpoint g: line index, event ids, client maps, indicators
``c:<agb>:<year>``     the contract version in force
``l:<partition>``      ledger of a partition: rejections of messages without a key
``a:<partition>``      alert outbox of a partition: the transitions sent and not yet
                       known to be acknowledged (streams/kafka/commit.py, step 2)

Only the changes of a message are written (one journal segment, one header), never
the whole provider, so a write costs the size of the message, not of the state.

The journal is bounded by checkpoints: once an owner's journal holds
``CHECKPOINT_SEGMENTS`` segments *and* at least ``1/CHECKPOINT_TAIL_RATIO`` as many
records as a checkpoint would hold keys, all kinds counted (so a checkpoint's size is
paid for by the journal it replaces), and whenever the retention policy dropped a service year, the
message writes the owner's whole state as a new checkpoint instead of a segment,
then the header that points at it, then tombstones (``None`` values: the agent
deletes those keys) for the old segments and the previous checkpoint. The compacted
changelog keeps one checkpoint and a short journal per owner; recovery reads the
checkpoint, then the journal after it, then the header. Keys a crash between those
writes left behind (no header points at them) are found at recovery and deleted with
the owner's next write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field

import orjson

from streams.domain.contracts import Contract
from streams.domain.model import Counts
from streams.domain.state import ProviderState, Replay
from streams.store import codec
from streams.store.codec import Journal

Store = MutableMapping[str, bytes]

CHECKPOINT_SEGMENTS = 64  # journal segments of an owner before a checkpoint is considered
# ...and journal records >= checkpoint keys / this ratio. A journal record (a debit:
# line, event, entry, client, about 46 bytes encoded) is worth about three checkpoint
# keys (one map entry 21, one set member 11); a line's checkpoint keys are its index
# entry, event id, client and its share of the distinct-client maps, about four. So
# a checkpoint is written once the journal holds about half as many records as the
# index has entries, and costs about three times the journal it replaces.
CHECKPOINT_TAIL_RATIO = 8
# Index entries (and event ids) per checkpoint record at most: about 1.1 MB. Fewer
# where the changelog's max.message.bytes asks for it (``StateTable.chunk_entries``).
CHECKPOINT_CHUNK = 50_000
# The most a checkpoint entry takes in a chunk: a line-index, client or distinct-client
# entry is two int64 in base64 (21⅓ bytes), an event id one (10⅔); the rest of the
# JSON is per year, kind and map, not per entry.
CHECKPOINT_ENTRY_BYTES = 22
# Room kept in a chunk for its JSON framing, and below the topic's limit for the
# record batch's own headers.
CHECKPOINT_MARGIN_BYTES = 16 * 1024
MIN_CHUNK_ENTRIES = 1_000  # below this, a chunk is mostly framing: the limit is wrong


def header_key(owner: str) -> str:
    return f"h:{owner}"


def segment_key(owner: str, n: int) -> str:
    return f"j:{owner}:{n}"


def chunk_key(owner: str, generation: int, i: int) -> str:
    return f"k:{owner}:{generation}:{i}"


def contract_key(provider: str, year: int) -> str:
    return f"c:{provider}:{year}"


def ledger_key(partition: int) -> str:
    return f"l:{partition}"


def outbox_key(partition: int) -> str:
    return f"a:{partition}"


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

    def fields(self) -> dict[str, int]:
        return {
            "end": self.end,
            "base": self.base,
            "generation": self.generation,
            "chunks": self.chunks,
            "records": self.records,
        }


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


Value = bytes | Chunk | None  # a table write; None deletes the key (a tombstone)


@dataclass(slots=True)
class Recovered:
    """What ``StateTable.recover`` read: owners (state, partition), contracts, ledgers."""

    owners: dict[str, tuple[ProviderState, int]] = field(default_factory=dict)
    contracts: list[Contract] = field(default_factory=list)
    ledgers: dict[int, tuple[Counts, int]] = field(default_factory=dict)


class StateTable:
    """The state table of one worker: reads owners from it and says what to write.

    It never writes the table itself: ``persist`` returns the writes of one owner in
    the order they must be made (the agent makes them), since the order is what makes
    a crash between two writes safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
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

    # -- reading ------------------------------------------------------------
    def load(
        self, owner: str, new_state: Callable[[str], ProviderState]
    ) -> tuple[ProviderState, int] | None:
        """An owner's state and partition rebuilt from the table, if the table has it:
        its checkpoint, then the journal segments after it, then the header."""
        raw = self.store.get(header_key(owner))
        if raw is None:
            return None
        header = codec.decode(raw)
        codec.check_format(header, owner)
        log = JournalLog(**codec.log_of(header))
        st = new_state(owner)
        for i in range(log.chunks):
            chunk = self.store.get(chunk_key(owner, log.generation, i))
            if chunk is None:  # pragma: no cover - written before its header
                raise RuntimeError(f"checkpoint chunk {i} of {owner} missing from the state table")
            codec.restore_checkpoint(st, codec.decode(chunk))
        replay = Replay(st)
        for n in range(log.base, log.end):
            segment = self.store.get(segment_key(owner, n))
            if segment is None:  # pragma: no cover - written before its header
                raise RuntimeError(f"journal segment {n} of {owner} missing from the state table")
            codec.replay(codec.decode(segment), replay)
        codec.restore_header(st, header)
        st.journal = Journal()
        self.logs[owner] = log
        return st, int(header["partition"])

    def recover(
        self,
        keys: Iterable[str],
        partitions: set[int] | None,
        new_state: Callable[[str], ProviderState],
    ) -> Recovered:
        """The owners and ledgers of ``partitions`` (all if None), and every contract,
        read from the table whose keys are ``keys``. Unreferenced journal and
        checkpoint keys are looked for afresh, among the owners loaded here only (an
        owner not loaded has no log to judge its keys by)."""
        self.garbage.clear()
        found = Recovered()
        keys = list(keys)
        for key in keys:
            if key.startswith("h:"):
                if self._owned(key, partitions):
                    loaded = self.load(key[2:], new_state)
                    if loaded is not None:
                        found.owners[key[2:]] = loaded
            elif key.startswith("c:"):
                raw = self.store.get(key)
                if raw is not None:
                    found.contracts.append(codec.decode_contract(raw))
            elif key.startswith("l:"):
                raw = self.store.get(key)
                if raw is not None and (partitions is None or int(key[2:]) in partitions):
                    found.ledgers[int(key[2:])] = codec.decode_ledger(raw)
        for key in keys:
            owner = unreferenced(key, self.logs)
            if owner is not None and (partitions is None or owner in self.logs):
                self.garbage.setdefault(owner, []).append(key)
        return found

    def _owned(self, key: str, partitions: set[int] | None) -> bool:
        if partitions is None:
            return True
        raw = self.store.get(key)
        return raw is not None and codec.decode(raw)["partition"] in partitions

    def start(self, st: ProviderState) -> None:
        """A new owner, not in the table yet: it records its changes from now on."""
        st.journal = Journal()
        self.logs[st.provider] = JournalLog()

    def forget(self, owner: str) -> None:
        """Let an owner go (another worker holds it, or it is rebuilt from the table)."""
        self.logs.pop(owner, None)
        self.garbage.pop(owner, None)

    # -- writing ------------------------------------------------------------
    def persist(self, st: ProviderState, partition: int) -> list[tuple[str, Value]]:
        """The writes that persist what changed in ``st`` since its last ``persist``:
        garbage tombstones, a journal segment or a whole checkpoint, the header, then
        tombstones for what the header no longer points at."""
        owner = st.provider
        log = self.logs.get(owner)
        if log is None:
            log = self.logs[owner] = JournalLog()
        writes: list[tuple[str, Value]] = [(k, None) for k in self.garbage.pop(owner, ())]
        journal = st.journal
        if journal is not None and not isinstance(journal, Journal):
            raise TypeError(f"provider {owner} records into a {type(journal).__name__}")
        tombstones: list[str] = []
        if journal:
            st.journal = Journal()
            log.records += len(journal)
        if st.dropped or (
            journal
            and log.end + 1 - log.base >= self.checkpoint_segments
            and log.records * self.checkpoint_tail_ratio >= codec.checkpoint_entries(st)
        ):
            # The checkpoint replaces the segment this message would have written.
            st.dropped = False
            tombstones = [segment_key(owner, n) for n in range(log.base, log.end)]
            tombstones += [chunk_key(owner, log.generation, i) for i in range(log.chunks)]
            log.generation += 1
            # Encoded when written (Chunk), from the state as it is now: the writes
            # of a message are made before the next message is processed.
            entries = self.chunk_entries(st)
            n = codec.checkpoint_chunks(st, entries)
            source = Chunk(codec.dumps(c) for c in codec.iter_checkpoint(st, entries))
            writes += [(chunk_key(owner, log.generation, i), source) for i in range(n)]
            log.base, log.chunks, log.records = log.end, n, 0
        elif journal:
            writes.append((segment_key(owner, log.end), codec.dumps(journal.pack())))
            log.end += 1
        header = codec.header(st, log.fields(), partition)
        writes.append((header_key(owner), codec.dumps(header)))
        # only once the header no longer points at them
        writes += [(key, None) for key in tombstones]
        return writes

    def chunk_entries(self, st: ProviderState) -> int:
        """Entries per checkpoint chunk of ``st``, so that every chunk stays below the
        changelog's max.message.bytes: the first chunk also carries the indicators of
        every year, whose size is measured, not assumed."""
        if self.max_record_bytes is None:
            return self.checkpoint_chunk
        years = len(orjson.dumps(codec.years_json(st)))
        room = self.max_record_bytes - CHECKPOINT_MARGIN_BYTES - years
        if room < CHECKPOINT_ENTRY_BYTES * MIN_CHUNK_ENTRIES:
            raise RuntimeError(
                f"the indicators of provider {st.provider} take {years} bytes: a checkpoint "
                f"chunk cannot stay below the changelog's max.message.bytes "
                f"({self.max_record_bytes}); raise it (docs/operations.md, 'Topics')"
            )
        return min(self.checkpoint_chunk, room // CHECKPOINT_ENTRY_BYTES)


def unreferenced(key: str, logs: dict[str, JournalLog]) -> str | None:
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


def encoded(writes: Iterable[tuple[str, Value]]) -> Iterator[tuple[str, bytes | None]]:
    """Table writes in order, checkpoint chunks encoded as they come: write each
    before taking the next."""
    for key, value in writes:
        yield key, value.encode() if isinstance(value, Chunk) else value
