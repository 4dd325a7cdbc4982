"""The department register and a department's months (streams/domain/departments.py,
SPEC §9): categories from the register or from the settings of the lines, and the
credit-aware clients, consults, stay days and cents per department and month."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain import departments
from streams.domain.departments import (
    DepartmentBook,
    DepartmentError,
    category_of_settings,
    parse_department,
)
from streams.domain.engine import Engine
from tests.conftest import AGB


def entry(**fields: Any) -> dict[str, Any]:
    obj = {
        "schema": "ggz.department/1",
        "provider_agb": AGB,
        "department": "crisis",
        "name": "Crisisdienst",
        "category": "acute",
        "region": "Utrecht",
        "version": 1,
        "updated_at": "2026-01-01T00:00:00Z",
    }
    obj.update(fields)
    return obj


def test_a_register_event_is_checked_against_its_schema():
    parsed = parse_department(entry())
    assert (parsed.key, parsed.category, parsed.region) == (f"{AGB}:crisis", "acute", "Utrecht")
    with pytest.raises(DepartmentError, match="category"):
        parse_department(entry(category="ward"))
    with pytest.raises(DepartmentError, match="provider_agb"):
        parse_department(entry(provider_agb="123"))
    with pytest.raises(DepartmentError, match="updated_at"):
        parse_department(entry(updated_at="2026-13-01T00:00:00Z"))


def test_the_latest_version_of_a_register_entry_wins():
    book = DepartmentBook()
    assert book.apply(parse_department(entry(version=2, category="outreach")))
    assert not book.apply(parse_department(entry(version=1, category="clinical")))
    assert book.category(AGB, "crisis", 0) == "outreach"
    assert book.apply(parse_department(entry(version=3, category="secured")))
    assert book.category(AGB, "crisis", 1 << 4) == "secured"  # the register, not the setting


@pytest.mark.parametrize(
    ("settings", "category"),
    [
        ((4,), "outreach"),
        ((5,), "clinical"),
        ((6,), "secured"),
        ((7,), "secured"),
        ((8,), "hs_ggz"),
        ((1, 2, 3), "other"),
        ((3, 4), "outreach"),
        ((4, 5), "clinical"),
        ((5, 8), "hs_ggz"),
        ((5, 6), "secured"),
    ],
)
def test_a_department_without_an_entry_takes_its_category_from_its_settings(settings, category):
    bits = sum(1 << s for s in settings)
    assert category_of_settings(bits) == category
    assert DepartmentBook().category(AGB, "x", bits) == category


def _run(policy: Any, journal: bool, *objs: dict[str, Any]) -> Engine:
    engine = Engine(policy, journal=journal)
    for obj in objs:
        engine.process(orjson.dumps(obj), AGB)
    return engine


@pytest.mark.parametrize("journal", [True, False])
def test_a_department_month_counts_distinct_clients_consults_stay_days_and_cents(
    policy, make_line, journal
):
    lines = [
        make_line(department="w", setting=5, client_ref="a", service_date="2026-02-03"),
        make_line(department="w", setting=5, client_ref="a", service_date="2026-02-04"),
        make_line(
            department="w",
            setting=5,
            client_ref="b",
            activity="stay",
            stay_days=7,
            service_date="2026-02-05",
            amount_cents=50_000,
        ),
        make_line(department="w", setting=5, client_ref="a", service_date="2026-03-01"),
        make_line(setting=5, client_ref="c", service_date="2026-02-05"),  # no department
    ]
    engine = _run(policy, journal, *lines)
    st = engine.providers[AGB]
    (w,) = [st.department_id("w")]
    assert departments.cell(st, w, 2026, 2) == [2, 2, 7, 70_000]
    assert departments.clients(st, w, 2026, 3) == 1
    assert departments.clients(st, w, 2026, 4) == 0
    assert departments.year_departments(st, 2026, engine.departments) == {
        "w": {
            "category": "clinical",
            "clients_by_month": {"2026-02": 2, "2026-03": 1},
            "consults": 3,
            "stay_days": 7,
            "net_cents": 80_000,
        }
    }


@pytest.mark.parametrize("journal", [True, False])
def test_a_client_leaves_a_department_month_when_its_last_line_there_is_credited(
    policy, make_line, journal
):
    first = make_line(department="w", client_ref="a", service_date="2026-02-03")
    second = make_line(department="w", client_ref="a", service_date="2026-02-04")
    stay = make_line(
        department="w", client_ref="b", activity="stay", stay_days=4, service_date="2026-02-05"
    )
    engine = _run(policy, journal, first, second, stay, make_line.credit(first))
    st = engine.providers[AGB]
    w = st.department_id("w")
    assert w is not None
    assert departments.cell(st, w, 2026, 2) == [2, 1, 4, 20_000]  # a has a line left
    for obj in (make_line.credit(second), make_line.credit(stay)):
        engine.process(orjson.dumps(obj), AGB)
    assert departments.cell(st, w, 2026, 2) == [0, 0, 0, 0]  # the month stays, at 0
    entry_ = departments.year_departments(st, 2026, engine.departments)["w"]
    assert entry_["clients_by_month"] == {"2026-02": 0}


def test_a_credit_takes_back_the_stay_days_of_its_debit_not_its_own(policy, make_line):
    stay = make_line(department="w", activity="stay", stay_days=9, service_date="2026-02-05")
    engine = _run(policy, True, stay, make_line.credit(stay, stay_days=2))
    st = engine.providers[AGB]
    assert departments.cell(st, st.department_id("w") or 0, 2026, 2) == [0, 0, 0, 0]


def test_a_credited_line_with_another_setting_leaves_the_category_as_it_was(policy, make_line):
    ward = make_line(department="w", setting=5, service_date="2026-02-03")
    stray = make_line(department="w", setting=6, service_date="2026-02-04")
    engine = _run(policy, True, ward, stray)
    st = engine.providers[AGB]
    w = st.department_id("w") or 0
    assert engine.departments.category(AGB, "w", st.dept_settings(w)) == "secured"
    engine.process(orjson.dumps(make_line.credit(stray)), AGB)
    assert engine.departments.category(AGB, "w", st.dept_settings(w)) == "clinical"
