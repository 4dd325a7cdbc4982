"""The worker's metrics: the event-lag histogram against Prometheus's own Histogram, and
the provider-year gauges (spend pace, client counts) against figures worked out by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from streams.domain.contracts import Contract
from streams.domain.engine import Engine
from streams.domain.policy import Policy
from streams.pipeline.metrics import LAG_BUCKETS, LagHistogram, WorkerMetrics
from tests.conftest import LineFactory


def test_lag_histogram_counts_every_line_in_the_bucket_prometheus_would() -> None:
    rng = random.Random(7)
    now = 1_700_000_000.0
    # lines of one submission share their time; some times lie on a bucket bound,
    # some in the future (a clock skew: lag 0)
    times = [now - rng.choice([*LAG_BUCKETS, 0.0, 0.3, 7.5, 1e6, -2.0]) for _ in range(300)]
    ours = LagHistogram()
    ours.observe_many(now, times[:100])
    ours.observe_many(now, times[100:])
    ours.observe_many(now, [])

    registry = CollectorRegistry()
    reference = Histogram("lag", "", buckets=LAG_BUCKETS, registry=registry)
    for t in times:
        reference.observe(max(0.0, now - t))

    def samples(family):  # type: ignore[no-untyped-def]
        return {
            (
                s.name.rsplit("_", 1)[-1],
                float(s.labels.get("le", "nan").replace("+Inf", "inf")),
            ): s.value
            for s in family.samples
            if not s.name.endswith("_created")
        }

    expected = samples(next(iter(registry.collect())))
    got = samples(ours.family())
    assert sorted(map(str, got)) == sorted(map(str, expected))
    for key, value in expected.items():
        [ours_value] = [v for k, v in got.items() if str(k) == str(key)]
        assert abs(ours_value - value) < 1e-6 * max(1.0, abs(value)), key


async def test_consumer_lag_is_the_fetch_highwater_minus_the_committed_offset(monkeypatch) -> None:
    """The lag gauge from a worker's real Faust consumer (no broker: its fetch
    highwaters are given, and the committed offsets put where Faust's commit keeps
    them). Faust renaming that private dict fails here, not only at a scrape."""
    from faust.types import TP

    from streams.domain.policy import load_policy
    from streams.pipeline.settings import Settings
    from streams.pipeline.worker import Worker

    worker = Worker(Settings(broker="127.0.0.1:9", app_id="lag-test"), load_policy())
    app, topic = worker.app, "ggz.declarations.v1"
    tps = [TP(topic, p) for p in range(4)]
    # partition 0: 40 in the log, 25 committed; 1: 9, nothing committed yet; 2: all
    # committed; 3: not fetched yet (no highwater): left out, not shown as 0
    highwaters = {tps[0]: 40, tps[1]: 9, tps[2]: 12, tps[3]: None}
    monkeypatch.setattr(app.consumer, "highwater", highwaters.__getitem__)
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: set(tps))
    app.consumer._committed_offset.update({tps[0]: 25, tps[2]: 12})  # type: ignore[attr-defined]  # noqa: SLF001
    await worker.metrics.update_lag(app)
    assert worker.metrics.consumer_lag == {(topic, 0): 15, (topic, 1): 9, (topic, 2): 0}
    page = worker.metrics.exposition()[0].decode()
    assert f'claimwatch_consumer_lag_messages{{partition="0",topic="{topic}"}} 15.0' in page


# ---------------------------------------------------------------- provider-year gauges

# The collector shows this year and the last by wall clock.
YEAR = datetime.now(UTC).year


def _scrape(engine: Engine) -> dict[str, dict[tuple[str, str], float]]:
    """metric name → {(provider, year): value} of the worker's exposition."""
    body, _ = WorkerMetrics(engine).exposition()
    found: dict[str, dict[tuple[str, str], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if "provider" in s.labels and "quarter" not in s.labels:
                key = (s.labels["provider"], s.labels["year"])
                found.setdefault(s.name, {})[key] = s.value
    return found


def _engine(make_line: LineFactory, policy: Policy) -> Engine:
    engine = Engine(policy)

    def contract(agb: str, ceiling_cents: int) -> None:
        engine.apply_contract(Contract(agb, YEAR, ceiling_cents, "p", "GGZ", "Utrecht", 1, 0.0))

    def line(agb: str, service: str, cents: int, at: str, **extra: Any) -> None:
        fields = {"provider_agb": agb, "service_date": service, "amount_cents": cents}
        engine.process(orjson.dumps(make_line(**fields, submitted_at=at, **extra)))

    # A: even spread (no previous year). Watermark 15 June, lag 30 days: months 1..4
    # covered. 10,000 euros in them (June's 500 not yet), E(4) = 4/12.
    contract("11111111", 2_400_000)
    for month, cents in ((1, 100_000), (2, 200_000), (3, 300_000), (4, 400_000), (6, 50_000)):
        line("11111111", f"{YEAR}-{month:02d}-10", cents, f"{YEAR}-06-15T12:00:00Z")
    # B: the previous year (net 12,000 euros >= min_prior_cents) spent half of it in
    # January: E(4) = 1/2, whatever the even spread says.
    contract("22222222", 1_000_000)
    for service, cents in (
        (f"{YEAR - 1}-01-10", 600_000),
        (f"{YEAR - 1}-07-10", 600_000),
        (f"{YEAR}-01-10", 300_000),
        (f"{YEAR}-03-10", 100_000),
    ):
        line("22222222", service, cents, f"{YEAR}-06-15T12:00:00Z")
    # C: no contract. D: one month covered (watermark 15 March), below min_months.
    line("33333333", f"{YEAR}-01-10", 300_000, f"{YEAR}-06-15T12:00:00Z")
    contract("44444444", 1_200_000)
    line("44444444", f"{YEAR}-01-10", 300_000, f"{YEAR}-03-15T12:00:00Z")
    return engine


def test_pace_gauges_follow_spec_8_2_at_the_providers_watermark(
    make_line: LineFactory, policy: Policy
) -> None:
    assert policy.months.lag_days == 30 and policy.pace.min_months == 3
    assert policy.pace.min_prior_cents == 1_000_000
    got = _scrape(_engine(make_line, policy))
    a, b, c, d = ((agb, str(YEAR)) for agb in ("11111111", "22222222", "33333333", "44444444"))
    month = got["claimwatch_provider_covered_month"]
    assert (month[a], month[b], month[c], month[d]) == (4, 4, 4, 1)
    covered = got["claimwatch_provider_covered_declared_euros"]
    assert (covered[a], covered[b], covered[c], covered[d]) == (10_000, 4_000, 3_000, 3_000)
    assert got["claimwatch_provider_net_declared_euros"][a] == 10_500
    expected = got["claimwatch_provider_expected_by_now_euros"]
    assert expected[a] == pytest.approx(8_000)  # 4/12 of 24,000
    assert expected[b] == pytest.approx(5_000)  # 1/2 of 10,000: last year's profile
    assert expected[d] == pytest.approx(1_000)  # 1/12 of 12,000
    assert c not in expected  # no ceiling
    projected = got["claimwatch_provider_projected_euros"]
    # D: one month says too little. B's previous year is all covered: its own net.
    assert projected == {a: 30_000, b: 8_000, c: 9_000, ("22222222", str(YEAR - 1)): 12_000}
    assert got["claimwatch_provider_pace_ratio"] == {a: 1.25, b: 0.8}


def test_client_counts_and_shares_of_spec_8_4(make_line: LineFactory, policy: Policy) -> None:
    engine = Engine(policy)
    at = f"{YEAR}-03-02T09:00:00Z"
    lines = [
        # client x: two clinical detox days count once; y ambulant; z both.
        {"client_ref": "x", "detox": "clinical"},
        {"client_ref": "x", "detox": "clinical"},
        {"client_ref": "y", "detox": "ambulant"},
        {"client_ref": "z", "detox": "ambulant"},
        {"client_ref": "z", "detox": "clinical"},
        # consults: x digital twice, y not, w digital once
        {"client_ref": "x", "digital": True},
        {"client_ref": "x", "digital": True},
        {"client_ref": "y"},
        {"client_ref": "w", "digital": True},
    ]
    for fields in lines:
        engine.process(
            orjson.dumps(make_line(service_date=f"{YEAR}-02-10", submitted_at=at, **fields))
        )
    got = _scrape(engine)
    key = ("12345678", str(YEAR))
    assert got["claimwatch_provider_detox_clients"][key] == 3
    assert got["claimwatch_provider_clinical_detox_clients"][key] == 2
    assert got["claimwatch_provider_clinical_detox_client_share_ratio"][key] == pytest.approx(2 / 3)
    assert (
        got["claimwatch_provider_consult_clients"][key]
        == engine.providers["12345678"].years[YEAR].consult_clients
    )
    assert got["claimwatch_provider_digital_clients"][key] == 2
    share = got["claimwatch_provider_digital_client_share_ratio"][key]
    assert share == pytest.approx(2 / got["claimwatch_provider_consult_clients"][key])
