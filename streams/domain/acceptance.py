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
from streams.domain.typed import as_dict

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


class Decoder:
    """Turns messages into lines; holds the compiled schemas and the policy it needs.

    Lines come out of ``split`` as typed records when the typed path (see ``typed``)
    vouches for the whole message, else as decoded objects that ``check`` validates
    one by one; either way ``check`` makes the ``Line``.
    """

    def __init__(self, mismatch: MismatchPolicy) -> None:
        self._validate: Callable[[Any], Any] = schemas.validator(schemas.DECLARATION)
        self._validate_batch: Callable[[Any], Any] = schemas.validator(schemas.BATCH)
        self._typed = schemas.typed_decoder()
        self._record = self._typed.line_type if self._typed is not None else None
        self._mm_types = mismatch.care_demand_types
        self._mm_settings = mismatch.settings
        self._mm_from = mismatch.from_year
        self._times: dict[str, float] = {}

    def split(self, raw: bytes) -> tuple[str | None, list[Any], Rejection | None]:
        """Decode a message: (envelope provider, lines, whole-message rejection).

        The lines are typed records or, where the typed path cannot vouch for the
        message, decoded JSON values.
        """
        if self._typed is not None:
            message = self._typed.decode(raw)
            if message is not None:
                if type(message) is self._record:
                    return None, [message], None
                return message.provider_agb, message.lines, None
            loose = self._typed.decode_batch_lines(raw)
            if loose is not None:  # a batch with lines to judge one by one
                return loose[0], loose[1], None
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

    def split_lines(self, raws: list[bytes]) -> list[Any] | None:
        """Decode many single-declaration messages at once (see ``split``): one typed
        record each, or None when the typed path cannot vouch for every one."""
        if self._typed is None or len(raws) < 2:
            return None
        records = self._typed.decode_lines(raws)
        if records is None or len(records) != len(raws):
            return None  # an element that was not one of the messages, or none at all
        return records

    def split_block(self, block: bytes) -> list[Any] | None:
        """Decode a block of whole archive lines at once (see ``split_lines``): one
        typed record per line, or None when the typed path cannot vouch for every line."""
        if self._typed is None:
            return None
        return self._typed.decode_block(block)

    def line_objects(self, raw: bytes) -> Callable[[int], Any]:
        """Line ``index`` of a batch message as the JSON value it is, for dead
        letters: decoded from the line's own text where the typed path can cut the
        batch into lines (a third of what decoding the whole batch costs), else
        from the whole batch, decoded once."""
        texts = self._typed.line_texts(raw) if self._typed is not None else None
        if texts is None:
            return orjson.loads(raw)["lines"].__getitem__  # type: ignore[no-any-return]
        return lambda index: orjson.loads(texts[index])

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

    def record(self, obj: Any) -> Any:
        """A line as a typed record, or the Rejection of SPEC §2 steps 1–2."""
        if not isinstance(obj, dict):
            return Rejection(INVALID_JSON, f"line is a JSON {type(obj).__name__}, not an object")
        typed = self._typed
        if typed is not None:
            record = typed.convert(obj)
            if record is not None and typed.complete(record):
                return record
        try:
            self._validate(obj)
        except fastjsonschema.JsonSchemaValueException as exc:
            return Rejection(SCHEMA, schemas.explain(exc))
        if typed is None:
            return _Fields(obj)
        return typed.unchecked(obj)

    def check(self, item: Any, envelope: str | None) -> Line | Rejection:
        """SPEC §2 steps 1–3 (and the batch provider check) for one line.

        Runs for every line, so it reads each field once, as an attribute of the
        typed record.
        """
        if type(item) is not self._record or not self._typed.complete(item):  # type: ignore[union-attr]
            # a decoded object, or a record with checks left that fail: the full
            # validator decides (and explains)
            item = self.record(item if type(item) is not self._record else as_dict(item))
            if type(item) is Rejection:
                return item
        service_date = item.service_date
        if type(service_date) is str:  # from the full validator's path
            try:
                year, quarter = year_quarter(service_date)
            except ValueError as exc:
                return Rejection(SCHEMA, str(exc))
        else:
            year, quarter = service_date.year, (service_date.month + 2) // 3
        # Lines of one submission share their timestamp: a repeat costs a lookup.
        submitted_at = item.submitted_at
        event_time = self._times.get(submitted_at)
        if event_time is None:
            try:  # a calendar the schema's date-time pattern let through (month 13)
                event_time = _remember(self._times, submitted_at, parse_time(submitted_at))
            except ValueError as exc:
                return Rejection(SCHEMA, f"submitted_at: {exc}")
        client = item.client_ref
        if len(client) == 9 and is_bsn_like(client):
            return Rejection(BSN_LIKE, "client_ref has the shape of a BSN (9 digits)")
        agb = item.provider_agb
        if envelope is not None and agb != envelope:
            return Rejection(
                PROVIDER_MISMATCH, f"line of provider {agb} in a message of {envelope}"
            )
        flags = 0
        if item.activity == "consult":
            flags = CONSULT
            if item.digital:
                flags |= DIGITAL
            if item.consult_mode == "group":
                flags |= GROUP
                practitioners = item.practitioners
                if practitioners > 2:
                    flags |= GROUP_OVER2
                    if practitioners >= 4:
                        flags |= GROUP_GE4
        detox = item.detox
        if detox is not None:
            if detox == "clinical":
                flags |= DETOX_CLINICAL
            elif detox == "ambulant":
                flags |= DETOX_AMBULANT
        if (
            year >= self._mm_from
            and item.care_demand_type in self._mm_types
            and item.setting in self._mm_settings
        ):
            flags |= MISMATCH
        if item.diagnosis_group == "adhd":
            flags |= ADHD
        else:
            client = None  # kept only for distinct ADHD clients
        return _new_line(  # Line(...) through its generated __new__ costs 4x as much
            Line,
            (
                item.event_id,
                item.line_id,
                item.kind == "credit",
                agb,
                year,
                quarter,
                client,
                flags,
                item.amount_cents,
                event_time,
            ),
        )


