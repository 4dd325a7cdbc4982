"""Between the Faust agents and the engine: what to persist, what to publish.

No Faust import here: the agents hand each message to ``Processor`` and write what
it returns. State lives in one table (a ``MutableMapping[str, bytes]``) per worker,
keyed so that everything of a provider sits in the provider's partition:

``h:<owner>``        header: counters, alert states, watermark, applied offsets, journal length
``j:<owner>:<n>``    journal segment n: the line-index changes of one message
``c:<agb>:<year>``   the contract version in force
``l:<partition>``    ledger of a partition: rejections of messages without a key

Only the changes of a message are written (one journal segment, one header), never
the whole provider, so a write costs the size of the message, not of the state.

Idempotency: a declarations message whose offset is at or below the owner's
``applied`` offset for that partition was already applied before a crash or
rebalance and is skipped whole, so reprocessing never changes a count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.domain.acceptance import DeadLetter
from streams.domain.contracts import Contract, ContractError, parse_contract
from streams.domain.engine import Effects, Engine
from streams.domain.model import Counts
from streams.domain.state import ProviderState

Store = MutableMapping[str, bytes]


@dataclass(slots=True)
class Output:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    writes: dict[str, bytes] = field(default_factory=dict)  # table writes, in order
    peers: dict[str, list[int]] = field(default_factory=dict)  # "<agb>:<year>" → [consults, group]
    event_times: list[float] = field(default_factory=list)
    lines: int = 0
    skipped: bool = False
    rekey: tuple[str, bytes] | None = None  # (provider, raw): re-send keyed


class Processor:
    def __init__(
        self, engine: Engine, store: Store, peers: Callable[[], dict[int, Any]] | None = None
    ) -> None:
        self.engine = engine
        self.store = store
        self.peers = peers
        self.declarations_done: dict[int, int] = {}  # partition → last declarations offset seen
        self.pending_ticks: dict[int, int] = {}  # partition → declarations offset a tick waits for
        self.journal_len: dict[str, int] = {}
        self.owner_partition: dict[str, int] = {}
        self.ledgers: dict[int, tuple[Counts, int]] = {}
        self._peers_sent: dict[str, list[int]] = {}

    # -- recovery -----------------------------------------------------------
    def load_owner(self, owner: str) -> ProviderState | None:
        """Rebuild an owner's state from the table, if the table has it."""
        raw = self.store.get(f"h:{owner}")
        if raw is None:
            return None
        header = _decode(raw)
        st = ProviderState(owner, journal=[])
        for n in range(header["journal"]):
            segment = self.store.get(f"j:{owner}:{n}")
            if segment is None:  # pragma: no cover - written before its header
                raise RuntimeError(f"journal segment {n} of {owner} missing from the state table")
            st.replay_journal(_decode(segment))
        st.restore_header(header)
        self.engine.providers[owner] = st
        self.journal_len[owner] = header["journal"]
        self.owner_partition[owner] = header["partition"]
        return st

    def recover(self, keys: Iterable[str]) -> int:
        """Rebuild every owner and contract present in the (local) table."""
        n = 0
        for key in list(keys):
            if key.startswith("h:"):
                owner = key[2:]
                if owner not in self.engine.providers:
                    self.load_owner(owner)
                    n += 1
            elif key.startswith("c:"):
                raw = self.store.get(key)
                if raw is not None:
                    self.engine.contracts.apply(Contract(*_decode(raw)))
            elif key.startswith("l:"):
                raw = self.store.get(key)
                if raw is not None:
                    counts, offset = _decode(raw)
                    self.ledgers[int(key[2:])] = (Counts.from_dict(counts), offset)
        return n

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the owners of partitions this worker no longer holds (rebalance)."""
        for owner, p in list(self.owner_partition.items()):
            if p in partitions:
                self.engine.providers.pop(owner, None)
                self.journal_len.pop(owner, None)
                del self.owner_partition[owner]
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
            st.journal = []
            self.journal_len[owner] = 0
        self.owner_partition[owner] = partition
        return st

    def on_declarations(
        self, partition: int, offset: int, key: str | None, raw: bytes, source: str = "d"
    ) -> Output:
        """Process a declarations message; ``source`` tells offsets of the declarations
        topic (``d``) from those of re-keyed messages on the control topic (``c``)."""
        out = Output()
        if source == "d":
            self.declarations_done[partition] = offset
        if key is None:
            self._unkeyed(partition, offset, raw, out)
        else:
            st = self._owner_state(key, partition)
            mark = f"{source}{partition}"
            if st.applied.get(mark, -1) >= offset:
                out.skipped = True
            else:
                fx = self.engine.process(raw, key)
                st.applied[mark] = offset
                self._collect(fx, out)
                for provider in fx.touched | {key}:
                    self._owner_state(provider, partition)
                    self._persist(provider, out)
        waiting = self.pending_ticks.get(partition)
        if waiting is not None and offset >= waiting:
            del self.pending_ticks[partition]
            self._tick(partition, out)
            out.skipped = False
        return out

    def _unkeyed(self, partition: int, offset: int, raw: bytes, out: Output) -> Output:
        """A message without a key cannot be placed by provider.

        If it names its provider (batch envelope or a line's ``provider_agb``) the
        worker re-sends it, keyed, on the co-partitioned control topic
        (``out.rekey``); otherwise its lines cannot be valid and are dead-lettered
        here, counted in the partition's ledger.
        """
        provider = self.engine.decoder.provider_of(raw)
        if provider is not None:
            out.rekey = (provider, raw)
            return out
        counts, applied = self.ledgers.get(partition, (Counts(), -1))
        if applied >= offset:
            out.skipped = True
            return out
        before = self.engine.unattributed
        self.engine.unattributed = counts
        try:
            fx = self.engine.process(raw, None)
        finally:
            self.engine.unattributed = before
        self._collect(fx, out)
        self.ledgers[partition] = (counts, offset)
        out.writes[f"l:{partition}"] = orjson.dumps([counts.as_dict(), offset])
        return out

    def _collect(self, fx: Effects, out: Output) -> None:
        out.alerts.extend(fx.alerts)
        out.dead_letters.extend(fx.dead_letters)
        out.event_times.extend(fx.event_times)
        out.lines += fx.lines

    def _persist(self, owner: str, out: Output) -> None:
        st = self.engine.providers[owner]
        n = self.journal_len.get(owner, 0)
        if st.journal:
            out.writes[f"j:{owner}:{n}"] = orjson.dumps(st.journal)
            st.journal = []
            n += 1
            self.journal_len[owner] = n
        header = st.header()
        header["journal"] = n
        header["partition"] = self.owner_partition[owner]
        out.writes[f"h:{owner}"] = orjson.dumps(header)
        for year, ys in st.years.items():
            pk = f"{owner}:{year}"
            pair = [ys.consults, ys.group_consults]
            if self._peers_sent.get(pk) != pair:
                self._peers_sent[pk] = pair
                out.peers[pk] = pair

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
            if contract.provider in self.engine.providers and fx.alerts:
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
        return out

    def _tick(self, partition: int, out: Output) -> None:
        peers = self.peers() if self.peers is not None else None
        fx = self.engine.tick(peers=peers, providers=self.owners_of(partition))
        self._collect(fx, out)
        for owner in sorted(fx.touched):
            self._persist(owner, out)


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
