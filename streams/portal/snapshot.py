"""``claimwatch snapshot``: one snapshot of the whole cluster from the provider-status
topic (SPEC §10).

Every worker publishes the summaries of the provider-years it owns; the topic read
whole (the last value of each key, a tombstone removing it) holds them all. The
merged snapshot has the offline replay's shape as far as a summary carries it: per
provider and year the indicators (the snapshot entry itself), the peer means
recomputed from them (``finish_snapshot``, as ``merge_snapshots`` does), the region
view (SPEC §9) from the summaries' departments placed by the department register,
as every worker makes it, and the alert ids firing, region gaps included (their
states are on the status topic too). The line counts (accepted, rejected...) are not in a summary and
are left out rather than shown as zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from streams.domain.departments import DepartmentBook
from streams.domain.model import Counts
from streams.domain.policy import Policy
from streams.domain.regions import region_view
from streams.domain.snapshot import finish_snapshot
from streams.domain.status import REGION_PREFIX, StatusBook
from streams.kafka.offsets import read_records
from streams.local.broker import check_reachable
from streams.pipeline.register import apply_record
from streams.pipeline.settings import Settings


def merge_statuses(
    records: Iterable[tuple[bytes | None, bytes | None]],
    policy: Policy,
    register: Iterable[tuple[bytes | None, bytes | None]] = (),
) -> tuple[dict[str, Any], int]:
    """(snapshot, malformed records skipped) of a status topic's records in order,
    with the department register topic's records (``register``) placing departments
    in their regions."""
    latest: dict[bytes, dict[str, Any]] = {}
    malformed = 0
    book = StatusBook()  # what every worker reads the region view from
    for key, value in records:
        book.apply(key, value)
        if key is None:
            malformed += 1
            continue
        if key.startswith(REGION_PREFIX.encode()):
            continue  # a region alert's states (streams/pipeline/regions.py)
        if value is None:
            latest.pop(key, None)
            continue
        try:
            obj = orjson.loads(value)
            agb, year, ind = obj["provider_agb"], obj["year"], obj["indicators"]
            ok = isinstance(agb, str) and type(year) is int and isinstance(ind, dict)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            malformed += 1
            latest.pop(key, None)
            continue
        latest[key] = obj
    providers: dict[str, dict[str, Any]] = {}
    firing: set[str] = set()
    for obj in latest.values():
        providers.setdefault(obj["provider_agb"], {})[str(obj["year"])] = obj["indicators"]
        firing.update(a for a in obj.get("open_alerts") or () if isinstance(a, str))
    for agb, years in providers.items():
        providers[agb] = {y: years[y] for y in sorted(years)}
    snap = finish_snapshot(providers, Counts(), policy)
    del snap["counts"]
    departments = DepartmentBook()
    for key, value in register:
        apply_record(departments, key, value)
    snap["regions"] = region_view(book.department_rows(departments, policy.months.lag_days))
    firing.update(a for a, state in book.region_states().items() if state.firing)
    snap["firing"] = sorted(firing)
    return snap, malformed


async def cluster_snapshot(
    settings: Settings, policy: Policy, timeout: float = 60.0
) -> tuple[dict[str, Any], int]:
    """Read the status topic and the department register up to their ends now and
    merge them."""
    broker, kwargs = settings.broker or "", settings.kafka_client_kwargs()
    await check_reachable(broker, **kwargs)
    records = await read_records(broker, settings.topic_provider_status, timeout, kwargs)
    register = await read_records(broker, settings.topic_departments, timeout, kwargs)
    return merge_statuses(
        ((r.key, r.value) for r in records), policy, ((r.key, r.value) for r in register)
    )
