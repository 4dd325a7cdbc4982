"""A realistic, seeded synthetic history of GGZ declarations and contracts.

`generate()` writes three files that the demo, the replay command and the tests share:

- ``declarations.ndjson`` (or ``.ndjson.gz``): one declaration (SPEC §2) per line, in
  ``submitted_at`` order. Providers submit each service month's lines in a few files a
  few business days after month end, so the lines of one provider come in runs.
- ``contracts.ndjson``: contract events (SPEC §3) in ``updated_at`` order: version 1 per
  provider and year in the December before, plus a few version-2 adjustments in Q4.
- ``planted.json``: the anomalies planted on purpose (provider, year, rule, the alert id
  a correct monitor raises and the values it should see), the stream faults (redelivered
  events, a duplicate line, a duplicate and an orphan credit, malformed lines) and the
  expected acceptance counts.

In ``expected`` of an anomaly, ``value`` and ``threshold`` are what the alert carries:
for the line-driven rules (ceiling, zvt mismatch) at the line that fires it, whose
``submitted_at`` is ``event_time``; for the structural rules at the end of the input.

`iter_history()` yields the same events (contracts merged in by event time) without
touching the disk, so the demo can stream them live.

Everything derives from one `random.Random(seed)` consumed in a fixed order, so the same
options give byte-identical files. Provider names are invented; any resemblance to a
real organisation is a coincidence.

Shares that decide whether a rule fires (group, digital, ADHD, detox, stays) are drawn
with jittered accumulators instead of independent coin flips: the sequence still looks
random, but a provider's yearly share stays within a line or two of its target, so the
normal providers stay clear of the thresholds and only the planted ones cross them.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from random import Random
from typing import Any, NamedTuple

import orjson

__all__ = [
    "GenerateOptions",
    "GenerateSummary",
    "HistoryItem",
    "PlantedAnomaly",
    "generate",
    "iter_history",
]

# --------------------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    providers: int = 40
    lines: int = 200_000  # total declaration lines (debits + credits + malformed)
    years: tuple[int, ...] = (2025, 2026)
    seed: int = 1
    gzip: bool = False  # write declarations.ndjson.gz instead of .ndjson
    malformed_rate: float = 0.0005  # share of deliberately bad lines


@dataclass(frozen=True, slots=True)
class PlantedAnomaly:
    """An anomaly planted on purpose; `expected` holds what a correct monitor sees."""

    provider_agb: str
    provider_name: str
    year: int
    rule: str
    alert_id: str
    expected: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    declarations_path: Path
    contracts_path: Path
    planted_path: Path
    providers: int
    lines: int  # lines written to the declarations file
    contracts: int  # contract events written
    counts: dict[str, int]  # lines by kind (see KINDS); sums to `lines`
    acceptance: dict[str, Any]  # expected counts of a correct consumer (SPEC §6 snapshot)
    planted: tuple[PlantedAnomaly, ...]
    skipped: tuple[str, ...]  # anomalies that could not be planted at this size, with why

    def describe(self) -> str:
        """A few lines for the command line: what was written and what was planted."""
        kinds = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in self.counts.items() if n)
        out = [
            f"{self.declarations_path}: {self.lines:,} lines ({kinds})",
            f"{self.contracts_path}: {self.contracts:,} contract events "
            f"for {self.providers} providers",
            f"{self.planted_path}: {len(self.planted)} planted anomalies",
        ]
        out += [f"  {a.alert_id}  {a.provider_name}" for a in self.planted]
        out += [f"  not planted: {s}" for s in self.skipped]
        return "\n".join(out)


class HistoryItem(NamedTuple):
    """One event of the history: a declaration line or a contract event."""

    kind: str  # "declaration" | "contract"
    key: str  # provider AGB for declarations, "<agb>:<year>" for contracts
    value: bytes  # one JSON object (or a deliberately malformed line), no newline


# Line kinds counted in GenerateSummary.counts.
KINDS = (
    "debit",  # first declaration of a line
    "correction",  # corrected re-declaration after a credit (a debit with a new line_id)
    "credit",  # reverses an earlier debit
    "redelivery",  # exact copy of an earlier line, same event_id
    "duplicate_line",  # debit resent for an already debited line_id, new event_id
    "duplicate_credit",  # credit resent for an already credited line_id, new event_id
    "orphan_credit",  # credit for a line_id that was never debited
    "malformed_invalid_json",
    "malformed_missing_field",
    "malformed_bsn_client_ref",
)

MIN_LINES = 100

# Default policy parameters (SPEC §5) the planted anomalies are checked against.
GROUP_SHARE_FACTOR = 0.5
MIN_CONSULTS = 200
STAFFING_MIN_COUNT = 10
STAFFING_MIN_SHARE = 0.05
DETOX_THRESHOLD = 0.5
DETOX_MIN_LINES = 20
ADHD_GROWTH_THRESHOLD = 0.25
ADHD_MIN_BASE = 30
DIGITAL_TARGET = 0.25
CEILING_EARLY_THRESHOLD = 0.70


def generate(out_dir: Path, options: GenerateOptions) -> GenerateSummary:
    """Write declarations, contracts and planted.json into `out_dir`; return a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "declarations.ndjson.gz" if options.gzip else "declarations.ndjson"
    declarations_path = out_dir / name
    contracts_path = out_dir / "contracts.ndjson"
    planted_path = out_dir / "planted.json"

    history = _History(options)
    lines = 0
    with open(declarations_path, "wb") as raw:
        sink: Any = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
            if options.gzip
            else raw
        )
        for batch in history.batches():
            if batch:
                lines += len(batch)
                sink.write(b"".join([value for _, _, value, _ in batch]))
        if options.gzip:
            sink.close()
    contracts = [value for _, value, _ in history.contracts]
    contracts_path.write_bytes(b"".join(c + b"\n" for c in contracts))

    report = history.report()
    planted_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return GenerateSummary(
        declarations_path=declarations_path,
        contracts_path=contracts_path,
        planted_path=planted_path,
        providers=options.providers,
        lines=lines,
        contracts=len(contracts),
        counts=dict(report["counts"]),
        acceptance=report["acceptance"],
        planted=tuple(PlantedAnomaly(**a) for a in report["anomalies"]),
        skipped=tuple(f"{s['rule']}: {s['reason']}" for s in report["skipped"]),
    )


