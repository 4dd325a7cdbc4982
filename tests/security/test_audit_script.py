"""`make audit` (scripts/audit.py): fail on a vulnerability, only warn when offline."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("audit", REPO / "scripts" / "audit.py")
assert _spec is not None and _spec.loader is not None
audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)


def report(*deps: dict) -> str:
    return json.dumps({"dependencies": list(deps), "fixes": []})


CLEAN = {"name": "orjson", "version": "3.11.0", "vulns": []}
SKIPPED = {"name": "rich", "skip_reason": "Dependency not found on PyPI and could not be audited"}
VULNERABLE = {
    "name": "aiohttp",
    "version": "3.8.0",
    "vulns": [{"id": "GHSA-xxxx-yyyy-zzzz", "fix_versions": ["3.9.2"], "aliases": []}],
}


def test_a_known_vulnerability_fails_the_build_and_names_it() -> None:
    code, message = audit.judge(1, report(CLEAN, VULNERABLE, SKIPPED), "")
    assert code == 1
    assert "aiohttp 3.8.0: GHSA-xxxx-yyyy-zzzz (fixed in 3.9.2)" in message


def test_a_clean_audit_passes_and_says_how_much_it_checked() -> None:
    code, message = audit.judge(0, report(CLEAN, SKIPPED), "")
    assert code == 0 and message.startswith("dependency audit: 1 packages")


def test_an_unreachable_service_warns_in_one_line_and_passes() -> None:
    stderr = "Traceback …\nrequests.exceptions.ConnectionError: Failed to resolve 'pypi.org'\n"
    code, message = audit.judge(1, None, stderr)
    assert code == 0
    assert message.startswith("WARNING:") and "\n" not in message and "ConnectionError" in message


def test_a_mirror_that_answers_for_no_package_is_not_reported_as_clean() -> None:
    code, message = audit.judge(0, report(SKIPPED, SKIPPED), "")
    assert code == 0 and message.startswith("WARNING:")


def test_make_test_runs_the_audit_and_pip_audit_is_a_dev_dependency() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test:.*\baudit\b", makefile, re.M)
    assert re.search(r"^audit:", makefile, re.M)
    assert '"pip-audit' in (REPO / "pyproject.toml").read_text()
