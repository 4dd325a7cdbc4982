"""ScrapedMonitor shows what Faust's PrometheusMonitor shows, made at scrape time."""

from __future__ import annotations

from typing import Any, cast

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.sensor import SCRAPED, ScrapedMonitor


class _Named:
    """A stand-in with the attributes a sensor reads (hashable, unlike SimpleNamespace)."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


def _drive(sensor: Any) -> None:
    """The same hook calls Faust makes for a few messages, events, table and sends."""
    agents = _Named(name="ingest"), _Named(name="contracts")
    ingest = _Named(shortlabel="Stream: Topic: ggz.declarations.v1", task_owner=agents[0])
    other = _Named(shortlabel="Stream: Topic: ggz.contracts.v1", task_owner=agents[1])
    state_table, peers = _Named(name="state"), _Named(name="peers")
    app = _Named(rebalancing_count=1)
    for offset, (tp, stream) in enumerate(
        [
            (TP("ggz.declarations.v1", 0), ingest),
            (TP("ggz.declarations.v1", 1), ingest),
            (TP("ggz.contracts.v1", 0), other),
            (TP("ggz.declarations.v1", 0), ingest),
        ]
    ):
        if offset == 2:
            sensor.on_rebalance_start(app)  # clears what is per partition
        message, event = _Named(time_in=None), object()
        sensor.on_message_in(tp, offset, message)
        state = sensor.on_stream_event_in(tp, offset, stream, event)
        sensor.on_table_get(state_table, "k")
        for table in (state_table, state_table, peers):
            sensor.on_table_set(table, "k", b"v")
        sensor.on_table_del(state_table, "k")
        for topic in ("claimwatch-state-changelog", "ggz.alerts.v1"):
            sent = sensor.on_send_initiated(None, topic, None, 1, 2)
            if offset != 1:  # one message's sends are still in flight
                sensor.on_send_completed(None, sent, None)
        sensor.on_stream_event_out(tp, offset, stream, event, state)
        if offset != 3:  # the last message is still being processed
            sensor.on_message_out(tp, offset, message)


def _samples(registry: CollectorRegistry) -> tuple[set[str], dict[tuple[Any, ...], float]]:
    """(every family name, the samples of the SCRAPED families without ``_created``)."""
    text = generate_latest(registry).decode()
    names: set[str] = set()
    samples: dict[tuple[Any, ...], float] = {}
    scraped = {f"faust_{n}" for n in SCRAPED}
    scraped.add("faust_messages_received_per_topic")  # field ..._per_topics
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):  # a counter's creation time, 0.0.4 format
            continue
        names.add(family.name)
        for s in family.samples:
            if family.name in scraped and not s.name.endswith("_created"):
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return names, samples


def test_scraped_monitor_exposes_the_same_families_and_counts_as_faust_prometheus_monitor() -> None:
    stock_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    stock = PrometheusMonitor(metrics=FaustMetrics.create(stock_registry, "faust"))
    ours = ScrapedMonitor(ours_registry, "faust")
    _drive(stock)
    _drive(ours)
    stock_names, stock_samples = _samples(stock_registry)
    ours_names, ours_samples = _samples(ours_registry)
    assert ours_names == stock_names
    assert ours_samples == stock_samples
    # what the drive did, read off our exposition: 4 messages in, 3 out; the
    # rebalance dropped partition offsets read before it
    assert ours_samples[("faust_messages_received_total", ())] == 4
    assert ours_samples[("faust_active_messages", ())] == 1
    read = {k: v for k, v in ours_samples.items() if k[0].endswith("_per_topics_partition")}
    assert sorted(read.values()) == [2, 3]
    updated = (
        "faust_table_operations_total",
        (("operation", "keys_updated"), ("table", "table.state")),
    )
    assert ours_samples[updated] == 8
    assert ours_samples[("faust_total_sent_messages_total", ())] == 6


def test_a_message_counted_by_the_sensor_reaches_the_page_when_it_is_scraped() -> None:
    registry = CollectorRegistry()
    sensor = ScrapedMonitor(registry, "faust")
    before = generate_latest(registry)
    tp, message = TP("ggz.declarations.v1", 0), cast(Any, _Named(time_in=None))
    sensor.on_message_in(tp, 7, message)
    # the counts live in the sensor and reach the page only when it is scraped
    assert sensor.messages_received_total == 1
    assert generate_latest(registry) != before
    assert (
        b'faust_messages_received_per_topics_partition{partition="0",topic="ggz.declarations.v1"} 7.0'
        in generate_latest(registry)
    )


class _Touched:
    """A sensor's ``_metrics`` that notes every metric object asked for."""

    def __init__(self, metrics: FaustMetrics) -> None:
        self._real = metrics
        self.names: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.names.append(name)
        return getattr(self._real, name)


def _hot_hooks(sensor: Any) -> None:
    """The hooks Faust calls for every message, stream event, table access and send."""
    tp, message = TP("ggz.declarations.v1", 0), _Named(time_in=None)
    stream = _Named(shortlabel="Stream: Topic: ggz.declarations.v1", task_owner=_Named(name="i"))
    table, event = _Named(name="state"), object()
    sensor.on_message_in(tp, 0, message)
    sensor.on_stream_event_in(tp, 0, stream, event)
    sensor.on_table_get(table, "k")
    sensor.on_table_set(table, "k", b"v")
    sensor.on_table_del(table, "k")
    sensor.on_send_initiated(None, "ggz.alerts.v1", None, 1, 2)
    sensor.on_message_out(tp, 0, message)


def test_the_per_event_hooks_touch_no_metric_object_where_fausts_monitor_does() -> None:
    """README entry 11, the saving itself: ScrapedMonitor's per-event hooks are Faust's
    plain Monitor counting, so they reach no prometheus_client metric (a label lookup
    and a lock each in PrometheusMonitor's versions). The stock monitor's figure is the
    cost this sensor exists to avoid: if it drops to nothing, the sensor can go."""
    ours = ScrapedMonitor(CollectorRegistry(), "faust")
    touched = _Touched(ours._metrics)  # noqa: SLF001
    ours._metrics = cast(Any, touched)  # noqa: SLF001
    _hot_hooks(ours)
    assert touched.names == []
    assert ours.messages_received_total == 1 and ours.events_total == 1  # still counted

    stock = PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "faust"))
    stock_touched = _Touched(stock._metrics)  # noqa: SLF001
    stock._metrics = cast(Any, stock_touched)  # noqa: SLF001
    _hot_hooks(stock)
    assert {
        "messages_received_per_topics",
        "total_events_per_stream",
        "table_operations",
        "topic_messages_sent",
    } <= set(stock_touched.names)
