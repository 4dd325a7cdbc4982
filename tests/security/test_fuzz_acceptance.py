"""Fuzzing the decode/acceptance path the worker runs (SPEC §2, §12), without a broker.

Hostile bytes, arbitrary JSON, mutated declarations and mutated batch envelopes go
through the worker's own message handler, ``Worker.handle`` (fed without a broker
by ``tests/pipeline/feed.py``), and through ``Engine.process`` as the offline
replay calls it. Properties:

- nothing raises;
- every line is accounted for exactly once: accepted, counted as ``duplicate`` /
  ``duplicate_line`` / ``duplicate_credit``, or dead-lettered with a SPEC reason; a
  message whose JSON or batch envelope is unreadable, or that nests deeper than
  ``MAX_DEPTH``, is one dead letter;
- the line count comes from our own reading of the message, not the engine's;
- dead letters never carry a BSN-like ``client_ref`` (SPEC §12: full-width digits,
  separators, an NL prefix) in the clear, and their headers no BSN-like number at all;
- what the worker writes to its table rebuilds the same state after a restart.

Then named poison messages (valid JSON nested deep as objects and arrays, in a line,
in a batch's lines and in unknown fields; a 5 MB string; a 100,000-element array;
timestamps in years 9999 and 0001; BSN look-alikes) go through every path a message
or an archive line takes: ``Engine.process``, ``Engine.process_lines`` and
``process_block`` (the offline replay), ``validate`` and the worker's ``Processor``,
keyed and keyless. Each gives the same counted outcome on every path.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streams.domain.engine import Effects, Engine
from streams.domain.nesting import MAX_DEPTH
from streams.domain.policy import load_policy
from streams.replay.validate import raw_problem
from tests.domain.test_bsn import LOOK_ALIKES, spec_bsn_like
from tests.pipeline.feed import SPEC_REASONS, Feed, diff, outcomes

POLICY = load_policy()
BATCH = "ggz.declaration-batch/1"
AGBS = ("12345678", "87654321", "00000001")
BSN = "123456782"  # passes the eleven-test: the shape SPEC §2 step 3 rejects
_NINE = re.compile(rb"(?<![0-9])[0-9]{9}(?![0-9])")
_CLIENT_REF_TEXT = re.compile(rb'"client_ref"\s*:\s*"([^"\\]*)')

# CI keeps the file under 20 s; CLAIMWATCH_FUZZ_EXAMPLES=5000 for a deeper run by hand.
FUZZ = settings(
    max_examples=int(os.environ.get("CLAIMWATCH_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def valid_line(n: int, provider: str = AGBS[0], **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "schema": "ggz.declaration/1",
        "event_id": f"e{n}",
        "line_id": f"l{n}",
        "kind": "debit",
        "provider_agb": provider,
        "region": "Utrecht",
        "client_ref": f"c-{n:020x}",
        "trajectory_id": f"t{n}",
        "service_date": "2026-03-01",
        "submitted_at": f"2026-03-02T09:{n % 60:02d}:00+01:00",
        "activity": "consult",
        "consult_mode": "group" if n % 3 == 0 else "individual",
        "practitioners": 1 + n % 5,
        "digital": n % 2 == 0,
        "setting": 1 + n % 8,
        "care_demand_type": n % 22,
        "diagnosis_group": "adhd" if n % 4 == 0 else "depression",
        "amount_cents": 1000 + n,
    }
    obj.update(fields)
    return obj


# -- strategies ---------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            BSN,
            "",
            "x" * 200,
            "１２３４５６７８",
            *LOOK_ALIKES[:8],
            "12345678\n",
            "2026-02-30",
            "2026-03-01",
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00.123456789+01:00",
            "9999-01-06T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "2036-03-01T10:00:00Z",
            "2026-02-28T23:30:00-01:00",
            "credit",
            "debit",
            "group",
            "adhd",
            "clinical",
            1e3,
            0,
            -1,
            10_000_001,
            366,
            367,
            21,
            22,
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def nest(levels: int, inner: Any = 0) -> Any:
    """``inner`` inside ``levels`` arrays and objects, alternating."""
    for i in range(levels):
        inner = [inner] if i % 2 else {"k": inner}
    return inner


def depth(raw: bytes) -> int:
    """Nesting a decoder reaches in ``raw`` (strings skipped), read without the engine."""
    deepest = level = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            escaped, in_string = (False, True) if escaped else (byte == 92, byte != 34)
        elif byte == 34:
            in_string = True
        elif byte in b"[{":
            level += 1
            deepest = max(deepest, level)
        elif byte in b"]}":
            if level == 0:
                break
            level -= 1
    return deepest


def nested_text(levels: int, arrays: bool) -> bytes:
    """A JSON value ``levels`` deep, also deeper than the json module can write."""
    if arrays:
        return b"[" * levels + b"0" + b"]" * levels
    return b'{"k":' * levels + b"0" + b"}" * levels


def batch_text(lines: list[bytes], provider: str = AGBS[0]) -> bytes:
    head = b'{"schema":"' + BATCH.encode() + b'","provider_agb":"' + provider.encode()
    return head + b'","lines":[' + b",".join(lines) + b"]}"


def too_deep_for_us(raw: bytes) -> bool:
    """``depth(raw) > MAX_DEPTH``; without the byte loop where too few brackets."""
    return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth(raw) > MAX_DEPTH


def to_json(value: Any) -> bytes:
    """Python's encoder: big integers, NaN and Infinity (which orjson must refuse) pass."""
    return json.dumps(value, allow_nan=True).encode()


