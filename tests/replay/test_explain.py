"""``claimwatch explain`` (streams/replay/explain.py, SPEC §8.3) on the golden history
(tests/golden/README.md): the alert's transitions, the computation at the last one,
and the lines behind it, as the engine accepted them (redeliveries and duplicate
debits drop out), without client references; an unknown id is one line and exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main
from streams.domain.errors import InputError
from streams.domain.policy import load_policy
from streams.replay.explain import explain_alert

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FILES = [GOLDEN / "declarations.ndjson"]
CONTRACTS = GOLDEN / "contracts.ndjson"


@pytest.fixture(scope="module")
def policy():
    return load_policy(GOLDEN / "policy.toml")


def explain(policy, alert_id: str) -> str:
    return explain_alert(alert_id, FILES, policy, contracts=CONTRACTS)


def no_client_data(report: str) -> None:
    assert "cl-p" not in report and "tr-p" not in report  # client_ref, trajectory_id
    assert "123456789" not in report


def test_a_ceiling_alert_shows_its_transitions_computation_and_lines_per_month(policy):
    report = explain(policy, "ceiling_utilisation:10000001:2026:70")
    no_client_data(report)
    # three transitions: fires (March), resolves on the credit of L105, fires again
    assert report.count("gaat af (waarde") == 2 and report.count("opgeheven (waarde") == 1
    assert "na creditering weer onder de drempel van 70%" in report
    assert "teller (netto gedeclareerd): € 8.800" in report
    assert "noemer (plafond): € 12.500" in report
    assert "oorzaak: declaraties (contractversie 2)" in report
    # README: L101 is redelivered and L104 debited twice; each counts once. April holds
    # L105 (credited in July: a credit takes from its debit's service month) and L106.
    rows = {line.split()[0]: line.split() for line in report.splitlines() if line.startswith("  ")}
    assert rows["februari"][1:3] == ["2", "0"]
    assert rows["april"][1:3] == ["2", "1"]
    assert " ".join(rows["totaal"][1:]) == "8 1 € 10.850 € 2.000 € 8.850 € 8.850"


def test_a_zvt_alert_lists_its_mismatching_lines_and_whether_they_were_credited(policy):
    report = explain(policy, "zvt_setting_mismatch:10000001:2026")
    no_client_data(report)
    assert "P1-L105  2026-04-01" in report
    assert "verblijf, setting 5, zvt 1" in report
    assert report.rstrip().endswith("0 regels niet gecrediteerd (€ 0), 1 gecrediteerd")
    assert "gaat af (waarde 1, drempel 1)" in report  # a count, not a share


@pytest.mark.parametrize(
    "alert_id",
    ["ceiling_utilisation:10000001:2026:80", "no_rule:10000001:2026", "not an id"],
)
def test_an_unknown_alert_id_is_one_line_and_exit_1(alert_id, policy, capsys):
    with pytest.raises(InputError, match="geen alert"):
        explain(policy, alert_id)
    argv = ["--policy", str(GOLDEN / "policy.toml"), "explain", alert_id, *map(str, FILES)]
    assert main([*argv, "--contracts", str(CONTRACTS)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("claimwatch: explain: geen alert")
