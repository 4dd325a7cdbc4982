"""The engine: one declaration from bytes to indicator state and alert transitions.

``Engine`` is the whole product without Kafka: it decodes a message, accepts or
dead-letters each line, updates the provider's state, evaluates the line-driven
rules, and the structural ones at each event-time month boundary of a provider and
on ``tick`` (SPEC §8.1). The offline replay drives it from files;
the Faust worker drives one per worker process for the providers of its partitions
and persists what changed. Both call the same methods, so both compute the same
results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from streams.domain import explain, rules
from streams.domain.acceptance import (
    DeadLetter,
    Decoder,
    Rejection,
    line_payload,
    mask_text,
    message_payload,
)
from streams.domain.alerts import Finding, alert_id, build_event
from streams.domain.contracts import Contract, ContractBook
from streams.domain.departments import (
    Department,
    DepartmentBook,
    DepartmentView,
    state_judged_month,
)
from streams.domain.model import (
    ACCEPTED,
    LINE_INDEX_EXPIRED,
    MISMATCH,
    ORPHAN_CREDIT,
    PROCESSING_ERROR,
    PROVIDER_MISMATCH,
    Counts,
    Line,
    is_agb,
)
from streams.domain.months import (
    covered_month,
    latest_covered_month,
    month_index,
    month_of,
    next_month_start,
)
from streams.domain.pace import project
from streams.domain.policy import Policy
from streams.domain.regions import RegionWatch, summaries
from streams.domain.rules import ceiling_utilisation, group_share_low, zvt_setting_mismatch
from streams.domain.snapshot import build_snapshot
from streams.domain.state import ChangeLog, ProviderState, Tables

Clock = Callable[[], float]
_DEAD_LETTERED = frozenset({ORPHAN_CREDIT, LINE_INDEX_EXPIRED})  # outcomes of accept
_ONE_BY_ONE = 8  # process_lines: fewer lines than this are not split further


@dataclass(slots=True)
class Effects:
    """What processing produced, for the caller to publish."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # providers whose state changed
    event_times: list[float] = field(default_factory=list)  # of accepted lines (lag metric)
    lines: int = 0