FIELDS = sorted(valid_line(0))


@st.composite
def line_variant(draw: st.DrawFn, provider: str | None = None, pool: int = 8) -> dict[str, Any]:
    """A valid line from a small pool, so debits, credits and their repeats collide."""
    n = draw(st.integers(0, pool))
    obj = valid_line(n, provider=provider or draw(st.sampled_from(AGBS)))
    if draw(st.integers(0, 2)) == 0:
        obj["kind"] = "credit"
    variant = draw(st.integers(0, 2))  # 0: the original event, else a new event of the line
    if variant or obj["kind"] == "credit":
        obj["event_id"] = f"e{n}{obj['kind'][0]}{variant}"
    return obj


@st.composite
def mutated_line(draw: st.DrawFn) -> dict[str, Any]:
    obj = draw(line_variant())
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["delete", "set", "extra", "identifier_bsn", "deep"]))
        name = draw(st.sampled_from(FIELDS))
        if op == "delete":
            obj.pop(name, None)
        elif op == "set":
            obj[name] = draw(json_values)
        elif op == "extra":
            obj[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        elif op == "deep":  # an extra field (or a field) nested around MAX_DEPTH or far beyond
            levels = draw(st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, 200]))
            obj[draw(st.sampled_from(["future", "client_ref", "lines"]))] = nest(levels)
        else:
            obj[draw(st.sampled_from(["client_ref", "line_id", "event_id", "trajectory_id"]))] = BSN
    return obj


@st.composite
def batch(draw: st.DrawFn) -> dict[str, Any]:
    provider = draw(st.sampled_from(AGBS))
    lines: list[Any] = draw(
        st.lists(
            st.one_of(line_variant(provider), line_variant(provider), mutated_line(), json_values),
            min_size=1,
            max_size=8,
        )
    )
    env: dict[str, Any] = {"schema": BATCH, "provider_agb": provider, "lines": lines}
    change = draw(
        st.sampled_from(["none"] * 6 + ["agb", "lines", "empty", "drop", "schema", "huge"])
    )
    if change == "empty":
        env["lines"] = []
    elif change == "agb":
        env["provider_agb"] = draw(json_values)
    elif change == "lines":
        env["lines"] = draw(json_values)
    elif change == "drop":
        env.pop(draw(st.sampled_from(["schema", "provider_agb", "lines"])))
    elif change == "schema":
        env["schema"] = draw(
            st.sampled_from(["ggz.declaration-batch/2", "ggz.declaration/1", None])
        )
    elif change == "huge":
        env["lines"] = [valid_line(n, provider) for n in range(1001)]
    return env


