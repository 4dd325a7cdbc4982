"""clinical_detox_high (streams/domain/rules/clinical_detox_high.py): distinct detox
clients, clinical against all (SPEC §8.4)."""

from __future__ import annotations

import pytest

from tests.domain.rules.rule_helpers import AGB, CLIENT, detox, published, tick_ids

ID = f"clinical_detox_high:{AGB}:2026"


@pytest.mark.parametrize(
    ("clinical", "ambulant", "fires"),
    [(19, 0, False), (10, 10, True), (9, 11, False), (11, 9, True), (20, 0, True)],
)
def test_clinical_detox_high_at_half_with_min_20_detox_clients(
    eng, line, send, clinical, ambulant, fires
):
    send(eng, *detox(line, clinical, ambulant))  # a client a line
    got = tick_ids(eng)
    assert ((ID, "firing") in got) is fires


def test_a_stay_declared_per_day_counts_its_client_once(eng, line, send):
    # 10 clinical clients with 5 day-lines each, 10 ambulant clients with one line: by
    # lines 50/60 clinical, by clients 10/20 = exactly the threshold
    per_day = [
        line(client_ref=f"{CLIENT}stay{c}", activity="stay", stay_days=1, detox="clinical")
        for c in range(10)
        for _ in range(5)
    ]
    send(eng, *per_day, *detox(line, 0, 10))
    (event,) = published(eng.tick())
    assert (event["alert_id"], event["value"]) == (ID, 0.5)
    assert event["explain"]["numerator"] == 10 and event["explain"]["denominator"] == 20
    assert "10 van 20 cliënten" in event["message"]
    send(eng, *detox(line, 0, 1))  # 10/21 < 0.5
    assert tick_ids(eng) == [(ID, "resolved")]


def test_a_client_leaves_the_count_when_its_last_detox_line_is_credited(eng, line, send):
    clinical = [
        line(client_ref=f"{CLIENT}k{c}", activity="stay", stay_days=1, detox="clinical")
        for c in range(10)
    ]
    again = line(client_ref=f"{CLIENT}k0", activity="stay", stay_days=1, detox="clinical")
    send(eng, *clinical, again, *detox(line, 0, 10))
    assert tick_ids(eng) == [(ID, "firing")]  # 10/20
    send(eng, line.credit(again))  # k0 keeps a clinical line: still 10/20
    assert tick_ids(eng) == []
    send(eng, line.credit(clinical[0]))  # k0 gone: 9/19, and below the 20 clients
    assert tick_ids(eng) == [(ID, "resolved")]


def test_an_operators_file_with_the_old_min_lines_key_stops_with_one_error(tmp_path):
    from streams.domain.errors import PolicyError
    from streams.domain.policy import DEFAULT_POLICY_PATH, load_policy

    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    path = tmp_path / "policy.toml"
    path.write_text(text.replace("min_clients = 20", "min_lines = 20"), encoding="utf-8")
    with pytest.raises(PolicyError, match="clinical_detox_high.min_clients is missing"):
        load_policy(path)
