"""The operator documentation keeps up with the code it describes."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_variable_the_settings_read_is_documented() -> None:
    source = (REPO / "streams" / "pipeline" / "settings.py").read_text(encoding="utf-8")
    read = {
        f"CLAIMWATCH_{n}"
        for n in re.findall(r'(?:text|integer|number|boolean|choice)\("([A-Z0-9_]+)"', source)
    }
    assert len(read) > 20
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(CLAIMWATCH_[A-Z0-9_]+)`", doc))
    assert not read - documented, sorted(read - documented)


def test_operations_guide_is_linked_and_covers_the_faults_of_issue_6() -> None:
    assert "docs/operations.md" in (REPO / "README.md").read_text(encoding="utf-8")
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8").lower()
    for topic in (
        "worker crash",
        "broker restart",
        "rebalance",
        "redelivered input",
        "out-of-order",
        "oversize",
        "malformed",
        "contract arrives after",
        "replaying history into production",
        "line index",
        "retention policy",
    ):
        assert topic in text, topic