class _Fields:
    """Attribute access to a valid line object, where the typed path is unavailable."""

    __slots__ = ("_obj",)

    def __init__(self, obj: dict[str, Any]) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        value = self._obj.get(name)
        return int(value) if type(value) is float else value  # 1e3 cents stay int


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


def line_payload(raw: bytes, single: bool, index: int, item: Any) -> bytes:
    """The dead-letter bytes of line ``index`` of message ``raw``.

    A single-line message is dead-lettered as it came; a line of a batch as its own
    JSON. A BSN-shaped ``client_ref`` is masked however it was written (a typed
    record has no unknown fields, so the line is taken from the message again).
    """
    if type(item) is dict:
        obj = item
    elif single:
        if not is_bsn_like(getattr(item, "client_ref", None)):
            return mask_bsn(raw)
        obj = orjson.loads(raw)
    else:
        obj = orjson.loads(raw)["lines"][index]
    if single and not is_bsn_like(obj.get("client_ref")):
        return mask_bsn(raw)
    return dead_letter_payload(obj)


def message_payload(raw: bytes) -> bytes:
    """The dead-letter bytes of a message rejected whole, every BSN-shaped
    ``client_ref`` masked, also one written with JSON escapes."""
    masked = mask_bsn(raw)
    try:
        obj = orjson.loads(masked)
    except orjson.JSONDecodeError:
        return masked  # not JSON: the text mask is all there is to apply
    return orjson.dumps(_masked(obj)) if _has_bsn(obj) else masked


def _has_bsn(value: Any) -> bool:
    if isinstance(value, dict):
        return is_bsn_like(value.get("client_ref")) or any(_has_bsn(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bsn(v) for v in value)
    return False


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _masked(v) for k, v in value.items()}
        if is_bsn_like(out.get("client_ref")):
            out["client_ref"] = _MASK.decode()
        return out
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value
