"""The bound the streaming stage derives from its in-memory timings (bench.inmemory)."""

from __future__ import annotations

import pytest

from bench.inmemory import budget


def test_budget_takes_decoding_out_of_each_consumer_path_and_adds_the_processor() -> None:
    # a line: raw loop 10 µs (decode 5), Faust alone 20 µs, the processor 10 µs
    b = budget(raw=100_000, floor=50_000, decode=200_000, processor=100_000, target=0.5)
    assert b["faust_path_us"] == pytest.approx(15.0)
    assert b["fetch_path_us"] == pytest.approx(5.0)
    assert b["processor_us"] == pytest.approx(10.0)
    assert b["ratio_bound"] == pytest.approx(10 / 25)
    assert b["ratio_bound_no_faust"] == pytest.approx(10 / 15)
    # 50 % of raw is 20 µs a line, of which Faust's path takes 15
    assert b["processor_budget_us"] == pytest.approx(5.0)


def test_budget_is_negative_when_faust_alone_leaves_nothing_for_the_target() -> None:
    b = budget(raw=100_000, floor=35_000, decode=200_000, processor=100_000, target=0.5)
    assert b["processor_budget_us"] < 0
