"""The generated institutions' departments and their register
(streams/synth/departments.py, SPEC §9)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.departments import CATEGORIES, parse_department
from streams.synth import departments as d
from streams.synth.tables import ADDICTION, CONSULT, STAY


def _never() -> int:
    raise AssertionError("the generator's bit is drawn only for non-cruciale consults")


def test_a_client_stays_with_one_team_and_cruciale_care_takes_no_random_draw():
    department = d.assign(True, True, {}, 2026, 3, _never)
    for n in range(200):
        ref = f"c-{n}"
        team = department(CONSULT, 4, 0, ref)
        assert team in (d.CRISIS, *d.FACT)
        assert department(CONSULT, 4, 0, ref) == team  # the same client, the same team
        assert department(STAY, 5, 0, ref) in d.WARDS
        assert department(CONSULT, 6, 0, ref) == department(STAY, 7, 0, ref) == d.SECURED
        assert department(CONSULT, 8, 0, ref) == d.TOP
        assert department(CONSULT, 3, ADDICTION, ref) == d.ADDICTION_TEAM
    teams = {department(CONSULT, 4, 0, f"c-{n}") for n in range(200)}
    assert teams == {d.CRISIS, *d.FACT}
    drawn = []
    other = d.assign(False, False, {}, 2026, 3, lambda: drawn.append(1) or 0)
    assert other(CONSULT, 8, ADDICTION, "c-1") == "ouderen" and drawn == [1]


def test_a_planted_move_sends_the_clients_it_does_not_keep_from_its_month_on():
    moves = {d.CRISIS: (2026, 7, "ambulant", 3)}
    refs = [f"c-{n}" for n in range(2000)]
    crisis = [
        r for r in refs if d.assign(True, True, {}, 2026, 6, _never)(CONSULT, 4, 0, r) == d.CRISIS
    ]
    before = d.assign(True, True, moves, 2026, 6, _never)
    after = d.assign(True, True, moves, 2026, 7, _never)
    next_year = d.assign(True, True, moves, 2027, 1, _never)
    assert all(before(CONSULT, 4, 0, r) == d.CRISIS for r in crisis)
    kept = [r for r in crisis if after(CONSULT, 4, 0, r) == d.CRISIS]
    assert 0.2 < len(kept) / len(crisis) < 0.4  # three tenths kept
    assert all(after(CONSULT, 4, 0, r) in (d.CRISIS, "ambulant") for r in crisis)
    assert [r for r in crisis if next_year(CONSULT, 4, 0, r) == d.CRISIS] == kept
    closed = d.assign(True, True, {d.WARDS[1]: (2026, 6, d.WARDS[0], 0)}, 2026, 6, _never)
    assert {closed(STAY, 5, 0, r) for r in refs} == {d.WARDS[0]}


class _P:
    def __init__(self, agb: str, institution: bool, depts: tuple[str, ...]) -> None:
        self.agb, self.institution, self.departments = agb, institution, depts
        self.name, self.region = "GGZ Test", "Twente"


def test_the_register_names_every_institutions_departments_with_their_category():
    providers: list[Any] = [
        _P("06000001", True, (*d.BASE, d.SECURED, d.TOP, d.ADDICTION_TEAM)),
        _P("94000002", False, ()),
    ]
    events = [parse_department(orjson.loads(raw)) for raw in d.register(providers, 2025)]
    assert {e.provider for e in events} == {"06000001"}  # practices have no departments
    by_name = {e.department: e.category for e in events}
    assert by_name == {
        "ambulant": "other",
        "ouderen": "other",
        d.CRISIS: "acute",
        d.FACT[0]: "outreach",
        d.FACT[1]: "outreach",
        d.WARDS[0]: "clinical",
        d.WARDS[1]: "clinical",
        d.SECURED: "secured",
        d.TOP: "hs_ggz",
        d.ADDICTION_TEAM: "other",
    }
    assert set(by_name.values()) <= set(CATEGORIES)
    assert all(e.region == "Twente" and e.version == 1 for e in events)


@pytest.mark.parametrize("department", [*d.BASE, d.SECURED, None])
def test_a_line_is_as_long_under_its_legacy_name_as_before_the_split(department):
    legacy = {
        d.CRISIS: "fact",
        **dict.fromkeys(d.FACT, "fact"),
        **dict.fromkeys(d.WARDS, "kliniek"),
    }
    if department is None or department not in legacy:
        assert d.legacy_delta(department) == 0
    else:
        assert len(department) + d.legacy_delta(department) == len(legacy[department])