class Engine:
    """Processing never raises for bad input (SPEC §12): a message that cannot be
    decoded, or a line whose judging raises before it touches provider state, is
    dead-lettered as ``processing_error`` (detail: the exception's class), and the
    other lines go on. An exception raised after a line touched state is a bug;
    what happens then depends on ``contain``:

    - False (the worker): ``process`` raises, and ``effects.touched`` (pass
      ``effects`` in) names every provider whose state may have changed, for the
      caller to roll the message back and dead-letter it;
    - True (the offline replay, which has nothing to roll back to): that line is
      counted and dead-lettered as ``processing_error`` instead of its outcome, what
      it had changed stays, and the other lines go on.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        replay: bool = False,
        clock: Clock = time.time,
        journal: bool = False,
        contain: bool = False,
    ) -> None:
        self.policy = policy
        self.replay = replay
        self.clock = clock
        self.journal = journal
        self.contain = contain
        self.decoder = Decoder(policy)
        self.contracts = ContractBook()
        self._contract = self.contracts.lookup
        self.departments = DepartmentBook()  # the register, SPEC §9
        self.providers: dict[str, ProviderState] = {}
        # Where new persisted states keep their line index (None: cykhash tables);
        # the RocksDB worker sets its off-heap tables (streams/store/offheap.py).
        self.tables: Tables | None = None
        # What new persisted states record their changes in (None: nothing); the
        # worker's processor sets the store's journal (streams/store/codec.py).
        self.journals: Callable[[], ChangeLog] | None = None
        self.unattributed = Counts()  # rejections without a provider to own them
        self._ceiling_ids: dict[tuple[str, int], tuple[str, ...]] = {}
        self._ceiling = policy.of(ceiling_utilisation.RULE)
        self._mismatch = policy.of(zvt_setting_mismatch.RULE)
        self._bps = self._ceiling.thresholds_bp
        self._margin = self._ceiling.margin_bp
        # The structural rules with their policy sections, in registry order: all of
        # them at month boundaries and the end of input, the peer rules alone on the
        # streaming worker's wall-clock tick (SPEC §8.1).
        structural = rules.RULES.structural()
        self._structural = [(r.evaluate, policy.rules[r.name]) for r in structural if r.evaluate]
        self._peer_rules = [
            (r.evaluate, policy.rules[r.name]) for r in structural if r.evaluate and r.peers
        ]
        self._lag_days = policy.months.lag_days
        # Where a month boundary's peer rules get the peer means per year: the
        # streaming worker sets the cluster-wide ones (its status topic); None: those
        # of the providers held here, computed once per calendar month of event time
        # (``_boundary_peers``) so boundaries cost no pass over every provider each.
        self.peers: Callable[[], Mapping[int, Fraction | None]] | None = None
        # Calendar month (of event time) → the peer means first computed in it. Lines of
        # many providers interleave, their event times moving back and forth over a few
        # months: one computation a month, not one each time the month changes.
        self._peer_cache: dict[int, Mapping[int, Fraction | None]] = {}
        # SPEC §9 region_category_gap over the providers held here: the offline replay
        # sets it (it holds every provider); a streaming worker judges regions from
        # the provider-status topic instead. Judged once per calendar month of event
        # time (``_region_month``) and at the end of input.
        self.region_watch: RegionWatch | None = None
        self._region_month = -1

    # -- input --------------------------------------------------------------
    def state(self, provider: str) -> ProviderState:
        st = self.providers.get(provider)
        if st is None:
            st = self.providers[provider] = self.new_state(provider)
            if self.journal and self.journals is not None:
                st.journal = self.journals()
        return st

    def new_state(self, provider: str) -> ProviderState:
        # Keyed by the identifiers' 60-bit keys in C tables, persisted or not: the
        # compiled accept is fastest on those (the offline replay too).
        return ProviderState(
            provider,
            keep_years=self.policy.retention.line_index_years,
            tables=self.tables if self.journal else None,
        )

    def process(
        self,
        raw: bytes,
        key: str | None = None,
        effects: Effects | None = None,
        feed: ContractFeed | None = None,
    ) -> Effects:
        """Decode and process one message (a declaration or a batch).

        With a ``feed`` (the offline replay), the contracts it holds are applied as
        the lines' event times reach theirs.
        """
        fx = effects if effects is not None else Effects()
        try:
            envelope, items, rejection = self.decoder.split(raw)
        except Exception as exc:  # noqa: BLE001 - SPEC §12: dead-lettered, never raised
            envelope, items, rejection = None, [], Rejection(PROCESSING_ERROR, _name(exc))
        if rejection is not None:
            self._reject(key, fx, DeadLetter(key, message_payload(raw), *rejection))
            return fx
        single = envelope is None and len(items) == 1
        # On Kafka the key places the message in its provider's partition: every line
        # must belong to that provider (and to the envelope's), or it is a mismatch.
        mismatch = None
        if envelope is not None and key is not None and envelope != key:
            detail = mask_text(f"batch of {envelope} under message key {key}")
            mismatch = Rejection(PROVIDER_MISMATCH, detail)

        decoded: list[Any] = []  # the batch's lines, decoded once for all its dead letters

        def payload(index: int, item: Any) -> bytes:
            if single or type(item) is dict:
                return line_payload(raw, single, index, item)
            if not decoded:
                decoded.append(self.decoder.line_objects(raw))
            return line_payload(raw, single, index, decoded[0](index))

        owner_hint = key if key is not None else envelope
        self._apply(items, owner_hint, mismatch, payload, fx, feed)
        return fx

    def process_block(
        self, block: bytes, effects: Effects | None = None, feed: ContractFeed | None = None
    ) -> int:
        """``process`` each line of a block of whole archive lines (each ending with a
        newline; blank lines are skipped) in order; return the lines that are not blank.

        Decoded in one call when the typed path vouches for every line of the block
        (``Decoder.split_block``): no bytes object per line is made unless a line is
        dead-lettered. Otherwise the lines go to ``process_lines``, same results."""
        fx = effects if effects is not None else Effects()
        try:
            records = self.decoder.split_block(block)
        except Exception:  # noqa: BLE001 - line by line instead, where it is dead-lettered
            records = None
        if records is None:
            raws = [raw for raw in block.split(b"\n") if raw.strip()]
            if raws:
                self.process_lines(raws, fx, feed)
            return len(raws)
        lines: list[bytes] = []  # the block's lines, split once a line needs its bytes

        def payload(index: int, item: Any) -> bytes:
            if not lines:
                lines.extend(block.split(b"\n"))
            return line_payload(lines[index], True, 0, item)

        self._apply(records, None, None, payload, fx, feed)
        return len(records)

    def process_lines(
        self, raws: list[bytes], effects: Effects | None = None, feed: ContractFeed | None = None
    ) -> Effects:
        """``process`` each of many single-declaration messages without a key (an
        archive's lines, in order), with the same results. Decoded in one call where
        the typed path vouches for them all; else each half on its own, down to a few
        lines taken one by one: a malformed line costs a few more decodes, not a
        decode per line of its chunk (one chunk in twelve holds one)."""
        fx = effects if effects is not None else Effects()
        try:
            records = self.decoder.split_lines(raws)
        except Exception:  # noqa: BLE001 - line by line instead, where it is dead-lettered
            records = None
        if records is None:
            if len(raws) > _ONE_BY_ONE:
                half = len(raws) // 2
                self.process_lines(raws[:half], fx, feed)
                self.process_lines(raws[half:], fx, feed)
            else:
                for raw in raws:
                    self.process(raw, None, fx, feed)
            return fx

        def payload(index: int, item: Any) -> bytes:
            return line_payload(raws[index], True, 0, item)

        self._apply(records, None, None, payload, fx, feed)
        return fx

    def _apply(  # noqa: C901 - the per-line loop, inlined: a call a line costs (bench figure 1)
        self,
        items: list[Any],
        owner_hint: str | None,
        mismatch: Rejection | None,
        payload: Callable[[int, Any], bytes],
        fx: Effects,
        feed: ContractFeed | None,
    ) -> None:
        """Check and accept the decoded lines of a message (or of many) in order.

        ``mismatch`` rejects every line that passes the checks (a batch under another
        provider's key); ``payload(index, item)`` is a rejected line's dead-letter bytes.
        """
        # The loop runs for every line: what it needs is bound to locals first.
        check, providers, touched, times = (
            self.decoder.check,
            self.providers,
            fx.touched,
            fx.event_times,
        )
        due = feed.due if feed is not None else math.inf
        fx.lines += len(items)
        lines = enumerate(items)
        counted = -1  # the last line counted by its provider state
        while True:  # once, unless a line fails in ``contain`` mode
            try:
                for index, item in lines:
                    try:
                        checked = check(item, owner_hint)
                    except Exception as exc:  # noqa: BLE001 - SPEC §12: this line alone
                        checked = Rejection(PROCESSING_ERROR, _name(exc))
                    if type(checked) is not Line or mismatch is not None:
                        rejection = mismatch if type(checked) is Line else checked
                        owner = owner_hint if owner_hint is not None else _provider_of(item)
                        self._reject(owner, fx, DeadLetter(owner, payload(index, item), *rejection))  # type: ignore[misc]
                        continue
                    if TYPE_CHECKING:
                        assert type(checked) is Line  # a Rejection went above
                    event_time = checked.event_time
                    if event_time >= due:
                        feed.apply_until(self, event_time, fx)  # type: ignore[union-attr]
                        due = feed.due  # type: ignore[union-attr]
                    # SPEC §2 steps 4-7, then the line-driven rules (SPEC §5)
                    provider = checked.provider
                    st = providers.get(provider)
                    if st is None:
                        st = self.state(provider)
                    touched.add(provider)  # before: a caller rolls back what may have changed
                    if event_time >= st.next_month_start:  # SPEC §8.1, on the state before it
                        self._month_boundary(st, event_time, fx)
                    outcome = st.accept(checked)
                    counted = index
                    if outcome == ACCEPTED:
                        times.append(event_time)
                        if checked.credit or checked.flags & MISMATCH:
                            self._line_rules(st, checked, fx)
                            continue
                        # A debit: inside its year's band the ceiling rule cannot change state.
                        ys = st.years[checked.year]
                        if not ys.band_low <= ys.net_cents * 10_000 < ys.band_high:
                            self._check_ceiling(st, checked.year, event_time, fx)
                    elif outcome in _DEAD_LETTERED:  # counted by the state; the letter is ours
                        letter = payload(index, item)
                        detail = self._detail(outcome, checked)
                        fx.dead_letters.append(DeadLetter(provider, letter, outcome, detail))
                return
            except Exception as exc:
                if not self.contain:
                    raise
                if counted == index:  # the state counted it: count it as what it became
                    assert st is not None  # it counted the line
                    st.counts.uncount(outcome)
                    owner = provider
                else:
                    owner = owner_hint if owner_hint is not None else _provider_of(item)
                self._failed(exc, owner, index, item, payload, fx)
                if feed is not None:
                    due = feed.due

    def _failed(
        self,
        exc: Exception,
        owner: str | None,
        index: int,
        item: Any,
        payload: Callable[[int, Any], bytes],
        fx: Effects,
    ) -> None:
        """Dead-letter line ``index``, whose processing raised, as processing_error."""
        try:
            letter = payload(index, item)
        except Exception:  # noqa: BLE001 - the letter says why, without its bytes
            letter = b""
        self._reject(owner, fx, DeadLetter(owner, letter, PROCESSING_ERROR, _name(exc)))

    def _detail(self, outcome: str, line: Line) -> str:
        if outcome == ORPHAN_CREDIT:  # a line id is the provider's: it may look like a BSN
            return mask_text(f"credit for line {line.line_id} that was never debited")
        keep = self.policy.retention.line_index_years
        return (
            f"{'credit' if line.credit else 'debit'} of service year {line.year}: the line "
            f"index of that year was dropped when this provider's event time reached "
            f"{line.year + keep + 1}-01-01 (retention.line_index_years = {keep}), so the "
            "line can no longer be checked against its debit or an earlier delivery"
        )

    def _line_rules(self, st: ProviderState, line: Line, fx: Effects) -> None:
        """The line-driven rules (ceiling, zvt mismatch) after ``line`` was accepted."""
        if line.credit:  # a credit changes the year of the debit it reverses
            year, _, flags, _ = st.debit_of(line.year, line.line_id)  # type: ignore[misc]
        else:
            year, flags = line.year, line.flags
        ys = st.years[year]
        if not ys.band_low <= ys.net_cents * 10_000 < ys.band_high:
            self._check_ceiling(st, year, line.event_time, fx)
        if flags & MISMATCH:
            finding = zvt_setting_mismatch.finding(ys, self._mismatch, year)
            self._observe(st, finding, line.event_time, fx, zvt_setting_mismatch.context(ys))

    def _reject(self, owner: str | None, fx: Effects, letter: DeadLetter) -> None:
        fx.dead_letters.append(letter)
        if owner is None:
            self.unattributed.reject(letter.reason)
        else:
            self.state(owner).counts.reject(letter.reason)
            fx.touched.add(owner)

    # -- contracts ----------------------------------------------------------
    def apply_contract(self, contract: Contract, effects: Effects | None = None) -> Effects:
        """Store a contract version; re-evaluate the ceiling rule if it changed."""
        fx = effects if effects is not None else Effects()
        if not self.contracts.apply(contract):
            return fx
        st = self.providers.get(contract.provider)
        if st is not None and contract.year in st.years:
            self._check_ceiling(st, contract.year, contract.updated_at, fx, "contract_change")
        return fx

    def apply_department(self, entry: Department, effects: Effects | None = None) -> Effects:
        """Store a register version. Nothing is re-evaluated: a category or region
        counts from the provider's next month boundary (SPEC §8.1), as in streaming."""
        self.departments.apply(entry)
        return effects if effects is not None else Effects()

    # -- rules --------------------------------------------------------------
    def _check_ceiling(
        self,
        st: ProviderState,
        year: int,
        event_time: float,
        fx: Effects,
        cause: ceiling_utilisation.Cause = "declarations",
    ) -> None:
        """The ceiling rule for one provider-year, then the band it can rest in.

        Called when a line moved ``net_cents`` out of its year's band, or the
        contract changed; the band is recomputed either way.
        """
        ys = st.years[year]
        contract = self._contract((st.provider, year))
        if contract is not None:
            ctx = ceiling_utilisation.context(ys, contract, cause)
            for finding in ceiling_utilisation.findings(ys, contract, self._ceiling, year):
                self._observe(st, finding, event_time, fx, ctx)
        ys.band_low, ys.band_high = self._band(st, year, contract)

    def _band(self, st: ProviderState, year: int, contract: Contract | None) -> tuple[float, float]:
        """The range of ``net_cents * 10_000`` in which no ceiling alert changes state.

        A firing threshold resolves below (threshold - margin) x ceiling, a quiet one
        fires at threshold x ceiling: the band lies between the highest of the former
        and the lowest of the latter. Integers throughout, as in ``rules``. Without a
        contract the band is everything: ``apply_contract`` re-checks when one comes.
        """
        low: float = -math.inf
        high: float = math.inf
        if contract is None:
            return low, high
        ids = self._ceiling_ids.get((st.provider, year))
        if ids is None:
            ids = tuple(
                alert_id(ceiling_utilisation.RULE.name, st.provider, year, f.detail)
                for f in ceiling_utilisation.findings(st.years[year], contract, self._ceiling, year)
            )
            self._ceiling_ids[(st.provider, year)] = ids
        ceiling = contract.ceiling_cents
        for aid, bp in zip(ids, self._bps, strict=True):
            s = st.alerts.states.get(aid)
            if s is not None and s.firing:
                low = max(low, (bp - self._margin) * ceiling)
            else:
                high = min(high, bp * ceiling)
        return low, high

    def _observe(
        self,
        st: ProviderState,
        finding: Finding,
        event_time: float,
        fx: Effects,
        ctx: dict[str, Any],
    ) -> None:
        aid = alert_id(finding.rule, st.provider, finding.year, finding.detail)
        new = st.alerts.observe(aid, finding)
        if new is None:
            return
        fx.touched.add(st.provider)
        contract = self.contracts.get(st.provider, finding.year)
        name = contract.provider_name if contract else None
        if finding.rule == ceiling_utilisation.RULE.name and contract is not None:
            # SPEC §8.3: a ceiling alert shows the pace too, at the provider's
            # watermark (the line that crossed is in it); computed at transitions only.
            month = covered_month(finding.year, st.watermark, self.policy.months.lag_days)
            pace = project(
                st.years[finding.year],
                st.years.get(finding.year - 1),
                month,
                contract.ceiling_cents,
                self.policy.pace,
            )
            ctx = {**ctx, "pace": pace.context()}
        # Only a transition is explained: the breakdown reads the state, once.
        why = explain.build(ctx, st, finding, rules.rule(finding.rule).explains)
        fx.alerts.append(
            build_event(
                finding=finding,
                provider=st.provider,
                state=new,
                contract=contract,
                event_time=event_time,
                detected_at=self.clock(),
                replay=self.replay,
                message=rules.message(
                    finding,
                    new.firing,
                    st.provider,
                    name,
                    {**ctx, **(why or {})},
                    self.policy.language,
                ),
                explain=why,
                department=ctx.get("department"),
            )
        )

    # -- month boundaries (SPEC §8.1) ----------------------------------------
    def _month_boundary(self, st: ProviderState, event_time: float, fx: Effects) -> None:
        """A line at ``event_time`` reached a provider's state at or after the start
        of the month following its watermark's (``st.next_month_start``; 0 in a
        state just made or rebuilt, which is worked out here from the watermark).

        When it moves the watermark into a later calendar month, the structural
        rules are evaluated for every provider-year on the state before the line,
        with ``event_time`` as the evaluation's time. A state's first line has no
        state before it to evaluate."""
        watermark = st.watermark
        if (
            st.years
            and watermark > 0
            and month_index(*month_of(event_time)) > month_index(*month_of(watermark))
        ):
            peers = self._boundary_peers(event_time)
            self._evaluate(st, self._structural, peers, event_time, fx)
            if self.region_watch is not None:
                month = month_index(*month_of(event_time))
                if month > self._region_month:
                    self._region_month = month
                    self.evaluate_regions(event_time, fx)
        st.next_month_start = next_month_start(max(watermark, event_time))

    def _boundary_peers(self, event_time: float) -> Mapping[int, Fraction | None]:
        if self.peers is not None:
            return self.peers()
        month = month_index(*month_of(event_time))
        means = self._peer_cache.get(month)
        if means is None:
            means = self._peer_cache[month] = self.peer_means()
        return means

    def _evaluate(
        self,
        st: ProviderState,
        evaluated: list[tuple[Any, Any]],
        means: Mapping[int, Fraction | None],
        at: float,
        fx: Effects,
    ) -> None:
        """The ``evaluated`` rules for every provider-year of ``st``, at event time ``at``.

        A year is judged again only when something its rules read differs from the
        last time (``settled``): what they find is a function of it, and the same
        findings again change no alert. Most of a provider's earlier years are
        settled at most of its month boundaries."""
        lag, pace_policy = self._lag_days, self.policy.pace
        judged = state_judged_month(st, latest_covered_month(at, lag))
        view = DepartmentView(st, self.departments, judged)
        provider, states = st.provider, st.alerts.states
        for year in sorted(st.years):
            ys, previous = st.years[year], st.years.get(year - 1)
            month = covered_month(year, at, lag)
            contract = self._contract((provider, year))
            mean = means.get(year)
            settled = _inputs(evaluated, ys, previous, month, contract, mean, view, year)
            if settled is not None and settled == ys.settled:
                continue
            ys.settled = settled
            ceiling = contract.ceiling_cents if contract is not None else None
            pace = project(ys, previous, month, ceiling, pace_policy)
            tick = rules.Tick(year, previous, mean, at, month, contract, pace, view)
            for evaluate, params in evaluated:
                for finding, ctx in evaluate(ys, tick, params):
                    if not finding.fire:  # most findings: only a firing alert can change
                        aid = alert_id(finding.rule, provider, finding.year, finding.detail)
                        known = states.get(aid)
                        if known is None or not known.firing:
                            continue
                    self._observe(st, finding, at, fx, ctx)

    def peer_pairs(self) -> dict[int, list[tuple[int, int]]]:
        """(consults, group_consults) per year of the providers held here."""
        out: dict[int, list[tuple[int, int]]] = {}
        for st in self.providers.values():
            for year, ys in st.years.items():
                out.setdefault(year, []).append((ys.consults, ys.group_consults))
        return out

    def peer_means(
        self, pairs: Mapping[int, Iterable[tuple[int, int]]] | None = None
    ) -> dict[int, Fraction | None]:
        pairs = pairs if pairs is not None else self.peer_pairs()
        minimum = self.policy.of(group_share_low.RULE).min_consults
        return {year: group_share_low.peer_mean(p, minimum)[0] for year, p in pairs.items()}

    def tick(
        self,
        peers: Mapping[int, Fraction | None] | None = None,
        providers: Iterable[str] | None = None,
        effects: Effects | None = None,
        *,
        only_peers: bool = False,
    ) -> Effects:
        """Evaluate the structural rules for (some of) the providers held here, each
        at its provider's watermark (SPEC §8.1).

        The end of input (the offline replay's end, a replay's final tick) evaluates
        them all; the streaming worker's wall-clock tick passes ``only_peers``: a rule
        on the provider's own state is decided by event time alone. ``peers`` are the
        peer means per year; the offline replay computes them from its own providers,
        a streaming worker passes the cluster-wide ones.
        """
        fx = effects if effects is not None else Effects()
        evaluated = self._peer_rules if only_peers else self._structural
        if not evaluated:
            return fx
        means = peers if peers is not None else self.peer_means()
        for provider in sorted(providers if providers is not None else self.providers):
            st = self.providers.get(provider)
            if st is not None:
                self._evaluate(st, evaluated, means, st.watermark, fx)
        if self.region_watch is not None and not only_peers and self.providers:
            self.evaluate_regions(max(st.watermark for st in self.providers.values()), fx)
        return fx

    def evaluate_regions(self, at: float, fx: Effects) -> None:
        """region_category_gap over every provider held here, at event time ``at``."""
        if self.region_watch is None:
            return
        rows = summaries(self.providers.values(), self.departments, self.contracts, self._lag_days)
        fx.alerts += self.region_watch.evaluate(rows, at, self.clock())

    # -- output -------------------------------------------------------------
    def counts(self) -> Counts:
        total = Counts()
        total.add(self.unattributed)
        for st in self.providers.values():
            total.add(st.counts)
        return total

    def snapshot(self) -> dict[str, Any]:
        return build_snapshot(
            self.providers.values(), self.contracts, [self.counts()], self.policy, self.departments
        )


def _inputs(
    evaluated: list[tuple[Any, Any]],
    ys: Any,
    previous: Any,
    month: int,
    contract: Contract | None,
    mean: Fraction | None,
    view: DepartmentView,
    year: int,
) -> tuple[Any, ...] | None:
    """All that the ``evaluated`` rules read of provider-year ``year`` at an evaluation
    (``rules.Tick`` less its time, which no rule reads), as a value that is equal
    only when it is the same: the rules, the year's and the previous year's states
    and how many lines each has taken (``changes``, either sign), the covered month,
    the contract version, the peer mean, and for the department rules whether they
    close the year's alerts and over which departments. None (always judged) for
    the year in which the department rules judge the departments: their months
    move with every boundary."""
    if year == view.judge_year:
        return None
    closing = year < view.latest[0]  # department_activity_drop.closed
    return (
        evaluated,
        ys.changes,
        previous,
        previous.changes if previous is not None else -1,
        month,
        contract,
        mean,
        tuple(view.judged()) if closing else None,
    )


class ContractFeed:
    """Contract and department register events merged into a stream of lines by event
    time (SPEC §6, §8.1): one whose ``updated_at`` is at or before a line's
    ``submitted_at`` is applied before that line. ``due`` is the event time at which
    the next one applies."""

    def __init__(self, contracts: list[Contract], departments: Iterable[Department] = ()) -> None:
        # stable: ties keep order, contracts before register entries
        events: list[Contract | Department] = [*contracts, *departments]
        self._pending = sorted(events, key=lambda c: c.updated_at)
        self._next = 0
        self.due = self._pending[0].updated_at if self._pending else math.inf

    def apply_until(self, engine: Engine, event_time: float, fx: Effects) -> None:
        pending = self._pending
        while self._next < len(pending) and pending[self._next].updated_at <= event_time:
            self._next += 1  # first: a contract whose application raised is not retried
            self.due = pending[self._next].updated_at if self._next < len(pending) else math.inf
            event = pending[self._next - 1]
            if isinstance(event, Contract):
                engine.apply_contract(event, fx)
            else:
                engine.apply_department(event, fx)

    def apply_rest(self, engine: Engine, fx: Effects) -> None:
        self.apply_until(engine, math.inf, fx)


def _name(exc: BaseException) -> str:
    """A processing_error's detail: the exception's class, never its message (which
    can quote the input)."""
    return type(exc).__name__


def _provider_of(obj: Any) -> str | None:
    """The provider a rejected line names, if it names one that looks like an AGB code."""
    agb = obj.get("provider_agb") if isinstance(obj, dict) else getattr(obj, "provider_agb", None)
    return agb if is_agb(agb) else None
