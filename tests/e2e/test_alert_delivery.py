"""A cost-ceiling crossing travels the whole alert path to the purchaser's webhook.

declarations → tansu → worker (ceiling rule, `claimwatch_alert_firing` on /metrics)
→ Prometheus (the shipped rules) → Alertmanager (the shipped routes and inhibition)
→ the receiver of the purchaser named in the provider's contract.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from streams.replay.producer import produce_history
from tests.e2e.stack import Stack, get_json, rfc3339

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CEILING_ALERT = "ClaimwatchCeilingUtilisation"


@dataclass(frozen=True)
class Provider:
    agb: str
    name: str
    purchaser: str
    region: str
    ceiling_cents: int
    lines: int
    line_cents: int

    @property
    def utilisation(self) -> float:
        return self.lines * self.line_cents / self.ceiling_cents


# Two purchasing teams with their own receivers (deploy/alertmanager/alertmanager.yml).
ZUID_OVER = Provider(
    "20000001", "GGZ Zuiderzon", "inkoop-ggz-zuid", "Limburg", 1_000_000, 15, 50_000
)
ZUID_UNDER = Provider(
    "20000002", "GGZ Maasdal", "inkoop-ggz-zuid", "Limburg", 1_000_000, 13, 50_000
)
NOORD_OVER = Provider(
    "30000003", "GGZ Noorderlicht", "inkoop-ggz-noord", "Groningen", 2_000_000, 19, 100_000
)
PROVIDERS = (ZUID_OVER, ZUID_UNDER, NOORD_OVER)


def history(year: int) -> tuple[list[bytes], list[bytes]]:
    """Contracts on 1 January, then each provider's consults; utilisation as planted."""
    contracts = [
        orjson.dumps(
            {
                "schema": "ggz.contract/1",
                "provider_agb": p.agb,
                "year": year,
                "ceiling_cents": p.ceiling_cents,
                "purchaser": p.purchaser,
                "provider_name": p.name,
                "region": p.region,
                "version": 1,
                "updated_at": f"{year}-01-01T00:00:00Z",
            }
        )
        for p in PROVIDERS
    ]
    start = datetime(year, 1, 2, 9, 0, tzinfo=UTC)
    lines = []
    for p in PROVIDERS:
        for i in range(p.lines):
            lines.append(
                orjson.dumps(
                    {
                        "schema": "ggz.declaration/1",
                        "event_id": f"e-{p.agb}-{i}",
                        "line_id": f"l-{p.agb}-{i}",
                        "kind": "debit",
                        "provider_agb": p.agb,
                        "region": p.region,
                        "client_ref": f"c-{p.agb}-{i}",
                        "trajectory_id": f"t-{p.agb}-{i}",
                        "service_date": start.date().isoformat(),
                        "submitted_at": (start + timedelta(minutes=len(lines))).isoformat(),
                        "activity": "consult",
                        "consult_mode": "individual",
                        "practitioners": 1,
                        "digital": False,
                        "setting": 1,
                        "care_demand_type": 3,
                        "diagnosis_group": "depression",
                        "amount_cents": p.line_cents,
                    }
                )
            )
    return lines, contracts


def produce(stack: Stack, lines: list[bytes], contracts: list[bytes]) -> None:
    """Contracts first (applied by the worker before any line), then the lines; wait until processed."""
    cluster = stack.cluster
    s = cluster.settings

    async def contracts_applied(sent: int) -> None:
        await asyncio.to_thread(cluster.wait_contracts, contracts[:sent])

    stats = asyncio.run(
        produce_history(
            s.broker or "",
            lines,
            topic=s.topic_declarations,
            contracts=contracts,
            contracts_topic=s.topic_contracts,
            after_contracts=contracts_applied,
        )
    )
    cluster.wait_processed(
        {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}, timeout=30
    )


def poll(check: Callable[[], Any], timeout: float, what: Callable[[], str]) -> Any:
    """``check()`` until it returns something truthy; fails naming ``what()`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"within {timeout:.0f} s: {what()}")
        time.sleep(0.2)


def ceiling_alerts(stack: Stack, agb: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(receiver, alert) of every ceiling alert of ``agb`` the webhook has received."""
    return iter(
        stack.webhook.alerts(
            lambda a: (
                a["labels"].get("alertname") == CEILING_ALERT and a["labels"].get("provider") == agb
            )
        )
    )


def prometheus_has_judged_the_final_state(stack: Stack, agb: str, value: float) -> bool:
    """True once the purchasing rules were evaluated on a scrape showing ``agb`` at ``value``:
    from then on, Prometheus' active alerts are its verdict on the fully processed input."""
    result = get_json(
        f"{stack.prometheus.url}/api/v1/query",
        query=f'claimwatch_provider_ceiling_utilisation_ratio{{job="claimwatch",provider="{agb}"}}',
    )["data"]["result"]
    if len(result) != 1 or abs(float(result[0]["value"][1]) - value) > 1e-9:
        return False
    # The query's timestamp is "now"; the sample's own time is that of the scrape.
    scraped = get_json(
        f"{stack.prometheus.url}/api/v1/query",
        query=f'timestamp(claimwatch_provider_ceiling_utilisation_ratio{{job="claimwatch",provider="{agb}"}})',
    )["data"]["result"]
    if not scraped:
        return False
    scraped_at = float(scraped[0]["value"][1])
    groups = get_json(f"{stack.prometheus.url}/api/v1/rules", type="alert")["data"]["groups"]
    purchasing = [g for g in groups if g["name"] == "claimwatch-purchasing"]
    assert purchasing, "the shipped alert rules have no claimwatch-purchasing group"
    return rfc3339(purchasing[0]["lastEvaluation"]) > scraped_at


