"""SPEC §4 indicators on small hand-made sets, read from the engine's snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from streams.domain.contracts import Contract
from streams.domain.engine import Engine
from streams.domain.indicators import STAY_BITS, YearState, breakdown, dept_cell

A, B, C = "11111111", "22222222", "33333333"
AGB_ = "12345678"


def same(got: Any, want: Any) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and got == pytest.approx(want)
    return type(got) is type(want) and got == want


def ind(engine: Engine, agb: str = "12345678", year: int = 2026) -> dict[str, Any]:
    return engine.snapshot()["providers"][agb][str(year)]


@pytest.fixture
def mix(engine, make_line, feed):
    """Seven lines whose indicators are worked out by hand below; returns the group consult
    with 4 practitioners, which the tests credit."""
    lines = [
        make_line(amount_cents=10_000),  # individual, 1 practitioner, not digital
        make_line(amount_cents=20_000, consult_mode="group", practitioners=2, digital=True),
        make_line(amount_cents=30_000, consult_mode="group", practitioners=3),
        make_line(amount_cents=40_000, consult_mode="group", practitioners=4, digital=True),
        make_line(amount_cents=50_000, activity="stay", stay_days=5, detox="clinical"),
        make_line(amount_cents=5_000, activity="other", detox="ambulant"),
        make_line(amount_cents=5_000, activity="other", detox="ambulant", digital=True),
    ]
    feed(engine, *lines)
    return lines[3]


# (indicator, with all seven lines, after crediting the 4-practitioner group consult)
EXPECTED = [
    ("net_cents", 160_000, 120_000),
    ("consults", 4, 3),
    ("group_consults", 3, 2),
    ("group_share", 3 / 4, 2 / 3),
    ("group_ge4", 1, 0),
    ("group_over2_share", 2 / 3, 1 / 2),
    ("detox_clinical", 1, 1),
    ("detox_ambulant", 2, 2),
    ("clinical_detox_share", 1 / 3, 1 / 3),
    ("digital_share", 2 / 4, 1 / 3),  # `digital` on a non-consult line does not count
    ("zvt_setting_mismatch", 0, 0),
    ("ceiling_utilisation", None, None),  # no contract
    ("adhd_clients", {}, {}),
    ("adhd_growth", {}, {}),
    # SPEC §8.1: by service month (all in March), net of the credit
    ("net_cents_by_month", [0, 0, 160_000, *[0] * 9], [0, 0, 120_000, *[0] * 9]),
    # SPEC §8.4: every line has its own client here (shared clients: below)
    ("detox_clients_all", 3, 3),
    ("detox_clients_clinical", 1, 1),
    ("clinical_detox_client_share", 1 / 3, 1 / 3),
    ("consult_clients", 4, 3),
    ("digital_clients", 2, 1),  # the digital `other` line has no consult client
    ("digital_client_share", 2 / 4, 1 / 3),
    # SPEC §8.2: at the watermark (2 March) no month of 2026 is covered 30 days yet
    ("covered_month", 0, 0),
    ("projected_cents", None, None),
    ("pace_ratio", None, None),
    # SPEC §9: no line of the mix names a department (tests/domain/test_departments.py)
    ("departments", {}, {}),
]


@pytest.mark.parametrize(("name", "value", "_"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_indicator_on_a_hand_made_set(engine, mix, name, value, _):
    assert same(ind(engine)[name], value)


@pytest.mark.parametrize(("name", "_", "value"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_indicator_is_net_of_a_credit(engine, mix, make_line, feed, name, _, value):
    feed(engine, make_line.credit(mix))
    assert same(ind(engine)[name], value)


def test_the_hand_made_table_covers_every_indicator_of_the_snapshot(engine, mix):
    # which indicators the snapshot holds is tested in test_snapshot.py
    assert set(ind(engine)) == {e[0] for e in EXPECTED}


def test_ratios_without_a_denominator_are_undefined(engine, make_line, feed):
    feed(engine, make_line(activity="stay", stay_days=1))
    got = ind(engine)
    assert got["consults"] == 0
    for ratio in ("group_share", "group_over2_share", "clinical_detox_share", "digital_share"):
        assert got[ratio] is None, ratio


def test_group_over2_share_is_undefined_without_group_consults(engine, make_line, feed):
    feed(engine, make_line(), make_line(practitioners=5))  # individual consults only
    got = ind(engine)
    assert got["group_share"] == 0.0
    assert got["group_over2_share"] is None
    assert got["group_ge4"] == 0


def test_practitioners_count_only_on_group_consults(engine, make_line, feed):
    feed(engine, make_line(practitioners=6), make_line(consult_mode="group", practitioners=2))
    got = ind(engine)
    assert got["group_ge4"] == 0
    assert got["group_over2_share"] == 0.0


def test_ceiling_utilisation_uses_the_current_contract_version(
    engine, make_line, feed, contract_event
):
    feed(engine, make_line(amount_cents=250_000))
    engine.apply_contract(Contract.from_event(contract_event(ceiling_cents=1_000_000)))
    assert ind(engine)["ceiling_utilisation"] == 0.25
    engine.apply_contract(Contract.from_event(contract_event(ceiling_cents=500_000, version=2)))
    assert ind(engine)["ceiling_utilisation"] == 0.5
    engine.apply_contract(Contract.from_event(contract_event(ceiling_cents=100_000, version=1)))
    assert ind(engine)["ceiling_utilisation"] == 0.5


def test_ceiling_utilisation_is_per_contract_year(engine, make_line, feed, contract_event):
    feed(engine, make_line(amount_cents=100_000), make_line(service_date="2025-12-31"))
    engine.apply_contract(Contract.from_event(contract_event(year=2026, ceiling_cents=400_000)))
    assert ind(engine, year=2026)["ceiling_utilisation"] == 0.25
    assert ind(engine, year=2025)["ceiling_utilisation"] is None


def test_the_service_date_decides_the_year_not_the_submission_time(engine, make_line, feed):
    feed(engine, make_line(service_date="2025-12-31", submitted_at="2026-01-15T08:00:00+01:00"))
    assert list(engine.snapshot()["providers"]["12345678"]) == ["2025"]


def test_a_provider_year_appears_once_it_has_an_accepted_line(engine, make_line, feed):
    feed(engine, make_line(practitioners=0))  # rejected
    assert engine.snapshot()["providers"] == {}
    debit = make_line()
    feed(engine, debit, make_line.credit(debit))
    assert ind(engine)["net_cents"] == 0
    assert ind(engine)["consults"] == 0


# -- ADHD --------------------------------------------------------------------------


def adhd(make_line, client: str, day: str, **kw: Any) -> dict[str, Any]:
    return make_line(diagnosis_group="adhd", client_ref=client, service_date=day, **kw)


def test_adhd_clients_are_distinct_clients_per_calendar_quarter(engine, make_line, feed):
    feed(
        engine,
        adhd(make_line, "A", "2026-01-01"),
        adhd(make_line, "A", "2026-03-31"),  # same client, same quarter
        adhd(make_line, "B", "2026-02-10"),
        adhd(make_line, "A", "2026-04-01"),  # Q2
        adhd(make_line, "D", "2026-12-31"),  # Q4
        make_line(client_ref="C", service_date="2026-02-01"),  # not ADHD
        make_line(client_ref="E", service_date="2026-08-01"),  # not ADHD: Q3 not listed
    )
    assert ind(engine)["adhd_clients"] == {"2026-Q1": 2, "2026-Q2": 1, "2026-Q4": 1}


def test_a_credit_removes_an_adhd_client_only_with_its_last_line_of_the_quarter(
    engine, make_line, feed
):
    a1 = adhd(make_line, "A", "2026-01-05")
    a2 = adhd(make_line, "A", "2026-02-05")
    a_q2 = adhd(make_line, "A", "2026-05-05")
    b1 = adhd(make_line, "B", "2026-03-05")
    feed(engine, a1, a2, a_q2, b1)
    assert ind(engine)["adhd_clients"] == {"2026-Q1": 2, "2026-Q2": 1}
    feed(engine, make_line.credit(a1))
    assert ind(engine)["adhd_clients"] == {"2026-Q1": 2, "2026-Q2": 1}
    feed(engine, make_line.credit(a2))
    assert ind(engine)["adhd_clients"] == {"2026-Q1": 1, "2026-Q2": 1}
    feed(engine, make_line.credit(b1))
    # the quarter had ADHD lines, so it stays listed, now with no client left
    assert ind(engine)["adhd_clients"] == {"2026-Q1": 0, "2026-Q2": 1}


def test_a_non_adhd_line_of_an_adhd_client_does_not_keep_it_counted(engine, make_line, feed):
    a1 = adhd(make_line, "A", "2026-01-05")
    feed(engine, a1, make_line(client_ref="A", service_date="2026-01-06"))
    feed(engine, make_line.credit(a1))
    assert ind(engine)["adhd_clients"] == {"2026-Q1": 0}


def test_adhd_clients_are_counted_per_provider(engine, make_line, feed):
    feed(
        engine,
        adhd(make_line, "A", "2026-01-05"),
        adhd(make_line, "A", "2026-01-05", provider_agb=B),
    )
    assert ind(engine)["adhd_clients"] == {"2026-Q1": 1}
    assert ind(engine, B)["adhd_clients"] == {"2026-Q1": 1}


def test_adhd_growth_compares_with_the_same_quarter_a_year_earlier(engine, make_line, feed):
    base = [adhd(make_line, f"c{i}", "2025-05-01") for i in range(4)]
    now = [adhd(make_line, f"c{i}", "2026-06-30") for i in range(5)]
    feed(
        engine, *base, *now, adhd(make_line, "z", "2026-08-01"), adhd(make_line, "y", "2025-02-01")
    )
    assert ind(engine, year=2025)["adhd_growth"] == {"2025-Q1": None, "2025-Q2": None}
    assert ind(engine, year=2026)["adhd_growth"] == {"2026-Q2": 0.25, "2026-Q3": None}
    assert ind(engine, year=2026)["adhd_clients"] == {"2026-Q2": 5, "2026-Q3": 1}
    feed(engine, *(make_line.credit(line) for line in now))
    assert ind(engine, year=2026)["adhd_growth"]["2026-Q2"] == -1.0


def test_adhd_growth_from_a_year_with_credits_uses_the_net_base(engine, make_line, feed):
    base = [adhd(make_line, f"c{i}", "2025-01-10") for i in range(4)]
    feed(engine, *base, *(adhd(make_line, f"n{i}", "2026-01-10") for i in range(3)))
    feed(engine, make_line.credit(base[0]), make_line.credit(base[1]))
    assert ind(engine)["adhd_growth"] == {"2026-Q1": 0.5}  # 3 / 2 - 1


# -- zorgvraagtype / setting mismatch ------------------------------------------------------

MISMATCH_CASES = [
    ("2026-03-01", 1, 5, 1),
    ("2026-03-01", 2, 6, 1),
    ("2026-03-01", 1, 8, 1),
    ("2027-01-01", 2, 8, 1),
    ("2026-01-01", 2, 5, 1),
    ("2026-03-01", 3, 5, 0),
    ("2026-03-01", 0, 5, 0),
    ("2026-03-01", 21, 8, 0),
    ("2026-03-01", 1, 7, 0),
    ("2026-03-01", 2, 4, 0),
    ("2026-03-01", 1, 1, 0),
    ("2025-12-31", 1, 5, 0),  # before 2026: still reimbursed
    ("2024-06-01", 2, 8, 0),
]


@pytest.mark.parametrize(("day", "zvt", "setting", "count"), MISMATCH_CASES)
def test_zvt_setting_mismatch_counts_types_1_2_in_settings_5_6_8_from_2026(
    engine, make_line, feed, day, zvt, setting, count
):
    feed(
        engine,
        make_line(
            service_date=day,
            submitted_at=f"{day}T23:00:00Z",  # the service year decides, not this
            care_demand_type=zvt,
            setting=setting,
        ),
    )
    assert ind(engine, year=int(day[:4]))["zvt_setting_mismatch"] == count


def test_zvt_setting_mismatch_is_net_of_credits(engine, make_line, feed):
    m1 = make_line(care_demand_type=1, setting=5, activity="stay", stay_days=2)
    m2 = make_line(care_demand_type=2, setting=8)
    feed(engine, m1, m2, make_line.credit(m1))
    assert ind(engine)["zvt_setting_mismatch"] == 1


# -- peers ------------------------------------------------------------------------------


def _consults(make_line, agb: str, n: int, group: int, day: str = "2026-03-01"):
    return [
        make_line(
            provider_agb=agb, service_date=day, consult_mode="group" if i < group else "individual"
        )
        for i in range(n)
    ]


def test_peer_group_share_mean_counts_only_providers_with_min_consults(
    policy_with, make_line, feed
):
    engine = Engine(policy_with(**{"group_share_low.min_consults": 4}))
    feed(
        engine,
        *_consults(make_line, A, 4, 2),  # 0.5
        *_consults(make_line, B, 5, 1),  # 0.2
        *_consults(make_line, C, 3, 3),  # 1.0 but only 3 consults: not a peer
        *_consults(make_line, C, 8, 0, day="2025-03-01"),  # 2025 is its own peer group
    )
    peers = engine.snapshot()["peers"]
    assert peers["2026"]["group_share_mean"] == pytest.approx(0.35)
    assert peers["2025"]["group_share_mean"] == 0.0
    assert float(engine.peer_means()[2026]) == pytest.approx(0.35)
    feed(engine, *_consults(make_line, C, 1, 1))  # C reaches 4 consults, all group
    assert engine.snapshot()["peers"]["2026"]["group_share_mean"] == pytest.approx(1.7 / 3)


def test_peer_group_share_mean_is_undefined_without_eligible_providers(engine, make_line, feed):
    feed(engine, *_consults(make_line, A, 10, 5))
    assert engine.snapshot()["peers"]["2026"]["group_share_mean"] is None


def test_peer_group_share_mean_at_the_default_min_of_200_consults(engine, make_line, feed):
    feed(engine, *_consults(make_line, A, 200, 50), *_consults(make_line, B, 199, 199))
    assert engine.snapshot()["peers"]["2026"]["group_share_mean"] == 0.25
    feed(engine, *_consults(make_line, B, 1, 0))
    assert engine.snapshot()["peers"]["2026"]["group_share_mean"] == pytest.approx(
        (0.25 + 199 / 200) / 2
    )


def test_year_state_returns_to_zero_after_applying_and_reversing_a_line():
    ys = YearState()
    dept = 3 << STAY_BITS | 2  # department 3, two stay days
    ys.apply(0b1_1111_1111, 123, 5, 7, "client", 1, dept)
    assert ys.dept_cells == {dept_cell(3, 5): [1, 1, 2, 123, {"client": 1}]}
    ys.apply(0b1_1111_1111, 123, 5, 7, "client", -1, dept)
    record = ys.to_json()
    # the department's month stays, at 0 (SPEC §9 snapshot)
    assert record.pop("dept_cells") == [[dept_cell(3, 5), 0, 0, 0, 0]]
    assert record.pop("dept_clients") == {str(dept_cell(3, 5)): []}
    assert record.pop("adhd") == {"2": []}  # the quarter is kept, emptied (adhd_quarters)
    assert record.pop("by_month") == [0] * 12
    for emptied in ("clients_detox", "clients_clinical", "clients_consult", "clients_digital"):
        assert record.pop(emptied) == []
    assert record.pop("mismatch_ids") == []  # kept by the provider state, not apply
    assert record == {
        "net_cents": 0,
        "lines": 0,
        "consults": 0,
        "group_consults": 0,
        "group_ge4": 0,
        "group_over2": 0,
        "digital": 0,
        "detox_clinical": 0,
        "detox_ambulant": 0,
        "mismatch": 0,
    }


def test_a_credit_subtracts_what_its_debit_added_whatever_the_credit_says(engine, make_line, feed):
    debit = make_line(
        amount_cents=70_000,
        consult_mode="group",
        practitioners=4,
        digital=True,
        detox="clinical",
        care_demand_type=1,
        setting=8,
        diagnosis_group="adhd",
        client_ref="A",
    )
    keep = make_line(amount_cents=1_000)
    feed(engine, debit, keep)
    # a credit that disagrees with its debit on everything but the line id
    odd = make_line.credit(
        debit,
        amount_cents=5,
        service_date="2025-06-01",
        activity="other",
        diagnosis_group="depression",
        client_ref="B",
        detox="ambulant",
        care_demand_type=3,
    )
    feed(engine, odd)
    got = ind(engine)
    assert list(engine.snapshot()["providers"]["12345678"]) == ["2026"]
    assert got["net_cents"] == 1_000
    assert (got["consults"], got["group_consults"], got["group_ge4"]) == (1, 0, 0)
    assert (got["detox_clinical"], got["detox_ambulant"], got["zvt_setting_mismatch"]) == (0, 0, 0)
    assert got["digital_share"] == 0.0
    assert got["adhd_clients"] == {"2026-Q1": 0}


# -- SPEC §8.4: distinct clients, credit-aware ---------------------------------------------


def test_detox_counts_clients_so_a_stay_declared_per_day_weighs_as_one_stay(
    engine, make_line, feed
):
    per_day = [
        make_line(activity="stay", stay_days=1, detox="clinical", client_ref="x") for _ in range(10)
    ]
    feed(
        engine,
        *per_day,
        make_line(activity="stay", stay_days=10, detox="ambulant", client_ref="y"),
        make_line(activity="other", detox="ambulant", client_ref="z"),
        make_line(activity="other", detox="ambulant", client_ref="x"),  # x once more
    )
    got = ind(engine)
    assert (got["detox_clients_clinical"], got["detox_clients_all"]) == (1, 3)
    assert got["clinical_detox_client_share"] == 1 / 3
    assert got["clinical_detox_share"] == 10 / 13  # the line share it replaces
    feed(engine, *(make_line.credit(d) for d in per_day[:9]))
    assert ind(engine)["detox_clients_clinical"] == 1  # one clinical line of x is left
    feed(engine, make_line.credit(per_day[9]))
    got = ind(engine)
    # x leaves the clinical clients but stays among all: its ambulant line is live
    assert (got["detox_clients_clinical"], got["detox_clients_all"]) == (0, 3)
    assert got["clinical_detox_client_share"] == 0.0


def test_digital_counts_clients_with_a_digital_consult_among_consult_clients(
    engine, make_line, feed
):
    digital = make_line(client_ref="a", digital=True)
    feed(
        engine,
        make_line(client_ref="a"),
        digital,
        make_line(client_ref="a", digital=True, consult_mode="group", practitioners=2),
        make_line(client_ref="b"),
        make_line(client_ref="b"),
        make_line(client_ref="c", activity="other", digital=True),  # not a consult
    )
    got = ind(engine)
    assert (got["digital_clients"], got["consult_clients"]) == (1, 2)
    assert got["digital_client_share"] == 0.5
    assert got["digital_share"] == 2 / 5  # lines: the figure SPEC keeps
    feed(engine, make_line.credit(digital))
    assert ind(engine)["digital_clients"] == 1  # a's group consult is digital too


def test_a_credit_takes_back_its_debits_client_whatever_client_the_credit_names(
    engine, make_line, feed
):
    debit = make_line(client_ref="a", digital=True)
    feed(engine, debit, make_line(client_ref="b"))
    feed(engine, make_line.credit(debit, client_ref="b"))
    got = ind(engine)
    assert (got["consult_clients"], got["digital_clients"]) == (1, 0)  # b stays, a goes


def test_net_cents_by_month_follow_the_service_month_and_a_credit_its_debits_month(
    engine, make_line, feed
):
    jan = make_line(service_date="2026-01-31", amount_cents=100)
    feed(
        engine,
        jan,
        make_line(service_date="2026-12-01", amount_cents=20),
        make_line(service_date="2026-01-01", amount_cents=3),
    )
    assert ind(engine)["net_cents_by_month"] == [103, *[0] * 10, 20]
    feed(engine, make_line.credit(jan, service_date="2026-02-15"))  # says February: January
    assert ind(engine)["net_cents_by_month"] == [3, *[0] * 10, 20]


# -- SPEC §8.3: breakdown aggregates -------------------------------------------------------


def _by(rows: list[dict[str, Any]], by: str) -> list[tuple[Any, int, int]]:
    return [(r["key"], r["cents"], r["lines"]) for r in rows if r["by"] == by]


def test_a_breakdown_gives_the_top_five_per_dimension_largest_cents_first_ties_by_key(
    engine, make_line, feed
):
    # departments d0..d6 with 700, 600, ... 100 cents; d7 ties the line without
    # department or prestatie code (a missing field goes after a tied key)
    feed(
        engine,
        *(
            make_line(department=f"d{i}", prestatie_code="CO1", amount_cents=700 - 100 * i)
            for i in range(7)
        ),
        make_line(department="d7", prestatie_code="CO2", amount_cents=650, setting=3),
        make_line(amount_cents=650, setting=3),
    )
    dimensions = ["department", "prestatie_code", "setting"]
    rows = breakdown(engine.providers[AGB_], 2026, "all", dimensions)
    assert _by(rows, "department") == [
        ("d0", 700, 1),
        ("d7", 650, 1),
        (None, 650, 1),
        ("d1", 600, 1),
        ("d2", 500, 1),
    ]
    assert _by(rows, "prestatie_code") == [("CO1", 2800, 7), ("CO2", 650, 1), (None, 650, 1)]
    assert _by(rows, "setting") == [(1, 2800, 7), (3, 1300, 2)]
    feed(engine, make_line(department="c9", amount_cents=500))  # ties with d2: key first
    tied = breakdown(engine.providers[AGB_], 2026, "all", ["department"])
    assert [r["key"] for r in tied] == ["d0", "d7", None, "d1", "c9"]


def test_a_breakdown_is_per_subset_and_net_of_credits(engine, make_line, feed):
    mism = make_line(care_demand_type=1, setting=5, department="kliniek", amount_cents=900)
    feed(
        engine,
        mism,
        make_line(care_demand_type=2, setting=8, department="topggz", amount_cents=500),
        make_line(setting=5, department="kliniek", amount_cents=70),  # zvt 3: no mismatch
        make_line(diagnosis_group="adhd", service_date="2026-05-01", amount_cents=40),
        make_line(activity="other", detox="clinical", department="kliniek", amount_cents=8),
    )
    st = engine.providers[AGB_]
    assert _by(breakdown(st, 2026, "mismatch", ["department"]), "department") == [
        ("kliniek", 900, 1),
        ("topggz", 500, 1),
    ]
    assert _by(breakdown(st, 2026, "adhd2", ["department"]), "department") == [(None, 40, 1)]
    assert breakdown(st, 2026, "adhd1", ["department"]) == []
    assert _by(breakdown(st, 2026, "detox", ["setting"]), "setting") == [(1, 8, 1)]
    assert _by(breakdown(st, 2026, "consult", ["setting"]), "setting") == [
        (5, 970, 2),
        (8, 500, 1),
        (1, 40, 1),
    ]
    feed(engine, make_line.credit(mism))
    assert _by(breakdown(st, 2026, "mismatch", ["department"]), "department") == [
        ("topggz", 500, 1)
    ]
    assert breakdown(st, 2025, "all", ["setting"]) == []  # no such year
    with pytest.raises(ValueError, match="unknown subset"):
        breakdown(st, 2026, "everything", ["setting"])
