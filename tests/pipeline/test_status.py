"""The processor's side of the provider-status topic: what it marks, when it flushes.

The summaries themselves are tested in tests/domain/test_status.py; the whole path on
a real broker with two workers in tests/pipeline/test_peer_mean.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.engine import Engine
from streams.domain.errors import ClaimwatchError
from streams.domain.policy import load_policy
from streams.pipeline.processor import (
    Processor,
    contract_control,
    status_flush_control,
    tick_control,
    tick_of,
)
from streams.pipeline.settings import Settings
from tests.conftest import AGB, make_contract

OTHER = "87654321"


def processor() -> Processor:
    return Processor(Engine(load_policy(), journal=True, clock=lambda: 0.0), {})


def batch(make_line: Any, agb: str = AGB, n: int = 1) -> bytes:
    lines = [make_line(provider_agb=agb) for _ in range(n)]
    return orjson.dumps({"schema": "ggz.declaration-batch/1", "provider_agb": agb, "lines": lines})


def test_a_message_marks_its_provider_dirty_and_writes_no_status(make_line):
    p = processor()
    out = p.on_declarations(0, 0, AGB, batch(make_line))
    assert p.dirty == {AGB}
    assert not out.flush
    assert all(k.split(":")[0] in ("h", "j") for k in out.writes)  # state only


def test_a_status_flush_waits_for_the_declarations_it_names(make_line):
    p = processor()
    assert not p.on_control(0, status_flush_control(after={0: 5})).flush
    assert not p.on_declarations(0, 4, AGB, batch(make_line)).flush
    assert p.on_declarations(0, 5, AGB, batch(make_line)).flush
    assert not p.on_declarations(0, 6, AGB, batch(make_line)).flush  # once
    assert p.on_control(1, status_flush_control(after={0: 9})).flush  # not this partition's
    assert p.on_control(0, status_flush_control()).flush


def test_a_tick_flushes_the_statuses():
    p = processor()
    assert p.on_control(0, tick_control()).flush
    assert tick_of(tick_control(final=True)) is True
    assert tick_of(tick_control()) is False
    assert tick_of(status_flush_control()) is None and tick_of(b"{") is None


def test_a_contract_of_a_provider_held_here_marks_it_dirty(make_line):
    p = processor()
    p.on_control(0, contract_control(make_contract(OTHER)))
    assert p.dirty == set()  # not held here: no state, no status
    p.on_declarations(0, 0, AGB, batch(make_line))
    p.dirty.clear()
    p.on_control(0, contract_control(make_contract(AGB)))
    assert p.dirty == {AGB}  # its ceiling utilisation and contract fields changed


def test_recovery_marks_the_rebuilt_providers_and_a_revoked_partition_unmarks(make_line):
    # The table a worker wrote for two providers in partitions 0 and 1 ...
    table: dict[str, bytes] = {}
    first = processor()
    for partition, agb in ((0, AGB), (1, OTHER)):
        for k, v in first.on_declarations(partition, 0, agb, batch(make_line, agb)).encoded():
            if v is not None:
                table[k] = v
    # ... rebuilt by another: a crash may have come before their statuses went out.
    p = Processor(Engine(load_policy(), journal=True, clock=lambda: 0.0), table)
    assert p.recover(list(table)) == 2
    assert p.dirty == {AGB, OTHER}
    p.forget_partitions({1})
    assert p.dirty == {AGB}  # the next owner of partition 1 publishes OTHER


def test_a_replay_reads_and_writes_its_own_status_topic_unless_one_is_named():
    live = Settings.from_env({})
    assert live.topic_provider_status == "ggz.provider-status.v1"
    assert live.status_interval == 5.0
    replay = Settings.from_env({"CLAIMWATCH_REPLAY": "true", "CLAIMWATCH_APP_ID": "cw-replay"})
    assert replay.topic_provider_status == "cw-replay-provider-status"
    named = Settings.from_env(
        {"CLAIMWATCH_REPLAY": "true", "CLAIMWATCH_TOPIC_PROVIDER_STATUS": "ggz.ps.replay.v1"}
    )
    assert named.topic_provider_status == "ggz.ps.replay.v1"
    assert Settings.from_env({"CLAIMWATCH_STATUS_INTERVAL": "0.5"}).status_interval == 0.5


def test_a_status_interval_that_is_no_positive_number_is_refused_in_one_line():
    for bad in ("0", "-1", "soon", "3601"):
        with pytest.raises(ClaimwatchError, match="CLAIMWATCH_STATUS_INTERVAL"):
            Settings.from_env({"CLAIMWATCH_STATUS_INTERVAL": bad})