def byte_mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    cut = st.integers(0, max(0, len(raw)))
    return st.one_of(
        cut.map(lambda i: raw[:i]),
        st.tuples(cut, st.binary(min_size=1, max_size=4)).map(
            lambda t: raw[: t[0]] + t[1] + raw[t[0] :]
        ),
        st.tuples(st.integers(0, max(0, len(raw) - 1)), st.integers(1, 255)).map(
            lambda t: raw[: t[0]] + bytes([raw[t[0]] ^ t[1]]) + raw[t[0] + 1 :] if raw else raw
        ),
    )


@st.composite
def message(draw: st.DrawFn) -> tuple[str | None, bytes]:
    kind = draw(
        st.sampled_from(["bytes", "json", "valid", "valid", "line", "batch", "mutated", "deep"])
    )
    owner: str | None = None
    if kind == "bytes":
        raw = draw(st.binary(max_size=300))
    elif kind == "json":
        raw = to_json(draw(json_values))
    elif kind == "deep":  # valid JSON nested around the bound, or far beyond it
        levels = draw(st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, 3000]))
        value = nested_text(levels, draw(st.booleans()))
        line = to_json({**valid_line(draw(st.integers(0, 8))), "future": "X"})
        where = draw(st.sampled_from(["alone", "extra field", "batch line", "batch extra"]))
        raw = {
            "alone": value,
            "extra field": line.replace(b'"X"', value),
            "batch line": batch_text([line, value]),
            "batch extra": batch_text([line.replace(b'"X"', value)]),
        }[where]
    else:
        obj = draw(
            line_variant(AGBS[0])
            if kind == "valid"
            else mutated_line()
            if kind == "line"
            else batch()
            if kind == "batch"
            else st.one_of(mutated_line(), batch())
        )
        owner = obj.get("provider_agb") if isinstance(obj.get("provider_agb"), str) else None
        raw = to_json(obj)
        if kind == "mutated":
            raw = draw(byte_mutations(raw))
    # Mostly keyed by its own provider, as producers do; sometimes not at all, or wrongly.
    how = draw(st.sampled_from(["own", "own", "own", "none", "other", "garbage", "bsn"]))
    if how == "own" and owner:
        return owner, raw
    if how == "other":
        return draw(st.sampled_from(AGBS)), raw
    if how == "garbage":
        return draw(st.text(min_size=1, max_size=10)), raw
    if how == "bsn":
        return BSN, raw
    return None, raw


# -- the oracle: what a message holds, read without the engine --------------------


def expected(raw: bytes) -> int | str:
    """Number of lines in the message, or the reason it is dead-lettered whole."""
    if too_deep_for_us(raw):
        return "invalid_json"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "invalid_json"
    if not isinstance(obj, dict):
        return "invalid_json"
    if obj.get("schema") != BATCH:
        return 1
    agb, lines = obj.get("provider_agb"), obj.get("lines")
    if (
        isinstance(agb, str)
        and re.fullmatch(r"[0-9]{8}", agb)
        and isinstance(lines, list)
        and 1 <= len(lines) <= 1000
    ):
        return len(lines)
    return "invalid_batch"


def bsn_refs(value: Any) -> list[str]:
    """BSN-like ``client_ref`` values anywhere inside a decoded JSON value."""
    found: list[str] = []
    if isinstance(value, dict):
        ref = value.get("client_ref")
        if isinstance(ref, str | int) and spec_bsn_like(str(ref)):
            found.append(str(ref))
        for v in value.values():
            found += bsn_refs(v)
    elif isinstance(value, list):
        for v in value:
            found += bsn_refs(v)
    return found


