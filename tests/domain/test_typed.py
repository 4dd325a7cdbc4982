"""The typed path of schema validation (streams/domain/typed.py): records decoded and
checked by msgspec, generated from the JSON Schema files.

The typed path may refuse what the schema allows (the full validator then decides)
but never vouch for what the full validator rejects; it must vouch for ordinary
lines, refuse schema keywords it does not translate, and give the same results as
the full validator on whole batches.
"""

from __future__ import annotations

import copy
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain import schemas
from streams.domain.acceptance import Decoder, Rejection
from streams.domain.engine import Effects, Engine
from streams.domain.model import parse_time
from streams.domain.policy import load_policy
from streams.domain.typed import TypedDecoder, Unsupported, field_type, record_type

DECLARATION_SCHEMA = schemas.load_schema(schemas.DECLARATION)
FULL = fastjsonschema.compile(DECLARATION_SCHEMA)
TYPED = TypedDecoder(DECLARATION_SCHEMA, schemas.load_schema(schemas.BATCH))


def FAST(obj: Any) -> bool:  # noqa: N802 - reads like the constant it replaced
    """Does the typed path vouch for ``obj``, as a decoded object and as bytes?"""
    record = TYPED.convert(obj)
    vouched = record is not None and TYPED.complete(record)
    try:
        raw = orjson.dumps(obj)
    except TypeError:
        return vouched
    decoded = TYPED.decode(raw)  # strict: refuses an unknown property
    if decoded is None:
        decoded = TYPED.decode_lenient(raw)  # bounded depth: these objects nest shallowly
    plain = raw.isascii() and b"\\" not in raw  # else decode() leaves it to orjson
    if plain and isinstance(obj, dict) and obj == orjson.loads(raw):  # NaN encodes as null
        from_bytes = decoded is not None and TYPED.complete(decoded)
        assert from_bytes == vouched, obj  # the two entries of the typed path agree
    if vouched:  # the pattern admits hour 24 or month 13: the decoder's parse refuses them
        try:
            parse_time(record.submitted_at)
        except ValueError:
            return False
    return vouched


ODD_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    4,
    8,
    9,
    20,
    21,
    22,
    366,
    367,
    10_000_000,
    10_000_001,
    1.0,
    2.5,
    "",
    "x",
    "x" * 16,
    "x" * 17,
    "x" * 64,
    "x" * 65,
    "k" * 128,
    "k" * 129,
    "12345678",
    "12345678\n",
    "\n12345678",
    "1234567",
    "123456789",
    "１２３４５６７８",
    "debit",
    "credit",
    "consult",
    "stay",
    "other",
    "group",
    "individual",
    "adhd",
    "ambulant",
    "clinical",
    "ggz.declaration/1",
    "ggz.declaration/1\n",
    "2026-02-28",
    "2026-02-29",
    "2024-02-29",
    "2026-02-30",
    "2026-13-01",
    "2026-03-01\n",
    "٢٠٢٦-٠٣-٠١",
    "2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00+01:00",
    "2026-03-01T10:00:00",
    "2026-03-01T10:00:00Z\n",
    "2026-03-01T24:00:00Z",
    "2026-03-01T23:59:60Z",
    "2026-03-01T10:00:00+24:00",
    "2026-03-01T10:00:00+0100",
    "2026-03-01t10:00:00z",
    "2026-03-01T10:00:00.123456789+05:30",
    [],
    {},
    {"activity": "consult"},
]
FIELDS = [
    *DECLARATION_SCHEMA["required"],
    "consult_mode",
    "practitioners",
    "digital",
    "stay_days",
    "detox",
    "department",
    "prestatie_code",
]


