"""From bytes on the wire to ``Line`` records or dead letters (SPEC §2).

A message holds one declaration object or a batch envelope of one provider's lines.
Every line is judged on its own, in the order of SPEC §2: ``invalid_json``,
``schema``, ``bsn_like_client_ref``, ``batch_provider_mismatch``; what passes becomes
a ``Line`` for the provider state, which decides steps 4–7.

Nothing that looks like a BSN leaves this module: a dead letter whose
``client_ref`` has the shape of a BSN carries it masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import fastjsonschema
import orjson

from streams.domain import schemas
from streams.domain.model import (
    ADHD,
    BSN_LIKE,
    CONSULT,
    DETOX_AMBULANT,
    DETOX_CLINICAL,
    DIGITAL,
    GROUP,
    GROUP_GE4,
    GROUP_OVER2,
    INVALID_BATCH,
    INVALID_JSON,
    MISMATCH,
    PROVIDER_MISMATCH,
    SCHEMA,
    Line,
    parse_time,
    year_quarter,
)
from streams.domain.policy import MismatchPolicy

BATCH_SCHEMA = "ggz.declaration-batch/1"
_new_line = tuple.__new__
_T = TypeVar("_T")
_BSN_TEXT = re.compile(rb'("client_ref"\s*:\s*")([0-9]{9})(")')
_MASK = b"*********"


class DeadLetter(NamedTuple):
    key: str | None  # provider AGB when known
    payload: bytes  # the original bytes (the line's JSON for a line of a batch), BSN masked
    reason: str
    detail: str


class Rejection(NamedTuple):
    reason: str
    detail: str


def is_bsn_like(value: object) -> bool:
    return isinstance(value, str) and len(value) == 9 and value.isdigit() and value.isascii()


def mask_bsn(payload: bytes) -> bytes:
    return _BSN_TEXT.sub(rb"\1" + _MASK + rb"\3", payload)


# What a Line is built from, in the order the schema check hands the values back.
LINE_FIELDS = (
    "event_id",
    "line_id",
    "kind",
    "provider_agb",
    "region",
    "client_ref",
    "service_date",
    "submitted_at",
    "activity",
    "consult_mode",
    "practitioners",
    "digital",
    "setting",
    "care_demand_type",
    "diagnosis_group",
    "detox",
    "amount_cents",
)


class Decoder:
    """Turns messages into lines; holds the compiled schema and the policy it needs."""

    def __init__(self, mismatch: MismatchPolicy) -> None:
        self._fast = schemas.fast_extractor(schemas.DECLARATION, LINE_FIELDS)
        self._validate: Callable[[Any], Any] = schemas.validator(schemas.DECLARATION)
        self._validate_batch: Callable[[Any], Any] = schemas.validator(schemas.BATCH)
        self._mm_types = mismatch.care_demand_types
        self._mm_settings = mismatch.settings
        self._mm_from = mismatch.from_year
        self._days: dict[str, tuple[int, int]] = {}
        self._times: dict[str, float] = {}

    def split(self, raw: bytes) -> tuple[str | None, list[Any], Rejection | None]:
        """Decode a message: (envelope provider, line objects, whole-message rejection)."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return None, [], Rejection(INVALID_JSON, str(exc))
        if type(obj) is not dict:
            return (
                None,
                [],
                Rejection(INVALID_JSON, f"message is a JSON {type(obj).__name__}, not an object"),
            )
        if obj.get("schema") != BATCH_SCHEMA:
            return None, [obj], None
        try:
            self._validate_batch(obj)
        except fastjsonschema.JsonSchemaValueException as exc:
            return None, [], Rejection(INVALID_BATCH, schemas.explain(exc))
        return obj["provider_agb"], obj["lines"], None

    def provider_of(self, raw: bytes) -> str | None:
        """The provider a message names (batch envelope, or a single line's AGB)."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        agb = obj.get("provider_agb")
        return agb if isinstance(agb, str) and len(agb) == 8 and agb.isdigit() else None

    def check(self, obj: Any, envelope: str | None) -> Line | Rejection:
        """SPEC §2 steps 1–3 (and the batch provider check) for one line object.

        Runs for every line: the generated schema check hands back the values the
        line needs, so each field is looked up once.
        """
        values = self._fast(obj)
        if not values:  # the fast path cannot vouch: the full validator decides
            if not isinstance(obj, dict):
                return Rejection(
                    INVALID_JSON, f"line is a JSON {type(obj).__name__}, not an object"
                )
            try:
                self._validate(obj)
            except fastjsonschema.JsonSchemaValueException as exc:
                return Rejection(SCHEMA, schemas.explain(exc))
            # JSON Schema counts 1e3 as an integer; cents stay int
            values = (*(obj.get(f) for f in LINE_FIELDS[:-1]), int(obj["amount_cents"]))
        (
            event_id,
            line_id,
            kind,
            agb,
            region,
            client,
            service_date,
            submitted_at,
            activity,
            consult_mode,
            practitioners,
            digital,
            setting,
            care_demand_type,
            group,
            detox,
            amount_cents,
        ) = values  # type: ignore[misc]
        if len(client) == 9 and is_bsn_like(client):
            return Rejection(BSN_LIKE, "client_ref has the shape of a BSN (9 digits)")
        if envelope is not None and agb != envelope:
            return Rejection(
                PROVIDER_MISMATCH, f"line of provider {agb} in a message of {envelope}"
            )
        # Lines of one submission share their timestamp, a year has 365 service dates:
        # a repeat costs a dict lookup instead of a parse.
        day = self._days.get(service_date)
        if day is None:
            try:  # dates and times the schema's format check let through
                day = _remember(self._days, service_date, year_quarter(service_date))
            except ValueError as exc:
                return Rejection(SCHEMA, str(exc))
        year, quarter = day
        event_time = self._times.get(submitted_at)
        if event_time is None:
            try:
                event_time = _remember(self._times, submitted_at, parse_time(submitted_at))
            except ValueError as exc:
                return Rejection(SCHEMA, f"submitted_at: {exc}")
        flags = 0
        if activity == "consult":
            flags = CONSULT
            if digital:
                flags |= DIGITAL
            if consult_mode == "group":
                flags |= GROUP
                if practitioners > 2:
                    flags |= GROUP_OVER2
                    if practitioners >= 4:
                        flags |= GROUP_GE4
        if detox is not None:
            if detox == "clinical":
                flags |= DETOX_CLINICAL
            elif detox == "ambulant":
                flags |= DETOX_AMBULANT
        if (
            year >= self._mm_from
            and care_demand_type in self._mm_types
            and setting in self._mm_settings
        ):
            flags |= MISMATCH
        if group == "adhd":
            flags |= ADHD
        else:
            client = None  # kept only for distinct ADHD clients
        return _new_line(  # Line(...) through its generated __new__ costs 4x as much
            Line,
            (
                event_id,
                line_id,
                kind == "credit",
                agb,
                year,
                quarter,
                client,
                flags,
                amount_cents,
                event_time,
                region,
            ),
        )


_MEMO = 1 << 14


def _remember(memo: dict[str, _T], key: str, value: _T) -> _T:
    if len(memo) >= _MEMO:
        memo.clear()
    memo[key] = value
    return value


def dead_letter_payload(obj: Any) -> bytes:
    """The bytes to dead-letter for one line of a batch (its JSON), BSN masked."""
    if isinstance(obj, dict) and is_bsn_like(obj.get("client_ref")):
        obj = {**obj, "client_ref": _MASK.decode()}
    try:
        return orjson.dumps(obj)
    except TypeError:  # pragma: no cover - orjson decoded it, so it encodes
        return repr(obj).encode()