def no_bsn_in_text(payload: bytes) -> bool:
    """No ``"client_ref": "<BSN-like>"`` spelled plainly (escapes: see ``bsn_refs``)."""
    return not any(
        spec_bsn_like(m.group(1).decode("utf-8", "replace"))
        for m in _CLIENT_REF_TEXT.finditer(payload)
    )


def bsn_in_detail(text: str) -> bool:
    """Any stretch of ``text`` from a digit or N to a digit that is BSN-like."""
    starts = [i for i, c in enumerate(text) if c.isdecimal() or c in "NnＮｎ"]
    ends = [i for i, c in enumerate(text) if c.isdecimal()]
    return any(spec_bsn_like(text[i : j + 1]) for i in starts for j in ends if i <= j < i + 40)


def check_message(sim: Feed, key: str | None, raw: bytes) -> None:
    before = sim.totals()
    outs = sim.declarations(key, raw)
    after = sim.totals()
    letters = [d for o in outs for d in o.dead_letters]
    lines = sum(o.lines for o in outs)
    delta = diff(after, before)
    want = expected(raw)
    for outcome in delta:
        event(outcome)  # --hypothesis-show-statistics: which outcomes the inputs reach

    for letter in letters:
        assert letter.reason in SPEC_REASONS, letter
        assert isinstance(letter.payload, bytes)
        assert no_bsn_in_text(letter.payload), letter.payload
    for headers in [d.headers for d in sim.dead_letters[-len(letters) :]] if letters else ():
        assert set(headers) == {"reason", "detail"}
        assert not _NINE.search(headers["detail"]), headers
        assert not bsn_in_detail(headers["detail"].decode()), headers

    if isinstance(want, str):
        assert lines == 0
        assert [d.reason for d in letters] == [want]
        assert delta == {f"rejected:{want}": 1}
        return
    assert lines == want, (lines, want)
    assert outcomes(after) - outcomes(before) == want, delta
    rejected = Counter({k[9:]: v for k, v in delta.items() if k.startswith("rejected:")})
    assert rejected == Counter(d.reason for d in letters), (delta, letters)
    for letter in letters:  # one line each: its JSON, re-encoded when it was part of a batch
        if too_deep_for_us(letter.payload):
            continue
        try:
            decoded = orjson.loads(letter.payload)
        except orjson.JSONDecodeError:
            continue
        assert not bsn_refs(decoded), letter.payload


# -- properties ---------------------------------------------------------------------


@FUZZ
@given(st.lists(message(), min_size=1, max_size=10))
def test_worker_path_accounts_for_every_line_and_never_raises(msgs: list) -> None:
    sim = Feed(POLICY, clock=lambda: 0.0)
    for key, raw in msgs:
        check_message(sim, key, raw)
    sim.tick()  # structural rules over whatever state the input left


@FUZZ
@given(st.lists(st.tuples(line_variant(AGBS[0], pool=3), st.booleans()), min_size=4, max_size=30))
def test_redelivered_lines_and_credits_account_for_every_line(items: list) -> None:
    sim = Feed(POLICY, clock=lambda: 0.0)
    for obj, keyed in items:
        check_message(sim, AGBS[0] if keyed else None, to_json(obj))


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_under_a_key_or_none_are_one_dead_letter_or_lines(raw: bytes) -> None:
    sim = Feed(POLICY, clock=lambda: 0.0)
    check_message(sim, None, raw)
    check_message(sim, AGBS[0], raw)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(AGBS), batch()), min_size=1, max_size=5))
def test_batches_with_duplicates_and_credits_account_for_every_line(items: list) -> None:
    sim = Feed(POLICY, clock=lambda: 0.0)
    for key, env in items:
        check_message(sim, key, to_json(env))
        check_message(sim, None, to_json(env))  # the keyless copy is re-keyed, then judged


