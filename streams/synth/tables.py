"""The world the synthetic history is drawn from: regions, names, diagnoses, care
demand types, settings, tariffs, seasons, and the choice tables built from them.

Plain constants of the generator, none of them a policy threshold: what the rules
judge is read from the policy (``plants.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# (IZA region, purchasing team); some two dozen of the 38 regions.
REGIONS: tuple[tuple[str, str], ...] = (
    ("Groningen", "inkoop-ggz-noord"),
    ("Friesland", "inkoop-ggz-noord"),
    ("Drenthe", "inkoop-ggz-noord"),
    ("Zwolle", "inkoop-ggz-oost"),
    ("Twente", "inkoop-ggz-oost"),
    ("Apeldoorn Zutphen", "inkoop-ggz-oost"),
    ("Arnhem", "inkoop-ggz-oost"),
    ("Nijmegen", "inkoop-ggz-oost"),
    ("Utrecht", "inkoop-ggz-midden"),
    ("Amersfoort", "inkoop-ggz-midden"),
    ("Flevoland", "inkoop-ggz-midden"),
    ("Noord-Holland Noord", "inkoop-ggz-west"),
    ("Kennemerland", "inkoop-ggz-west"),
    ("Zaanstreek Waterland", "inkoop-ggz-west"),
    ("Amsterdam", "inkoop-ggz-west"),
    ("Haaglanden", "inkoop-ggz-west"),
    ("Zuid-Holland Noord", "inkoop-ggz-west"),
    ("Rotterdam Rijnmond", "inkoop-ggz-west"),
    ("Zuid-Hollandse Eilanden", "inkoop-ggz-west"),
    ("Zeeland", "inkoop-ggz-zuid"),
    ("West-Brabant", "inkoop-ggz-zuid"),
    ("Midden-Brabant", "inkoop-ggz-zuid"),
    ("Noordoost-Brabant", "inkoop-ggz-zuid"),
    ("Zuidoost-Brabant", "inkoop-ggz-zuid"),
    ("Noord- en Midden-Limburg", "inkoop-ggz-zuid"),
    ("Zuid-Limburg", "inkoop-ggz-zuid"),
)

# fmt: off
# Invented names; any resemblance to a real organisation is a coincidence.
INSTITUTION_NAMES = (
    "GGZ Lindehoeve", "Stichting Zeeduin Psychiatrie", "GGZ Veluwezoom-West",
    "Psychiatrisch Centrum De Horstweide", "GGZ Westerkwartier-Oost", "Eemhof GGZ Groep",
    "GGZ Maas en Peel", "Stichting Duinrand GGZ", "GGZ Rijnland-Oost",
    "Noorderpoort Psychiatrie", "Verslavingszorg Delta-Noord", "GGZ Twentse Poort",
    "Stichting Bergweide", "GGZ IJssel en Vecht", "Psychiatrisch Ziekenhuis Heidezicht",
    "GGZ Kempenhof", "Amstelhof GGZ", "GGZ Schelde en Kust", "Rijnstroom GGZ",
    "Stichting Waterlinie GGZ",
)
PRACTICE_PATTERNS = (
    "Psychologenpraktijk {s}", "Praktijk voor Psychotherapie {p}", "{s} & {s2} Psychologen",
    "GZ-praktijk {p}", "Psychotherapiepraktijk {s}", "Praktijk {p} GGZ",
)
SURNAMES = (
    "De Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "De Boer", "Bos",
    "Vos", "Peters", "Hendriks", "Dekker", "Van Leeuwen", "Brouwer", "De Wit", "Dijkstra",
    "De Graaf", "Van der Meer", "Kok", "Verhoeven", "Kuipers", "Schouten", "Willems",
)
PLACES = (
    "Kralingen", "Zuidas", "Oud-West", "Meerzicht", "Het Spoor", "De Linde", "Stadshagen",
    "Oosterpoort", "Wittevrouwen", "Stratum", "Brunssum", "Vathorst", "Leidsche Rijn",
    "Hoograven", "Zeeheldenkwartier", "Bergse Bos",
)
DIAGNOSES = (
    "adhd", "addiction", "anxiety", "depression", "psychotic", "personality", "autism",
    "eating", "trauma", "other",
)
# fmt: on
ADHD, ADDICTION = 0, 1

# Non-ADHD consults (the ADHD share is per provider); addiction is per provider too.
CONSULT_DIAGNOSES = {
    "anxiety": 0.21,
    "depression": 0.26,
    "psychotic": 0.07,
    "personality": 0.13,
    "autism": 0.08,
    "eating": 0.03,
    "trauma": 0.11,
    "other": 0.11,
}
STAY_DIAGNOSES = {
    "addiction": 0.14,
    "anxiety": 0.04,
    "depression": 0.16,
    "psychotic": 0.36,
    "personality": 0.12,
    "eating": 0.06,
    "trauma": 0.04,
    "other": 0.08,
}
# Consults a client has per month, by diagnosis: ADHD is mostly medication checks.
VISITS_PER_MONTH = (1.1, 2.0, 2.2, 2.2, 2.0, 2.8, 1.8, 2.5, 2.2, 1.6)
CLIENT_TURNOVER = 0.12  # share of a provider's active clients that leaves each month

# Zorgvraagtypen: 1-8 non-psychotic (1, 2 the lightest), 10-17 psychotic,
# 18-21 cognitive/organic, 0 not yet typed.
_NON_PSYCHOTIC = {0: 3, 1: 14, 2: 12, 3: 16, 4: 15, 5: 12, 6: 10, 7: 9, 8: 9}
CARE_DEMAND_TYPES = {
    "adhd": {0: 4, 1: 22, 2: 20, 3: 24, 4: 14, 5: 8, 6: 4, 7: 2, 8: 2},
    "addiction": {0: 3, 1: 4, 2: 5, 3: 10, 4: 14, 5: 18, 6: 16, 7: 14, 8: 16},
    "anxiety": _NON_PSYCHOTIC,
    "depression": _NON_PSYCHOTIC,
    "psychotic": {0: 2, 10: 10, 11: 14, 12: 14, 13: 16, 14: 16, 15: 12, 16: 9, 17: 7},
    "personality": {0: 2, 1: 4, 2: 6, 3: 10, 4: 16, 5: 18, 6: 16, 7: 14, 8: 14},
    "autism": {0: 3, 1: 10, 2: 12, 3: 20, 4: 20, 5: 15, 6: 10, 7: 5, 8: 5},
    "eating": {0: 2, 1: 4, 2: 6, 3: 14, 4: 18, 5: 20, 6: 16, 7: 10, 8: 10},
    "trauma": {0: 3, 1: 8, 2: 10, 3: 20, 4: 20, 5: 15, 6: 10, 7: 7, 8: 7},
    "other": {0: 10, 1: 10, 2: 10, 3: 12, 4: 10, 5: 8, 18: 10, 19: 10, 20: 10, 21: 10},
}

# Consult settings. Practices work in settings 1-3; institutions cover the rest.
PRACTICE_SETTINGS = {1: 0.55, 2: 0.30, 3: 0.15}
AMBULANT_SETTINGS = {1: 0.1, 2: 0.25, 3: 0.5, 4: 0.15}

# Individual consults 2025 (code CO + profession digit + minutes): cents for a
# GZ-psycholoog; other professions by factor. 45 min ≈ EUR 136.
CONSULT_MINUTES = {
    15: (4600, 6),
    30: (8600, 15),
    45: (13600, 40),
    60: (17800, 22),
    75: (21900, 8),
    90: (26200, 6),
    120: (34500, 3),
}
PROFESSIONS = {0: (1.0, 45), 1: (1.35, 15), 2: (0.95, 10), 3: (0.78, 30)}
# Group consults, per patient: (group size, minutes) -> cents.
GROUP_CONSULTS = {
    (4, 60): (5600, 20),
    (6, 60): (4100, 25),
    (8, 60): (3300, 15),
    (6, 90): (6000, 20),
    (8, 90): (4900, 15),
    (10, 90): (4000, 5),
}
# Stay categories A-G, cents per day.
STAY_RATES = {
    "A": (27500, 10),
    "B": (31500, 20),
    "C": (36000, 28),
    "D": (42000, 20),
    "E": (48500, 12),
    "F": (55000, 6),
    "G": (63000, 4),
}
OTHER_ACTIVITIES = {
    "OV0001": (6500, 35),
    "OV0002": (3500, 25),
    "OV0003": (12000, 15),
    "OV0004": (2200, 20),
    "OV0010": (46000, 5),
}
TARIFF_BASE_YEAR = 2025
TARIFF_GROWTH = 1.035
STAY_DAYS = {
    **{d: 1.0 for d in range(1, 8)},
    **{d: 1.3 for d in range(8, 21)},
    **{d: 2.0 for d in range(21, 31)},
    31: 8.0,
}
DETOX_STAY_DAYS = {d: 1.0 for d in range(3, 15)}
GROUP_PRACTITIONERS = {1: 45.0, 2: 47.4, 3: 7.2, 4: 0.4}
INDIVIDUAL_PRACTITIONERS = {1: 95.0, 2: 5.0}
SEASON = (1.0, 1.0, 1.06, 1.0, 0.96, 1.0, 0.82, 0.76, 1.02, 1.06, 1.05, 0.87)

CREDIT_RATE = 0.02
CORRECTION_RATE = 0.7  # share of credits followed by a corrected re-declaration
MISSING_FIELDS = ("region", "service_date", "amount_cents", "trajectory_id", "setting")

# Entry tags: how a prepared line is emitted (REDELIVERED: a debit delivered twice).
REDELIVERED, DEBIT, CORRECTION, CREDIT, DUP_LINE, DUP_CREDIT, ORPHAN, MALFORMED = range(-1, 7)
# Activities of a drawn line.
CONSULT, STAY, OTHER = 0, 1, 2

VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # uuid4 variant nibble
HOLIDAYS = {(1, 1), (12, 25), (12, 26)}  # no consults on these days

T = 1024  # size of the precomputed choice tables (indexed with getrandbits(10))


def weighted_table(weights: Mapping[Any, float]) -> tuple[Any, ...]:
    """A T-long tuple with each value repeated in proportion to its weight."""
    total = sum(weights.values())
    raw = [(v, w * T / total) for v, w in weights.items()]
    counts = {v: int(x) for v, x in raw}
    rest = T - sum(counts.values())
    for v, _ in sorted(raw, key=lambda vx: vx[1] - int(vx[1]), reverse=True)[:rest]:
        counts[v] += 1
    return tuple(v for v, _ in raw for _ in range(counts[v]))


def mean(table: tuple[Any, ...]) -> float:
    return sum(table) / len(table)


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder)."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    raw = [w * total / s for w in weights]
    out = [int(x) for x in raw]
    rest = total - sum(out)
    order = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))
    for i in order[:rest]:
        out[i] += 1
    return out


PRACTICE_SETTINGS_T = weighted_table(PRACTICE_SETTINGS)


@dataclass(frozen=True, slots=True)
class Choices:
    """The choice tables a history draws its lines from, built once per history."""

    diag_stay: tuple[int, ...]
    diag_other: tuple[int, ...]
    care_demand_types: tuple[tuple[int, ...], ...]  # by diagnosis index
    group_practitioners: tuple[int, ...]
    individual_practitioners: tuple[int, ...]
    stay_days: tuple[int, ...]
    detox_days: tuple[int, ...]
    ambulant_settings: tuple[int, ...]
    tariffs: dict[int, dict[str, tuple[Any, ...]]]  # year -> kind -> (code, cents)


def build_choices(years: tuple[int, ...]) -> Choices:
    return Choices(
        diag_stay=weighted_table({DIAGNOSES.index(k): v for k, v in STAY_DIAGNOSES.items()}),
        diag_other=weighted_table(
            {DIAGNOSES.index(k): v for k, v in CONSULT_DIAGNOSES.items()} | {ADDICTION: 0.06}
        ),
        care_demand_types=tuple(weighted_table(CARE_DEMAND_TYPES[d]) for d in DIAGNOSES),
        group_practitioners=weighted_table(GROUP_PRACTITIONERS),
        individual_practitioners=weighted_table(INDIVIDUAL_PRACTITIONERS),
        stay_days=weighted_table(STAY_DAYS),
        detox_days=weighted_table(DETOX_STAY_DAYS),
        ambulant_settings=weighted_table(AMBULANT_SETTINGS),
        tariffs={y: _tariffs(y) for y in range(min(years[0], TARIFF_BASE_YEAR), years[-1] + 1)},
    )


def _tariffs(y: int) -> dict[str, tuple[Any, ...]]:
    """(code, cents) tables of one year: 2025 tariffs grown by TARIFF_GROWTH a year."""
    f = TARIFF_GROWTH ** (y - TARIFF_BASE_YEAR)
    indiv = {}
    for minutes, (cents, w) in CONSULT_MINUTES.items():
        for prof, (pf, pw) in PROFESSIONS.items():
            indiv[(f"CO{prof}{minutes:03d}", round(cents * pf * f))] = w * pw
    group = {
        (f"CO9{size:02d}{mins // 30}", round(c * f)): w
        for (size, mins), (c, w) in GROUP_CONSULTS.items()
    }
    return {
        "indiv": weighted_table(indiv),
        "group": weighted_table(group),
        "stay": weighted_table({(f"VB{k}", round(c * f)): w for k, (c, w) in STAY_RATES.items()}),
        "other": weighted_table({(k, round(c * f)): w for k, (c, w) in OTHER_ACTIVITIES.items()}),
    }