def _base(activity: str) -> dict[str, Any]:
    obj = {
        "schema": "ggz.declaration/1",
        "event_id": "e",
        "line_id": "l",
        "kind": "debit",
        "provider_agb": "12345678",
        "region": "R",
        "client_ref": "c",
        "trajectory_id": "t",
        "service_date": "2026-03-01",
        "submitted_at": "2026-03-01T10:00:00+01:00",
        "activity": activity,
        "setting": 1,
        "care_demand_type": 3,
        "diagnosis_group": "adhd",
        "amount_cents": 100,
    }
    if activity == "consult":
        obj.update(consult_mode="group", practitioners=2, digital=True)
    elif activity == "stay":
        obj["stay_days"] = 3
    return obj


def _full_accepts(obj: Any) -> bool:
    try:
        FULL(copy.deepcopy(obj))
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _edge_values(spec: dict[str, Any]) -> list[Any]:
    """Values at and just beyond each constraint of one property, read from the schema."""
    out: list[Any] = []
    for key in ("minimum", "maximum"):
        if key in spec:
            n = spec[key]
            out += [n - 1, n, n + 1, float(n), float(n + 1)]
    for key in ("minLength", "maxLength"):
        if key in spec:
            n = spec[key]
            out += ["a" * max(n - 1, 0), "a" * n, "a" * (n + 1)]
    for value in spec.get("enum", []) + ([spec["const"]] if "const" in spec else []):
        out.append(value)
        if isinstance(value, str):
            out += [value.upper(), value + "\n", " " + value]
    if "pattern" in spec:
        out += ["12345678", "12345678\n", "1234567", "123456789", "1234567a", "１２３４５６７８"]
    if spec.get("format") == "date":
        out += ["2026-02-28", "2026-02-29", "2024-02-29", "2026-04-31", "2026-03-01\n"]
    if spec.get("format") == "date-time":
        out += ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00", "2026-03-01T10:00:00+01:00\n"]
    return out


EDGES = {f: _edge_values(DECLARATION_SCHEMA["properties"][f]) + ODD_VALUES for f in FIELDS}

mutation = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(FIELDS), st.none()),
    st.sampled_from(FIELDS).flatmap(
        lambda f: st.tuples(st.just("set"), st.just(f), st.sampled_from(EDGES[f]))
    ),
    st.tuples(
        st.just("set"),
        st.sampled_from(FIELDS),
        st.one_of(st.integers(-5, 10_000_005), st.text(max_size=10), st.floats(allow_nan=True)),
    ),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    activity=st.sampled_from(["consult", "stay", "other"]),
    mutations=st.lists(mutation, min_size=0, max_size=3),
)
def test_fast_schema_path_never_accepts_what_the_full_validator_rejects(activity, mutations):
    obj = _base(activity)
    for op, field, value in mutations:
        if op == "drop":
            obj.pop(field, None)
        else:
            obj[field] = value
    if FAST(obj):
        assert _full_accepts(obj), obj


@pytest.mark.parametrize("activity", ["consult", "stay", "other"])
def test_fast_schema_path_never_accepts_a_single_edge_value_the_full_validator_rejects(activity):
    # Every field x every edge value, exhaustively: hypothesis below covers combinations.
    vouched = 0
    for field in FIELDS:
        for value in [*EDGES[field], ...]:
            obj = _base(activity)
            if value is ...:
                obj.pop(field, None)
            else:
                obj[field] = value
            if FAST(obj):
                vouched += 1
                assert _full_accepts(obj), (field, value)
    assert vouched > len(FIELDS)  # the fast path did vouch for some of them


@pytest.mark.parametrize("activity", ["consult", "stay", "other"])
def test_fast_schema_path_vouches_for_ordinary_valid_lines(activity):
    # without this the fast path could refuse everything and still be "never looser"
    obj = _base(activity)
    assert _full_accepts(obj)
    assert FAST(obj) is True
    assert FAST({**obj, "detox": None, "department": "D1", "unknown": 1}) is True


@pytest.mark.parametrize("value", ["not an object", 5, None, []])
def test_fast_schema_path_refuses_non_objects(value):
    assert FAST(value) is False