@FUZZ
@given(st.lists(message(), min_size=1, max_size=6))
def test_offline_engine_accounts_for_every_line_and_never_raises(msgs: list) -> None:
    engine = Engine(POLICY, clock=lambda: 0.0)
    for _key, raw in msgs:
        before = engine.counts()
        fx = engine.process(raw, None)
        after = engine.counts()
        assert all(d.reason in SPEC_REASONS for d in fx.dead_letters)
        want = expected(raw)
        if isinstance(want, str):
            assert [d.reason for d in fx.dead_letters] == [want]
        else:
            assert fx.lines == want
            assert outcomes(after) - outcomes(before) == want
    engine.tick()
    engine.snapshot()


@FUZZ
@given(st.lists(message(), min_size=1, max_size=6))
def test_state_written_for_any_input_rebuilds_the_same_state(msgs: list) -> None:
    sim = Feed(POLICY, clock=lambda: 0.0)
    for key, raw in msgs:
        sim.declarations(key, raw)
    restarted = Feed(POLICY, clock=lambda: 0.0, store=dict(sim.store)).recover().engine
    assert restarted.snapshot() == sim.engine.snapshot()
    for owner, st_ in sim.engine.providers.items():
        again = restarted.providers[owner]
        assert again.lines == st_.lines
        assert again.alerts.to_json() == st_.alerts.to_json()


@FUZZ
@given(json_values)
def test_contract_topic_input_is_parsed_or_refused_never_raises(value: Any) -> None:
    """The contracts agent catches only JSONDecodeError and ContractError."""
    from streams.domain.contracts import ContractError, parse_contract
    from streams.pipeline.processor import contract_control

    good = {
        "schema": "ggz.contract/1",
        "provider_agb": AGBS[0],
        "year": 2026,
        "ceiling_cents": 1_000_000,
        "purchaser": "Team Midden",
        "provider_name": "GGZ Voorbeeld",
        "region": "Utrecht",
        "version": 1,
        "updated_at": "2026-01-01T00:00:00Z",
    }
    for candidate in (value, {**good, "ceiling_cents": value}, {**good, "updated_at": value}):
        raw = to_json(candidate)
        try:
            obj = orjson.loads(raw)
            contract = parse_contract(obj)
        except (orjson.JSONDecodeError, ContractError):
            continue
        sim = Feed(POLICY, clock=lambda: 0.0)
        sim.control(0, contract_control(obj))
        assert sim.engine.contracts.get(contract.provider, contract.year) == contract


@FUZZ
@given(st.binary(max_size=200) | json_values.map(to_json))
def test_control_topic_garbage_is_ignored(raw: bytes) -> None:
    sim = Feed(POLICY, clock=lambda: 0.0)
    sim.control(0, raw)


def test_the_oracle_knows_the_shapes() -> None:
    assert expected(b"\xff") == "invalid_json"
    assert expected(b"[1]") == "invalid_json"
    assert expected(to_json(valid_line(1))) == 1
    assert (
        expected(to_json({"schema": BATCH, "provider_agb": AGBS[0], "lines": []}))
        == "invalid_batch"
    )
    lines = [valid_line(1), valid_line(2)]
    assert expected(to_json({"schema": BATCH, "provider_agb": AGBS[0], "lines": lines})) == 2


@pytest.mark.parametrize(
    "raw",
    [
        b'{"schema":"ggz.declaration-batch/1","provider_agb":"1234567",'
        b'"lines":[{"client_ref":"\\u0031\\u0032\\u0033456782"}]}',
        b'[{"client_ref":"\\u0031\\u0032\\u0033456782"}]',
    ],
    ids=["invalid_batch", "json_array"],
)
def test_escaped_bsn_in_a_message_rejected_whole_is_masked(raw: bytes) -> None:
    sim = Feed(POLICY)
    (out,) = sim.declarations(None, raw)
    (letter,) = out.dead_letters
    assert not bsn_refs(orjson.loads(letter.payload)), letter.payload


# -- poison messages on every path ----------------------------------------------------------

FIVE_MB = "a" * 5_000_000


