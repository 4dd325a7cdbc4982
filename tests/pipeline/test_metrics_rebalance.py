"""/metrics of two real workers on the embedded broker, before and after partitions
move from one to the other: the counters stay with the process that counted, so no
rate jumps; the provider gauges move with the providers.

Summed from provider state (as before issue #24), the first worker's lines counter
fell by the moved providers' lines and the second's jumped by as many at once:
Prometheus reads the fall as a reset and the jump as a burst of lines.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from streams.local.cluster import WorkerProc, http_get
from tests.pipeline.harness import produce, wait_until
from tests.pipeline.test_streaming import metric_samples

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def scrape(worker: WorkerProc) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{worker.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
        return metric_samples(resp.read().decode())


def lines(page: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(v for (name, _), v in page.items() if name == "claimwatch_lines_total")


def providers(page: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {
        dict(labels)["provider"]
        for (name, labels), _ in page.items()
        if name == "claimwatch_provider_info"
    }


def ready(worker: WorkerProc) -> bool:
    try:
        return http_get(worker.port, "/ready", timeout=2.0)["status"] == "ok"
    except OSError:  # 503 while recovering (urllib raises), or not listening yet
        return False


def test_counters_stay_with_their_process_when_partitions_move(
    cluster, small_history: tuple[list[Path], Path]
) -> None:
    files, contracts = small_history
    first = cluster.add_worker()
    cluster.wait_ready()
    wait_until(lambda: ready(first), 60, "the first worker ready")
    assert "claimwatch_last_event_timestamp_seconds" not in {n for n, _ in scrape(first)}

    stats = produce(cluster, files, contracts)
    declarations = cluster.settings.topic_declarations
    cluster.wait_processed({f"{declarations}:{p}": o for p, o in stats.end_offsets.items()})
    wait_until(lambda: lines(scrape(first)) >= stats.lines, 60, "every line counted")
    before = scrape(first)
    assert lines(before) == stats.lines  # every line, each once
    held_before = providers(before)

    second = cluster.add_worker()  # a rebalance: some partitions move to it
    cluster.wait_ready()
    wait_until(lambda: ready(first) and ready(second), 120, "both workers ready")
    moved, stayed = scrape(second), scrape(first)
    # The counts of what the first process did stay with it; the second did nothing yet.
    assert lines(stayed) == lines(before)
    assert lines(moved) == 0
    # The gauges moved with their providers: each provider on exactly one worker.
    assert providers(moved) and providers(stayed)
    assert not providers(moved) & providers(stayed)
    assert providers(moved) | providers(stayed) == held_before

    # The same input again (every line a duplicate now), processed by both workers:
    # each line counted once, by the process that handled it, and no counter falls.
    again = produce(cluster, files, None)
    cluster.wait_processed({f"{declarations}:{p}": o for p, o in again.end_offsets.items()})

    def counted() -> float:
        return lines(scrape(first)) + lines(scrape(second))

    wait_until(lambda: counted() >= lines(stayed) + again.lines, 60, "the lines counted again")
    after_first, after_second = scrape(first), scrape(second)
    assert lines(after_first) >= lines(stayed) and lines(after_second) > 0
    grown = lines(after_first) - lines(stayed) + lines(after_second)
    assert grown == again.lines
