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

from streams.domain.alerts import Finding
from streams.domain.contracts import Contract
from streams.domain.engine import Engine
from streams.domain.policy import Policy
from streams.domain.regions import DepartmentSummary, RegionWatch, region_view
from streams.pipeline.metrics import LAG_BUCKETS, LagHistogram, WorkerMetrics, parse_gap_id
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


# ------------------------------------------------- counters of this process, not of state


def _page(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value of the worker's exposition."""
    body, _ = metrics.exposition()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _lines(metrics: WorkerMetrics) -> dict[tuple[str, str], float]:
    """(result, reason) → claimwatch_lines_total of the exposition."""
    return {
        (dict(labels)["result"], dict(labels)["reason"]): v
        for (name, labels), v in _page(metrics).items()
        if name == "claimwatch_lines_total" and v
    }


def test_every_line_is_counted_whatever_its_reason_and_a_redelivery_is_not(
    make_line: LineFactory, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.pipeline import processor
    from tests.conftest import AGB
    from tests.pipeline.feed import Feed, Message

    feed = Feed(policy)
    line = make_line()
    batch = {"schema": "ggz.declaration-batch/1", "provider_agb": AGB, "lines": [line, line]}
    feed.declarations(AGB, orjson.dumps(batch))  # accepted + duplicate
    feed.declarations(None, b"{not json")  # no provider to own it: the partition's ledger
    feed.declarations(None, orjson.dumps(make_line()))  # re-keyed, counted once, keyed
    feed.declarations(None, orjson.dumps(make_line(client_ref="123456782")))  # BSN-like
    # A message above the size the worker reads, with and without a key.
    big = orjson.dumps(make_line(trajectory_id="x" * 400))
    monkeypatch.setattr(processor, "MAX_MESSAGE_BYTES", len(big) - 1)
    feed.declarations(AGB, big)
    feed.declarations(None, big)
    # The first message again, at its own offset: already applied, skipped whole.
    topic = feed.settings.topic_declarations
    feed.handle(Message(topic, feed.partition_of(AGB), 0, AGB.encode(), orjson.dumps(batch)))

    metrics = feed.worker.metrics
    assert _lines(metrics) == {
        ("accepted", ""): 2,
        ("duplicate", ""): 1,
        ("rejected", "invalid_json"): 1,
        ("rejected", "bsn_like_client_ref"): 1,
        ("rejected", "message_too_large"): 2,
    }
    # the same as every owner of a count holds (what /snapshot sums), and /status
    assert metrics.outcomes == feed.totals()
    assert metrics.lines == 7
    page = _page(metrics)
    assert page[("claimwatch_dead_letters_total", (("reason", "message_too_large"),))] == 2


def test_the_lines_counter_stays_with_the_process_when_a_partition_moves(
    make_line: LineFactory, policy: Policy
) -> None:
    """The provider's state moves to another worker; the counts of what this process
    did stay with it, and the new owner starts from what it does itself. Summed from
    state, the first worker's counter fell and the second's jumped: a false rate."""
    from tests.conftest import AGB
    from tests.pipeline.feed import Feed

    store: dict[str, Any] = {}
    first = Feed(policy, store=store)
    for _ in range(3):
        first.declarations(AGB, orjson.dumps(make_line()))
    before = _lines(first.worker.metrics)
    assert before == {("accepted", ""): 3}
    first.processor.forget_partitions({first.partition_of(AGB)})  # revoked
    assert _lines(first.worker.metrics) == before

    second = Feed(policy, store=store).recover()  # the new owner, from the changelog
    second.offsets = first.offsets  # the topic's offsets go on
    assert AGB in second.engine.providers
    assert _lines(second.worker.metrics) == {}
    second.declarations(AGB, orjson.dumps(make_line()))
    assert _lines(second.worker.metrics) == {("accepted", ""): 1}


def test_alert_transitions_are_counted_when_published_by_this_process(
    make_line: LineFactory, policy: Policy
) -> None:
    from tests.conftest import AGB, make_contract
    from tests.pipeline.feed import Feed

    feed = Feed(policy)
    feed.control(
        feed.partition_of(AGB),
        orjson.dumps({"type": "contract", "contract": make_contract(ceiling_cents=10_000)}),
    )
    feed.declarations(AGB, orjson.dumps(make_line(amount_cents=9_500)))
    page = _page(feed.worker.metrics)
    firing = {
        dict(labels)["rule"]: v
        for (name, labels), v in page.items()
        if name == "claimwatch_alerts_total" and dict(labels)["state"] == "firing"
    }
    assert firing["ceiling_utilisation"] == 2 == len(feed.alerts)  # 70 % and 90 %
    feed.processor.forget_partitions({feed.partition_of(AGB)})
    assert (
        _page(feed.worker.metrics)[
            ("claimwatch_alerts_total", (("rule", "ceiling_utilisation"), ("state", "firing")))
        ]
        == 2
    )


def test_no_last_event_sample_before_the_first_declarations_message(
    make_line: LineFactory, policy: Policy
) -> None:
    from tests.conftest import AGB
    from tests.pipeline.feed import Feed

    feed = Feed(policy)
    name = "claimwatch_last_event_timestamp_seconds"
    assert not [k for k in _page(feed.worker.metrics) if k[0] == name]
    feed.declarations(AGB, orjson.dumps(make_line()))
    (value,) = [v for k, v in _page(feed.worker.metrics).items() if k[0] == name]
    assert abs(value - datetime.now(UTC).timestamp()) < 3600


# ------------------------------------------------ descriptive labels, policy, process


def test_names_purchaser_and_region_ride_on_provider_info_only(
    make_line: LineFactory, policy: Policy
) -> None:
    engine = _engine(make_line, policy)
    page = _page(WorkerMetrics(engine))
    info = {
        dict(labels)["provider"]: dict(labels)
        for (name, labels), v in page.items()
        if name == "claimwatch_provider_info" and dict(labels)["year"] == str(YEAR)
    }
    assert info["11111111"] == {
        "provider": "11111111",
        "year": str(YEAR),
        "provider_name": "GGZ",
        "purchaser": "p",
        "region": "Utrecht",
    }
    # no contract: known by its code only, region unknown
    assert info["33333333"] | {} == {
        "provider": "33333333",
        "year": str(YEAR),
        "provider_name": "",
        "purchaser": "",
        "region": "unknown",
    }
    assert all(v == 1 for (name, _), v in page.items() if name == "claimwatch_provider_info")
    for name, labels in page:
        if name.startswith(("claimwatch_provider_", "claimwatch_alert_firing")) and (
            name != "claimwatch_provider_info"
        ):
            assert not {"provider_name", "purchaser", "region"} & dict(labels).keys(), name


def test_a_firing_alert_of_an_older_year_has_its_provider_info(
    make_line: LineFactory, policy: Policy
) -> None:
    engine = Engine(policy)
    old = YEAR - 3
    engine.apply_contract(Contract("12345678", old, 10_000, "p", "GGZ Oud", "Twente", 1, 0.0))
    engine.process(
        orjson.dumps(
            make_line(
                service_date=f"{old}-03-01",
                submitted_at=f"{old}-03-10T09:00:00Z",
                amount_cents=9_500,
            )
        )
    )
    page = _page(WorkerMetrics(engine))
    assert any(
        name == "claimwatch_alert_firing" and dict(labels)["year"] == str(old)
        for name, labels in page
    )
    assert (
        "claimwatch_provider_info",
        (
            ("provider", "12345678"),
            ("provider_name", "GGZ Oud"),
            ("purchaser", "p"),
            ("region", "Twente"),
            ("year", str(old)),
        ),
    ) in page


def test_policy_parameters_are_exported_from_the_policy_the_worker_runs_with() -> None:
    import tomllib

    from streams.domain.policy import DEFAULT_POLICY_PATH, parse_policy

    raw = tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw["group_share_low"]["factor"] = 0.4
    raw["digital_share_low"]["target"] = 0.3
    policy = parse_policy(raw)
    page = _page(WorkerMetrics(Engine(policy)))

    def parameter(rule: str, name: str, index: str = "") -> float:
        key = (("index", index), ("parameter", name), ("rule", rule))
        return page[("claimwatch_policy_threshold", key)]

    assert parameter("group_share_low", "factor") == 0.4
    assert parameter("digital_share_low", "target") == 0.3
    assert parameter("ceiling_utilisation", "thresholds", "2") == 1.0
    assert parameter("clinical_detox_high", "threshold") == 0.5
    names = {dict(labels)["parameter"] for name, labels in page if "policy" in name}
    assert not {"severity", "severities", "thresholds_bp", "settings"} & names


def test_process_and_garbage_collector_metrics_are_exported(policy: Policy) -> None:
    page = _page(WorkerMetrics(Engine(policy)))
    names = {name for name, _ in page}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= names
    assert "python_gc_collections_total" in names


# ------------------------------------------------------------ the scrape and the loop


def _many_providers(policy: Policy, n: int) -> Engine:
    engine = Engine(policy)
    make_line = LineFactory()
    for i in range(n):
        engine.process(orjson.dumps(make_line(provider_agb=f"{10_000_000 + i}")))
    return engine


async def test_a_scrape_lets_the_event_loop_run_while_it_reads_the_state(
    policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition revoked while a scrape reads the state: the loop ran in between
    (no stall for the whole state), and the dropped provider is left out, no error."""
    import asyncio
    import threading

    from streams.pipeline import metrics as metrics_module

    engine = _many_providers(policy, 4 * metrics_module.SCRAPE_CHUNK)
    last = max(engine.providers)
    metrics = WorkerMetrics(engine)
    rendered_in: list[int] = []
    generate = metrics_module.generate_latest

    def generate_latest(registry: Any) -> bytes:
        rendered_in.append(threading.get_ident())
        return generate(registry)

    monkeypatch.setattr(metrics_module, "generate_latest", generate_latest)
    started: list[bool] = []
    chunks = metrics_module.StateCollector.chunks

    def first_chunk_read(self: Any, families: list[Any]) -> Any:
        for step in chunks(self, families):
            started.append(True)
            yield step

    monkeypatch.setattr(metrics_module.StateCollector, "chunks", first_chunk_read)

    async def revoke() -> None:
        while not started:
            await asyncio.sleep(0)
        del engine.providers[last]

    scrape = asyncio.ensure_future(metrics.render())
    await revoke()
    body, _ = await scrape
    assert f'provider="{last}"' not in body.decode()
    assert 'provider="10000000"' in body.decode()
    assert rendered_in and threading.get_ident() not in rendered_in  # made in a thread


async def test_scrapes_at_the_same_time_share_one_rendering(policy: Policy) -> None:
    import asyncio

    metrics = WorkerMetrics(_many_providers(policy, 120))
    (a, _), (b, _) = await asyncio.gather(metrics.render(), metrics.render())
    assert a is b
    (c, _) = await metrics.render()
    assert c is not a  # a later scrape renders anew


# ------------------------------------------------ cruciale ggz: regions and departments


def _rows(latest: tuple[int, int]) -> list[DepartmentSummary]:
    """Utrecht: two crisis teams (one active) and a secured ward that stopped after
    being active in the window (a gap); Twente: an active FACT team; an `other` unit."""
    return [
        DepartmentSummary(
            "11111111", "crisis-a", "acute", "Utrecht", latest, (5, 5, 5, 5, 5, 5, 7)
        ),
        DepartmentSummary(
            "22222222", "crisis-b", "acute", "Utrecht", latest, (3, 3, 3, 3, 0, 0, 0)
        ),
        DepartmentSummary(
            "11111111", "ward:9", "secured", "Utrecht", latest, (4, 4, 4, 4, 4, 4, 0)
        ),
        DepartmentSummary("33333333", "fact", "outreach", "Twente", latest, (9, 9, 9, 9, 9, 9, 11)),
        DepartmentSummary("33333333", "desk", "other", "Twente", latest, (1, 1, 1, 1, 1, 1, 1)),
    ]


def test_region_figures_are_the_region_view_and_the_gaps_firing(policy: Policy) -> None:
    rows = _rows((YEAR, 5))
    watch = RegionWatch()
    watch.evaluate(rows, 0.0, 0.0)
    metrics = WorkerMetrics(Engine(policy))
    metrics.region_source = lambda: region_view(rows)
    metrics.gap_source = watch.alerts.firing
    page = _page(metrics)

    def of(name: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(v for _, v in labels): value for (n, labels), value in page.items() if n == name
        }

    # labels sorted by name: category, region
    assert of("claimwatch_region_active_departments") == {
        ("acute", "Utrecht"): 1,
        ("secured", "Utrecht"): 0,
        ("outreach", "Twente"): 1,
    }
    assert of("claimwatch_region_clients") == {
        ("acute", "Utrecht"): 7,
        ("secured", "Utrecht"): 0,
        ("outreach", "Twente"): 11,
    }
    # alert_id, category, region, severity, year
    assert of("claimwatch_region_category_gap_firing") == {
        (f"region_category_gap:Utrecht:secured:{YEAR}", "secured", "Utrecht", "high", str(YEAR)): 1
    }


def test_a_region_gap_id_is_read_from_its_end_so_a_region_may_hold_a_colon() -> None:
    assert parse_gap_id(f"region_category_gap:Zuid:Oost:secured:{YEAR}") == (
        "Zuid:Oost",
        "secured",
        str(YEAR),
    )
    assert parse_gap_id(f"department_stopped:12345678:{YEAR}:crisis") is None


def test_region_purchasers_come_from_the_contracts_of_the_years_shown(policy: Policy) -> None:
    engine = Engine(policy)
    for agb, year, purchaser, region in (
        ("11111111", YEAR, "inkoop-noord", "Groningen"),
        ("22222222", YEAR, "inkoop-oost", "Groningen"),
        ("33333333", YEAR - 1, "inkoop-noord", "Groningen"),
        ("44444444", YEAR - 5, "inkoop-oud", "Twente"),  # long gone: not a purchaser now
        ("55555555", YEAR, "", "Twente"),  # no purchaser named
    ):
        engine.apply_contract(Contract(agb, year, 1_000_000, purchaser, "GGZ", region, 1, 0.0))
    page = _page(WorkerMetrics(engine))
    pairs = sorted(
        (dict(labels)["region"], dict(labels)["purchaser"])
        for (n, labels) in page
        if n == "claimwatch_region_purchaser"
    )
    assert pairs == [("Groningen", "inkoop-noord"), ("Groningen", "inkoop-oost")]


def test_a_department_alert_carries_its_whole_department_as_detail(
    make_line: LineFactory, policy: Policy
) -> None:
    engine = Engine(policy)
    engine.process(orjson.dumps(make_line(provider_agb="12345678")))
    st = engine.providers["12345678"]
    aid = f"department_stopped:12345678:{YEAR}:kliniek:west"
    st.alerts.observe(
        aid, Finding("department_stopped", YEAR, "kliniek:west", True, False, 0.0, 0.0, "high")
    )
    page = _page(WorkerMetrics(engine))
    ((labels, value),) = [
        (dict(labels), v) for (n, labels), v in page.items() if n == "claimwatch_alert_firing"
    ]
    assert value == 1
    assert labels["rule"] == "department_stopped" and labels["detail"] == "kliniek:west"
    assert labels["alert_id"] == aid and labels["year"] == str(YEAR)