def line_with(n: int, **fields: Any) -> bytes:
    """A valid line with ``fields`` changed; a bytes value is spliced in as raw JSON."""
    raw_fields = {k: v for k, v in fields.items() if isinstance(v, bytes)}
    obj = valid_line(n, **{k: v for k, v in fields.items() if not isinstance(v, bytes)})
    for k in raw_fields:
        obj[k] = f"@{k}@"
    raw = to_json(obj)
    for k, v in raw_fields.items():
        raw = raw.replace(f'"@{k}@"'.encode(), v)
    return raw


def poison() -> dict[str, tuple[bytes, dict[str, int]]]:
    """Name → (message, what its lines count as)."""
    cases: dict[str, tuple[bytes, dict[str, int]]] = {}
    bad = {"rejected:invalid_json": 1}
    for arrays in (False, True):
        kind = "arrays" if arrays else "objects"
        cases[f"line with an extra field of {kind} to the bound"] = (
            line_with(1, future=nested_text(MAX_DEPTH - 1, arrays)),
            {"accepted": 1},
        )
        cases[f"line with an extra field of {kind} one level too deep"] = (
            line_with(1, future=nested_text(MAX_DEPTH, arrays)),
            bad,
        )
        cases[f"line with an extra field of {kind} 100,000 deep"] = (
            line_with(1, future=nested_text(100_000, arrays)),
            bad,
        )
        cases[f"a line of {kind} 50,000 deep"] = (nested_text(50_000, arrays), bad)
        deep = nested_text(5_000, arrays)
        cases[f"batch with a line of {kind} 5,000 deep"] = (
            batch_text([line_with(1), deep, line_with(2)]),
            bad,
        )
        cases[f"batch whose line has an extra field of {kind} 5,000 deep"] = (
            batch_text([line_with(1), line_with(2, future=deep)]),
            bad,
        )
        cases[f"batch with an envelope field of {kind} 5,000 deep"] = (
            batch_text([line_with(1)])[:-1] + b',"future":' + deep + b"}",
            bad,
        )
    brackets = "[[[[{{{{" * 10_000
    cases["brackets 80,000 deep inside strings"] = (
        line_with(1, future=brackets, **{brackets[:64]: brackets}),
        {"accepted": 1},
    )
    cases["5 MB string in an extra field"] = (line_with(1, future=FIVE_MB), {"accepted": 1})
    cases["5 MB string as region"] = (line_with(1, region=FIVE_MB), {"rejected:schema": 1})
    cases["5 MB string as client_ref"] = (line_with(1, client_ref=FIVE_MB), {"rejected:schema": 1})
    big = b"[" + b",".join([b"0"] * 100_000) + b"]"
    cases["100,000-element array in an extra field"] = (
        line_with(1, future=big),
        {"accepted": 1},
    )
    cases["batch with a 100,000-element array in a line"] = (
        batch_text([line_with(1, future=big), line_with(2)]),
        {"accepted": 2},
    )
    late = {"rejected:implausible_time": 1}
    cases["submitted in 9999"] = (line_with(1, submitted_at="9999-01-06T00:00:00Z"), late)
    cases["submitted in 0001"] = (line_with(1, submitted_at="0001-01-01T00:00:00Z"), late)
    cases["submitted ten years on (a typo)"] = (
        line_with(1, submitted_at="2036-03-02T09:00:00+01:00"),
        late,
    )
    cases["submitted before its service date, in UTC"] = (
        line_with(1, submitted_at="2026-03-01T00:30:00+01:00"),
        late,
    )
    cases["served and submitted in 9999"] = (
        line_with(1, service_date="9999-12-31", submitted_at="9999-12-31T23:59:59Z"),
        {"accepted": 1},
    )
    cases["served and submitted in 0001"] = (
        line_with(1, service_date="0001-01-01", submitted_at="0001-01-01T00:00:00Z"),
        {"accepted": 1},
    )
    cases["submitted before year 1 in UTC"] = (
        line_with(1, service_date="0001-01-01", submitted_at="0001-01-01T00:00:00+01:00"),
        {"rejected:schema": 1},
    )
    cases["batch with a line submitted in 9999"] = (
        batch_text([line_with(1), line_with(2, submitted_at="9999-01-06T00:00:00Z")]),
        {"accepted": 1, **late},
    )
    for ref in LOOK_ALIKES:
        cases[f"client_ref {ref!r}"] = (
            line_with(1, client_ref=ref),
            {"rejected:bsn_like_client_ref": 1},
        )
    cases["batch with a look-alike"] = (
        batch_text([line_with(1), line_with(2, client_ref="NL 123.456.789")]),
        {"accepted": 1, "rejected:bsn_like_client_ref": 1},
    )
    return cases


