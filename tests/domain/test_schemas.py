"""The JSON Schema files (streams/domain/schemas.py): loaded once from ``schemas/`` or
``$CLAIMWATCH_SCHEMAS``; a missing, malformed or uncompilable file is one clear
``SchemaError``; a validation failure reads ``field: message``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fastjsonschema
import pytest

from streams.domain import schemas
from streams.domain.errors import ClaimwatchError, SchemaError
from streams.domain.typed import TypedDecoder
from tests.conftest import make_contract

SHIPPED = Path(__file__).resolve().parents[2] / "schemas"


def _forget() -> None:
    for cached in (schemas.load_schema, schemas.validator, schemas.typed_decoder):
        cached.cache_clear()


@pytest.fixture
def schema_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty ``$CLAIMWATCH_SCHEMAS``; the caches are emptied before and after."""
    monkeypatch.setenv("CLAIMWATCH_SCHEMAS", str(tmp_path))
    _forget()
    yield tmp_path
    monkeypatch.delenv("CLAIMWATCH_SCHEMAS")
    _forget()


def test_the_shipped_schemas_are_found_in_the_repository_by_default(monkeypatch):
    monkeypatch.delenv("CLAIMWATCH_SCHEMAS", raising=False)
    # streams/schemas, in the repository a link to the top-level schemas/ (package data)
    assert schemas.schema_dir().resolve() == SHIPPED.resolve()
    assert schemas.schema_dir().parent == Path(schemas.__file__).resolve().parents[1]
    for name in (schemas.DECLARATION, schemas.BATCH, schemas.CONTRACT, schemas.ALERT):
        assert schemas.load_schema(name)["$id"].endswith("/" + name)
    assert isinstance(schemas.typed_decoder(), TypedDecoder)  # the typed path applies


def test_the_environment_names_another_schema_folder(schema_dir):
    (schema_dir / "x.json").write_text('{"type": "integer"}')
    assert schemas.schema_dir() == schema_dir
    assert schemas.check("x.json", 5) is None
    assert schemas.check("x.json", "5") == "(object): must be integer"


def test_a_missing_schema_is_one_schema_error_naming_it_and_the_folder(schema_dir):
    with pytest.raises(SchemaError) as info:
        schemas.load_schema("nowhere.json")
    assert str(info.value) == f"schema nowhere.json not found in {schema_dir}"
    assert info.value.__suppress_context__  # one line, not a chained traceback


def test_a_schema_that_is_not_json_is_one_schema_error(schema_dir):
    (schema_dir / "broken.json").write_text('{"type": ')
    with pytest.raises(SchemaError, match=r"broken\.json is not valid JSON"):
        schemas.load_schema("broken.json")


def test_a_schema_that_does_not_compile_is_one_schema_error(schema_dir):
    (schema_dir / "odd.json").write_text('{"type": "integer", "minimum": "five"}')
    with pytest.raises(SchemaError, match=r"^schema odd\.json cannot be compiled: "):
        schemas.validator("odd.json")


def test_a_schema_error_is_what_the_cli_prints_as_one_line():
    assert issubclass(SchemaError, ClaimwatchError)


def test_declarations_with_an_untranslatable_keyword_still_validate_on_the_full_path(schema_dir):
    # a schema the typed path cannot translate: no typed decoder, the validator still works
    for name in (schemas.DECLARATION, schemas.BATCH):
        (schema_dir / name).write_text((SHIPPED / name).read_text())
    (schema_dir / schemas.DECLARATION).write_text(
        (SHIPPED / schemas.DECLARATION)
        .read_text()
        .replace('"type": "object"', '"type": "object", "additionalProperties": true', 1)
    )
    assert schemas.typed_decoder() is None
    assert schemas.check(schemas.DECLARATION, {}) is not None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"ceiling_cents": 0}, "ceiling_cents: must be bigger than or equal to 1"),
        ({"region": 5}, "region: must be string"),
        ({"extra": 1, "version": "1"}, "version: must be integer"),
    ],
)
def test_explain_names_the_field_and_drops_fastjsonschemas_data_prefix(change, expected):
    obj = {**make_contract(), **change}
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as info:
        schemas.validator(schemas.CONTRACT)(obj)
    assert info.value.message.startswith("data.")  # what explain() rewrites
    assert schemas.explain(info.value) == expected
    assert schemas.check(schemas.CONTRACT, obj) == expected


def test_explain_names_the_root_when_the_whole_object_fails():
    batch = {"schema": "ggz.declaration-batch/1", "provider_agb": "12345678", "lines": []}
    assert schemas.check(schemas.BATCH, batch) == "lines: must contain at least 1 items"
    missing = {k: v for k, v in batch.items() if k != "provider_agb"}
    assert (
        schemas.check(schemas.BATCH, missing)
        == "(object): must contain ['provider_agb'] properties"
    )


def test_a_valid_object_has_no_reason():
    assert schemas.check(schemas.CONTRACT, make_contract()) is None