def active_ceiling_alerts(stack: Stack) -> list[dict[str, str]]:
    groups = get_json(f"{stack.prometheus.url}/api/v1/rules", type="alert")["data"]["groups"]
    return [
        alert["labels"]
        for g in groups
        for rule in g["rules"]
        if rule["name"] == CEILING_ALERT
        for alert in rule["alerts"]
    ]


def test_ceiling_crossing_is_delivered_to_the_purchasers_webhook_and_a_provider_below_70_is_not(
    stack: Stack,
) -> None:
    # The current year: the worker's indicator gauges (used by the alert's
    # description) cover the current and the previous year only.
    year = datetime.now(UTC).year
    assert ZUID_OVER.utilisation == 0.75 and ZUID_UNDER.utilisation == 0.65
    assert NOORD_OVER.utilisation == 0.95
    produce(stack, *history(year))

    def delivered() -> bool:
        return any(ceiling_alerts(stack, ZUID_OVER.agb)) and any(
            a["labels"]["severity"] == "high" for _r, a in ceiling_alerts(stack, NOORD_OVER.agb)
        )

    poll(
        delivered,
        30,
        lambda: (
            "no ceiling alert reached the webhook; received "
            f"{stack.webhook.notifications}\nPrometheus active: {active_ceiling_alerts(stack)}\n"
            f"alertmanager log:\n{stack.alertmanager.log_tail()}"
        ),
    )
    poll(
        lambda: prometheus_has_judged_the_final_state(stack, ZUID_UNDER.agb, 0.65),
        15,
        lambda: f"Prometheus did not evaluate the rules on the final state of {ZUID_UNDER.agb}",
    )

    # 75% of the ceiling: one warning at the 70% threshold, to inkoop-ggz-zuid only.
    received = list(ceiling_alerts(stack, ZUID_OVER.agb))
    assert {receiver for receiver, _a in received} == {"inkoop-ggz-zuid"}
    _receiver, alert = received[0]
    assert alert["status"] == "firing"
    assert {k: alert["labels"].get(k) for k in LABELS} == {
        "alertname": CEILING_ALERT,
        "team": "purchasing",
        "rule": "ceiling_utilisation",
        "alert_id": f"ceiling_utilisation:{ZUID_OVER.agb}:{year}:70",
        "provider": ZUID_OVER.agb,
        "provider_name": "GGZ Zuiderzon",
        "purchaser": "inkoop-ggz-zuid",
        "region": "Limburg",
        "year": str(year),
        "severity": "warning",
        "detail": "70",
    }
    assert set(alert["labels"]) == set(LABELS), "unexpected labels reach the purchaser"
    assert alert["annotations"]["summary"] == (
        f"GGZ Zuiderzon ({ZUID_OVER.agb}) has declared 70% of its {year} cost ceiling"
    )
    # The description's queries read the worker's indicator gauges through Prometheus.
    description = alert["annotations"]["description"]
    assert "Net declared care is at 75% of the" in description, description
    assert "unknown" not in description, description

    # 95%: the 90% alert (high) reaches inkoop-ggz-noord; it inhibits the 70% one.
    received = list(ceiling_alerts(stack, NOORD_OVER.agb))
    assert {receiver for receiver, _a in received} == {"inkoop-ggz-noord"}
    assert {(a["labels"]["detail"], a["labels"]["severity"]) for _r, a in received} == {
        ("90", "high")
    }
    assert {a["labels"]["purchaser"] for _r, a in received} == {"inkoop-ggz-noord"}
    am_alerts = get_json(f"{stack.alertmanager.url}/api/v2/alerts")
    noord_70 = [
        a
        for a in am_alerts
        if a["labels"].get("alert_id") == f"ceiling_utilisation:{NOORD_OVER.agb}:{year}:70"
    ]
    assert len(noord_70) == 1 and noord_70[0]["status"]["inhibitedBy"], noord_70

    # 65%: below the first threshold. Prometheus has judged its final state, so no alert
    # for it exists anywhere, and none was delivered.
    active = active_ceiling_alerts(stack)
    assert {(a["provider"], a["detail"]) for a in active} == {
        (ZUID_OVER.agb, "70"),
        (NOORD_OVER.agb, "70"),
        (NOORD_OVER.agb, "90"),
    }
    assert not [a for a in am_alerts if a["labels"].get("provider") == ZUID_UNDER.agb]
    assert not list(ceiling_alerts(stack, ZUID_UNDER.agb))
    # Purchasing alerts never reach operations or the purchasing desk.
    assert not [
        path
        for path, body in stack.webhook.notifications
        if path in ("operations", "purchasing-desk")
        for a in body["alerts"]
        if a["labels"].get("team") == "purchasing"
    ]


LABELS = (
    "alertname",
    "team",
    "rule",
    "alert_id",
    "provider",
    "provider_name",
    "purchaser",
    "region",
    "year",
    "severity",
    "detail",
)
