"""A fast path for schema validation, generated from the schema file itself.

``fastjsonschema`` costs ~12 µs per declaration line, six times the JSON decode;
at tens of millions of lines that is most of the budget. This module compiles the
subset of JSON Schema our schemas use into one straight-line Python function that
answers only "certainly valid?". A line it cannot vouch for goes to the full
validator, which decides and explains. So the fast path may be stricter than the
schema but never looser, and any keyword it does not know makes it refuse to
compile (``Unsupported``), in which case the full validator is used for every line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Values checked by format or pattern repeat a lot (dates, timestamps of one
# submission, AGB codes): each check remembers up to this many passing values.
_MEMO = 1 << 14
_ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "examples", "default"}
_TYPES = {
    "string": "type({v}) is str",
    "integer": "type({v}) is int",
    "boolean": "type({v}) is bool",
    "object": "type({v}) is dict",
    "array": "type({v}) is list",
    "null": "{v} is None",
    "number": "(type({v}) is int or type({v}) is float)",
}


class Unsupported(Exception):
    """The schema uses a keyword the fast path does not implement."""


def _is_date(value: str) -> bool:
    if _DATE.fullmatch(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    if _DATETIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value.upper() if value[-1] in "zZ" else value)
    except ValueError:
        return False
    return True


def _matcher(pattern: str) -> Callable[[str], bool]:
    fullmatch = re.compile(pattern).fullmatch
    return lambda value: fullmatch(value) is not None


def _remembering(test: Callable[[str], bool], seen: set[str]) -> Callable[[str], bool]:
    """``test`` that adds the strings it passes to ``seen`` (emptied when full).

    The generated code asks ``v in seen or test(v)``: identifiers such as AGB codes,
    service dates and the timestamp of one submission repeat over many lines, and a
    set lookup costs a fraction of a regular-expression match or a date parse.
    """

    def remember(value: str) -> bool:
        if not test(value):
            return False
        if len(seen) >= _MEMO:
            seen.clear()
        seen.add(value)
        return True

    return remember


def _types(schema: dict[str, Any]) -> list[str]:
    if "type" not in schema:
        return []
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if any(t not in _TYPES for t in types):
        raise Unsupported(f"type {types}")
    return list(types)


def _allows_null(schema: dict[str, Any]) -> bool:
    """Could ``None`` (JSON null) satisfy the value keywords of ``schema``?"""
    if "type" in schema and "null" not in _types(schema):
        return False
    if "const" in schema and schema["const"] is not None:
        return False
    return not ("enum" in schema and None not in schema["enum"])


class _Compiler:
    """Emits one ``if not (...): return False`` per property, checks in schema order.

    Conditions are joined with ``and`` and start with the type test, so a later
    condition may assume the type (no re-testing ``type(v)`` per keyword).
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {
            "_MISSING": object(),
        }
        self.n = 0
        self.fields: dict[str, str] = {}  # top-level property → its variable (None if absent)

    def const(self, value: Any) -> str:
        self.n += 1
        name = f"_c{self.n}"
        self.consts[name] = value
        return name

    def remembered(self, test: Callable[[str], bool], v: str) -> str:
        """Expression: ``v`` (a str) passes ``test``, asked once per distinct value."""
        seen: set[str] = set()
        return f"({v} in {self.const(seen)} or {self.const(_remembering(test, seen))}({v}))"

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def conditions(self, schema: dict[str, Any], v: str) -> tuple[list[str], set[str]]:
        """Expressions that all hold iff ``v`` meets the scalar keywords; keywords used."""
        used = set(_ANNOTATIONS)
        conds: list[str] = []
        types = _types(schema)
        if types:
            used.add("type")
            conds.append("(" + " or ".join(_TYPES[t].format(v=v) for t in types) + ")")
        only = types[0] if len(types) == 1 else None
        if "const" in schema:
            used.add("const")
            c = schema["const"]
            if not isinstance(c, str | int) or isinstance(c, bool):
                raise Unsupported("const of that type")
            if isinstance(c, str):  # no other JSON value equals a str
                conds.append(f"{v} == {self.const(c)}")
            else:
                conds.append(f"type({v}) is int and {v} == {self.const(c)}")
        if "enum" in schema:
            used.add("enum")
            allowed = schema["enum"]
            if any(isinstance(x, bool | float | dict | list) for x in allowed):
                raise Unsupported("enum of that type")
            parts = []
            strings = frozenset(x for x in allowed if isinstance(x, str))
            ints = frozenset(x for x in allowed if isinstance(x, int))
            if strings:  # membership in a set of str: no other JSON value equals a str
                parts.append(f"{v} in {self.const(strings)}")
            if ints:
                parts.append(f"(type({v}) is int and {v} in {self.const(ints)})")
            if None in allowed:
                parts.append(f"{v} is None")
            conds.append("(" + " or ".join(parts) + ")")
        guard = "" if only == "string" else f"type({v}) is not str or "
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        if lo is not None or hi is not None:
            used |= {"minLength", "maxLength"}
            bounds = f"{int(lo) if lo is not None else 0} <= len({v})"
            if hi is not None:
                bounds += f" <= {int(hi)}"
            conds.append(f"({guard}{bounds})" if guard else bounds)
        numeric = only in ("integer", "number")
        nguard = "" if numeric else f"not (type({v}) is int or type({v}) is float) or "
        for key, op in (
            ("minimum", ">="),
            ("maximum", "<="),
            ("exclusiveMinimum", ">"),
            ("exclusiveMaximum", "<"),
        ):
            if key in schema:
                used.add(key)
                test = f"{v} {op} {schema[key]!r}"
                conds.append(f"({nguard}{test})" if nguard else test)
        if "pattern" in schema:
            used.add("pattern")
            pat = schema["pattern"]
            if not (pat.startswith("^") and pat.endswith("$") and not pat.endswith("\\$")):
                raise Unsupported(f"unanchored pattern {pat}")
            test = self.remembered(_matcher(pat[1:-1]), v)
            conds.append(f"({guard}{test})" if guard else test)
        if "format" in schema:
            used.add("format")
            fmt = {"date": _is_date, "date-time": _is_datetime}.get(schema["format"])
            if fmt is None:
                raise Unsupported(f"format {schema['format']}")
            test = self.remembered(fmt, v)
            conds.append(f"({guard}{test})" if guard else test)
        return conds, used

    def value(self, schema: dict[str, Any], v: str, indent: int) -> None:
        """Emit checks that return False unless value ``v`` certainly meets ``schema``."""
        conds, known = self.conditions(schema, v)
        if conds:
            self.emit(indent, f"if not ({' and '.join(conds)}): return False")
        if "properties" in schema or "required" in schema:
            self.object(schema, v, indent)
            known |= {"properties", "required"}
        if "allOf" in schema:
            known.add("allOf")
            for sub in schema["allOf"]:
                self.conditional(sub, v, indent)
        if "minItems" in schema or "maxItems" in schema:
            known |= {"minItems", "maxItems"}
            if "minItems" in schema:
                self.emit(
                    indent,
                    f"if type({v}) is list and len({v}) < {int(schema['minItems'])}: return False",
                )
            if "maxItems" in schema:
                self.emit(
                    indent,
                    f"if type({v}) is list and len({v}) > {int(schema['maxItems'])}: return False",
                )
        unknown = set(schema) - known
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))

    def object(self, schema: dict[str, Any], v: str, indent: int) -> None:
        required = set(schema.get("required", ()))
        props: dict[str, Any] = schema.get("properties", {})
        self.emit(indent, f"if type({v}) is dict:")
        inner = indent + 1
        self.emit(inner, "pass")
        for name in sorted(required - set(props)):
            self.emit(inner, f"if {name!r} not in {v}: return False")
        for name, sub in props.items():
            self.n += 1
            var = f"_v{self.n}"
            simple = not (set(sub) & {"properties", "required", "allOf", "minItems", "maxItems"})
            conds, _ = self.conditions(sub, var)
            if simple and name in required:
                # a missing key raises KeyError, which the function turns into False
                self.emit(inner, f"{var} = {v}[{name!r}]")
                self.value(sub, var, inner)
            elif simple and conds:
                # absent reads as None; a present null passes only if the schema allows it
                self.emit(inner, f"{var} = {v}.get({name!r})")
                self.emit(inner, f"if {var} is None:")
                if _allows_null(sub):
                    self.emit(inner + 1, "pass")
                else:
                    self.emit(inner + 1, f"if {name!r} in {v}: return False")
                self.emit(inner, f"elif not ({' and '.join(conds)}): return False")
            elif name in required:
                self.emit(inner, f"if {name!r} not in {v}: return False")
                self.emit(inner, f"{var} = {v}[{name!r}]")
                self.value(sub, var, inner)
            else:
                self.emit(inner, f"{var} = {v}.get({name!r}, _MISSING)")
                self.emit(inner, f"if {var} is not _MISSING:")
                self.emit(inner + 1, "pass")
                self.value(sub, var, inner + 1)
                var = ""
            if v == "data" and simple and var:
                self.fields[name] = var

    def conditional(self, sub: dict[str, Any], v: str, indent: int) -> None:
        """``if: {properties: {p: {const: c}}, required: [p]}, then: {required: [...]}``."""
        if set(sub) != {"if", "then"} or set(sub["then"]) != {"required"}:
            raise Unsupported("allOf member other than if/const → then/required")
        cond = sub["if"]
        props = cond.get("properties", {})
        if set(cond) - {"properties", "required"} or len(props) != 1:
            raise Unsupported("if other than one const property")
        ((name, spec),) = props.items()
        if set(spec) != {"const"}:
            raise Unsupported("if property other than const")
        needed = " or ".join(f"{r!r} not in {v}" for r in sub["then"]["required"])
        bound = self.fields.get(name) if v == "data" else None
        current = bound if bound is not None else f"{v}.get({name!r}, _MISSING)"
        self.emit(
            indent,
            f"if type({v}) is dict and {current} == {self.const(spec['const'])} and ({needed}): return False",
        )