def test_typed_path_refuses_keywords_it_does_not_translate():
    with pytest.raises(Unsupported):
        record_type({"type": "object", "additionalProperties": False}, "X", "schema")
    with pytest.raises(Unsupported):
        field_type({"type": "string", "pattern": "[0-9]+"})  # unanchored
    with pytest.raises(Unsupported):
        field_type({"type": "string", "format": "email"})
    with pytest.raises(Unsupported):
        field_type({"type": "number"})


def test_a_line_the_typed_path_refuses_is_explained_by_the_full_validator():
    decoder = Decoder(load_policy())
    bad = {**_base("consult"), "practitioners": 21}
    assert decoder.check(bad, None) == Rejection(
        "schema", "practitioners: must be smaller than or equal to 20"
    )
    missing = _base("consult")
    del missing["digital"]
    rejection = decoder.check(missing, None)
    assert isinstance(rejection, Rejection) and rejection.reason == "schema"


def test_cents_written_as_1e3_are_accepted_as_integer_cents():
    decoder = Decoder(load_policy())
    line = decoder.check({**_base("stay"), "amount_cents": 1e3}, None)
    assert line.amount_cents == 1000 and type(line.amount_cents) is int


def test_a_batch_with_bad_lines_keeps_its_good_lines_on_the_typed_path(tmp_path, monkeypatch):
    """A batch that the typed path refuses as a whole (some lines malformed) is split
    into raw lines, each decoded on its own: the results equal those of the orjson
    path that judges every line with the full validator."""
    from streams.synth.generate import GenerateOptions, generate

    made = generate(
        tmp_path, GenerateOptions(providers=4, lines=4_000, seed=5, malformed_rate=0.02)
    )
    by_provider: dict[str, list[bytes]] = {}
    for raw in made.declarations_path.read_bytes().splitlines():
        try:
            agb = orjson.loads(raw).get("provider_agb")
        except (orjson.JSONDecodeError, AttributeError):
            continue  # not an object: no batch to put it in
        if isinstance(agb, str) and len(agb) == 8:
            by_provider.setdefault(agb, []).append(raw)
    messages = [
        (
            agb,
            b'{"schema":"ggz.declaration-batch/1","provider_agb":"%s","lines":[%s]}'
            % (agb.encode(), b",".join(lines[i : i + 40])),
        )
        for agb, lines in sorted(by_provider.items())
        for i in range(0, len(lines), 40)
    ]

    def run() -> tuple[Engine, Effects]:
        engine, fx = Engine(load_policy(), clock=lambda: 0.0), Effects()
        for agb, raw in messages:
            engine.process(raw, agb, fx)
        return engine, fx

    split = TypedDecoder.decode_batch_lines
    used = []
    monkeypatch.setattr(
        TypedDecoder,
        "decode_batch_lines",
        lambda self, raw: used.append(split(self, raw)) or used[-1],
    )
    typed, fx_typed = run()
    assert any(u is not None for u in used)  # batches did go through the split
    monkeypatch.setattr(TypedDecoder, "decode_batch_lines", lambda self, raw: None)
    full, fx_full = run()
    assert fx_typed.dead_letters == fx_full.dead_letters
    assert fx_typed.alerts == fx_full.alerts
    assert typed.snapshot() == full.snapshot()
    assert {"schema", "bsn_like_client_ref"} <= {d.reason for d in fx_full.dead_letters}


def test_an_envelope_without_its_schema_tag_is_one_bad_line_not_a_batch(make_line):
    """Found by the fuzzer: a record type decoded on its own does not insist on its
    tag, so the split of a refused batch must go through the tagged union too."""
    engine = Engine(load_policy())
    raw = orjson.dumps({"provider_agb": "12345678", "lines": [make_line(), None]})
    fx = Effects()
    engine.process(raw, "12345678", fx)
    assert fx.lines == 1
    assert [d.reason for d in fx.dead_letters] == ["schema"]
