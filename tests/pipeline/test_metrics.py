"""The worker's event-lag histogram against Prometheus's own Histogram."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from streams.pipeline.metrics import LAG_BUCKETS, LagHistogram


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
