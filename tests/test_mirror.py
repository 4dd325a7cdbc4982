"""Tests mirror the package: every module ``streams/<pkg>/<module>.py`` (and
``streams/<pkg>/<sub>/<module>.py``) has its test file ``tests/<pkg>/test_<module>.py``
(``tests/<pkg>/<sub>/test_<module>.py``); ``streams/cli.py`` has ``tests/test_cli.py``.

A reader looking for the tests of a module finds them by its name. The exceptions are
listed below, each with its reason; an ``__init__.py`` that only re-exports needs no
test file of its own. An entry whose module now has its test file, or is gone, must
leave the list, so the list stays as short as the truth.

Named test_mirror.py, not test_layout.py: pytest imports test modules by their file
name (tests/ has no ``__init__.py``), and tests/store/test_layout.py has that name.
For the same reason a test file's name must be unique across tests/, which three
modules cannot meet yet (marked "same name" below).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "streams"
TESTS = ROOT / "tests"

# module (relative to streams/) → why it has no same-named test file
ALLOWED: dict[str, str] = {
    "__main__.py": "`python -m streams` calls cli.main; tested through tests/test_cli.py",
    "domain/errors.py": "exception classes only; each is tested where it is raised",
    "domain/rules/base.py": "the Rule, Tally and Tick types; tested through "
    "tests/domain/rules/test_registry.py and each rule's test",
    "local/cluster.py": "the local worker cluster, a test bed; exercised by "
    "tests/pipeline/test_faults.py and tests/e2e",
    "replay/files.py": "archive file reading; tested through tests/replay/test_offline.py",
    "replay/explain.py": "same name as tests/domain/test_explain.py; "
    "tested in tests/replay/test_explain_offline.py",
    "replay/producer.py": "same name as tests/kafka/test_producer.py; "
    "tested in tests/replay/test_producer_online.py",
    # The generator's parts, tested as one generator: test_generate.py (format, realism,
    # determinism), test_expected.py (its expectations) and test_plants.py (anomalies).
    "synth/contracts.py": "same name as tests/domain/test_contracts.py; "
    "through tests/synth/test_generate.py",
    "synth/dates.py": "the generator's calendar; through tests/synth/test_generate.py",
    "synth/history.py": "the generator's main loop; through tests/synth/test_generate.py",
    "synth/lines.py": "the generator's lines; through tests/synth/test_generate.py",
    "synth/options.py": "the generator's options; through tests/synth/test_generate.py",
    "synth/plan.py": "the generator's plan; through tests/synth/test_expected.py",
    "synth/providers.py": "the generator's providers; through tests/synth/test_plants.py",
    "synth/tables.py": "the generator's tables; through tests/synth/test_plants.py",
    "synth/writer.py": "the generator's output files; through tests/synth/test_generate.py",
    # To be written: tests/kafka and tests/pipeline are being restructured in the same
    # issue (#20, the worker part); until then these modules are tested under other names.
    "kafka/recovery.py": "to be written; exercised by tests/store/test_rocksdb_store.py",
    "kafka/stop.py": "to be written; exercised by tests/kafka/test_producer.py",
    "kafka/topics.py": "to be written; exercised by tests/pipeline/test_peer_mean.py",
    "pipeline/app.py": "to be written; exercised by tests/pipeline/test_agents.py",
    "pipeline/processor.py": "to be written; exercised by tests/pipeline/test_agents.py",
    "pipeline/settings.py": "to be written; exercised by tests/pipeline/test_run.py",
    "pipeline/status.py": "same name as tests/domain/test_status.py; "
    "tested by tests/pipeline/test_status_publish.py",
}


def mirror_of(module: Path) -> Path:
    """``streams/a/b/m.py`` → ``tests/a/b/test_m.py``."""
    rel = module.relative_to(PACKAGE)
    return TESTS / rel.parent / f"test_{rel.name}"


def only_reexports(module: Path) -> bool:
    """A module of a docstring, imports and ``__all__``: nothing of its own to test."""
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "__all__"
        ]:
            continue
        return False
    return True


def modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 30, "streams/ not found"
    return [m for m in found if "__pycache__" not in m.parts]


def untested() -> dict[str, Path]:
    """Modules without their test file (re-exporting ``__init__.py`` files left out)."""
    out = {}
    for module in modules():
        if module.name == "__init__.py" and only_reexports(module):
            continue
        if not mirror_of(module).is_file():
            out[module.relative_to(PACKAGE).as_posix()] = mirror_of(module)
    return out


def test_every_module_has_its_same_named_test_file_or_a_reason():
    missing = {m: t for m, t in untested().items() if m not in ALLOWED}
    assert not missing, "\n".join(
        f"streams/{m}: no {t.relative_to(ROOT)} (write it, or add the module to ALLOWED "
        "in tests/test_layout.py with the reason)"
        for m, t in missing.items()
    )


def test_every_allowed_module_exists_and_still_lacks_its_test_file():
    stale = sorted(set(ALLOWED) - set(untested()))
    assert not stale, f"remove from ALLOWED in tests/test_layout.py: {stale}"


def test_test_file_names_are_unique_as_pytest_imports_them_by_name():
    names: dict[str, list[str]] = {}
    for path in TESTS.rglob("test_*.py"):
        names.setdefault(path.name, []).append(path.relative_to(ROOT).as_posix())
    clashes = {n: p for n, p in names.items() if len(p) > 1}
    assert not clashes, f"rename one of each (or make tests/ a package): {clashes}"


def test_every_reason_is_one_line():
    for module, reason in ALLOWED.items():
        assert reason and "\n" not in reason and len(reason) < 120, module


def test_the_mapping_mirrors_packages_subpackages_and_the_top_level():
    assert mirror_of(PACKAGE / "cli.py") == TESTS / "test_cli.py"
    assert mirror_of(PACKAGE / "domain" / "engine.py") == TESTS / "domain" / "test_engine.py"
    assert (
        mirror_of(PACKAGE / "domain" / "rules" / "base.py")
        == TESTS / "domain" / "rules" / "test_base.py"
    )


def test_only_an_init_that_merely_reexports_is_exempt(tmp_path):
    reexports = tmp_path / "a.py"
    reexports.write_text('"""Doc."""\n\nfrom x import y\nimport z\n\n__all__ = ["y"]\n')
    assert only_reexports(reexports)
    code = tmp_path / "b.py"
    code.write_text('"""Doc."""\n\nfrom x import y\n\nREGISTRY = {}\n')
    assert not only_reexports(code)
