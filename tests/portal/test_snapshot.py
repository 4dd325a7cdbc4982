"""``claimwatch snapshot``'s merge of the provider-status topic. (Read from a real
broker after a real worker: tests/portal/test_browser.py.)"""

from __future__ import annotations

import orjson

from streams.portal.snapshot import merge_statuses
from tests.portal.conftest import Built, status_records


def test_the_merged_statuses_equal_the_offline_snapshot_where_a_status_carries_it(
    built: Built,
) -> None:
    records = status_records(built.engine)
    snap, malformed = merge_statuses(reversed(records), built.policy)
    assert malformed == 0
    assert snap["providers"] == orjson.loads(orjson.dumps(built.snapshot["providers"]))
    assert snap["peers"] == built.snapshot["peers"]
    assert snap["regions"] == built.snapshot["regions"] and snap["regions"]
    assert set(snap["firing"]) == built.firing
    assert "counts" not in snap  # a summary carries no line counts: none are made up
    assert list(snap["providers"]) == sorted(snap["providers"])


def test_the_last_value_of_a_key_counts_a_tombstone_removes_it_and_junk_is_skipped(
    built: Built,
) -> None:
    records = status_records(built.engine)
    (k1, v1), (k2, v2) = records[0], records[1]
    older = orjson.loads(v1)
    older["indicators"] = {**older["indicators"], "net_cents": -1}
    snap, malformed = merge_statuses(
        [(k1, orjson.dumps(older)), (k1, v1), (k2, v2), (k2, None), (None, v1), (b"x", b"{")],
        built.policy,
    )
    agb1, year1 = k1.decode().split(":")
    assert (
        snap["providers"][agb1][year1]["net_cents"] == orjson.loads(v1)["indicators"]["net_cents"]
    )
    agb2, year2 = k2.decode().split(":")
    assert year2 not in snap["providers"].get(agb2, {})
    assert malformed == 2
