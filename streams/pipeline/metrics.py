"""Prometheus metrics of a worker, produced from state at scrape time.

``StateCollector`` follows client_python's custom-collector pattern: per provider
and year it reads the engine's state when Prometheus scrapes, so the hot path never
touches a metric object per line. The hot path only bumps plain integers and one
bucket array (event lag). Names and labels follow docs/metrics.md, which dashboards
and alert rules are tested against.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.domain.model import REJECT_REASONS
from streams.domain.months import covered_month
from streams.domain.pace import project
from streams.domain.rules import RULES, adhd_growth, group_share_low
from streams.domain.rules.adhd_growth import clients_and_base
from streams.domain.rules.group_share_low import peer_mean
from streams.kafka.offsets import consumer_lag

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
PROVIDER_LABELS = ["provider", "year", "provider_name", "purchaser", "region"]
# The `region` label without a contract for that provider-year. Labels come from the
# insurer's contract events only: a line's own `region` is the provider's free text,
# and would put unchecked input (and unbounded label values) on /metrics.
UNKNOWN_REGION = "unknown"


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
    "claimwatch_peer_group_consult_share_mean_ratio",
    "claimwatch_peer_providers",
    "claimwatch_alert_firing",
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
    """Counters kept by the worker plus the collector over the engine's state."""

    def __init__(
        self, engine: Engine, settings: Settings | None = None, clock: Any = time.time
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.messages = 0
        self.lines = 0
        self.last_event = 0.0
        self.dead_letters: dict[str, int] = {}
        self.lag = LagHistogram()
        self.consumer_lag: dict[tuple[str, int], int] = {}
        # Cluster-wide (consults, group consults) per year: the status topic as this worker's
        # reader holds it (streams/pipeline/status.py); None: this worker's providers.
        self.peer_source: Any = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StateCollector(self))

    def record(self, out: Output) -> None:
        self.lines += out.lines
        if out.event_times:
            self.lag.observe_many(self.clock(), out.event_times)
        for letter in out.dead_letters:
            self.dead_letters[letter.reason] = self.dead_letters.get(letter.reason, 0) + 1

    async def update_lag(self, app: Any) -> None:
        """High watermark − committed offset, for this worker's assigned partitions."""
        self.consumer_lag = consumer_lag(app.consumer, app.assignor.assigned_actives())

    def exposition(self) -> tuple[bytes, str]:
        # aiohttp wants the charset apart from the content type
        return generate_latest(self.registry), CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


