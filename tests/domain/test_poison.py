"""Poison input (SPEC §12): deep nesting is refused before decoding, and a line whose
processing raises is dead-lettered as ``processing_error`` while its siblings go on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain import engine as engine_module
from streams.domain.engine import Effects, Engine
from streams.domain.model import parse_time
from streams.domain.nesting import MAX_DEPTH

BATCH = "ggz.declaration-batch/1"


def nested(levels: int) -> bytes:
    return b"[" * levels + b"1" + b"]" * levels


def with_field(line: dict[str, Any], levels: int) -> bytes:
    """``line`` as JSON with an extra field nested ``levels`` deep (the line adds one)."""
    return orjson.dumps({**line, "future": "X"}).replace(b'"X"', nested(levels))


def reasons(fx: Effects) -> list[str]:
    return [d.reason for d in fx.dead_letters]


def block(*raws: bytes) -> bytes:
    return b"\n".join(raws) + b"\n"


# -- nesting -----------------------------------------------------------------------------


def test_a_line_nested_one_level_too_deep_is_invalid_json_and_one_less_is_accepted(
    engine, make_line
):
    ok, deep = with_field(make_line(), MAX_DEPTH - 1), with_field(make_line(), MAX_DEPTH)
    fx = Effects()
    engine.process(ok, None, fx)
    engine.process(deep, None, fx)
    assert reasons(fx) == ["invalid_json"]
    assert fx.dead_letters[0].detail == f"nested deeper than {MAX_DEPTH}"
    assert fx.dead_letters[0].payload == deep  # the original bytes
    assert engine.counts().accepted == 1
    assert engine.counts().rejected == {"invalid_json": 1}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 3_000, 100_000])
def test_deep_lines_among_good_ones_are_refused_alone_on_every_path(
    policy, make_line, monkeypatch, levels
):
    """A RecursionError used to escape the block decoder of the offline replay."""
    calls: list[bytes] = []
    real = orjson.loads

    def watched(raw: Any) -> Any:  # nothing deep reaches the recursive decoder
        calls.append(bytes(raw))
        return real(raw)

    monkeypatch.setattr("streams.domain.acceptance.orjson.loads", watched)
    lines = [orjson.dumps(make_line()) for _ in range(20)]
    lines[7] = with_field(make_line(), levels)
    lines[13] = b'{"lines": ' + nested(levels) + b"}"
    results = []
    for how in ("process", "process_lines", "process_block"):
        engine, fx = Engine(policy), Effects()
        if how == "process":
            for raw in lines:
                engine.process(raw, None, fx)
        elif how == "process_lines":
            engine.process_lines(lines, fx)
        else:
            engine.process_block(block(*lines), fx)
        results.append((reasons(fx), engine.snapshot()))
    assert results[0] == results[1] == results[2]
    assert results[0][0] == ["invalid_json", "invalid_json"]
    assert results[0][1]["counts"]["accepted"] == 18
    assert not any(len(raw) > 10 * levels for raw in calls)


def test_a_batch_nested_too_deep_anywhere_is_refused_whole(engine, make_line):
    lines: list[Any] = [make_line(), make_line(), make_line()]
    raw = orjson.dumps({"schema": BATCH, "provider_agb": "12345678", "lines": lines})
    deep_line = raw.replace(b'"amount_cents":10000}]', b'"amount_cents":10000,"x":X}]')
    deep_line = deep_line.replace(b"X", nested(MAX_DEPTH))
    deep_envelope = raw[:-1] + b',"x":' + nested(MAX_DEPTH) + b"}"
    for message in (deep_line, deep_envelope):
        fx = engine.process(message, "12345678")
        assert reasons(fx) == ["invalid_json"], message[:80]
    assert engine.counts().accepted == 0
    assert engine.counts().rejected == {"invalid_json": 2}


def test_brackets_inside_strings_do_not_make_a_line_too_deep(engine, make_line):
    text = "[[[[{{{{" * 50
    line = make_line(region=text[:64], note=text, **{text: text})
    raws = [orjson.dumps(line), orjson.dumps({**make_line(), "note": text})]
    fx = Effects()
    engine.process(raws[0], None, fx)
    engine.process_block(block(raws[1], orjson.dumps(make_line())), fx)
    batch = {"schema": BATCH, "provider_agb": "12345678", "lines": [{**make_line(), "n": text}]}
    engine.process(orjson.dumps(batch), "12345678", fx)
    assert fx.dead_letters == []
    assert engine.counts().accepted == 4


def test_a_keyless_deep_message_names_no_provider(engine):
    raw = b'{"provider_agb": "12345678", "x": ' + nested(5_000) + b"}"
    assert engine.decoder.provider_of(raw) is None


# -- processing_error --------------------------------------------------------------------


def failing_check(engine: Engine, marker: str) -> None:
    """Make judging a line whose event_id is ``marker`` raise, quoting its client_ref."""
    check = engine.decoder.check

    def wrapped(item: Any, envelope: str | None) -> Any:
        obj = item if isinstance(item, dict) else {"event_id": item.event_id}
        if obj.get("event_id") == marker:
            raise ValueError(f"cannot judge client {getattr(item, 'client_ref', '?')}")
        return check(item, envelope)

    engine.decoder.check = wrapped  # type: ignore[method-assign]


@pytest.mark.parametrize("accented", [False, True], ids=["typed path", "dict path"])
def test_a_line_whose_judging_raises_is_dead_lettered_alone(engine, make_line, accented):
    region = "Súdwest-Fryslân" if accented else "Utrecht"
    lines = [make_line(region=region) for _ in range(3)]
    bad = lines[1]
    failing_check(engine, bad["event_id"])
    raw = orjson.dumps({"schema": BATCH, "provider_agb": "12345678", "lines": lines})
    fx = engine.process(raw, "12345678")
    (letter,) = fx.dead_letters
    assert (letter.reason, letter.detail, letter.key) == (
        "processing_error",
        "ValueError",
        "12345678",
    )
    assert orjson.loads(letter.payload)["event_id"] == bad["event_id"]
    assert engine.counts().accepted == 2
    assert engine.counts().rejected == {"processing_error": 1}


def test_a_message_whose_decoding_raises_is_dead_lettered_whole(engine, make_line, monkeypatch):
    def broken(raw: bytes) -> Any:
        raise MemoryError("client c1")

    monkeypatch.setattr(engine.decoder, "split", broken)
    monkeypatch.setattr(engine.decoder, "split_block", broken)
    raw = orjson.dumps(make_line())
    fx = engine.process(raw, None)
    engine.process_block(block(raw), fx)
    assert [(d.reason, d.detail, d.payload) for d in fx.dead_letters] == [
        ("processing_error", "MemoryError", raw)
    ] * 2
    assert engine.counts().rejected == {"processing_error": 2}


def _rules_fail_at(monkeypatch: pytest.MonkeyPatch, line: dict[str, Any]) -> None:
    """Make the ceiling rule raise when it runs for ``line``, after it was accepted."""
    real = Engine._check_ceiling
    at = parse_time(line["submitted_at"])

    def failing(self: Engine, st: Any, year: int, event_time: float, fx: Effects) -> None:
        if event_time == at:
            raise ZeroDivisionError("client c1")
        real(self, st, year, event_time, fx)

    monkeypatch.setattr(engine_module.Engine, "_check_ceiling", failing)


def test_a_failure_after_a_line_was_accepted_raises_for_the_worker_to_roll_back(
    policy, make_line, contract_event, monkeypatch
):
    from streams.domain.contracts import Contract

    engine = Engine(policy)
    engine.apply_contract(Contract.from_event(contract_event(ceiling_cents=10_000_000)))
    line = make_line(amount_cents=7_500_000)
    _rules_fail_at(monkeypatch, line)
    fx = Effects()
    with pytest.raises(ZeroDivisionError):
        engine.process(orjson.dumps(line), "12345678", fx)
    assert fx.touched == {"12345678"}  # what may have changed, for the caller


def test_a_failure_inside_the_provider_state_names_the_provider_too(policy, make_line, monkeypatch):
    from streams.domain.state import ProviderState

    def accept(self: ProviderState, line: Any) -> str:
        self.watermark = line.event_time  # part of the line is in, then it fails
        raise OverflowError

    monkeypatch.setattr(ProviderState, "accept", accept)
    fx = Effects()
    with pytest.raises(OverflowError):
        Engine(policy).process(orjson.dumps(make_line(provider_agb="87654321")), None, fx)
    assert fx.touched == {"87654321"}


def test_offline_contains_a_failure_after_acceptance_and_counts_the_line_once(
    policy, make_line, contract_event, monkeypatch
):
    from streams.domain.contracts import Contract

    engine = Engine(policy, contain=True)
    engine.apply_contract(Contract.from_event(contract_event(ceiling_cents=10_000_000)))
    lines = [make_line(amount_cents=n) for n in (7_500_000, 1_600_000, 1_000_000)]
    _rules_fail_at(monkeypatch, lines[1])
    fx = Effects()
    engine.process_block(block(*map(orjson.dumps, lines)), fx)
    assert reasons(fx) == ["processing_error"]
    assert fx.dead_letters[0].detail == "ZeroDivisionError"
    assert orjson.loads(fx.dead_letters[0].payload)["amount_cents"] == 1_600_000
    counts = engine.counts()
    assert (counts.accepted, counts.rejected) == (2, {"processing_error": 1})
    # the siblings go on; what the failed line had added stays (nothing to roll back)
    assert [a["alert_id"][-3:] for a in fx.alerts] == [":70", ":90", "100"]
