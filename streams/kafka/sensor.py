"""Faust's Prometheus sensor, its per-message metrics made when /metrics is scraped.

``faust.sensors.prometheus.PrometheusMonitor`` updates labelled prometheus_client
metrics on every message, stream event, table access and send: a label lookup and a
lock each, about a sixth of a worker's CPU on single-line messages. Faust's plain
``Monitor``, which it extends, already counts all of those
in ints and dicts. ``ScrapedMonitor`` keeps only those counts on the hot path, and a
collector turns them into the same metric families at scrape time (STYLE: the hot
path never touches metric objects per event). Two unlabelled histograms (event
runtime, send latency) are still observed as they happen, and the rare events
(commits, rebalances, assignments, web requests, send errors) keep
``PrometheusMonitor``'s own handling.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# FaustMetrics fields this sensor leaves out of the registry: the collector makes them
SCRAPED = (
    "messages_received",
    "active_messages",
    "messages_received_per_topics",
    "messages_received_per_topics_partition",
    "total_events",
    "total_active_events",
    "total_events_per_stream",
    "table_operations",
    "topic_messages_sent",
    "total_sent_messages",
)
_OPERATIONS = ("keys_retrieved", "keys_updated", "keys_deleted")  # TableState fields


class ScrapedMonitor(PrometheusMonitor):
    """``PrometheusMonitor`` with the per-message families collected at scrape time."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        metrics = FaustMetrics.create(registry, prefix)
        super().__init__(metrics=metrics)
        self.sends_completed = 0
        self._prefix = prefix
        self._help: dict[str, str] = {}
        self._stream_labels: dict[str, str] = {}  # str(stream) → its label
        # per-topic counts at the last rebalance (_clear_partition_related_metrics)
        self._received_base: dict[str, int] = {}
        self._sent_base: dict[str, int] = {}
        for name in SCRAPED:
            metric = getattr(metrics, name)
            self._help[name] = metric.describe()[0].documentation
            registry.unregister(metric)
        registry.register(_Collector(self))

    # The hot hooks: Monitor's counting only (PrometheusMonitor's versions add the
    # labelled metric updates this sensor exists to avoid).
    on_message_in = Monitor.on_message_in
    on_message_out = Monitor.on_message_out
    on_table_get = Monitor.on_table_get
    on_table_set = Monitor.on_table_set
    on_table_del = Monitor.on_table_del
    on_send_initiated = Monitor.on_send_initiated

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        # Monitor counts events by str(stream) and holds the streams weakly: the label
        # is made once, here, so that a count outlives its stream, as in Faust's.
        key = self.stream_lookup[stream]
        if key not in self._stream_labels:
            self._stream_labels[key] = f"stream.{self._stream_label(stream)}.events"
        return state

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: dict[str, Any] | None = None
    ) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        if state is not None:
            self._metrics.events_runtime_latency.observe(self.secs_to_ms(self.events_runtime[-1]))

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        Monitor.on_send_completed(self, producer, state, metadata)
        self.sends_completed += 1
        self._metrics.producer_send_latency.observe(self.ms_since(state))

    def _clear_partition_related_metrics(self) -> None:
        """At a rebalance PrometheusMonitor drops its per-topic counts (they start
        again from 0); Monitor keeps counting, so the counts at this moment become
        the base that the page subtracts."""
        super()._clear_partition_related_metrics()
        self._received_base = dict(self.messages_received_by_topic)
        self._sent_base = dict(self.messages_sent_by_topic)

    def families(self) -> Iterator[Metric]:
        """The ``SCRAPED`` families as ``PrometheusMonitor`` would show them now."""
        p, doc = self._prefix, self._help
        yield CounterMetricFamily(
            f"{p}_messages_received", doc["messages_received"], value=self.messages_received_total
        )
        yield GaugeMetricFamily(
            f"{p}_active_messages", doc["active_messages"], value=self.messages_active
        )
        by_topic = CounterMetricFamily(
            f"{p}_messages_received_per_topic",
            doc["messages_received_per_topics"],
            labels=["topic"],
        )
        base = self._received_base
        for topic, n in list(self.messages_received_by_topic.items()):
            if n > base.get(topic, 0):
                by_topic.add_metric([topic], n - base.get(topic, 0))
        yield by_topic
        read = GaugeMetricFamily(
            f"{p}_messages_received_per_topics_partition",
            doc["messages_received_per_topics_partition"],
            labels=["topic", "partition"],
        )
        for tp, offset in list(self.tp_read_offsets.items()):
            read.add_metric([tp.topic, str(tp.partition)], offset)
        yield read
        yield CounterMetricFamily(f"{p}_total_events", doc["total_events"], value=self.events_total)
        yield GaugeMetricFamily(
            f"{p}_total_active_events", doc["total_active_events"], value=self.events_active
        )
        per_stream: dict[str, int] = {}  # streams with one label share its sample
        for key, n in list(self.events_by_stream.items()):
            label = self._stream_labels.get(key)
            if label is not None:
                per_stream[label] = per_stream.get(label, 0) + n
        streams = CounterMetricFamily(
            f"{p}_total_events_per_stream", doc["total_events_per_stream"], labels=["stream"]
        )
        for label, n in per_stream.items():
            streams.add_metric([label], n)
        yield streams
        tables = CounterMetricFamily(
            f"{p}_table_operations", doc["table_operations"], labels=["table", "operation"]
        )
        for name, state in list(self.tables.items()):
            for operation in _OPERATIONS:
                n = getattr(state, operation)
                if n:  # as PrometheusMonitor: a sample once the operation happened
                    tables.add_metric([f"table.{name}", operation], n)
        yield tables
        sent = CounterMetricFamily(
            f"{p}_topic_messages_sent", doc["topic_messages_sent"], labels=["topic"]
        )
        base = self._sent_base
        for topic, n in list(self.messages_sent_by_topic.items()):
            if n > base.get(topic, 0):
                sent.add_metric([f"topic.{topic}"], n - base.get(topic, 0))
        yield sent
        yield CounterMetricFamily(
            f"{p}_total_sent_messages", doc["total_sent_messages"], value=self.sends_completed
        )


class _Collector:
    def __init__(self, monitor: ScrapedMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        return self._monitor.families()
