"""One summary per provider-year (SPEC §10), and the peer mean of all of them.

A worker publishes ``provider_year_status`` of each provider-year it owns to the
compacted topic ``ggz.provider-status.v1``, keyed ``<agb>:<year>``; every worker
reads the whole topic into a ``StatusBook`` and takes the peer mean of
``group_share_low`` from it, so the mean does not depend on how the partitions are
spread over the workers. The summary carries indicators, contract fields and alert
ids only: no client reference, no declaration line.

Plain Python: the Kafka side is streams/pipeline/status.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import orjson
from xxhash import xxh3_64_intdigest

from streams.domain.departments import DepartmentBook, year_departments
from streams.domain.model import format_time
from streams.domain.rules.group_share_low import peer_mean
from streams.domain.snapshot import year_indicators, year_pace

if TYPE_CHECKING:
    from streams.domain.contracts import Contract, ContractBook
    from streams.domain.policy import Policy
    from streams.domain.state import ProviderState

STATUS_SCHEMA = "ggz.provider-status/1"


def status_key(provider: str, year: int) -> str:
    return f"{provider}:{year}"


def provider_year_status(
    st: ProviderState,
    year: int,
    contract: Contract | None,
    open_alerts: list[str],
    policy: Policy,
    departments: DepartmentBook | None = None,
) -> dict[str, Any]:
    """The summary of one provider-year.

    ``indicators`` is exactly the provider-year's entry in the snapshot
    (``build_snapshot``); ``watermark`` and ``updated_at`` are the provider's
    watermark (its latest accepted ``submitted_at``), RFC 3339 in UTC: the summary
    describes the provider as of that event time. ``covered_month`` and ``pace``
    (SPEC §8.2, §10) are at that watermark: ``pace`` is the projection an alert's
    explanation shows (``expected_share`` is what the purchaser page draws as
    "expected by now"). ``open_alerts``: the ids firing for this provider-year, sorted.
    The indicators' ``departments`` (SPEC §9) take their categories from the register
    ``departments`` (None: from the settings of their lines): what a region view
    across workers reads (``regions.summaries_from_status``).
    """
    watermark = format_time(st.watermark)
    ceiling = contract.ceiling_cents if contract is not None else None
    pace = year_pace(st, year, ceiling, policy)
    indicators = year_indicators(st.years[year], st.years.get(year - 1), year, ceiling, pace)
    book = departments if departments is not None else DepartmentBook()
    indicators["departments"] = year_departments(st, year, book)
    return {
        "schema": STATUS_SCHEMA,
        "provider_agb": st.provider,
        "year": year,
        "indicators": indicators,
        "contract": (
            {
                "ceiling_cents": contract.ceiling_cents,
                "purchaser": contract.purchaser,
                "provider_name": contract.provider_name,
                "region": contract.region,
                "version": contract.version,
            }
            if contract is not None
            else None
        ),
        "watermark": watermark,
        "covered_month": pace.covered_month,
        "pace": {**pace.context(), "pace_ratio": pace.pace_ratio},
        "open_alerts": open_alerts,
        "updated_at": watermark,
    }


def provider_statuses(
    st: ProviderState,
    contracts: ContractBook,
    policy: Policy,
    departments: DepartmentBook | None = None,
) -> Iterator[tuple[str, bytes]]:
    """(key, encoded summary) of every provider-year of a provider, by year."""
    firing: dict[str, list[str]] = {}
    for aid, _ in st.alerts.firing():
        # <rule>:<agb>:<year>[:<detail>]
        firing.setdefault(aid.split(":", 3)[2], []).append(aid)
    for year in sorted(st.years):
        status = provider_year_status(
            st,
            year,
            contracts.get(st.provider, year),
            sorted(firing.get(str(year), ())),
            policy,
            departments,
        )
        yield status_key(st.provider, year), orjson.dumps(status)


def digest(value: bytes) -> int:
    """What tells two encoded summaries apart (a publisher skips an unchanged one)."""
    return xxh3_64_intdigest(value)


class StatusBook:
    """The latest summary of every provider-year, as far as the topic has been read.

    Keeps, per key, only what the peer mean needs (year, consults, group consults)
    and the value's digest. A tombstone (``None`` value) deletes its key; so does a
    value that is not a summary (counted in ``malformed``): the key's latest value
    is what compaction keeps, and an unreadable one cannot stand for the provider.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int, int, int]] = {}
        self.malformed = 0
        self._version = 0
        self._means: tuple[int, int, dict[int, Fraction | None]] | None = None

    def apply(self, key: bytes | str | None, value: bytes | None) -> None:
        if key is None:
            self.malformed += 1
            return
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        self._version += 1
        if value is None:
            self._entries.pop(k, None)
            return
        entry = _entry(value)
        if entry is None:
            self.malformed += 1
            self._entries.pop(k, None)
            return
        self._entries[k] = entry

    def digest(self, key: str) -> int | None:
        entry = self._entries.get(key)
        return entry[3] if entry is not None else None

    def pairs(self) -> dict[int, list[tuple[int, int]]]:
        """(consults, group_consults) of every provider-year, per year."""
        out: dict[int, list[tuple[int, int]]] = {}
        for year, consults, group, _ in self._entries.values():
            out.setdefault(year, []).append((consults, group))
        return out

    def means(self, min_consults: int) -> dict[int, Fraction | None]:
        """The peer mean per year (``group_share_low.peer_mean``), recomputed only after
        a change."""
        cached = self._means
        if cached is not None and cached[0] == self._version and cached[1] == min_consults:
            return cached[2]
        means = {year: peer_mean(p, min_consults)[0] for year, p in self.pairs().items()}
        self._means = (self._version, min_consults, means)
        return means

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def _entry(value: bytes) -> tuple[int, int, int, int] | None:
    try:
        obj = orjson.loads(value)
        year, ind = obj["year"], obj["indicators"]
        consults, group = ind["consults"], ind["group_consults"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not all(type(x) is int for x in (year, consults, group)):
        return None
    return year, consults, group, digest(value)