POISON = poison()
SINGLE = {
    name for name, (raw, _) in POISON.items() if not raw.startswith(b'{"schema":"' + BATCH.encode())
}


def assert_clean(letters: list[Any]) -> None:
    for letter in letters:
        assert letter.reason in SPEC_REASONS
        assert no_bsn_in_text(letter.payload)
        assert not bsn_in_detail(letter.detail)
        if not too_deep_for_us(letter.payload):
            try:
                decoded = orjson.loads(letter.payload)
            except orjson.JSONDecodeError:
                continue
            assert not bsn_refs(decoded)


def engine_outcome(how: str, raw: bytes) -> dict[str, int]:
    """What ``raw`` counts as through one of the engine's entries (the archive ones
    between two good lines of another provider, whose acceptances are taken off)."""
    engine = Engine(POLICY, clock=lambda: 0.0, contain=how != "process keyed")
    fx = Effects()
    before = engine.counts()
    if how == "process":
        engine.process(raw, None, fx)
    elif how == "process keyed":
        engine.process(raw, AGBS[0], fx)
    else:
        lines = [line_with(100, provider=AGBS[1]), raw, line_with(101, provider=AGBS[1])]
        if how == "process_lines":
            engine.process_lines(lines, fx)
        else:
            engine.process_block(b"\n".join(lines) + b"\n", fx)
    assert_clean(fx.dead_letters)
    delta = diff(engine.counts(), before)
    if how.startswith("process_"):
        delta["accepted"] = delta.get("accepted", 0) - 2
    return {k: v for k, v in delta.items() if v}


def worker_outcome(key: str | None, raw: bytes) -> dict[str, int]:
    sim = Feed(POLICY, clock=lambda: 0.0)
    before = sim.totals()
    outs = sim.declarations(key, raw)
    assert_clean([d for o in outs for d in o.dead_letters])
    for headers in [d.headers for d in sim.dead_letters]:
        assert not bsn_in_detail(headers["detail"].decode())
    return diff(sim.totals(), before)


@pytest.mark.parametrize("name", sorted(POISON))
def test_a_poison_message_counts_the_same_on_every_path_and_nothing_raises(name):
    raw, want = POISON[name]
    paths = ["process", "process keyed"] + (
        ["process_lines", "process_block"] if name in SINGLE else []
    )
    got = {how: engine_outcome(how, raw) for how in paths}
    got["worker keyed"] = worker_outcome(AGBS[0], raw)
    got["worker keyless"] = worker_outcome(None, raw)
    assert got == {how: want for how in got}
    reasons = [k.removeprefix("rejected:") for k in want if k.startswith("rejected:")]
    found = raw_problem(raw, "auto")
    assert (found[0] if found else None) == (reasons[0] if reasons else None)
    if found:
        assert not bsn_in_detail(found[1])


def test_the_poison_cases_cover_what_the_brief_names():
    assert len(POISON) > 40
    assert {w for _, w in POISON.values() for w in w} >= {
        "accepted",
        "rejected:invalid_json",
        "rejected:implausible_time",
        "rejected:bsn_like_client_ref",
        "rejected:schema",
    }
    assert max(len(raw) for raw, _ in POISON.values()) > 5_000_000
    assert max(depth(raw) for raw, _ in POISON.values()) > 100_000
