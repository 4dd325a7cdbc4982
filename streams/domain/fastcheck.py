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
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
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


class _Compiler:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {
            "_is_date": _is_date,
            "_is_datetime": _is_datetime,
            "_MISSING": object(),
        }
        self.n = 0

    def const(self, value: Any) -> str:
        self.n += 1
        name = f"_c{self.n}"
        self.consts[name] = value
        return name

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def value(self, schema: dict[str, Any], v: str, indent: int) -> None:
        """Emit checks that return False unless value ``v`` certainly meets ``schema``."""
        known = set(_ANNOTATIONS)
        if "type" in schema:
            known.add("type")
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if any(t not in _TYPES for t in types):
                raise Unsupported(f"type {types}")
            cond = " or ".join(_TYPES[t].format(v=v) for t in types)
            self.emit(indent, f"if not ({cond}): return False")
        if "const" in schema:
            known.add("const")
            c = schema["const"]
            if not isinstance(c, str | int) or isinstance(c, bool):
                raise Unsupported("const of that type")
            self.emit(
                indent,
                f"if type({v}) is not {type(c).__name__} or {v} != {self.const(c)}: return False",
            )
        if "enum" in schema:
            known.add("enum")
            allowed = schema["enum"]
            if any(isinstance(x, bool | float | dict | list) for x in allowed):
                raise Unsupported("enum of that type")
            strings = frozenset(x for x in allowed if isinstance(x, str))
            ints = frozenset(x for x in allowed if isinstance(x, int))
            parts = []
            if strings:
                parts.append(f"(type({v}) is str and {v} in {self.const(strings)})")
            if ints:
                parts.append(f"(type({v}) is int and {v} in {self.const(ints)})")
            if None in allowed:
                parts.append(f"{v} is None")
            self.emit(indent, f"if not ({' or '.join(parts)}): return False")
        for key, op in (("minLength", "<"), ("maxLength", ">")):
            if key in schema:
                known.add(key)
                self.emit(
                    indent,
                    f"if type({v}) is str and len({v}) {op} {int(schema[key])}: return False",
                )
        for key, op in (
            ("minimum", "<"),
            ("maximum", ">"),
            ("exclusiveMinimum", "<="),
            ("exclusiveMaximum", ">="),
        ):
            if key in schema:
                known.add(key)
                self.emit(
                    indent,
                    f"if (type({v}) is int or type({v}) is float) and {v} {op} {schema[key]!r}: return False",
                )
        if "pattern" in schema:
            known.add("pattern")
            pat = schema["pattern"]
            if pat.startswith("^") and pat.endswith("$") and not pat.endswith("\\$"):
                rx = self.const(re.compile(pat[1:-1]).fullmatch)
            else:
                raise Unsupported(f"unanchored pattern {pat}")
            self.emit(indent, f"if type({v}) is str and {rx}({v}) is None: return False")
        if "format" in schema:
            known.add("format")
            fmt = {"date": "_is_date", "date-time": "_is_datetime"}.get(schema["format"])
            if fmt is None:
                raise Unsupported(f"format {schema['format']}")
            self.emit(indent, f"if type({v}) is str and not {fmt}({v}): return False")
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
            if name in required:
                self.emit(inner, f"{var} = {v}.get({name!r}, _MISSING)")
                self.emit(inner, f"if {var} is _MISSING: return False")
                self.value(sub, var, inner)
            else:
                self.emit(inner, f"{var} = {v}.get({name!r}, _MISSING)")
                self.emit(inner, f"if {var} is not _MISSING:")
                self.emit(inner + 1, "pass")
                self.value(sub, var, inner + 1)

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
        self.emit(
            indent,
            f"if type({v}) is dict and {v}.get({name!r}, _MISSING) == {self.const(spec['const'])} and ({needed}): return False",
        )


def compile_fast(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A function returning True only for values that certainly satisfy ``schema``."""
    c = _Compiler()
    c.emit(0, "def check(data):")
    c.value(schema, "data", 1)
    c.emit(1, "return True")
    source = "\n".join(c.lines)
    namespace: dict[str, Any] = dict(c.consts)
    exec(compile(source, "<fastcheck>", "exec"), namespace)  # noqa: S102 - code generated from our own schema
    return namespace["check"]  # type: ignore[no-any-return]
