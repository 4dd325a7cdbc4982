"""Prometheus metrics of a worker: counters of this process, gauges from state.

Two kinds of figures, kept apart so that ``rate()`` stays right when partitions move:

- counters (lines by outcome, messages, dead letters, alert transitions, event lag)
  count what THIS process did: the hot path adds a message's figures to plain
  integers (``WorkerMetrics.record``), never to a metric object per line. They are
  never summed from provider state, which moves with a rebalance: a moved partition
  would take its providers' totals from one worker's counter to the other's, a drop
  Prometheus reads as a reset and a jump it reads as a burst.
- gauges per provider-year are read from the engine's state at scrape time
  (client_python's custom-collector pattern). They carry only ``provider`` and
  ``year``; the contract's descriptive labels (name, purchaser, region) are on one
  ``claimwatch_provider_info`` series per provider-year, joined with ``group_left``
  in rules and dashboards, so a contract update changes one series, not twenty.

A scrape never holds the event loop for long: the state is read on the loop in
chunks of providers with a yield to the agent in between, and the text is rendered
from the finished metric families in a thread (``WorkerMetrics.render``).
The region view of cruciale ggz (SPEC §9) is the cluster's, made from the
provider-status topic every worker reads whole: every worker exports the same
figures per region and category, and dashboards take ``max by``, never ``sum by``.
Names and labels follow docs/metrics.md, which dashboards and rules are tested against.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.domain.departments import CRUCIAL
from streams.domain.model import REJECT_REASONS, Counts
from streams.domain.months import covered_month
from streams.domain.pace import project
from streams.domain.regions import RULE as REGION_GAP
from streams.domain.rules import RULES, adhd_growth, group_share_low
from streams.domain.rules.adhd_growth import clients_and_base
from streams.domain.rules.group_share_low import peer_mean
from streams.kafka.offsets import consumer_lag
from streams.pipeline.processor import MESSAGE_TOO_LARGE

if TYPE_CHECKING:
    from streams.domain.engine import Engine
    from streams.domain.state import ProviderState
    from streams.pipeline.processor import Output
    from streams.pipeline.settings import Settings

VERSION = "0.1.0"
LAG_BUCKETS = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
    86400.0,
    2_592_000.0,
    31_536_000.0,
)
PROVIDER_LABELS = ["provider", "year"]
# The descriptive labels of a provider-year, on claimwatch_provider_info only. They come
# from the insurer's contract events only: a line's own `region` is the provider's free
# text, and would put unchecked input (and unbounded label values) on /metrics.
INFO_LABELS = ["provider", "year", "provider_name", "purchaser", "region"]
# The `region` label without a contract for that provider-year.
UNKNOWN_REGION = "unknown"
ALERT_LABELS = ["alert_id", "rule", "provider", "year", "severity", "detail"]
# Providers read between two yields to the event loop while a scrape collects.
SCRAPE_CHUNK = 50
REGION_LABELS = ["region", "category"]
# SPEC §9 ``regions``: region → category → {"active_departments": n, "clients": n}.
RegionView = Mapping[str, Mapping[str, Mapping[str, int]]]


# The gauges per provider-year: key → (name, help, labels beyond PROVIDER_LABELS).
PROVIDER_GAUGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "net": (
        "claimwatch_provider_net_declared_euros",
        "Net declared amount (debits minus credits).",
        (),
    ),
    "ceiling": (
        "claimwatch_provider_ceiling_euros",
        "Cost ceiling of the contract version in force.",
        (),
    ),
    "util": ("claimwatch_provider_ceiling_utilisation_ratio", "Net declared / ceiling.", ()),
    "covered_month": (
        "claimwatch_provider_covered_month",
        "Covered month M of the year at the provider's watermark (SPEC 8.1), 0..12.",
        (),
    ),
    "covered_net": (
        "claimwatch_provider_covered_declared_euros",
        "Net declared in the service months 1..M.",
        (),
    ),
    "expected": (
        "claimwatch_provider_expected_by_now_euros",
        "Expected share E(M) of the year's spending times the ceiling.",
        (),
    ),
    "projected": (
        "claimwatch_provider_projected_euros",
        "Projected landing of the year at the pace of months 1..M.",
        (),
    ),
    "pace": ("claimwatch_provider_pace_ratio", "Projected landing / ceiling.", ()),
    "consults": ("claimwatch_provider_consults", "Net consult lines.", ()),
    "group": (
        "claimwatch_provider_group_consult_share_ratio",
        "Group consults / consults.",
        (),
    ),
    "ge4": (
        "claimwatch_provider_group_consults_4plus_practitioners",
        "Group consults with 4 or more practitioners.",
        (),
    ),
    "detox": (
        "claimwatch_provider_clinical_detox_share_ratio",
        "Clinical / all detox lines.",
        (),
    ),
    "detox_clients": (
        "claimwatch_provider_detox_clients",
        "Distinct clients with an accepted, uncredited detox line.",
        (),
    ),
    "clinical_detox_clients": (
        "claimwatch_provider_clinical_detox_clients",
        "Distinct clients with an accepted, uncredited clinical detox line.",
        (),
    ),
    "detox_client_share": (
        "claimwatch_provider_clinical_detox_client_share_ratio",
        "Clinical detox clients / detox clients.",
        (),
    ),
    "digital": (
        "claimwatch_provider_digital_consult_share_ratio",
        "Digital (S01) consults / consults.",
        (),
    ),
    "consult_clients": (
        "claimwatch_provider_consult_clients",
        "Distinct clients with a consult.",
        (),
    ),
    "digital_clients": (
        "claimwatch_provider_digital_clients",
        "Distinct clients with a digital (S01) consult.",
        (),
    ),
    "digital_client_share": (
        "claimwatch_provider_digital_client_share_ratio",
        "Digital clients / consult clients.",
        (),
    ),
    "mismatch": (
        "claimwatch_provider_zvt_setting_mismatch_lines",
        "Lines of zorgvraagtype 1/2 in setting 5/6/8 (from 2026).",
        (),
    ),
    "adhd": (
        "claimwatch_provider_adhd_clients",
        "Distinct ADHD clients per quarter (DSM chapter 01 proxy unless registered).",
        ("quarter",),
    ),
    "adhd_growth": (
        "claimwatch_provider_adhd_growth_ratio",
        "ADHD clients vs the same quarter a year earlier, minus 1.",
        ("quarter",),
    ),
}

Sample = tuple[str, tuple[str, ...], float]


def year_values(
    engine: Engine, st: ProviderState, year: int, ceiling_cents: int | None
) -> Iterator[Sample]:
    """(gauge key, extra label values, value) of one provider-year; a figure that is
    undefined (no contract, no consults, too few months covered) has no sample."""
    ys = st.years[year]
    previous = st.years.get(year - 1)
    yield "net", (), ys.net_cents / 100
    if ceiling_cents:
        yield "ceiling", (), ceiling_cents / 100
        yield "util", (), ys.net_cents / ceiling_cents
    yield from _pace_values(engine, st, year, ceiling_cents)
    yield "consults", (), ys.consults
    yield "ge4", (), ys.group_ge4
    yield "mismatch", (), ys.mismatch
    yield "detox_clients", (), ys.detox_clients_all
    yield "clinical_detox_clients", (), ys.detox_clients_clinical
    yield "consult_clients", (), ys.consult_clients
    yield "digital_clients", (), ys.digital_clients
    shares = (
        ("group", ys.group_share),
        ("detox", ys.clinical_detox_share),
        ("detox_client_share", ys.clinical_detox_client_share),
        ("digital", ys.digital_share),
        ("digital_client_share", ys.digital_client_share),
    )
    for key, share in shares:
        if share is not None:
            yield key, (), share
    for q in ys.adhd_quarters():
        quarter = (f"{year}-Q{q}",)
        clients, base = clients_and_base(ys, previous, q)
        yield "adhd", quarter, clients
        growth = adhd_growth(clients, base)
        if growth is not None:
            yield "adhd_growth", quarter, growth


def _pace_values(
    engine: Engine, st: ProviderState, year: int, ceiling_cents: int | None
) -> Iterator[Sample]:
    """The spend pace of SPEC §8.2 at the provider's watermark: the same projection
    (streams/domain/pace.py) the pace rules and the snapshot use, so the dashboard's
    line and an alert's figures agree."""
    ys = st.years[year]
    month = covered_month(year, st.watermark, engine.policy.months.lag_days)
    pace = project(ys, st.years.get(year - 1), month, ceiling_cents, engine.policy.pace)
    yield "covered_month", (), month
    yield "covered_net", (), sum(ys.by_month[:month]) / 100
    if ceiling_cents:
        yield "expected", (), float(pace.expected_share * ceiling_cents) / 100
    if pace.projected_cents is not None:
        yield "projected", (), pace.projected_cents / 100
    if pace.pace_ratio is not None:
        yield "pace", (), pace.pace_ratio