def iter_history(options: GenerateOptions) -> Iterator[HistoryItem]:
    """Yield the history `generate()` would write, contracts merged in by event time.

    A contract event comes before every declaration with `submitted_at` ≥ its
    `updated_at`. Declaration values are exactly the lines of the declarations file.
    """
    return _History(options).items()


# --------------------------------------------------------------------------- domain tables

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

# Entry tags: how a prepared line is emitted.
_DEBIT, _CORRECTION, _CREDIT, _DUP_LINE, _DUP_CREDIT, _ORPHAN, _MALFORMED = range(7)
_CONSULT, _STAY, _OTHER = 0, 1, 2

VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # uuid4 variant nibble
HOLIDAYS = {(1, 1), (12, 25), (12, 26)}  # no consults on these days

T = 1024  # size of the precomputed choice tables (indexed with getrandbits(10))


def _table(weights: dict[Any, float]) -> tuple[Any, ...]:
    """A T-long tuple with each value repeated in proportion to its weight."""
    total = sum(weights.values())
    raw = [(v, w * T / total) for v, w in weights.items()]
    counts = {v: int(x) for v, x in raw}
    rest = T - sum(counts.values())
    for v, _ in sorted(raw, key=lambda vx: vx[1] - int(vx[1]), reverse=True)[:rest]:
        counts[v] += 1
    return tuple(v for v, _ in raw for _ in range(counts[v]))


def _mean(table: tuple[Any, ...]) -> float:
    return sum(table) / len(table)


def _allocate(total: int, weights: list[float]) -> list[int]:
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


def _offset(d: date) -> str:
    """UTC offset of Europe/Amsterdam on day `d` during working hours."""
    start = date(d.year, 3, 31)
    start -= timedelta(days=(start.weekday() + 1) % 7)
    end = date(d.year, 10, 31)
    end -= timedelta(days=(end.weekday() + 1) % 7)
    return "+02:00" if start <= d < end else "+01:00"


def _bsn(rng: Random) -> str:
    """A 9-digit number passing the BSN eleven-test: the shape the acceptance rejects."""
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        digits[0] = digits[0] or 1
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10:
            return "".join(map(str, digits)) + str(last)


# --------------------------------------------------------------------------- world


@dataclass(slots=True)
class _Provider:
    index: int
    agb: str
    name: str
    region: str
    purchaser: str
    institution: bool
    weight: float
    growth: float
    departments: tuple[str, ...]
    stay: float
    other: float
    group: float
    digital: float
    adhd: float
    addiction: float
    detox: float
    clinical_detox: float
    forensic: float
    consult_settings: tuple[int, ...]
    consult_diagnoses: tuple[int, ...]
    # per year overrides, set by planting: year -> {attribute: value}
    overrides: dict[int, dict[str, Any]] = field(default_factory=dict)
    adhd_boost: dict[tuple[int, int], float] = field(default_factory=dict)
    mismatch_years: frozenset[int] = frozenset()
    acc: list[float] = field(default_factory=list)
    pools: list[list[tuple[str, int, str]]] = field(default_factory=list)
    clients: int = 0
    lines: int = 0


