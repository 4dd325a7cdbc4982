"""The JSON Schemas in ``schemas/`` (package data: ``streams/schemas/``), loaded and compiled once.

The schema files are the single source of truth for the formats; nothing here
restates a field. ``fastjsonschema`` turns each schema into generated Python code
once per process, which validates a declaration line in a few microseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from streams.domain.errors import SchemaError
from streams.domain.typed import TypedDecoder, Unsupported

Validator = Callable[[Any], Any]


def schema_dir() -> Path:
    """``$CLAIMWATCH_SCHEMAS`` or the package's ``streams/schemas/``.

    In the repository ``streams/schemas`` is a symbolic link to the top-level
    ``schemas/`` (the one copy that is edited); a wheel carries the files themselves
    as package data.
    """
    override = os.environ.get("CLAIMWATCH_SCHEMAS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    path = schema_dir() / name
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise SchemaError(f"schema {name} not found in {path.parent}") from None
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"schema {path} is not valid JSON: {exc}") from None


@cache
def validator(name: str) -> Validator:
    try:
        return fastjsonschema.compile(load_schema(name))
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise SchemaError(f"schema {name} cannot be compiled: {exc}") from None


@cache
def typed_decoder() -> TypedDecoder | None:
    """The typed path for declarations and batches (see ``typed``), if it applies.

    None when the schemas use a keyword the typed path does not translate: then the
    full validator checks every line, slower but still exact.
    """
    try:
        return TypedDecoder(load_schema(DECLARATION), load_schema(BATCH))
    except Unsupported:
        return None


def explain(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """``field: message`` of a validation failure, e.g. ``practitioners: must be >= 1``."""
    name = exc.name or "data"  # fastjsonschema names the failing value, "data" the root
    field = name.removeprefix("data").lstrip(".") or "(object)"
    message = exc.message
    if message.startswith(name + " "):
        message = message[len(name) + 1 :]
    return f"{field}: {message}"


def check(name: str, obj: Any) -> str | None:
    """``None`` when ``obj`` is valid against schema ``name``, else the reason."""
    try:
        validator(name)(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        return explain(exc)
    return None


DECLARATION = "declaration.v1.json"
BATCH = "declaration-batch.v1.json"
CONTRACT = "contract.v1.json"
DEPARTMENT = "department.v1.json"
ALERT = "alert.v1.json"
