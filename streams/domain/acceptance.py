"""From bytes on the wire to ``Line`` records or dead letters (SPEC §2, §12).

A message holds one declaration object or a batch envelope of one provider's lines.
Every line is judged on its own, in the order of SPEC §2 and §12: ``invalid_json``
(also a message nested deeper than ``nesting.MAX_DEPTH``), ``schema``,
``implausible_time``, ``bsn_like_client_ref``, ``batch_provider_mismatch``; what passes
becomes a ``Line`` for the provider state, which decides steps 4–7.

Nothing that looks like a BSN leaves this module: a dead letter whose
``client_ref`` is BSN-like carries it masked (``bsn``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, TypeVar

import fastjsonschema
import orjson
from msgspec import Struct

from streams.domain import schemas
from streams.domain.bsn import MAYBE, NEVER_FIRST, is_bsn_like, mask_bsn, mask_text
from streams.domain.model import (
    ADHD,
    BSN_LIKE,
    CONSULT,
    COUNTS_CLIENT,
    DETOX_AMBULANT,
    DETOX_CLINICAL,
    DIGITAL,
    GROUP,
    GROUP_GE4,
    GROUP_OVER2,
    IMPLAUSIBLE_TIME,
    INVALID_BATCH,
    INVALID_JSON,
    MISMATCH,
    PROVIDER_MISMATCH,
    SCHEMA,
    Line,
    is_agb,
    parse_time,
    service_day,
)
from streams.domain.nesting import MAX_DEPTH, too_deep
from streams.domain.policy import Policy
from streams.domain.rules import RULES
from streams.domain.typed import as_dict

__all__ = [  # the masking functions are this module's to offer (the worker uses them)
    "DeadLetter",
    "Decoder",
    "Rejection",
    "is_bsn_like",
    "line_payload",
    "mask_bsn",
    "mask_text",
    "message_payload",
]

BATCH_SCHEMA = "ggz.declaration-batch/1"
TOO_DEEP = f"nested deeper than {MAX_DEPTH}"
_new_line = tuple.__new__
_T = TypeVar("_T")
_EPOCH_DAY = date(1970, 1, 1).toordinal()


class DeadLetter(NamedTuple):
    key: str | None  # provider AGB when known
    payload: bytes  # the original bytes (the line's JSON for a line of a batch), BSN masked
    reason: str
    detail: str


class Rejection(NamedTuple):
    reason: str
    detail: str


class Decoder:
    """Turns messages into lines; holds the compiled schemas and the policy it needs.

    Lines come out of ``split`` as typed records when the typed path (see ``typed``)
    vouches for the whole message, else as decoded objects that ``check`` validates
    one by one; either way ``check`` makes the ``Line``.

    Nothing here raises for bad input. A message nested deeper than ``MAX_DEPTH`` is
    refused (``invalid_json``) before any decoder that recurses sees it; the strict
    typed decoders, tried first, do not recurse (``typed.TypedDecoder``).
    """

    def __init__(self, policy: Policy) -> None:
        self._validate: Callable[[Any], Any] = schemas.validator(schemas.DECLARATION)
        self._validate_batch: Callable[[Any], Any] = schemas.validator(schemas.BATCH)
        self._typed = schemas.typed_decoder()
        typed = self._typed
        self._record = typed.line_type if typed is not None else None
        self._lenient_record = typed.lenient_line_type if typed is not None else None
        mismatch = policy.mismatch
        self._mm_types = mismatch.care_demand_types
        self._mm_settings = mismatch.settings
        self._mm_from = mismatch.from_year
        self._keep_years = policy.retention.line_index_years
        # (flag bit, predicate) of the tallies rules declare; empty for the shipped rules
        self._tallies = RULES.tally_flags()
        self._times: dict[str, float] = {}
        # service_date → (year, month, first and first-too-late instant of submitted_at)
        self._days: dict[Any, tuple[int, int, float, float]] = {}

    def split(self, raw: bytes) -> tuple[str | None, list[Any], Rejection | None]:
        """Decode a message: (envelope provider, lines, whole-message rejection).

        The lines are typed records or, where the typed path cannot vouch for the
        message, decoded JSON values.
        """
        typed = self._typed
        if typed is not None:
            message = typed.decode(raw)
            if message is not None:
                if type(message) is self._record:
                    return None, [message], None
                return message.provider_agb, message.lines, None
        return self._split_slowly(raw)

    def _split_slowly(self, raw: bytes) -> tuple[str | None, list[Any], Rejection | None]:
        """``split`` for a message the strict typed records refuse: too deep, with
        unknown properties, with lines to judge one by one, or no valid message."""
        if too_deep(raw):  # before anything that recurses
            return None, [], Rejection(INVALID_JSON, TOO_DEEP)
        typed = self._typed
        if typed is not None:
            message = typed.decode_lenient(raw)
            if message is not None:
                if type(message) is self._lenient_record:
                    return None, [message], None
                return message.provider_agb, message.lines, None
            loose = typed.decode_batch_lines(raw)
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
        typed = self._typed
        if typed is None or len(raws) < 2:
            return None
        records = typed.decode_lines(raws)
        if records is False and not too_deep(b"\n".join(raws)):  # an unknown property
            records = typed.decode_lines(raws, lenient=True)
        if not records or len(records) != len(raws):  # type: ignore[arg-type]
            return None  # an element that was not one of the messages, or none at all
        return records  # type: ignore[return-value]

    def split_block(self, block: bytes) -> list[Any] | None:
        """Decode a block of whole archive lines at once (see ``split_lines``): one
        typed record per line, or None when the typed path cannot vouch for every line."""
        typed = self._typed
        if typed is None:
            return None
        records = typed.decode_block(block)
        if records is False and not too_deep(block):  # an unknown property
            records = typed.decode_block(block, lenient=True)
        return records or None  # type: ignore[return-value]

    def line_objects(self, raw: bytes) -> Callable[[int], Any]:
        """Line ``index`` of a batch message (one ``split`` accepted) as the JSON value
        it is, for dead letters: decoded from the line's own text where the typed
        path can cut the batch into lines (a third of what decoding the whole batch
        costs), else from the whole batch, decoded once."""
        texts = self._typed.line_texts(raw) if self._typed is not None else None
        if texts is None:
            return orjson.loads(raw)["lines"].__getitem__
        return lambda index: orjson.loads(texts[index])

    def provider_of(self, raw: bytes) -> str | None:
        """The provider a message names (batch envelope, or a single line's AGB)."""
        if too_deep(raw):
            return None
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        agb = obj.get("provider_agb")
        return agb if is_agb(agb) else None

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

    def check(self, item: Any, envelope: str | None) -> Line | Rejection:  # noqa: C901 - per line (bench offline): inline checks, no calls
        """SPEC §2 steps 1–3 and §12 step 2b (and the batch provider check) for one
        line.

        Runs for every line, so it reads each field once, as an attribute of the
        typed record.
        """
        kind = type(item)
        if (
            kind is not self._record and kind is not self._lenient_record
        ) or not self._typed.complete(item):  # type: ignore[union-attr]
            # a decoded object, or a record with checks left that fail: the full
            # validator decides (and explains)
            is_record = kind is self._record or kind is self._lenient_record
            item = self.record(as_dict(item) if is_record else item)
            if type(item) is Rejection:
                return item
        # Lines of one submission share their dates: a repeat costs a lookup.
        service_date = item.service_date
        day = self._days.get(service_date)
        if day is None:
            try:  # from the full validator's path, a string: a calendar day?
                day = _remember(self._days, service_date, self._day(service_date))
            except ValueError as exc:
                return Rejection(SCHEMA, f"service_date: {exc}")
        year, month, earliest, too_late = day
        submitted_at = item.submitted_at
        event_time = self._times.get(submitted_at)
        if event_time is None:
            try:  # a calendar the schema's date-time pattern let through (month 13)
                event_time = _remember(self._times, submitted_at, parse_time(submitted_at))
            except ValueError as exc:
                return Rejection(SCHEMA, f"submitted_at: {exc}")
        if not earliest <= event_time < too_late:  # SPEC §12, step 2b
            return Rejection(IMPLAUSIBLE_TIME, self._implausible(event_time, service_date))
        client = item.client_ref
        # Pre-checks, inline: an ordinary pseudonym starts with a letter, or holds one.
        if (
            client[0] not in NEVER_FIRST
            and (not client.isascii() or not client.lstrip(MAYBE))
            and is_bsn_like(client)
        ):
            return Rejection(BSN_LIKE, "client_ref has the shape of a BSN (9 digits)")
        agb = item.provider_agb
        if envelope is not None and agb != envelope:
            # (``envelope`` may be a message key: anything a producer sent)
            detail = mask_text(f"line of provider {agb} in a message of {envelope}")
            return Rejection(PROVIDER_MISMATCH, detail)
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
        department = item.department
        if not flags & COUNTS_CLIENT and department is None:
            client = None  # kept only for the distinct clients it counts in
        # One tuple, not four fields: the state looks the dims up per line. (An
        # intern table here, nested dicts by the values, cost more than it saved the
        # state: msgspec gives new string objects for every line.)
        stay = item.stay_days if item.activity == "stay" else None
        dims = (item.setting, department, item.prestatie_code, stay)
        if self._tallies:  # the lines rules asked to have counted (rules.base.Tally)
            for bit, counts in self._tallies:
                if counts(item):
                    flags |= bit
        return _new_line(  # Line(...) through its generated __new__ costs 4x as much
            Line,
            (
                item.event_id,
                item.line_id,
                item.kind == "credit",
                agb,
                year,
                month,
                client,
                flags,
                item.amount_cents,
                event_time,
                dims,
            ),
        )

    def _day(self, service_date: date | str) -> tuple[int, int, float, float]:
        """(year, month, first instant of the day, first instant after the last
        plausible submission day) of a service date; a string is read first."""
        day = service_day(service_date) if type(service_date) is str else service_date
        last = day.year + self._keep_years  # type: ignore[union-attr]
        too_late = (
            (date(last + 1, 1, 1).toordinal() - _EPOCH_DAY) * 86_400.0 if last < 9999 else math.inf
        )
        return (
            day.year,  # type: ignore[union-attr]
            day.month,  # type: ignore[union-attr]
            (day.toordinal() - _EPOCH_DAY) * 86_400.0,  # type: ignore[union-attr]
            too_late,
        )

    def _implausible(self, event_time: float, service_date: date | str) -> str:
        """Why a line's submitted_at cannot be right (dates only: no input is quoted)."""
        submitted = datetime.fromtimestamp(event_time, UTC).date()
        day = service_day(service_date) if type(service_date) is str else service_date
        if submitted < day:  # type: ignore[operator]
            return f"submitted_at (UTC) {submitted} is before service_date {day}"
        keep = self._keep_years
        return (
            f"submitted_at (UTC) {submitted} is after {day.year + keep}-12-31, the end "  # type: ignore[union-attr]
            f"of service year {day.year} plus retention.line_index_years = {keep}"  # type: ignore[union-attr]
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


def line_payload(raw: bytes, single: bool, index: int, item: Any) -> bytes:
    """The dead-letter bytes of line ``index`` of message ``raw``, BSN-like
    ``client_ref`` values masked (``bsn.mask_bsn``).

    A single-line message is dead-lettered as it came; a line of a batch as its own
    JSON (``item``, the JSON value of the line; a typed record has lost the line's
    unknown fields, so it is taken from the message again).
    """
    if single:
        return mask_bsn(raw)
    if isinstance(item, Struct):
        item = orjson.loads(raw)["lines"][index]
    return mask_bsn(orjson.dumps(item))


def message_payload(raw: bytes) -> bytes:
    """The dead-letter bytes of a message rejected whole: as it came, every
    BSN-like ``client_ref`` masked, also one written with JSON escapes."""
    return mask_bsn(raw)