def _compile(schema: dict[str, Any], result: Callable[[_Compiler], str]) -> Callable[[Any], Any]:
    c = _Compiler()
    c.emit(0, "def check(data):")
    c.emit(1, "try:")
    c.value(schema, "data", 2)
    c.emit(1, "except (KeyError, TypeError):  # a missing key; an unhashable value in an enum test")
    c.emit(2, "return False")
    c.emit(1, f"return {result(c)}")
    source = "\n".join(c.lines)
    namespace: dict[str, Any] = dict(c.consts)
    exec(compile(source, "<fastcheck>", "exec"), namespace)  # noqa: S102 - code generated from our own schema
    return namespace["check"]  # type: ignore[no-any-return]


def compile_fast(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A function returning True only for values that certainly satisfy ``schema``."""
    return _compile(schema, lambda c: "True")


def compile_extractor(
    schema: dict[str, Any], fields: Sequence[str]
) -> Callable[[Any], tuple[Any, ...] | bool]:
    """Like ``compile_fast``, but a vouched-for object yields the values of ``fields``.

    The checks already hold each property in a local variable; returning them as a
    tuple spares the caller a second round of lookups. Absent fields read as None.
    Refusal is ``False``, as in ``compile_fast``.
    """

    def result(c: _Compiler) -> str:
        values = [c.fields.get(f) or f"data.get({f!r})" for f in fields]
        return "(" + "".join(f"{x}, " for x in values) + ")"

    return _compile(schema, result)