# Every metric name the worker exports (tests check dashboards and rules against it).
METRIC_NAMES = (
    *(name for name, _, _ in PROVIDER_GAUGES.values()),
    "claimwatch_provider_info",
    "claimwatch_peer_group_consult_share_mean_ratio",
    "claimwatch_peer_providers",
    "claimwatch_policy_threshold",
    "claimwatch_alert_firing",
    "claimwatch_region_active_departments",
    "claimwatch_region_clients",
    "claimwatch_region_category_gap_firing",
    "claimwatch_region_purchaser",
    "claimwatch_alerts_total",
    "claimwatch_lines_total",
    "claimwatch_messages_total",
    "claimwatch_event_lag_seconds",
    "claimwatch_consumer_lag_messages",
    "claimwatch_last_event_timestamp_seconds",
    "claimwatch_line_index_entries",
    "claimwatch_dead_letters_total",
    "claimwatch_build_info",
)


class LagHistogram:
    """Cumulative-on-export histogram with O(log buckets) observe and no locks."""

    __slots__ = ("counts", "sum", "n")

    def __init__(self) -> None:
        self.counts = [0] * (len(LAG_BUCKETS) + 1)
        self.sum = 0.0
        self.n = 0

    def observe_many(self, now: float, event_times: list[float]) -> None:
        # The lines of a submission share their event time: counted in C first,
        # then bucketed once per distinct time.
        counts = self.counts
        total = 0.0
        for t, k in Counter(event_times).items():
            lag = now - t
            if lag < 0:
                lag = 0.0
            counts[bisect.bisect_left(LAG_BUCKETS, lag)] += k
            total += lag * k
        self.sum += total
        self.n += len(event_times)

    def family(self) -> HistogramMetricFamily:
        buckets = []
        running = 0
        for bound, c in zip(LAG_BUCKETS, self.counts, strict=False):
            running += c
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", self.n))
        fam = HistogramMetricFamily(
            "claimwatch_event_lag_seconds", "Processing time minus submitted_at of accepted lines."
        )
        fam.add_metric([], buckets, self.sum)
        return fam