class _History:
    """Builds the world from the options, then emits it month by month."""

    def __init__(self, options: GenerateOptions) -> None:
        _check(options)
        self.options = options
        self.years = tuple(sorted(set(options.years)))
        self.rng = Random(options.seed)
        self.counts = dict.fromkeys(KINDS, 0)
        self.faults: dict[str, list[str]] = {
            "redelivered_event_ids": [],
            "duplicate_line_ids": [],
            "duplicate_credit_line_ids": [],
            "orphan_credit_line_ids": [],
        }
        self.skipped: list[dict[str, str]] = []
        self.plants: list[dict[str, Any]] = []
        self._tables()
        self._providers()
        self._plan()
        self._plant()
        self._contracts()
        self._started = False

    # ---------------------------------------------------------------- setup

    def _tables(self) -> None:
        self.diag_tables = {
            "stay": _table({DIAGNOSES.index(k): v for k, v in STAY_DIAGNOSES.items()}),
            "other": _table(
                {DIAGNOSES.index(k): v for k, v in CONSULT_DIAGNOSES.items()} | {ADDICTION: 0.06}
            ),
        }
        self.cdt_tables = tuple(_table(CARE_DEMAND_TYPES[d]) for d in DIAGNOSES)
        self.group_pract = _table(GROUP_PRACTITIONERS)
        self.indiv_pract = _table(INDIVIDUAL_PRACTITIONERS)
        self.stay_days = _table(STAY_DAYS)
        self.detox_days = _table(DETOX_STAY_DAYS)
        self.ambulant_settings = _table(AMBULANT_SETTINGS)
        self.tariffs: dict[int, dict[str, tuple[Any, ...]]] = {}
        first, last = self.years[0], self.years[-1]
        for y in range(min(first, TARIFF_BASE_YEAR), last + 1):
            f = TARIFF_GROWTH ** (y - TARIFF_BASE_YEAR)
            indiv = {}
            for minutes, (cents, w) in CONSULT_MINUTES.items():
                for prof, (pf, pw) in PROFESSIONS.items():
                    indiv[(f"CO{prof}{minutes:03d}", round(cents * pf * f))] = w * pw
            group = {
                (f"CO9{size:02d}{mins // 30}", round(c * f)): w
                for (size, mins), (c, w) in GROUP_CONSULTS.items()
            }
            self.tariffs[y] = {
                "indiv": _table(indiv),
                "group": _table(group),
                "stay": _table({(f"VB{k}", round(c * f)): w for k, (c, w) in STAY_RATES.items()}),
                "other": _table({(k, round(c * f)): w for k, (c, w) in OTHER_ACTIVITIES.items()}),
            }

    def _providers(self) -> None:
        rng = self.rng
        n = self.options.providers
        weights = [rng.uniform(0.85, 1.15) / (r + 1) for r in range(n)]
        order = sorted(range(n), key=lambda i: -weights[i])
        institutions = max(1, round(n * 0.25))
        agbs: set[str] = set()
        names: set[str] = set()
        inst_names = list(INSTITUTION_NAMES)
        rng.shuffle(inst_names)
        self.providers: list[_Provider] = []
        for rank, i in enumerate(order):
            inst = rank < institutions
            while True:
                agb = ("06" if inst else "94") + f"{rng.randrange(10**6):06d}"
                if agb not in agbs:
                    agbs.add(agb)
                    break
            name = self._name(inst, inst_names, names)
            region, purchaser = REGIONS[rng.randrange(len(REGIONS))]
            forensic = 0.25 if inst and rng.random() < 0.4 else 0.0
            topggz = inst and rng.random() < 0.6
            if inst:
                settings = {1: 0.04, 2: 0.14, 3: 0.38, 4: 0.13, 5: 0.12, 8: 0.10 if topggz else 0}
                if forensic:
                    settings |= {6: 0.04, 7: 0.05}
                depts = ["ambulant", "kliniek", "fact", "ouderen"]
                depts += ["topggz"] * topggz + ["forensisch"] * bool(forensic)
                if rng.random() < 0.6:
                    depts.append("verslavingszorg")
            else:
                settings, depts = dict(PRACTICE_SETTINGS), []
            addiction = rng.uniform(0.04, 0.11) if inst else rng.uniform(0.0, 0.03)
            diag = {DIAGNOSES.index(k): v for k, v in CONSULT_DIAGNOSES.items()}
            diag[ADDICTION] = addiction / (1 - addiction)
            self.providers.append(
                _Provider(
                    index=rank,
                    agb=agb,
                    name=name,
                    region=region,
                    purchaser=purchaser,
                    institution=inst,
                    weight=weights[i],
                    growth=rng.uniform(-0.04, 0.06),
                    departments=tuple(depts),
                    stay=rng.uniform(0.13, 0.21) if inst else 0.0,
                    other=rng.uniform(0.05, 0.10),
                    group=rng.uniform(0.09, 0.17),
                    digital=rng.uniform(0.29, 0.40),
                    adhd=rng.uniform(0.08, 0.15) if inst else rng.uniform(0.10, 0.20),
                    addiction=addiction,
                    detox=0.12 if inst else 0.05,
                    clinical_detox=rng.uniform(0.12, 0.32) if inst else 0.0,
                    forensic=forensic,
                    consult_settings=_table({k: v for k, v in settings.items() if v}),
                    consult_diagnoses=_table(diag),
                    acc=[rng.random() for _ in range(8)],
                    pools=[[] for _ in DIAGNOSES],
                )
            )

    def _name(self, inst: bool, inst_names: list[str], taken: set[str]) -> str:
        rng = self.rng
        for attempt in range(50):
            if inst and inst_names:
                name = inst_names.pop()
            elif inst:
                name = f"GGZ {PLACES[rng.randrange(len(PLACES))]}"
            else:
                pattern = PRACTICE_PATTERNS[rng.randrange(len(PRACTICE_PATTERNS))]
                s, s2 = rng.sample(SURNAMES, 2)
                name = pattern.format(s=s, s2=s2, p=PLACES[rng.randrange(len(PLACES))])
            if attempt > 20:
                name = f"{name} {attempt}"
            if name not in taken:
                taken.add(name)
                return name
        raise AssertionError("unreachable: names are numbered after 20 attempts")

    def _plan(self) -> None:
        """Fix how many lines of each kind go into every (provider, service month) cell."""
        o, rng = self.options, self.rng
        malformed = round(o.lines * o.malformed_rate)
        redeliveries = min(10, max(1, o.lines // 20_000))
        singles = 3  # duplicate line, duplicate credit, orphan credit
        budget = o.lines - malformed - redeliveries - singles
        debits = int(budget / (1 + CREDIT_RATE * (1 + CORRECTION_RATE)))
        credits = round(debits * CREDIT_RATE)
        corrections = round(credits * CORRECTION_RATE)
        debits = budget - credits - corrections

        # cells: (provider, year, month); the index of a month is year * 12 + month - 1
        self.cells: list[tuple[int, int, int]] = []
        weights: list[float] = []
        for p in self.providers:
            for yi, y in enumerate(self.years):
                for m in range(1, 13):
                    self.cells.append((p.index, y, m))
                    weights.append(p.weight * (1 + p.growth) ** yi * SEASON[m - 1])
        n = _allocate(debits, weights)
        c = _allocate(credits, [float(x) for x in n])
        k = _allocate(corrections, [float(x) for x in c])
        bad = _allocate(malformed, [float(x) for x in n])
        redo = [0] * len(n)
        filled = [i for i, x in enumerate(n) if x]
        for i in rng.choices(filled, weights=[n[i] for i in filled], k=redeliveries):
            redo[i] += 1
        with_room = [i for i in filled if n[i] > c[i]]
        with_credit = [i for i in filled if c[i]]
        self.cell_plan = {
            cell: [n[i], c[i], k[i], bad[i], redo[i], 0] for i, cell in enumerate(self.cells)
        }
        # one-off faults, as bit flags in the last slot: 1 duplicate line, 2 duplicate
        # credit, 4 orphan credit
        for flag, pool in ((1, with_room), (2, with_credit), (4, filled)):
            self.cell_plan[self.cells[rng.choice(pool)]][5] |= flag
        # lines per provider-year, for sizing ceilings and choosing planted providers
        self.volume: dict[tuple[int, int], int] = {}
        for (pi, y, _), x in zip(self.cells, n, strict=True):
            self.volume[(pi, y)] = self.volume.get((pi, y), 0) + x

    # ---------------------------------------------------------------- planting

    def _plant(self) -> None:
        rng, years = self.rng, self.years
        target = years[-1]
        used: set[int] = set()

        def consults(p: _Provider, y: int) -> float:
            return self.volume[(p.index, y)] * (1 - p.stay) * (1 - p.other)

        def pick(rule: str, ok: Any, why: str) -> _Provider | None:
            candidates = [p for p in self.providers if p.index not in used and ok(p)]
            if not candidates:
                self.skipped.append({"rule": rule, "reason": f"{why} (one provider per anomaly)"})
                return None
            p = candidates[rng.randrange(len(candidates))]
            used.add(p.index)
            return p

        # Rules that need an institution first: with few providers they are scarce.
        def detox_ok(p: _Provider) -> bool:
            return p.institution and self.volume[(p.index, target)] * 0.22 * 0.3 >= 40

        p = pick("clinical_detox_high", detox_ok, "no institution large enough")
        if p:
            p.addiction = 0.22
            diag = {DIAGNOSES.index(k): v for k, v in CONSULT_DIAGNOSES.items()}
            diag[ADDICTION] = 0.22 / 0.78
            p.consult_diagnoses = _table(diag)
            p.overrides.setdefault(target, {}).update(detox=0.3, clinical_detox=0.68)
            if "verslavingszorg" not in p.departments:
                p.departments += ("verslavingszorg",)
            self.plants.append({"rule": "clinical_detox_high", "p": p, "year": target})

        if target >= 2026:
            p = pick(
                "zvt_setting_mismatch",
                lambda p: p.institution and self.volume[(p.index, target)] >= 300,
                "no institution with 300+ lines",
            )
            if p:
                if 8 not in p.consult_settings:
                    p.consult_settings = p.consult_settings[: T - 100] + (8,) * 100
                    p.departments += ("topggz",) * ("topggz" not in p.departments)
                p.mismatch_years = frozenset({target})
                self.plants.append({"rule": "zvt_setting_mismatch", "p": p, "year": target})
        else:
            self.skipped.append({"rule": "zvt_setting_mismatch", "reason": "no year >= 2026"})

        # ADHD growth: a quarter of the target year against the same quarter a year before.
        base_year = target - 1
        if base_year in years:
            rate = 0.24

            def adhd_ok(p: _Provider) -> bool:
                k_q = self.volume[(p.index, base_year)] / 4 * (1 - p.stay) * rate
                return (k_q / 3 / VISITS_PER_MONTH[ADHD]) * (1 + 2 * CLIENT_TURNOVER) >= 42

            p = pick("adhd_growth", adhd_ok, "no provider large enough for 30+ ADHD clients")
            if p:
                q = 1 + rng.randrange(4)
                p.adhd = rate
                p.adhd_boost[(target, q)] = 1.7
                self.plants.append({"rule": "adhd_growth", "p": p, "year": target, "q": q})
        else:
            self.skipped.append({"rule": "adhd_growth", "reason": "needs two consecutive years"})

        p = pick(
            "group_consult_staffing",
            lambda p: consults(p, target) * p.group >= 110,
            "no provider with 110+ group consults",
        )
        if p:
            p.overrides.setdefault(target, {})["ge4"] = 0.12
            self.plants.append({"rule": "group_consult_staffing", "p": p, "year": target})

        def structural_ok(p: _Provider) -> bool:
            return all(consults(p, y) >= 2 * MIN_CONSULTS for y in years)

        p = pick("group_share_low", structural_ok, "no provider with 400+ consults a year")
        if p:
            p.group = 0.03
            for y in years:
                self.plants.append({"rule": "group_share_low", "p": p, "year": y})

        p = pick("digital_share_low", structural_ok, "no provider with 400+ consults a year")
        if p:
            p.digital = 0.12
            for y in years:
                self.plants.append({"rule": "digital_share_low", "p": p, "year": y})

        p = pick(
            "ceiling_utilisation",
            lambda p: self.volume[(p.index, target)] >= 300,
            "no provider with 300+ lines",
        )
        self.early_ceiling = (p.index, target) if p else None
        if p:
            self.plants.append({"rule": "ceiling_utilisation", "p": p, "year": target})

    # ---------------------------------------------------------------- contracts

    def _expected_net(self, p: _Provider, y: int) -> float:
        """Expected net cents of a provider-year, from its mix and the tariff tables."""
        t = self.tariffs[y]
        ov = p.overrides.get(y, {})
        group = self._group_rate(p, y)
        indiv = sum(a for _, a in t["indiv"]) / T
        grp = sum(a for _, a in t["group"]) / T
        stay = sum(a for _, a in t["stay"]) / T * _mean(self.stay_days)
        other = sum(a for _, a in t["other"]) / T
        consult = group * grp + (1 - group) * indiv
        stay_share = ov.get("stay", p.stay)
        per_line = stay_share * stay + (1 - stay_share) * (
            p.other * other + (1 - p.other) * consult
        )
        return per_line * self.volume[(p.index, y)] * (1 - CREDIT_RATE * (1 - CORRECTION_RATE))

    def _contracts(self) -> None:
        rng = self.rng
        self.contracts: list[tuple[int, bytes, str]] = []
        self.ceilings: dict[tuple[int, int], list[int]] = {}
        for y in self.years:
            # About one contract in eight is adjusted in Q4, three in four of them raised.
            others = [p.index for p in self.providers if self.early_ceiling != (p.index, y)]
            adjusted = rng.sample(others, min(len(others), round(len(self.providers) / 8)))
            lowered = set(adjusted[: len(adjusted) // 4])
            for p in self.providers:
                expected = self._expected_net(p, y)
                if self.early_ceiling == (p.index, y):
                    v1, v2 = expected / 1.9, None
                elif p.index in adjusted and p.index not in lowered:  # heading over: raised
                    v2 = expected / rng.uniform(0.86, 1.0)
                    v1 = v2 / rng.uniform(1.08, 1.25)
                elif p.index in lowered:  # realisation far below the ceiling: lowered
                    v1 = expected / rng.uniform(0.6, 0.72)
                    v2 = v1 * rng.uniform(0.82, 0.9)
                else:
                    r = rng.random()
                    if r < 0.07:
                        u = rng.uniform(0.55, 0.75)
                    elif r < 0.14:
                        u = rng.uniform(1.05, 1.2)
                    else:
                        u = rng.uniform(0.76, 1.04)
                    v1, v2 = expected / u, None
                versions = [v1] if v2 is None else [v1, v2]
                self.ceilings[(p.index, y)] = [_round_ceiling(v) for v in versions]
                for version, ceiling in enumerate(self.ceilings[(p.index, y)], start=1):
                    if version == 1:
                        day = self._business_day(y - 1, 12, 1, 20)
                    else:
                        month = 10 + rng.randrange(3)
                        day = self._business_day(y, month, 1, 10 if month == 12 else 28)
                    sec = rng.randrange(9 * 3600, 17 * 3600)
                    updated_at, epoch = self._timestamp(day, sec)
                    event = {
                        "schema": "ggz.contract/1",
                        "provider_agb": p.agb,
                        "year": y,
                        "ceiling_cents": ceiling,
                        "purchaser": p.purchaser,
                        "provider_name": p.name,
                        "region": p.region,
                        "version": version,
                        "updated_at": updated_at,
                    }
                    self.contracts.append((epoch, orjson.dumps(event), f"{p.agb}:{y}"))
        self.contracts.sort(key=lambda c: c[0])

    def _business_day(self, y: int, m: int, first: int, last: int) -> date:
        days = [
            date(y, m, d)
            for d in range(first, last + 1)
            if date(y, m, d).weekday() < 5 and (m, d) not in HOLIDAYS
        ]
        return days[self.rng.randrange(len(days))]

    _epoch0 = date(1970, 1, 1)

    def _timestamp(self, d: date, sec: int) -> tuple[str, int]:
        off = _offset(d)
        h, rem = divmod(sec, 3600)
        text = f"{d.isoformat()}T{h:02d}:{rem // 60:02d}:{rem % 60:02d}{off}"
        return text, (d - self._epoch0).days * 86400 + sec - int(off[1:3]) * 3600

    # ---------------------------------------------------------------- rates

    def _group_rate(self, p: _Provider, y: int) -> float:
        # From 2026 insurers expect group treatment: normal providers move up a bit.
        return p.group * (1.1 if y >= 2026 and p.group > 0.05 else 1.0)

    # ---------------------------------------------------------------- emission

    def items(self) -> Iterator[HistoryItem]:
        """Declarations in file order, contract events merged in by event time."""
        contracts = self.contracts
        ci = 0
        for batch in self.batches():
            for epoch, _, value, agb in batch:
                while ci < len(contracts) and contracts[ci][0] <= epoch:
                    yield HistoryItem("contract", contracts[ci][2], contracts[ci][1])
                    ci += 1
                yield HistoryItem("declaration", agb, value[:-1])
        for _, value, key in contracts[ci:]:
            yield HistoryItem("contract", key, value)

    def batches(self) -> Iterator[list[tuple[int, int, bytes, str]]]:
        """Per submission month: (epoch, sequence, line + newline, AGB), in time order.

        Months are generated one after the other, so memory holds one month at a time;
        credits wait in `pending` for the later month they are submitted in.
        """
        if self._started:
            raise RuntimeError("a history is emitted once")
        self._started = True
        self.stats: dict[tuple[int, int], list[int]] = {}
        self.adhd: dict[tuple[int, int, int], dict[str, int]] = {}
        self.crossings: dict[float, tuple[str, float]] = {}
        self.first_mismatch: dict[tuple[int, int], str] = {}
        self.seq = 0
        self.malformed_turn = 0
        pending: dict[int, dict[int, list[tuple[dict[str, Any], int]]]] = {}
        sub = self.years[0] * 12 + 1  # February of the first year: January's lines
        last = self.years[-1] * 12 + 12  # January after the last year
        while sub <= last or pending:
            batch: list[tuple[int, int, bytes, str]] = []
            late = pending.pop(sub, {})
            sy, sm = divmod(sub - 1, 12)  # the service month
            for p in self.providers:
                plan = self.cell_plan.get((p.index, sy, sm + 1))
                entries = late.pop(p.index, [])
                if plan and plan[0]:
                    entries += self._cell(p, sy, sm + 1, plan, sub, pending)
                if entries:
                    self._emit(p, sub, entries, batch)
            batch.sort()
            yield batch
            sub += 1

    def _cell(
        self,
        p: _Provider,
        y: int,
        m: int,
        plan: list[int],
        sub: int,
        pending: dict[int, dict[int, list[tuple[dict[str, Any], int]]]],
    ) -> list[tuple[dict[str, Any], int]]:
        """Draw the service month's debits of one provider, and schedule their credits."""
        n, n_credit, n_correct, n_bad, n_redo, flags = plan
        rng = self.rng
        rnd, grb = rng.random, rng.getrandbits
        ov = p.overrides.get(y, {})
        q = (m - 1) // 3 + 1
        r_stay, r_other = p.stay, p.other
        r_adhd = p.adhd * p.adhd_boost.get((y, q), 1.0)
        r_group = self._group_rate(p, y)
        r_digital = p.digital
        r_ge4 = ov.get("ge4", 0.0)
        r_detox = ov.get("detox", p.detox)
        r_clin = ov.get("clinical_detox", p.clinical_detox)
        acc = p.acc
        diag_consult = p.consult_diagnoses
        diag_stay = self.diag_tables["stay"]
        diag_other = self.diag_tables["other"]
        group_pract, indiv_pract = self.group_pract, self.indiv_pract
        counts = [0] * len(DIAGNOSES)
        skeleton = []
        for _ in range(n):
            a = acc[0] + r_stay * (0.5 + rnd())
            if a >= 1.0:
                acc[0] = a - 1.0
                act = _STAY
                diag = diag_stay[grb(10)]
            else:
                acc[0] = a
                a = acc[1] + r_other * (0.5 + rnd())
                if a >= 1.0:
                    acc[1] = a - 1.0
                    act = _OTHER
                else:
                    acc[1] = a
                    act = _CONSULT
                a = acc[2] + r_adhd * (0.5 + rnd())
                if a >= 1.0:
                    acc[2] = a - 1.0
                    diag = ADHD
                else:
                    acc[2] = a
                    diag = diag_consult[grb(10)] if act == _CONSULT else diag_other[grb(10)]
            detox = 0
            if diag == ADDICTION:
                a = acc[3] + r_detox * (0.5 + rnd())
                if a >= 1.0:
                    acc[3] = a - 1.0
                    a = acc[4] + r_clin * (0.5 + rnd())
                    if a >= 1.0:
                        acc[4] = a - 1.0
                        detox = 2  # clinical
                    else:
                        acc[4] = a
                        detox = 1  # ambulant
                        if act == _STAY:
                            act = _CONSULT
                else:
                    acc[3] = a
            group = pract = digital = 0
            if act == _CONSULT:
                a = acc[5] + r_group * (0.5 + rnd())
                if a >= 1.0:
                    acc[5] = a - 1.0
                    group = 1
                    if r_ge4:
                        a = acc[6] + r_ge4 * (0.5 + rnd())
                        if a >= 1.0:
                            acc[6] = a - 1.0
                            pract = 4 + (grb(2) == 0)
                        else:
                            acc[6] = a
                            pract = group_pract[grb(10)]
                    else:
                        pract = group_pract[grb(10)]
                else:
                    acc[5] = a
                    pract = indiv_pract[grb(10)]
                a = acc[7] + r_digital * (0.5 + rnd())
                if a >= 1.0:
                    acc[7] = a - 1.0
                    digital = 1
                else:
                    acc[7] = a
            counts[diag] += 1
            skeleton.append((act, diag, detox, group, pract, digital))

        orders = [self._update_pool(p, d, counts[d]) for d in range(len(DIAGNOSES))]
        cursors = [0] * len(DIAGNOSES)

        tariffs = self.tariffs[y]
        t_indiv, t_group, t_stay, t_other = (
            tariffs["indiv"],
            tariffs["group"],
            tariffs["stay"],
            tariffs["other"],
        )
        dim = (date(y + (m == 12), m % 12 + 1, 1) - date(y, m, 1)).days
        dates = [f"{y}-{m:02d}-{d:02d}" for d in range(dim + 1)]
        weekdays = [
            d for d in range(1, dim + 1) if date(y, m, d).weekday() < 5 and (m, d) not in HOLIDAYS
        ]
        n_wd = len(weekdays)
        settings = p.consult_settings
        ambulant = self.ambulant_settings if p.institution else PRACTICE_SETTINGS_T
        stay_days, detox_days = self.stay_days, self.detox_days
        strict = y >= 2026 and y not in p.mismatch_years
        inst = p.institution
        has_vz = "verslavingszorg" in p.departments
        has_top = "topggz" in p.departments
        agb, region = p.agb, p.region
        ysuffix = f"-{y}"
        forensic = p.forensic
        lines: list[tuple[dict[str, Any], int]] = []
        for act, diag, detox, group, pract, digital in skeleton:
            order = orders[diag]
            ref, cdt, traj = order[cursors[diag] % len(order)]
            cursors[diag] += 1
            if act == _STAY:
                setting = 6 if forensic and rnd() < forensic and detox != 2 else 5
                days = min((detox_days if detox == 2 else stay_days)[grb(10)], dim)
                day = 1 if days == dim else 1 + int(rnd() * (dim - days + 1))
                code, rate = t_stay[grb(10)]
                amount = rate * days
            else:
                if detox == 2:
                    setting = 5
                elif detox == 1:
                    setting = ambulant[grb(10)]
                else:
                    setting = settings[grb(10)]
                day = weekdays[int(rnd() * n_wd)]
                if act == _CONSULT:
                    code, amount = (t_group if group else t_indiv)[grb(10)]
                else:
                    code, amount = t_other[grb(10)]
            if strict and cdt <= 2 and cdt and setting in (5, 6, 8):
                cdt = 3  # re-typed at admission: 1 and 2 are not reimbursed there from 2026
            line_id = f"{agb}-{p.lines:08d}"
            p.lines += 1
            d: dict[str, Any] = {
                "schema": "ggz.declaration/1",
                "event_id": "",
                "line_id": line_id,
                "kind": "debit",
                "provider_agb": agb,
            }
            if inst:
                if setting in (6, 7):
                    dept = "forensisch"
                elif act == _STAY or setting == 5:
                    dept = "kliniek"
                elif setting == 8 and has_top:
                    dept = "topggz"
                elif diag == ADDICTION and has_vz:
                    dept = "verslavingszorg"
                elif setting == 4:
                    dept = "fact"
                else:
                    dept = "ouderen" if grb(3) == 0 else "ambulant"
                d["department"] = dept
            d["region"] = region
            d["client_ref"] = ref
            d["trajectory_id"] = traj + ysuffix
            d["service_date"] = dates[day]
            d["submitted_at"] = ""
            if act == _CONSULT:
                d["activity"] = "consult"
                d["consult_mode"] = "group" if group else "individual"
                d["practitioners"] = pract
                d["digital"] = bool(digital)
            elif act == _STAY:
                d["activity"] = "stay"
                d["stay_days"] = days
            else:
                d["activity"] = "other"
            d["setting"] = setting
            d["care_demand_type"] = cdt
            d["diagnosis_group"] = DIAGNOSES[diag]
            if detox:
                d["detox"] = "clinical" if detox == 2 else "ambulant"
            d["amount_cents"] = amount
            d["prestatie_code"] = code
            lines.append((d, _DEBIT))

        # Credits arrive with a later submission of the same provider, often together
        # with the corrected line.
        credited = rng.sample(range(n), n_credit) if n_credit else []
        for j, i in enumerate(credited):
            target = sub + 1 + rng.randrange(3)
            bucket = pending.setdefault(target, {}).setdefault(p.index, [])
            bucket.append((lines[i][0], _CREDIT))
            if j < n_correct:
                bucket.append((lines[i][0], _CORRECTION))
            if j == 0 and flags & 2:
                dup = pending.setdefault(target + 1, {}).setdefault(p.index, [])
                dup.append((lines[i][0], _DUP_CREDIT))
        if flags & 1:
            free = sorted(set(range(n)) - set(credited))
            i = free[rng.randrange(len(free))]
            target = sub + 1 + rng.randrange(2)
            pending.setdefault(target, {}).setdefault(p.index, []).append((lines[i][0], _DUP_LINE))
        for _ in range(n_redo):
            i = rng.randrange(n)
            d, tag = lines[i]
            lines[i] = (d, -1)  # emitted twice
        extra: list[tuple[dict[str, Any], int]] = []
        if flags & 4:
            orphan = dict(lines[rng.randrange(n)][0])
            orphan["line_id"] = f"{agb}-{p.lines:08d}"
            p.lines += 1
            extra.append((orphan, _ORPHAN))
        for _ in range(n_bad):
            bad = dict(lines[rng.randrange(n)][0])
            bad["line_id"] = f"{agb}-{p.lines:08d}"
            p.lines += 1
            extra.append((bad, _MALFORMED))
        for e in extra:
            lines.insert(rng.randrange(len(lines) + 1), e)
        return lines

    def _update_pool(self, p: _Provider, diag: int, k: int) -> list[tuple[str, int, str]]:
        """Active clients of one diagnosis this month; every one of them gets a line.

        The pool follows the month's line count with some turnover, so the distinct
        clients of a quarter follow the volume closely instead of by chance.
        """
        pool = p.pools[diag]
        if not k:
            return pool
        rng = self.rng
        rng.shuffle(pool)
        leave = int(len(pool) * CLIENT_TURNOVER + rng.random())
        if leave:
            del pool[len(pool) - leave :]
        size = max(1, round(k / VISITS_PER_MONTH[diag]))
        if len(pool) > size:
            del pool[size:]
        cdts = self.cdt_tables[diag]
        salt = f"{self.options.seed}/{p.agb}/".encode()
        while len(pool) < size:
            p.clients += 1
            h = hashlib.blake2b(salt + str(p.clients).encode(), digest_size=10).hexdigest()
            pool.append((f"c-{h}", cdts[rng.getrandbits(10)], f"zt-{p.agb}-{p.clients:06d}"))
        return pool

    def _emit(
        self,
        p: _Provider,
        sub: int,
        entries: list[tuple[dict[str, Any], int]],
        batch: list[tuple[int, int, bytes, str]],
    ) -> None:
        """Split a provider's lines of one submission month into files and serialise them."""
        rng = self.rng
        grb = rng.getrandbits
        dumps = orjson.dumps
        sy, sm = divmod(sub, 12)
        n = len(entries)
        files = min(n, (1 + rng.randrange(3)) if p.institution else (1 + rng.randrange(2)))
        days = [
            date(sy, sm + 1, d)
            for d in range(1, 15)
            if date(sy, sm + 1, d).weekday() < 5 and (sm + 1, d) not in HOLIDAYS
        ]
        days = sorted(rng.sample(days, files))
        cuts = sorted(rng.sample(range(1, n), files - 1)) if files > 1 else []
        bounds = list(zip([0, *cuts], [*cuts, n], strict=True))
        counts = self.counts
        agb = p.agb
        for day, (lo, hi) in zip(days, bounds, strict=True):
            size = hi - lo
            rate = max((5, 10, 20, 40)[grb(2)], -(-size // 21600))
            start = rng.randrange(8 * 3600, 16 * 3600)
            base_text, base_epoch = self._timestamp(day, 0)
            date_part, offset = base_text[:11], base_text[19:]
            last_sec = -1
            stamp = ""
            for i in range(lo, hi):
                d, tag = entries[i]
                sec = start + (i - lo) // rate
                if sec != last_sec:
                    last_sec = sec
                    h, rem = divmod(sec, 3600)
                    stamp = f"{date_part}{h:02d}:{rem // 60:02d}:{rem % 60:02d}{offset}"
                epoch = base_epoch + sec
                h128 = f"{grb(128):032x}"
                event_id = (
                    f"{h128[:8]}-{h128[8:12]}-4{h128[13:16]}-"
                    f"{VARIANT[h128[16]]}{h128[17:20]}-{h128[20:]}"
                )
                # `+ b"\n"` also copies orjson's oversized buffer into a compact object
                if tag <= _DEBIT:  # _DEBIT, or -1: a debit delivered twice
                    d["event_id"] = event_id
                    d["submitted_at"] = stamp
                    value = dumps(d) + b"\n"
                    counts["debit"] += 1
                    self._track(p, d, 1, stamp)
                    if tag < 0:
                        self.seq += 1
                        batch.append((epoch, self.seq, value, agb))
                        counts["redelivery"] += 1
                        self.faults["redelivered_event_ids"].append(event_id)
                elif tag == _CORRECTION:
                    d = dict(d)
                    d["line_id"] = f"{p.agb}-{p.lines:08d}"
                    p.lines += 1
                    d["event_id"] = event_id
                    d["submitted_at"] = stamp
                    factor = (0.85, 0.9, 1.1, 1.15, 1.2, 1.25, 0.8, 1.05)[grb(3)]
                    d["amount_cents"] = max(1, round(d["amount_cents"] * factor))
                    value = dumps(d) + b"\n"
                    counts["correction"] += 1
                    self._track(p, d, 1, stamp)
                else:
                    d = dict(d)
                    d["event_id"] = event_id
                    d["submitted_at"] = stamp
                    if tag != _DUP_LINE:
                        d["kind"] = "credit"
                    if tag == _CREDIT:
                        counts["credit"] += 1
                        self._track(p, d, -1, stamp)
                    elif tag == _DUP_LINE:
                        counts["duplicate_line"] += 1
                        self.faults["duplicate_line_ids"].append(d["line_id"])
                    elif tag == _DUP_CREDIT:
                        counts["duplicate_credit"] += 1
                        self.faults["duplicate_credit_line_ids"].append(d["line_id"])
                    elif tag == _ORPHAN:
                        counts["orphan_credit"] += 1
                        self.faults["orphan_credit_line_ids"].append(d["line_id"])
                    else:
                        d["kind"] = "debit"
                        value = self._malform(d)
                    if tag != _MALFORMED:
                        value = dumps(d) + b"\n"
                self.seq += 1
                batch.append((epoch, self.seq, value, agb))

    def _malform(self, d: dict[str, Any]) -> bytes:
        turn = self.malformed_turn
        self.malformed_turn += 1
        if turn % 3 == 0:
            self.counts["malformed_invalid_json"] += 1
            raw = orjson.dumps(d)
            return raw[: 20 + self.rng.randrange(len(raw) - 40)] + b"\n"
        if turn % 3 == 1:
            self.counts["malformed_missing_field"] += 1
            del d[MISSING_FIELDS[(turn // 3) % len(MISSING_FIELDS)]]
            return orjson.dumps(d) + b"\n"
        self.counts["malformed_bsn_client_ref"] += 1
        d["client_ref"] = _bsn(self.rng)
        return orjson.dumps(d) + b"\n"

    # ---------------------------------------------------------------- bookkeeping

    def _track(self, p: _Provider, d: dict[str, Any], sign: int, stamp: str) -> None:
        """Net indicators of accepted lines, to report what the planted anomalies look like."""
        sd = d["service_date"]
        y = int(sd[:4])
        s = self.stats.get((p.index, y))
        if s is None:
            s = self.stats[(p.index, y)] = [0] * 10
        s[0] += sign * d["amount_cents"]
        if d["activity"] == "consult":
            s[1] += sign
            if d["consult_mode"] == "group":
                s[2] += sign
                if d["practitioners"] >= 4:
                    s[3] += sign
            if d["digital"]:
                s[4] += sign
        detox = d.get("detox")
        if detox == "clinical":
            s[5] += sign
        elif detox == "ambulant":
            s[6] += sign
        if y >= 2026 and d["care_demand_type"] in (1, 2) and d["setting"] in (5, 6, 8):
            s[7] += sign
            if s[7] > 0:
                self.first_mismatch.setdefault((p.index, y), stamp)
        if d["diagnosis_group"] == "adhd":
            key = (p.index, y, (int(sd[5:7]) - 1) // 3 + 1)
            clients = self.adhd.get(key)
            if clients is None:
                clients = self.adhd[key] = {}
            ref = d["client_ref"]
            left = clients.get(ref, 0) + sign
            if left:
                clients[ref] = left
            else:
                del clients[ref]
        if self.early_ceiling == (p.index, y):
            ceiling = self.ceilings[(p.index, y)][0]
            for threshold in (0.7, 0.9, 1.0):
                if s[0] >= threshold * ceiling and threshold not in self.crossings:
                    self.crossings[threshold] = (stamp, s[0] / ceiling)

    def report(self) -> dict[str, Any]:
        """The content of planted.json; call after `items()` is exhausted."""
        stats = self.stats
        years = self.years
        peers: dict[int, float | None] = {}
        for y in years:
            shares = [s[2] / s[1] for (_, sy), s in stats.items() if sy == y and s[1] >= 200]
            peers[y] = sum(shares) / len(shares) if shares else None
        anomalies: list[dict[str, Any]] = []
        skipped = list(self.skipped)
        for plant in self.plants:
            p: _Provider = plant["p"]
            y = plant["year"]
            rule = plant["rule"]
            s = stats.get((p.index, y), [0] * 10)
            consults, group, ge4, digital, clin, amb, mismatch = s[1:8]
            alert_id = f"{rule}:{p.agb}:{y}"
            if rule == "group_share_low":
                share = group / consults if consults else 0.0
                peer = peers[y] or 0.0
                threshold = GROUP_SHARE_FACTOR * peer
                holds = consults >= MIN_CONSULTS and share < threshold
                expected = {
                    "value": share,
                    "threshold": threshold,
                    "consults": consults,
                    "group_consults": group,
                    "peer_group_share_mean": peer,
                }
            elif rule == "group_consult_staffing":
                share = ge4 / group if group else 0.0
                holds = ge4 >= STAFFING_MIN_COUNT and share >= STAFFING_MIN_SHARE
                expected = {
                    "value": ge4,
                    "threshold": STAFFING_MIN_COUNT,
                    "group_ge4": ge4,
                    "group_consults": group,
                    "group_ge4_share": share,
                }
            elif rule == "clinical_detox_high":
                lines = clin + amb
                share = clin / lines if lines else 0.0
                holds = lines >= DETOX_MIN_LINES and share >= DETOX_THRESHOLD
                expected = {
                    "value": share,
                    "threshold": DETOX_THRESHOLD,
                    "detox_clinical": clin,
                    "detox_ambulant": amb,
                }
            elif rule == "adhd_growth":
                q = plant["q"]
                now = len(self.adhd.get((p.index, y, q), {}))
                base = len(self.adhd.get((p.index, y - 1, q), {}))
                growth = now / base - 1 if base else 0.0
                holds = base >= ADHD_MIN_BASE and growth >= ADHD_GROWTH_THRESHOLD
                alert_id += f":Q{q}"
                expected = {
                    "value": growth,
                    "threshold": ADHD_GROWTH_THRESHOLD,
                    "quarter": f"{y}-Q{q}",
                    "adhd_clients": now,
                    "base_quarter": f"{y - 1}-Q{q}",
                    "base_clients": base,
                }
            elif rule == "zvt_setting_mismatch":
                holds = mismatch >= 1
                expected = {
                    "value": 1,
                    "threshold": 1,
                    "mismatch_lines": mismatch,
                    "event_time": self.first_mismatch.get((p.index, y)),
                }
            elif rule == "digital_share_low":
                share = digital / consults if consults else 0.0
                holds = consults >= MIN_CONSULTS and share < DIGITAL_TARGET
                expected = {
                    "value": share,
                    "threshold": DIGITAL_TARGET,
                    "consults": consults,
                    "digital_consults": digital,
                }
            else:  # ceiling_utilisation: 70% reached before July
                ceiling = self.ceilings[(p.index, y)][0]
                crossed, value = self.crossings.get(CEILING_EARLY_THRESHOLD, ("", 0.0))
                holds = f"{y}-01" < crossed < f"{y}-07"
                alert_id += ":70"
                expected = {
                    "value": value,
                    "threshold": CEILING_EARLY_THRESHOLD,
                    "event_time": crossed,
                    "ceiling_cents": ceiling,
                    "final_utilisation": s[0] / ceiling,
                    "later_alert_ids": [
                        f"{rule}:{p.agb}:{y}:{t}" for t in (90, 100) if t / 100 in self.crossings
                    ],
                }
            if holds:
                anomalies.append(
                    {
                        "provider_agb": p.agb,
                        "provider_name": p.name,
                        "year": y,
                        "rule": rule,
                        "alert_id": alert_id,
                        "expected": expected,
                    }
                )
            else:
                skipped.append(
                    {
                        "rule": rule,
                        "reason": f"planted at {p.agb} in {y} but "
                        f"missed the default thresholds at this size: {expected}",
                    }
                )
        counts = self.counts
        malformed = {
            "invalid_json": counts["malformed_invalid_json"],
            "schema": counts["malformed_missing_field"],
            "bsn_like_client_ref": counts["malformed_bsn_client_ref"],
            "orphan_credit": counts["orphan_credit"],
            "batch_provider_mismatch": 0,
            "invalid_batch": 0,
        }
        return {
            "schema": "claimwatch.planted/1",
            "options": {
                k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.options).items()
            },
            "anomalies": anomalies,
            "skipped": skipped,
            "faults": dict(self.faults),
            "counts": dict(counts),
            "acceptance": {
                "accepted": counts["debit"] + counts["correction"] + counts["credit"],
                "duplicate": counts["redelivery"],
                "duplicate_line": counts["duplicate_line"],
                "duplicate_credit": counts["duplicate_credit"],
                "rejected": malformed,
            },
            "peers": {str(y): {"group_share_mean": peers[y]} for y in years},
        }


PRACTICE_SETTINGS_T = _table(PRACTICE_SETTINGS)


def _round_ceiling(cents: float) -> int:
    step = 100_000 if cents >= 10_000_000 else 10_000  # whole thousands / hundreds of euros
    return max(step, round(cents / step) * step)


def _check(o: GenerateOptions) -> None:
    if o.providers < 1:
        raise ValueError("providers must be at least 1")
    if o.lines < MIN_LINES:
        raise ValueError(f"lines must be at least {MIN_LINES}")
    if not o.years or any(not 2001 <= y <= 2099 for y in o.years):
        raise ValueError("years must be a non-empty list of calendar years")
    if not 0.0 <= o.malformed_rate <= 0.5:
        raise ValueError("malformed_rate must lie between 0 and 0.5")
    if math.isnan(o.malformed_rate):
        raise ValueError("malformed_rate must be a number")
