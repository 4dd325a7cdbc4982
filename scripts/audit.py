"""Dependency audit for CI (`make audit`, run by `make test`): pip-audit over the venv.

Fails when pip-audit reports a known vulnerability. Tolerates being offline: when
the vulnerability service cannot be reached, or answers for none of the packages
(a mirror without PyPI's JSON API makes pip-audit skip every package and still say
"No known vulnerabilities found"), it prints one WARNING line and succeeds, so an
air-gapped CI keeps working but nobody mistakes "not audited" for "clean".

Accepted findings: CLAIMWATCH_AUDIT_IGNORE="GHSA-xxxx,PYSEC-yyyy" (comma-separated
ids, each passed to pip-audit as --ignore-vuln). Say why in the commit that adds one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TIMEOUT_SECONDS = 180


def judge(returncode: int, report: str | None, stderr: str) -> tuple[int, str]:
    """(exit code, message) from pip-audit's exit code, JSON report and stderr."""
    data = None
    if report:
        try:
            data = json.loads(report)
        except json.JSONDecodeError:
            data = None
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list):
        last = next((ln for ln in reversed(stderr.strip().splitlines()) if ln.strip()), "")
        return 0, (
            "WARNING: dependency audit skipped, the vulnerability service was not reachable "
            f"(pip-audit exit {returncode}: {last[:200]})"
        )
    deps = data["dependencies"]
    vulnerable = [d for d in deps if d.get("vulns")]
    if vulnerable:
        lines = [
            f"{d['name']} {d.get('version', '?')}: {v['id']}"
            + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
            for d in vulnerable
            for v in d["vulns"]
        ]
        return 1, "dependency audit FAILED, known vulnerabilities:\n  " + "\n  ".join(lines)
    audited = [d for d in deps if "skip_reason" not in d]
    skipped = len(deps) - len(audited)
    if not audited:
        return 0, (
            f"WARNING: dependency audit skipped, the vulnerability service answered for none of "
            f"the {len(deps)} packages (offline or a mirror without vulnerability data)"
        )
    if returncode != 0:
        return (
            returncode,
            f"dependency audit failed: pip-audit exit {returncode}: {stderr.strip()[-500:]}",
        )
    return (
        0,
        f"dependency audit: {len(audited)} packages, no known vulnerabilities ({skipped} not on PyPI)",
    )


def main() -> int:
    ignore = [
        i.strip() for i in os.environ.get("CLAIMWATCH_AUDIT_IGNORE", "").split(",") if i.strip()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [
            sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off",
            "--timeout", "15", "--format", "json", "--output", str(out),
        ]  # fmt: skip
        for vuln in ignore:
            cmd += ["--ignore-vuln", vuln]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"WARNING: dependency audit skipped, pip-audit took over {TIMEOUT_SECONDS} s")
            return 0
        report = out.read_text() if out.exists() else None
    if proc.returncode != 0 and "No module named pip_audit" in proc.stderr:
        print(
            "WARNING: dependency audit skipped, pip-audit is not installed (pip install -e '.[dev]')"
        )
        return 0
    code, message = judge(proc.returncode, report, proc.stderr)
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