class StateCollector:
    def __init__(self, metrics: WorkerMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Any]:
        this_year = datetime.now(UTC).year
        years_shown = {this_year, this_year - 1}
        pairs: dict[int, list[tuple[int, int]]] = {}
        yield from self._providers(years_shown, pairs)
        yield from self._peers(years_shown, pairs)
        yield from self._alerts()
        yield from self._throughput()

    def _providers(
        self, years_shown: set[int], pairs: dict[int, list[tuple[int, int]]]
    ) -> Iterator[Any]:
        """The indicator gauges per provider-year (this year and the last); fills
        ``pairs`` with every provider-year's (consults, group consults)."""
        engine = self.m.engine
        families = {
            key: GaugeMetricFamily(name, doc, labels=[*PROVIDER_LABELS, *extra])
            for key, (name, doc, extra) in PROVIDER_GAUGES.items()
        }
        for agb in sorted(engine.providers):
            st = engine.providers[agb]
            for year, ys in st.years.items():
                pairs.setdefault(year, []).append((ys.consults, ys.group_consults))
                if year not in years_shown:
                    continue
                contract = engine.contracts.get(agb, year)
                labels = [
                    agb,
                    str(year),
                    contract.provider_name if contract else "",
                    contract.purchaser if contract else "",
                    contract.region if contract else UNKNOWN_REGION,
                ]
                ceiling = contract.ceiling_cents if contract else None
                for key, extra, value in year_values(engine, st, year, ceiling):
                    families[key].add_metric([*labels, *extra], value)
        yield from families.values()

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

    def _alerts(self) -> Iterator[Any]:
        """Alerts firing now, and transitions published, from the alert states."""
        engine = self.m.engine
        firing = GaugeMetricFamily(
            "claimwatch_alert_firing",
            "1 for every alert currently firing.",
            labels=[
                "alert_id",
                "rule",
                "provider",
                "provider_name",
                "year",
                "severity",
                "purchaser",
                "region",
                "detail",
            ],
        )
        transitions: dict[tuple[str, str], int] = {
            (r, s): 0 for r in RULES.names() for s in ("firing", "resolved")
        }
        for agb, st in engine.providers.items():
            for aid, a in st.alerts.states.items():
                parts = aid.split(":")
                rule, year = parts[0], int(parts[2])
                detail = parts[3] if len(parts) > 3 else ""
                transitions[(rule, "firing")] += (a.sequence + 1) // 2
                transitions[(rule, "resolved")] += a.sequence // 2
                if a.firing:
                    contract = engine.contracts.get(agb, year)
                    firing.add_metric(
                        [
                            aid,
                            rule,
                            agb,
                            contract.provider_name if contract else "",
                            str(year),
                            a.severity,
                            contract.purchaser if contract else "",
                            contract.region if contract else UNKNOWN_REGION,
                            detail,
                        ],
                        1,
                    )
        yield firing
        alerts_total = CounterMetricFamily(
            "claimwatch_alerts",
            "Alert transitions published, by rule and state.",
            labels=["rule", "state"],
        )
        for (rule, state), n in sorted(transitions.items()):
            alerts_total.add_metric([rule, state], n)
        yield alerts_total

    def _throughput(self) -> Iterator[Any]:
        """Lines by outcome, messages, dead letters, lag, the line index, the build."""
        engine = self.m.engine
        counts = engine.counts()
        lines = CounterMetricFamily(
            "claimwatch_lines", "Declaration lines by outcome.", labels=["result", "reason"]
        )
        lines.add_metric(["accepted", ""], counts.accepted)
        lines.add_metric(["duplicate", ""], counts.duplicate)
        lines.add_metric(["duplicate_line", ""], counts.duplicate_line)
        lines.add_metric(["duplicate_credit", ""], counts.duplicate_credit)
        for reason in REJECT_REASONS:
            lines.add_metric(["rejected", reason], counts.rejected.get(reason, 0))
        yield lines

        messages = CounterMetricFamily(
            "claimwatch_messages", "Kafka messages consumed on the declarations topic."
        )
        messages.add_metric([], self.m.messages)
        yield messages
        dead = CounterMetricFamily(
            "claimwatch_dead_letters",
            "Messages written to the dead-letter topic.",
            labels=["reason"],
        )
        for reason in sorted({*REJECT_REASONS, *self.m.dead_letters}):
            dead.add_metric([reason], self.m.dead_letters.get(reason, 0))
        yield dead
        yield self.m.lag.family()
        lag = GaugeMetricFamily(
            "claimwatch_consumer_lag_messages",
            "High watermark minus committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(self.m.consumer_lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        last = GaugeMetricFamily(
            "claimwatch_last_event_timestamp_seconds",
            "Unix time of the last declarations message processed.",
        )
        last.add_metric([], self.m.last_event)
        yield last
        index = GaugeMetricFamily(
            "claimwatch_line_index_entries",
            "Line index entries held in memory (lines of open service years), per service year.",
            labels=["year"],
        )
        per_year: dict[int, int] = {}
        for st in engine.providers.values():
            for year, lines_of_year in st.lines.items():
                per_year[year] = per_year.get(year, 0) + len(lines_of_year)
        for year in sorted(per_year):
            index.add_metric([str(year)], per_year[year])
        yield index
        info = GaugeMetricFamily("claimwatch_build_info", "Build information.", labels=["version"])
        info.add_metric([VERSION], 1)
        yield info
