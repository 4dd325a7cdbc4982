"""Declarations decoded straight into typed records, the schema checked in C.

msgspec parses JSON into ``Struct`` records and checks types, lengths, ranges,
patterns, enums and dates while it parses. For a declaration that costs less than
decoding it into a dict with orjson and then checking it in Python, and a batch of
a thousand lines is one call. The record types are generated at start from the
JSON Schema files, which stay the single source of truth: this module translates
the subset of JSON Schema they use and refuses (``Unsupported``) anything else, in
which case the caller validates every line with the full validator.

The typed path may be stricter than the schema but never looser (integers written
as ``1e3``, say, it does not vouch for). Whatever it cannot vouch for goes to the
full validator, which decides and explains.

Each record type comes twice. The strict one refuses a property the schema does not
name: decoding into it never skips over an unknown value (msgspec recurses into what
it skips), so it is safe on input nested arbitrarily deep, and it is tried first. The
lenient one ignores unknown properties, as the schema allows; it is for input whose
depth the caller has bounded (``nesting``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from types import GenericAlias
from typing import Annotated, Any, Literal, Union

import msgspec
import orjson

# RFC 3339 date-time with an offset, as the schema's "date-time" format requires; the
# calendar (month 13, hour 24) is checked where the timestamp is parsed.
DATETIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)
_MEMO = 1 << 14  # values remembered per deferred expression
_ONE_BY_ONE = 8  # _decode_parts: fewer parts than this are not split further
_BACKSLASH = ord("\\")
# How msgspec words the one refusal of a strict record that a lenient one may accept.
_UNKNOWN_FIELD = "Object contains unknown field"
_ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "examples", "default"}
_SCALARS: dict[str, Any] = {"string": str, "integer": int, "boolean": bool, "null": None}


class Unsupported(Exception):
    """The schema uses a keyword the typed path does not translate."""


# (property, value, properties it then requires): JSON Schema's if/then in allOf
Condition = tuple[str, Any, tuple[str, ...]]


_KEYWORDS = _ANNOTATIONS | {
    "type",
    "const",
    "enum",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "format",
    "minItems",
    "maxItems",
}
# JSON Schema bound → msgspec.Meta argument
_BOUNDS = (
    ("minLength", "min_length"),
    ("maxLength", "max_length"),
    ("minItems", "min_length"),
    ("maxItems", "max_length"),
    ("minimum", "ge"),
    ("maximum", "le"),
    ("exclusiveMinimum", "gt"),
    ("exclusiveMaximum", "lt"),
)


def field_type(schema: dict[str, Any], items: Any = None, deferred: list[str] | None = None) -> Any:
    """The msgspec type of one property: a Python type annotated with constraints.

    With ``deferred``, a regular expression (``pattern``, the date-time format) is
    appended there instead of checked by msgspec: the caller checks it after decoding,
    remembering the values that passed (AGB codes and a submission's timestamp
    repeat over many lines; msgspec would run the expression on every one).
    """
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise Unsupported(", ".join(sorted(unknown)))
    if "const" in schema or "enum" in schema:
        return _enum_type(schema)
    types = schema.get("type")
    if types is None:
        raise Unsupported("property without a type")
    types = types if isinstance(types, list) else [types]
    meta: dict[str, Any] = {arg: schema[key] for key, arg in _BOUNDS if key in schema}
    regexes: list[str] = []
    if "pattern" in schema:
        regexes.append(_anchored(schema["pattern"]))
    kinds = [t for t in types if t != "null"]
    if len(kinds) != 1:
        raise Unsupported(f"type {types}")
    base = _base_type(kinds[0], items)
    if "format" in schema:
        base = _format_type(schema, kinds[0], base, regexes)
    if regexes:  # at most one: a date-time with its own pattern is unsupported
        if deferred is not None:
            deferred.append(regexes[0])
        else:
            meta["pattern"] = regexes[0]
    typ: Any = Annotated[base, msgspec.Meta(**meta)] if meta else base
    return typ | None if "null" in types else typ


def _enum_type(schema: dict[str, Any]) -> Any:
    values = [schema["const"]] if "const" in schema else list(schema["enum"])
    if any(isinstance(v, bool | float | dict | list) for v in values):
        raise Unsupported("enum of that type")
    if set(schema) - _ANNOTATIONS - {"const", "enum"}:
        raise Unsupported("enum with other keywords")
    options = tuple(v for v in values if v is not None)
    base: Any = Literal[options] if options else None
    return base | None if None in values and options else base


def _anchored(pattern: str) -> str:
    if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
        raise Unsupported(f"unanchored pattern {pattern}")
    # JSON Schema's $ is the end of the string; Python's also matches before a "\n"
    return f"^(?:{pattern[1:-1]})\\Z"


def _base_type(kind: str, items: Any) -> Any:
    if kind == "array":
        # list[items], spelled as the call it is: the item type is a runtime value
        return GenericAlias(list, (items if items is not None else Any,))
    if kind in _SCALARS:
        return _SCALARS[kind]
    raise Unsupported(f"type {kind}")


def _format_type(schema: dict[str, Any], kind: str, base: Any, regexes: list[str]) -> Any:
    """The type a ``format`` makes of a string (a date), or the pattern it adds."""
    if kind != "string":
        raise Unsupported("format on a non-string")
    if schema["format"] == "date":
        return datetime.date  # YYYY-MM-DD and a real calendar day, ASCII digits only
    if schema["format"] == "date-time":
        if regexes:
            raise Unsupported("date-time with its own pattern")
        regexes.append(DATETIME_PATTERN)
        return base
    raise Unsupported(f"format {schema['format']}")


def conditions(schema: dict[str, Any]) -> list[Condition]:
    """``allOf: [{if: {properties: {p: {const: c}}}, then: {required: [...]}}]``."""
    out: list[Condition] = []
    for sub in schema.get("allOf", []):
        if set(sub) != {"if", "then"} or set(sub["then"]) != {"required"}:
            raise Unsupported("allOf member other than if/const → then/required")
        cond = sub["if"]
        props = cond.get("properties", {})
        if set(cond) - {"properties", "required"} or len(props) != 1:
            raise Unsupported("if other than one const property")
        ((name, spec),) = props.items()
        if set(spec) != {"const"}:
            raise Unsupported("if property other than const")
        out.append((name, spec["const"], tuple(sub["then"]["required"])))
    return out


def record_type(
    schema: dict[str, Any], name: str, tag_field: str, items: Any = None, strict: bool = False
) -> tuple[type[msgspec.Struct], dict[str, str]]:
    """A Struct for an object schema whose ``tag_field`` property is a string const,
    and the regular expressions left to check after decoding (property → expression).

    Absent optional properties read as None. A property the schema does not name is
    ignored, as the schema allows; a ``strict`` record refuses it instead, and has
    ``tag_field`` as a plain field rather than a msgspec tag: decoding one never
    skips over a value it does not know (which recurses into it), nor looks ahead for
    a tag, so it costs no more stack however deeply the input nests.
    """
    if schema.get("type") != "object" or set(schema) - _ANNOTATIONS - {
        "type",
        "required",
        "properties",
        "allOf",
    }:
        raise Unsupported(f"{name}: not a plain object schema")
    props: dict[str, Any] = schema["properties"]
    required = set(schema.get("required", ()))
    if required - set(props):
        raise Unsupported(f"{name}: required property without a definition")
    tag = props.get(tag_field, {}).get("const")
    if not isinstance(tag, str) or tag_field not in required:
        raise Unsupported(f"{name}: {tag_field} is not a required string const")
    fields: list[tuple[Any, ...]] = []
    if strict:
        fields.append((tag_field, Literal[tag]))
    deferred: dict[str, str] = {}
    for prop, sub in props.items():
        if prop == tag_field:
            continue
        regexes: list[str] = []
        typ = field_type(sub, items, regexes)
        if regexes:
            if not prop.isidentifier():
                raise Unsupported(f"{name}: pattern on a property that is not an identifier")
            (deferred[prop],) = regexes
        fields.append((prop, typ) if prop in required else (prop, typ, None))
    tagging: dict[str, Any] = (
        {"forbid_unknown_fields": True} if strict else {"tag_field": tag_field, "tag": tag}
    )
    record = msgspec.defstruct(
        name,
        fields,
        kw_only=True,
        omit_defaults=True,
        gc=items is not None,  # a record of strings and ints cannot be part of a cycle
        **tagging,
    )
    return record, deferred


class TypedDecoder:
    """Declaration or batch bytes → records, or None where it cannot vouch.

    Two record types per schema. The strict ones refuse unknown properties: their
    decoders (``decode``, ``decode_lines``, ``decode_block``) take any input, however
    deeply it nests, at no more stack than a batch needs. The lenient ones ignore
    unknown properties, as the schema allows, by skipping over them, which recurses
    once per level: the ``lenient`` decoders, ``decode_batch_lines`` and ``line_texts``
    are for input whose depth is known to be bounded (``nesting.too_deep``).
    """

    def __init__(self, declaration: dict[str, Any], batch: dict[str, Any]) -> None:
        self.line_type, line_regexes = record_type(
            declaration, "Declaration", "schema", strict=True
        )
        self.batch_type, batch_regexes = record_type(
            batch, "DeclarationBatch", "schema", items=self.line_type, strict=True
        )
        self.lenient_line_type = record_type(declaration, "LenientDeclaration", "schema")[0]
        lenient_batch = record_type(
            batch, "LenientDeclarationBatch", "schema", items=self.lenient_line_type
        )[0]
        # The same envelope with each line kept as its raw JSON: a batch with one line
        # the typed path cannot vouch for still has its other lines decoded here.
        # Decoded through a union with the line type, so that the tag is required (a
        # record type alone does not insist on its tag field).
        self._loose_type: Any = record_type(
            batch, "DeclarationBatchRaw", "schema", items=msgspec.Raw
        )[0]
        loose: Any = Union.__getitem__((self.lenient_line_type, self._loose_type))
        self._decode_loose: Callable[[bytes], Any] = msgspec.json.Decoder(loose).decode
        self.conditions = conditions(declaration)
        self._envelope_ok = _checker([], batch_regexes)
        self._decode_line: Callable[[bytes], Any] = msgspec.json.Decoder(self.line_type).decode
        self._decode_batch: Callable[[bytes], Any] = msgspec.json.Decoder(self.batch_type).decode
        # list[line_type], Union[...] and list[union], spelled as the calls they are: the
        # types are runtime values, which a type checker refuses in a subscript
        self._decode_list: Callable[[bytes], Any] = msgspec.json.Decoder(
            GenericAlias(list, (self.line_type,))
        ).decode
        union: Any = Union.__getitem__((self.lenient_line_type, lenient_batch))
        self._union = union
        self._decode_lenient: Callable[[bytes], Any] = msgspec.json.Decoder(union).decode
        self._decode_lenient_list: Callable[[bytes], Any] = msgspec.json.Decoder(
            GenericAlias(list, (union,))
        ).decode
        # invalid UTF-8 inside a string surfaces as UnicodeDecodeError, a ValueError
        self._errors = (msgspec.MsgspecError, ValueError)
        # record → does it pass what msgspec leaves to Python: the schema's conditional
        # requirements (absent reads as None) and its regular expressions?
        self.complete: Callable[[Any], bool] = _checker(self.conditions, line_regexes)

    def decode(self, raw: bytes) -> Any:
        """A strict ``line_type`` or ``batch_type`` record, or None.

        msgspec skips the properties it does not know without checking their text, so
        it would pass invalid UTF-8 or a lone surrogate escape there that orjson (the
        other path) refuses as invalid JSON. Such bytes can only occur in a message
        that is not plain ASCII or that has a ``\\u`` escape: those (and any message with
        a backslash at all, which ordinary declarations do not have) take the other path.
        """
        if _BACKSLASH in raw or not raw.isascii():  # an int: memchr, not a substring search
            return None
        try:
            return self._decode_line(raw)
        except self._errors:
            pass
        try:
            batch = self._decode_batch(raw)
        except self._errors:
            return None
        return batch if self._envelope_ok(batch) else None

    def decode_lenient(self, raw: bytes) -> Any:
        """``decode`` with the lenient records (unknown properties ignored): a
        ``lenient_line_type`` or lenient batch record, or None. Bounded depth only."""
        if _BACKSLASH in raw or not raw.isascii():
            return None
        try:
            message = self._decode_lenient(raw)
        except self._errors:
            return None
        if type(message) is not self.lenient_line_type and not self._envelope_ok(message):
            return None
        return message

    def decode_batch_lines(self, raw: bytes) -> tuple[str, list[Any]] | None:
        """A batch that ``decode`` refused because of some of its lines: its provider,
        and each line as a lenient record where the typed path vouches for it, else as
        the JSON value orjson decodes (for the full validator to judge).

        None where the envelope itself is not one the typed path vouches for. Only
        for a plain-ASCII message without a backslash (see ``decode``): there orjson
        and msgspec agree on what is well-formed JSON, line by line too. Bounded
        depth only.
        """
        batch = self._loose(raw)
        if batch is None or not self._envelope_ok(batch):
            return None
        lines: list[Any] = []
        self._decode_parts([bytes(part) for part in batch.lines], lines)
        return batch.provider_agb, lines

    def line_texts(self, raw: bytes) -> list[bytes] | None:
        """The JSON text of each line of a batch the typed path decoded, or None.

        For a dead letter of one line: msgspec slices the lines without building
        them, a third of what decoding the whole batch with orjson costs. Bounded
        depth only."""
        batch = self._loose(raw)
        return None if batch is None else [bytes(part) for part in batch.lines]

    def _loose(self, raw: bytes) -> Any:
        """The batch envelope with each line as its raw JSON, or None (see
        ``decode_batch_lines`` for the messages this path takes)."""
        if _BACKSLASH in raw or not raw.isascii():
            return None
        try:
            batch = self._decode_loose(raw)
        except self._errors:
            return None
        return batch if type(batch) is self._loose_type else None

    def _decode_parts(self, parts: list[bytes], out: list[Any]) -> None:
        """Append each JSON value of ``parts`` to ``out`` as a lenient record, or as
        what orjson decodes where the typed path does not vouch for it.

        All in one call when every part passes; else each half on its own, down to
        a few parts taken one by one: a batch with one bad line costs a few more
        decodes, not a call per line."""
        if len(parts) > _ONE_BY_ONE:
            records = self._decode_array(b",".join(parts), lenient=True)
            if records and len(records) == len(parts):
                out.extend(records)
                return
            half = len(parts) // 2
            self._decode_parts(parts[:half], out)
            self._decode_parts(parts[half:], out)
            return
        decode, line_type = self._decode_lenient, self.lenient_line_type
        for text in parts:
            try:
                record = decode(text)
            except self._errors:
                record = None
            out.append(record if type(record) is line_type else orjson.loads(text))

    def decode_lines(self, raws: list[bytes], lenient: bool = False) -> list[Any] | None | bool:
        """Many single-declaration messages (an archive's lines) in one C call: their
        records, or None when any of them is not one the typed path vouches for (the
        caller then takes them one by one); strict records, and False when the strict
        types refused an unknown property only (the lenient ones may vouch; bounded
        depth only)."""
        return self._decode_array(b",".join(raws), lenient)

    def decode_block(self, block: bytes, lenient: bool = False) -> list[Any] | None | bool:
        """The records of a block of NDJSON lines (each ending with a newline) in one C
        call, or None / False as for ``decode_lines``.

        The lines are decoded as the elements of one JSON array, newlines turned into
        commas: a blank line, or a line holding two values, makes the array invalid
        and sends the block the long way (msgspec's own NDJSON decoding would skip the
        one and read the other as two lines). Turning newlines into commas is a
        memchr-fast ``replace``; counting or splitting the lines costs ten times as
        much."""
        return self._decode_array(block[:-1].replace(b"\n", b","), lenient)

    def _decode_array(self, elements: bytes, lenient: bool) -> list[Any] | None | Literal[False]:
        """``[elements]`` decoded as line records, or None when one is not one, or
        False (strict only) when an unknown property was all that stood in the way."""
        if _BACKSLASH in elements or not elements.isascii():
            return None
        array = b"[" + elements + b"]"
        if not lenient:
            try:
                return self._decode_list(array)  # type: ignore[no-any-return,unused-ignore]
            except self._errors as exc:
                return False if str(exc).startswith(_UNKNOWN_FIELD) else None
        try:
            records: list[Any] = self._decode_lenient_list(array)
        except self._errors:
            return None
        line_type = self.lenient_line_type
        for record in records:
            if type(record) is not line_type:
                return None
        return records

    def convert(self, obj: Any) -> Any:
        """A decoded line object → a lenient line record, or None."""
        try:  # through the union: a record type alone would not insist on its tag
            record = msgspec.convert(obj, self._union)
        except self._errors:
            return None
        return record if type(record) is self.lenient_line_type else None

    def unchecked(self, obj: dict[str, Any]) -> Any:
        """A record from an object the full validator accepted but this path refused."""
        values = {f: obj.get(f) for f in self.line_type.__struct_fields__}
        for f, v in values.items():  # only an integer property admits a float here (1e3)
            if type(v) is float:
                values[f] = int(v)
        return self.line_type(**values)


def _checker(conds: list[Condition], regexes: dict[str, str]) -> Callable[[Any], bool]:
    """One expression for all checks left to Python: it runs for every line."""
    consts: dict[str, Any] = {}
    terms = []
    for i, (prop, value, needed) in enumerate(conds):
        if not all(p.isidentifier() for p in (prop, *needed)):
            raise Unsupported("a conditional property that is not an identifier")
        consts[f"_c{i}"] = value
        missing = " or ".join(f"r.{other} is None" for other in needed)
        terms.append(f"(r.{prop} == _c{i} and ({missing}))")
    for i, (prop, regex) in enumerate(regexes.items()):
        seen: set[str] = set()
        consts[f"_s{i}"], consts[f"_m{i}"] = seen, _remembering(re.compile(regex).match, seen)
        terms.append(f"not (r.{prop} is None or r.{prop} in _s{i} or _m{i}(r.{prop}))")
    body = " or ".join(terms) if terms else "False"
    return eval(f"lambda r: not ({body})", consts)  # noqa: S307 - built from our own schema


def _remembering(match: Callable[[str], Any], seen: set[str]) -> Callable[[str], bool]:
    """``match`` that adds the strings it passes to ``seen`` (emptied when full)."""

    def remember(value: str) -> bool:
        if match(value) is None:
            return False
        if len(seen) >= _MEMO:
            seen.clear()
        seen.add(value)
        return True

    return remember


def as_dict(record: msgspec.Struct) -> dict[str, Any]:
    """A record back as the JSON object it came from (less unknown properties)."""
    return msgspec.to_builtins(record)
