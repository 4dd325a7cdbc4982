"""The processor (streams/pipeline/processor.py), without Faust: one message in, what to
write and publish out.

A message too large to read, a message whose processing raised (the provider rolled
back to the table, the message dead-lettered as ``processing_error``), and a message
at or below the applied offset (skipped whole). The same paths through a real agent
are in tests/pipeline/test_agents.py, on a real broker in tests/pipeline/
test_hardening.py; the provider-status marks are in tests/pipeline/test_status.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.engine import Engine
from streams.domain.policy import load_policy
from streams.domain.state import ProviderState
from streams.pipeline import processor as processor_module
from streams.pipeline.processor import MESSAGE_TOO_LARGE, Processor
from tests.conftest import AGB, FIXED_NOW


def new_processor(store: dict[str, Any] | None = None) -> Processor:
    engine = Engine(load_policy(), journal=True, clock=lambda: FIXED_NOW)
    return Processor(engine, {} if store is None else store)


def batch(*lines: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"schema": "ggz.declaration-batch/1", "provider_agb": AGB, "lines": list(lines)}
    )


def write(store: dict[str, Any], out: Any) -> None:
    """What the worker does with a message's writes (Worker.write, without Faust)."""
    for key, value in out.encoded():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 2 KB message limit, so a too-large message needs no 16 MiB of test data."""
    monkeypatch.setattr(processor_module, "MAX_MESSAGE_BYTES", 2_000)
    return 2_000


def test_a_message_above_the_limit_is_dead_lettered_whole_unread_and_counted(
    small_limit, make_line
):
    p = new_processor()
    raw = batch(*(make_line() for _ in range(10)))
    assert len(raw) > small_limit
    out = p.on_declarations(0, 0, AGB, raw)
    (letter,) = out.dead_letters
    assert (letter.reason, letter.key, letter.payload) == (MESSAGE_TOO_LARGE, AGB, raw)
    assert letter.detail == f"message of {len(raw)} bytes; at most {small_limit} are read"
    counts = p.engine.snapshot()["counts"]
    assert counts["accepted"] == 0 and counts["rejected"] == {MESSAGE_TOO_LARGE: 1}
    assert out.lines == 0 and f"h:{AGB}" in out.writes  # the count is persisted
    assert p.on_declarations(0, 0, AGB, raw).skipped  # and not counted twice


def test_a_keyless_message_above_the_limit_is_counted_in_the_partitions_ledger(
    small_limit, make_line
):
    p = new_processor()
    raw = batch(*(make_line() for _ in range(10)))
    out = p.on_declarations(3, 7, None, raw)
    (letter,) = out.dead_letters
    assert (letter.reason, letter.key) == (MESSAGE_TOO_LARGE, None)
    assert out.rekey == {}  # too large to decode, so nothing is re-sent
    counts, offset = p.ledgers[3]
    assert (counts.rejected, offset) == ({MESSAGE_TOO_LARGE: 1}, 7)
    assert p.engine.unattributed.rejected == {}  # the ledger's, not the engine's
    assert list(out.writes) == ["l:3"]


def test_a_message_whose_processing_raises_rolls_the_provider_back_and_is_dead_lettered(
    make_line, monkeypatch
):
    accept = ProviderState.accept

    def poisoned(self: ProviderState, line: Any) -> Any:  # raises after the line is in
        outcome = accept(self, line)
        if line.amount_cents == 4_242:
            raise ZeroDivisionError("a defect quoting poison-ref")
        return outcome

    monkeypatch.setattr(ProviderState, "accept", poisoned)
    store: dict[str, Any] = {}
    p = new_processor(store)
    write(store, p.on_declarations(0, 0, AGB, batch(make_line())))
    before = p.engine.snapshot()["providers"]
    poison = batch(make_line(), make_line(amount_cents=4_242, client_ref="poison-ref"))
    out = p.on_declarations(0, 1, AGB, poison)
    write(store, out)
    assert p.engine.snapshot()["providers"] == before  # neither line of it stayed
    (letter,) = out.dead_letters
    assert (letter.reason, letter.key, letter.payload) == ("processing_error", AGB, poison)
    assert letter.detail == "ZeroDivisionError"  # the class, never the text
    counts = p.engine.snapshot()["counts"]
    assert (counts["accepted"], counts["rejected"]) == (1, {"processing_error": 1})
    # persisted with the message's offset: a restart neither redoes nor recounts it
    again = new_processor(dict(store))
    again.recover(list(store))
    assert again.on_declarations(0, 1, AGB, poison).skipped
    assert again.engine.snapshot()["counts"]["rejected"] == {"processing_error": 1}


def test_a_message_at_or_below_the_applied_offset_is_skipped_whole(make_line):
    store: dict[str, Any] = {}
    p = new_processor(store)
    raw = batch(make_line(), make_line())
    write(store, p.on_declarations(0, 5, AGB, raw))
    counts = p.engine.snapshot()["counts"]
    for offset in (5, 4):
        out = p.on_declarations(0, offset, AGB, batch(make_line()))
        assert out.skipped and out.writes == {} and out.dead_letters == []
    assert p.engine.snapshot()["counts"] == counts
    # per partition: the same offset of another partition is new
    assert not p.on_declarations(1, 5, AGB, batch(make_line())).skipped
    # the applied offset is in the table: a restarted worker skips it too
    restarted = new_processor(dict(store))
    restarted.recover(list(store))
    assert restarted.on_declarations(0, 5, AGB, raw).skipped
    assert not restarted.on_declarations(0, 6, AGB, batch(make_line())).skipped


def test_a_rekeyed_copy_of_an_origin_already_applied_is_skipped(make_line):
    p = new_processor()
    raw = batch(make_line())
    first = p.on_declarations(2, 0, AGB, raw, source="c", origin=(1, 40))
    assert not first.skipped and first.lines == 1
    # re-sent after a crash: a new control offset, the same origin
    assert p.on_declarations(2, 1, AGB, raw, source="c", origin=(1, 40)).skipped
    assert not p.on_declarations(2, 2, AGB, batch(make_line()), source="c", origin=(1, 41)).skipped
    assert p.engine.snapshot()["counts"]["accepted"] == 2
