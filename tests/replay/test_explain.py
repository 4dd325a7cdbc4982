"""``claimwatch explain`` (streams/replay/explain.py, SPEC §8.3) on the golden history
(tests/golden/README.md) and on a generated one (streams.synth): the alert's
transitions, the computation and breakdown at the last one, the breakdown at the end
of the input, and the lines behind it, as the engine accepted them (redeliveries and
duplicate debits drop out), without client references; an unknown id is one line
and exit 1."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.domain.errors import InputError
from streams.domain.policy import load_policy
from streams.replay.explain import explain_alert
from streams.replay.offline import replay_offline
from streams.synth.generate import GenerateOptions, GenerateSummary, generate

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
    assert " ".join(rows["totaal"][1:]) == "8 1 € 10.850 € 2.000 € 8.850 € 8.850 70,8%"
    # the breakdown at the last transition (the second firing, before August's lines)
    # and at the end of the input, whose net lines are the 8 debits less the credit
    assert "setting 1 (ambulant, kwaliteitsstatuut II): € 8.850 in 7 regels" in report
    assert "afdeling (geen): € 8.850 in 7 regels" in report


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


# -- on a generated history (streams.synth): the planted alerts ----------------------


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    return generate(
        tmp_path_factory.mktemp("history"), GenerateOptions(providers=12, lines=20_000, seed=3)
    )


def planted(made: GenerateSummary, rule: str) -> dict:
    anomalies = orjson.loads(made.planted_path.read_bytes())["anomalies"]
    return next(a for a in anomalies if a["rule"] == rule)


def no_generated_client_data(made: GenerateSummary, report: str) -> None:
    for raw in made.declarations_path.read_bytes().splitlines()[:2000]:
        line = orjson.loads(raw)
        assert line["client_ref"] not in report and line["trajectory_id"] not in report


def test_a_planted_zvt_alert_lists_every_mismatching_line_and_the_end_breakdown(made):
    plant = planted(made, "zvt_setting_mismatch")
    progress: list[tuple[int, int]] = []
    report = explain_alert(
        plant["alert_id"],
        [made.declarations_path],
        load_policy(),
        contracts=made.contracts_path,
        progress=lambda done, total: progress.append((done, total)),
    )
    no_generated_client_data(made, report)
    live = plant["expected"]["mismatch_lines"]
    listed = [r for r in report.splitlines() if r.startswith(f"  {plant['provider_agb']}-")]
    credited = [r for r in listed if r.endswith("— gecrediteerd")]
    assert len(listed) - len(credited) == live
    assert f"{live} regels niet gecrediteerd" in report
    # the breakdown at the end of the input covers those lines, by department
    end = report.split("Uitsplitsing aan het eind van de invoer")[1].split("\n\n")[0]
    by_department = [r for r in end.splitlines() if r.startswith("  afdeling ")]
    assert sum(int(r.split(" in ")[1].split()[0]) for r in by_department) == live
    # two passes (the replay, then the provider's lines), one bar to their total
    size = made.declarations_path.stat().st_size
    assert {total for _, total in progress} == {2 * size}
    assert progress[-1][0] == 2 * size


def test_a_planted_ceiling_alert_sums_per_month_what_the_replay_counted(made, tmp_path):
    plant = planted(made, "ceiling_utilisation")
    policy = load_policy()
    report = explain_alert(
        plant["alert_id"], [made.declarations_path], policy, contracts=made.contracts_path
    )
    no_generated_client_data(made, report)
    snapshot_out = tmp_path / "snapshot.json"
    replay_offline(
        [made.declarations_path], policy, contracts=made.contracts_path, snapshot_out=snapshot_out
    )
    year = orjson.loads(snapshot_out.read_bytes())["providers"][plant["provider_agb"]]["2026"]
    rows = {r.split()[0]: r for r in report.splitlines() if r.startswith("  ")}
    by_month = year["net_cents_by_month"]
    months = ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus"]
    for name, cents in zip(months, by_month, strict=False):
        if cents:
            net = rows[name].split("€")[3].split()[0]
            assert int(net.replace(".", "")) == round(cents / 100)
    total = rows["totaal"].split("€")[3].split()[0]
    assert int(total.replace(".", "")) == round(year["net_cents"] / 100)
    assert "gaat af (waarde" in report and "oorzaak: declaraties (contractversie" in report
