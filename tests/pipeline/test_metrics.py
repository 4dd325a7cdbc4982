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