class WorkerMetrics:
    """This process's counters, and the collectors a scrape reads."""

    def __init__(
        self, engine: Engine, settings: Settings | None = None, clock: Any = time.time
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.messages = 0
        self.outcomes = Counts()  # the lines of the messages this process applied
        # None until this process handles its first declarations message: a gauge of 0
        # would read as "nothing since 1970" (ClaimwatchNoDeclarations after a restart).
        self.last_event: float | None = None
        self.dead_letters: dict[str, int] = {}
        self.transitions: dict[tuple[str, str], int] = {}  # (rule, state) → published
        self.lag = LagHistogram()
        self.consumer_lag: dict[tuple[str, int], int] = {}
        # Cluster-wide (consults, group consults) per year: the status topic as this worker's
        # reader holds it (streams/pipeline/status.py); None: this worker's providers.
        self.peer_source: Any = None
        # The cluster's region view (SPEC §9 ``regions``) and the firing
        # region_category_gap alerts as (alert id, state) pairs; None: not exported.
        self.region_source: Callable[[], RegionView] | None = None
        self.gap_source: Callable[[], Iterable[tuple[str, Any]]] | None = None
        self.state = StateCollector(self)
        # Everything but the state: Faust's sensor (streams/kafka/sensor.py registers
        # here), the process (memory, CPU, file descriptors) and the garbage collector.
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._rendering: asyncio.Future[bytes] | None = None

    @property
    def lines(self) -> int:
        """Lines this process applied, whatever their outcome (a message rejected whole
        counts as one)."""
        return self.outcomes.total()

    def record(self, out: Output, alerts: Iterable[dict[str, Any]] = ()) -> None:
        """Count a message's lines, dead letters and lag, and the alert transitions
        that were published for it (not those already published before a crash)."""
        if out.outcomes is not None:
            self.outcomes.add(out.outcomes)
        if out.event_times:
            self.lag.observe_many(self.clock(), out.event_times)
        for letter in out.dead_letters:
            self.dead_letters[letter.reason] = self.dead_letters.get(letter.reason, 0) + 1
        for event in alerts:
            key = (event["rule"], event["state"])
            self.transitions[key] = self.transitions.get(key, 0) + 1

    async def update_lag(self, app: Any) -> None:
        """High watermark − committed offset, for this worker's assigned partitions."""
        self.consumer_lag = consumer_lag(app.consumer, app.assignor.assigned_actives())

    def exposition(self) -> tuple[bytes, str]:
        """The page, collected and rendered at once (tests, and callers off the loop)."""
        families = [*self.state.collect(), *self.registry.collect()]
        return generate_latest(_Families(families)), CONTENT_TYPE

    async def render(self) -> tuple[bytes, str]:
        """The page for a scrape on the event loop: the state read in chunks with the
        loop free in between, the text made in a thread. Scrapes that arrive while one
        is rendered share its page."""
        if self._rendering is None:
            self._rendering = asyncio.ensure_future(self._render())
            self._rendering.add_done_callback(self._rendered)
        return await asyncio.shield(self._rendering), CONTENT_TYPE

    def _rendered(self, _: asyncio.Future[bytes]) -> None:
        self._rendering = None

    async def _render(self) -> bytes:
        families: list[Any] = []
        for _ in self.state.chunks(families):
            await asyncio.sleep(0)
        families.extend(self.registry.collect())
        return await asyncio.to_thread(generate_latest, _Families(families))


# aiohttp wants the charset apart from the content type
CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


class _Families:
    """Metric families already collected, in the shape ``generate_latest`` reads."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


class StateCollector:
    """The gauges read from the engine's state, and this process's counters."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.m = metrics

    def collect(self) -> list[Any]:
        families: list[Any] = []
        for _ in self.chunks(families):
            pass
        return families

    def chunks(self, families: list[Any]) -> Iterator[None]:
        """Append every family to ``families``, yielding after each SCRAPE_CHUNK
        providers: the caller may let the event loop run there. A provider dropped
        in between (its partition moved away) is skipped."""
        this_year = datetime.now(UTC).year
        state = _ProviderFamilies(self.m.engine, {this_year, this_year - 1})
        providers = sorted(self.m.engine.providers)
        for start in range(0, len(providers), SCRAPE_CHUNK):
            for agb in providers[start : start + SCRAPE_CHUNK]:
                st = self.m.engine.providers.get(agb)
                if st is not None:
                    state.add(agb, st)
            yield
        families.extend(state.families())
        families.extend(self._peers(state.years_shown, state.pairs))
        families.append(self._policy())
        families.extend(self._regions())
        families.append(self._region_purchasers(state.years_shown))
        families.extend(self._counters())
        families.extend(self._stream(state.index_entries))

    def _peers(
        self, years_shown: set[int], pairs: dict[int, list[tuple[int, int]]]
    ) -> Iterator[Any]:
        """The peer mean per year: cluster-wide from the status topic where it is read,
        else from this worker's own providers."""
        engine = self.m.engine
        peer = GaugeMetricFamily(
            "claimwatch_peer_group_consult_share_mean_ratio",
            "Mean group share of the providers (cluster-wide) with enough consults.",
            labels=["year"],
        )
        peer_n = GaugeMetricFamily(
            "claimwatch_peer_providers", "Providers counted in the peer mean.", labels=["year"]
        )
        cluster = self.m.peer_source() if self.m.peer_source is not None else None
        for year in sorted(set(pairs) | set(cluster or {})):
            if year not in years_shown:
                continue
            source = (
                cluster[year] if cluster is not None and year in cluster else pairs.get(year, [])
            )
            mean, n = peer_mean(source, engine.policy.of(group_share_low.RULE).min_consults)
            if mean is not None:
                peer.add_metric([str(year)], float(mean))
            peer_n.add_metric([str(year)], n)
        yield peer
        yield peer_n

    def _regions(self) -> Iterator[Any]:
        """Per IZA region and cruciale category (bounded: 38 × 6; ``other`` is never
        shown): the active departments and their clients of the region view, and the
        region gaps firing."""
        m = self.m
        active = GaugeMetricFamily(
            "claimwatch_region_active_departments",
            "Departments active in their provider's latest covered month (SPEC 9).",
            labels=REGION_LABELS,
        )
        clients = GaugeMetricFamily(
            "claimwatch_region_clients",
            "Distinct clients of those departments in that month, summed.",
            labels=REGION_LABELS,
        )
        view = m.region_source() if m.region_source is not None else {}
        for region, categories in sorted(view.items()):
            for category in CRUCIAL:
                cell = categories.get(category)
                if cell is not None:
                    active.add_metric([region, category], cell["active_departments"])
                    clients.add_metric([region, category], cell["clients"])
        yield active
        yield clients
        gap = GaugeMetricFamily(
            "claimwatch_region_category_gap_firing",
            "1 for every region_category_gap alert firing.",
            labels=["alert_id", *REGION_LABELS, "year", "severity"],
        )
        firing = m.gap_source() if m.gap_source is not None else ()
        for aid, state in sorted(firing, key=lambda pair: pair[0]):
            parsed = parse_gap_id(aid)
            if parsed is not None and parsed[1] in CRUCIAL:
                gap.add_metric([aid, *parsed, state.severity], 1)
        yield gap

    def _region_purchasers(self, years_shown: set[int]) -> GaugeMetricFamily:
        """Which purchasers buy care in a region: the pairs of the contracts of the
        years shown. Rules join a region's gap to it to route one alert per purchaser."""
        family = GaugeMetricFamily(
            "claimwatch_region_purchaser",
            "1 per region and purchaser with a contract there this year or the last.",
            labels=["region", "purchaser"],
        )
        pairs = {
            (c.region, c.purchaser)
            for c in self.m.engine.contracts
            if c.year in years_shown and c.region and c.purchaser
        }
        for region, purchaser in sorted(pairs):
            family.add_metric([region, purchaser], 1)
        return family

    def _policy(self) -> GaugeMetricFamily:
        """The numeric parameters of the policy the worker runs with, so that rules and
        dashboards quote them instead of numbers written by hand."""
        family = GaugeMetricFamily(
            "claimwatch_policy_threshold",
            "A numeric parameter of the policy section of a rule (index: position in a list).",
            labels=["rule", "parameter", "index"],
        )
        for rule, section in sorted(self.m.engine.policy.rules.items()):
            for name, value in policy_parameters(section):
                if isinstance(value, tuple):
                    for i, v in enumerate(value):
                        family.add_metric([rule, name, str(i)], float(v))
                else:
                    family.add_metric([rule, name, ""], float(value))
        return family

    def _counters(self) -> Iterator[Any]:
        """What this process counted: lines by outcome, messages, dead letters, alert
        transitions, the event lag."""
        m = self.m
        counts = m.outcomes
        lines = CounterMetricFamily(
            "claimwatch_lines", "Declaration lines by outcome.", labels=["result", "reason"]
        )
        lines.add_metric(["accepted", ""], counts.accepted)
        lines.add_metric(["duplicate", ""], counts.duplicate)
        lines.add_metric(["duplicate_line", ""], counts.duplicate_line)
        lines.add_metric(["duplicate_credit", ""], counts.duplicate_credit)
        for reason in sorted({*REJECT_REASONS, MESSAGE_TOO_LARGE, *counts.rejected}):
            lines.add_metric(["rejected", reason], counts.rejected.get(reason, 0))
        yield lines
        messages = CounterMetricFamily(
            "claimwatch_messages", "Kafka messages consumed on the declarations topic."
        )
        messages.add_metric([], m.messages)
        yield messages
        dead = CounterMetricFamily(
            "claimwatch_dead_letters",
            "Messages written to the dead-letter topic.",
            labels=["reason"],
        )
        for reason in sorted({*REJECT_REASONS, MESSAGE_TOO_LARGE, *m.dead_letters}):
            dead.add_metric([reason], m.dead_letters.get(reason, 0))
        yield dead
        alerts_total = CounterMetricFamily(
            "claimwatch_alerts",
            "Alert transitions published, by rule and state.",
            labels=["rule", "state"],
        )
        for rule in RULES.names():
            for state in ("firing", "resolved"):
                alerts_total.add_metric([rule, state], m.transitions.get((rule, state), 0))
        yield alerts_total
        yield m.lag.family()

    def _stream(self, index_entries: dict[int, int]) -> Iterator[Any]:
        """Consumer lag, the last event, the line index, the build."""
        m = self.m
        lag = GaugeMetricFamily(
            "claimwatch_consumer_lag_messages",
            "High watermark minus committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(m.consumer_lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        last = GaugeMetricFamily(
            "claimwatch_last_event_timestamp_seconds",
            "Unix time this process last processed a declarations message (absent before).",
        )
        if m.last_event is not None:
            last.add_metric([], m.last_event)
        yield last
        index = GaugeMetricFamily(
            "claimwatch_line_index_entries",
            "Line index entries held in memory (lines of open service years), per service year.",
            labels=["year"],
        )
        for year in sorted(index_entries):
            index.add_metric([str(year)], index_entries[year])
        yield index
        info = GaugeMetricFamily("claimwatch_build_info", "Build information.", labels=["version"])
        info.add_metric([VERSION], 1)
        yield info


class _ProviderFamilies:
    """The per-provider families of one scrape, filled provider by provider."""

    def __init__(self, engine: Engine, years_shown: set[int]) -> None:
        self.engine = engine
        self.years_shown = years_shown
        self.gauges = {
            key: GaugeMetricFamily(name, doc, labels=[*PROVIDER_LABELS, *extra])
            for key, (name, doc, extra) in PROVIDER_GAUGES.items()
        }
        self.info = GaugeMetricFamily(
            "claimwatch_provider_info",
            "1 per provider-year shown; its contract's name, purchaser and region as labels.",
            labels=INFO_LABELS,
        )
        self.firing = GaugeMetricFamily(
            "claimwatch_alert_firing", "1 for every alert currently firing.", labels=ALERT_LABELS
        )
        # every provider-year's (consults, group consults), for the local peer mean
        self.pairs: dict[int, list[tuple[int, int]]] = {}
        self.index_entries: dict[int, int] = {}

    def add(self, agb: str, st: ProviderState) -> None:
        engine = self.engine
        described = set()
        for year, ys in st.years.items():
            self.pairs.setdefault(year, []).append((ys.consults, ys.group_consults))
            if year not in self.years_shown:
                continue
            described.add(year)
            contract = engine.contracts.get(agb, year)
            ceiling = contract.ceiling_cents if contract else None
            labels = [agb, str(year)]
            for key, extra, value in year_values(engine, st, year, ceiling):
                self.gauges[key].add_metric([*labels, *extra], value)
        for aid, a in st.alerts.states.items():
            if not a.firing:
                continue
            # a department rule's detail is the department, which may hold ":"
            parts = aid.split(":", 3)
            year = int(parts[2])
            detail = parts[3] if len(parts) > 3 else ""
            self.firing.add_metric([aid, parts[0], agb, str(year), a.severity, detail], 1)
            described.add(year)  # an alert of an older year is routed by its contract too
        for year in sorted(described):
            contract = engine.contracts.get(agb, year)
            self.info.add_metric(
                [
                    agb,
                    str(year),
                    contract.provider_name if contract else "",
                    contract.purchaser if contract else "",
                    contract.region if contract else UNKNOWN_REGION,
                ],
                1,
            )
        for year, lines_of_year in st.lines.items():
            self.index_entries[year] = self.index_entries.get(year, 0) + len(lines_of_year)

    def families(self) -> Iterator[Any]:
        yield from self.gauges.values()
        yield self.info
        yield self.firing


def parse_gap_id(aid: str) -> tuple[str, str, str] | None:
    """(region, category, year) of ``region_category_gap:<region>:<category>:<year>``;
    the region is the register's or the contract's text and may hold ":"."""
    rule, _, rest = aid.partition(":")
    parts = rest.rsplit(":", 2)
    if rule != REGION_GAP or len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], parts[2]


def policy_parameters(section: Any) -> Iterator[tuple[str, float | tuple[float, ...]]]:
    """(name, value) of the numeric fields of a rule's policy section: numbers and
    tuples of numbers, not severities, sets of codes or derived basis-point copies."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.name.endswith("_bp"):
            continue
        numbers = value if isinstance(value, tuple) and value else (value,)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            yield f.name, value
