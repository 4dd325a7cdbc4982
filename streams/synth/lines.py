"""Drawing the lines of one (provider, service month) cell.

First a skeleton per line (activity, diagnosis, group, practitioners), then the
line's fields (client, detox, setting, date, tariff, department, digital), then the
credits, corrections and one-off faults scheduled for later submissions.

Digital care and detox are properties of the client (SPEC §8.4 counts digital
clients and detox clients): a client is drawn digital or not, and an addiction
client in ambulant, clinical or no detox, when it first comes; all its lines
follow. A provider planted with per-day detox declares its clinical detox as stays
of one line per stay day: the lines after it in the month become the stay's days.

Shares that decide whether a rule fires (stays, other activities, ADHD, detox,
group, 4+ practitioners, digital) are drawn with jittered accumulators instead of
independent coin flips: the sequence still looks random, but a provider's yearly
share stays within a line or two of its target, so normal providers stay clear of
the thresholds and only the planted ones cross them. This runs for every line:
what a loop needs is bound to locals first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from random import Random
from typing import Any

from streams.domain.policy import Policy
from streams.synth.dates import business_days, days_in_month
from streams.synth.departments import assign
from streams.synth.plan import DUP_CREDIT_FLAG, DUP_LINE_FLAG, ORPHAN_FLAG, CellPlan
from streams.synth.providers import Provider
from streams.synth.tables import (
    ADDICTION,
    ADHD,
    CLIENT_TURNOVER,
    CONSULT,
    CORRECTION,
    CREDIT,
    DEBIT,
    DIAGNOSES,
    DUP_CREDIT,
    DUP_LINE,
    MALFORMED,
    ORPHAN,
    OTHER,
    PRACTICE_SETTINGS_T,
    REDELIVERED,
    STAY,
    VISITS_PER_MONTH,
    Choices,
)

Entry = tuple[dict[str, Any], int]  # a prepared line and its tag (tables.DEBIT, ...)
Pending = dict[int, dict[int, list[Entry]]]  # submission month -> provider index -> entries
Skeleton = tuple[int, int, int, int]  # activity, diagnosis, group, practitioners
# client_ref, care demand type, trajectory, digital, detox (0 none, 1 ambulant, 2 clinical)
Client = tuple[str, int, str, bool, int]
# (activity, detox, group) -> (setting, day of month, prestatie code, amount, stay days)
Place = Callable[[int, int, int], tuple[int, int, str, int, int]]


class CellDrawer:
    def __init__(self, seed: int, rng: Random, choices: Choices, policy: Policy) -> None:
        self.seed = seed
        self.rng = rng
        self.choices = choices
        mm = policy.mismatch
        self.mismatch_from = mm.from_year
        self.mismatch_types = mm.care_demand_types
        self.mismatch_settings = mm.settings
        # A care demand type a clinic re-types a mismatching one to at admission.
        self.retype = min(t for t in range(3, 9) if t not in mm.care_demand_types)

    def draw(
        self, p: Provider, y: int, m: int, plan: CellPlan, sub: int, pending: Pending
    ) -> list[Entry]:
        """The service month's debits of one provider; its credits go into `pending`."""
        skeleton, counts = self._skeleton(p, y, m, plan.debits)
        orders = [self._update_pool(p, y, d, counts[d]) for d in range(len(DIAGNOSES))]
        lines = self._fields(p, y, m, skeleton, orders)
        return self._schedule(p, plan, sub, pending, lines)

    def _skeleton(self, p: Provider, y: int, m: int, n: int) -> tuple[list[Skeleton], list[int]]:
        rnd, grb = self.rng.random, self.rng.getrandbits
        r_stay, r_other = p.stay, p.other
        r_adhd = p.adhd * p.adhd_boost.get((y, (m - 1) // 3 + 1), 1.0)
        acc = p.acc
        diag_consult = p.consult_diagnoses
        diag_stay, diag_other = self.choices.diag_stay, self.choices.diag_other
        consult = self._draws(p, y)
        counts = [0] * len(DIAGNOSES)
        skeleton: list[Skeleton] = []
        for _ in range(n):
            a = acc[0] + r_stay * (0.5 + rnd())
            if a >= 1.0:
                acc[0] = a - 1.0
                act = STAY
                diag = diag_stay[grb(10)]
            else:
                acc[0] = a
                a = acc[1] + r_other * (0.5 + rnd())
                acc[1] = a - 1.0 if a >= 1.0 else a
                act = OTHER if a >= 1.0 else CONSULT
                a = acc[2] + r_adhd * (0.5 + rnd())
                acc[2] = a - 1.0 if a >= 1.0 else a
                if a >= 1.0:
                    diag = ADHD
                else:
                    diag = diag_consult[grb(10)] if act == CONSULT else diag_other[grb(10)]
            counts[diag] += 1
            if act == CONSULT:
                skeleton.append((act, diag, *consult()))
            else:
                skeleton.append((act, diag, 0, 0))
        return skeleton, counts

    def _draws(self, p: Provider, y: int) -> Callable[[], tuple[int, int]]:
        """`consult()` of a consult, drawn with the provider's accumulators."""
        rnd, grb = self.rng.random, self.rng.getrandbits
        ov = p.overrides.get(y, {})
        r_group = p.group_rate(y)
        r_ge4 = ov.get("ge4", 0.0)
        acc = p.acc
        group_pract = self.choices.group_practitioners
        indiv_pract = self.choices.individual_practitioners

        def consult() -> tuple[int, int]:
            """(group, practitioners) of a consult."""
            a = acc[5] + r_group * (0.5 + rnd())
            if a < 1.0:
                acc[5] = a
                return 0, indiv_pract[grb(10)]
            acc[5] = a - 1.0
            return 1, ge4() if r_ge4 else group_pract[grb(10)]

        def ge4() -> int:
            a = acc[6] + r_ge4 * (0.5 + rnd())
            if a >= 1.0:
                acc[6] = a - 1.0
                return 4 + (grb(2) == 0)
            acc[6] = a
            return int(group_pract[grb(10)])

        return consult

    def _update_pool(self, p: Provider, y: int, diag: int, k: int) -> list[Client]:
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
        cdts = self.choices.care_demand_types[diag]
        salt = f"{self.seed}/{p.agb}/".encode()
        while len(pool) < size:
            p.clients += 1
            h = hashlib.blake2b(salt + str(p.clients).encode(), digest_size=10).hexdigest()
            digital = self._share(p, 7, p.digital)
            detox = self._detox(p, y) if diag == ADDICTION else 0
            cdt = cdts[rng.getrandbits(10)]
            pool.append((f"c-{h}", cdt, f"zt-{p.agb}-{p.clients:06d}", digital, detox))
        return pool

    def _share(self, p: Provider, i: int, rate: float) -> bool:
        """One jittered draw of a share with the provider's accumulator `i`."""
        a = p.acc[i] + rate * (0.5 + self.rng.random())
        p.acc[i] = a - 1.0 if a >= 1.0 else a
        return a >= 1.0

    def _detox(self, p: Provider, y: int) -> int:
        """The detox of a new addiction client: 0 none, 1 ambulant, 2 clinical."""
        ov = p.overrides.get(y, {})
        if not self._share(p, 3, ov.get("detox", p.detox)):
            return 0
        return 2 if self._share(p, 4, ov.get("clinical_detox", p.clinical_detox)) else 1

    def _fields(
        self,
        p: Provider,
        y: int,
        m: int,
        skeleton: list[Skeleton],
        orders: list[list[Client]],
    ) -> list[Entry]:
        place, dates = self._placer(p, y, m)
        department = self._departments(p, y, m)
        # Mismatching lines are re-typed at admission, but in a planted year.
        strict = y >= self.mismatch_from and y not in p.mismatch_years
        mm_types, mm_settings, retype = self.mismatch_types, self.mismatch_settings, self.retype
        agb, region = p.agb, p.region
        ysuffix = f"-{y}"
        cursors = [0] * len(DIAGNOSES)
        lines: list[Entry] = []
        per_day = p.detox_per_day
        stay: list[Any] = []  # a per-day stay's days to come: [days left, its last line]
        for act, diag, group, pract in skeleton:
            if stay:
                lines.append((self._next_day(p, stay, dates), DEBIT))
                continue
            order = orders[diag]
            ref, cdt, traj, digital, detox = order[cursors[diag] % len(order)]
            cursors[diag] += 1
            if detox == 1 and act == STAY:  # an ambulant detox is no stay
                act, group, pract = CONSULT, 0, 1
            elif detox == 2 and per_day:
                act = STAY
            setting, day, code, amount, days = place(act, detox, group)
            if per_day and detox == 2 and days > 1:
                amount //= days
                stay = [days - 1, None]
                days = 1
            if strict and cdt in mm_types and setting in mm_settings:
                cdt = retype
            d: dict[str, Any] = {
                "schema": "ggz.declaration/1",
                "event_id": "",
                "line_id": f"{agb}-{p.lines:08d}",
                "kind": "debit",
                "provider_agb": agb,
            }
            p.lines += 1
            if department is not None:
                d["department"] = department(act, setting, diag, ref)
            d["region"] = region
            d["client_ref"] = ref
            d["trajectory_id"] = traj + ysuffix
            d["service_date"] = dates[day]
            d["submitted_at"] = ""
            if act == CONSULT:
                d["activity"] = "consult"
                d["consult_mode"] = "group" if group else "individual"
                d["practitioners"] = pract
                d["digital"] = bool(digital)
            elif act == STAY:
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
            lines.append((d, DEBIT))
            if stay:
                stay[1] = d
        return lines

    @staticmethod
    def _next_day(p: Provider, stay: list[Any], dates: list[str]) -> dict[str, Any]:
        """The next day line of a stay declared per day: its last line a day later."""
        last: dict[str, Any] = stay[1]
        d = dict(last)
        d["line_id"] = f"{p.agb}-{p.lines:08d}"
        p.lines += 1
        d["service_date"] = dates[int(last["service_date"][8:]) + 1]
        stay[0] -= 1
        if stay[0]:
            stay[1] = d
        else:
            stay.clear()
        return d

    def _placer(self, p: Provider, y: int, m: int) -> tuple[Place, list[str]]:
        """`place(activity, detox, group)` of a line of this cell, and the month's dates
        (index: day of month)."""
        ch = self.choices
        rnd, grb = self.rng.random, self.rng.getrandbits
        tariffs = ch.tariffs[y]
        t_indiv, t_group, t_stay, t_other = (
            tariffs["indiv"],
            tariffs["group"],
            tariffs["stay"],
            tariffs["other"],
        )
        dim = days_in_month(y, m)
        dates = [f"{y}-{m:02d}-{d:02d}" for d in range(dim + 1)]
        weekdays = [d.day for d in business_days(y, m, 1, dim)]
        n_wd = len(weekdays)
        settings = p.consult_settings
        ambulant = ch.ambulant_settings if p.institution else PRACTICE_SETTINGS_T
        stay_days, detox_days = ch.stay_days, ch.detox_days
        forensic = p.forensic

        def place(act: int, detox: int, group: int) -> tuple[int, int, str, int, int]:
            """(setting, day of month, prestatie code, amount, stay days) of a line."""
            if act == STAY:
                setting = 6 if forensic and rnd() < forensic and detox != 2 else 5
                days = min((detox_days if detox == 2 else stay_days)[grb(10)], dim)
                day = 1 if days == dim else 1 + int(rnd() * (dim - days + 1))
                code, rate = t_stay[grb(10)]
                return setting, day, code, rate * days, days
            if detox == 2:
                setting = 5
            elif detox == 1:
                setting = ambulant[grb(10)]
            else:
                setting = settings[grb(10)]
            day = weekdays[int(rnd() * n_wd)]
            table = (t_group if group else t_indiv) if act == CONSULT else t_other
            code, amount = table[grb(10)]
            return setting, day, code, amount, 0

        return place, dates

    def _departments(self, p: Provider, y: int, m: int) -> Any:
        """`department(activity, setting, diagnosis, client_ref)` of an institution's
        lines of service month `m` of `y` (streams/synth/departments.py); None for a
        practice."""
        if not p.institution:
            return None
        grb = self.rng.getrandbits
        has_vz = "verslavingszorg" in p.departments
        has_top = "topggz" in p.departments
        return assign(has_top, has_vz, p.moves, y, m, lambda: grb(3))

    def _schedule(
        self, p: Provider, plan: CellPlan, sub: int, pending: Pending, lines: list[Entry]
    ) -> list[Entry]:
        """Credits (with a later submission of the same provider, often together with
        the corrected line), the one-off faults, redeliveries and malformed lines."""
        rng = self.rng
        n = plan.debits
        credited = rng.sample(range(n), plan.credits) if plan.credits else []
        for j, i in enumerate(credited):
            target = sub + 1 + rng.randrange(3)
            bucket = pending.setdefault(target, {}).setdefault(p.index, [])
            bucket.append((lines[i][0], CREDIT))
            if j < plan.corrections:
                bucket.append((lines[i][0], CORRECTION))
            if j == 0 and plan.flags & DUP_CREDIT_FLAG:
                dup = pending.setdefault(target + 1, {}).setdefault(p.index, [])
                dup.append((lines[i][0], DUP_CREDIT))
        if plan.flags & DUP_LINE_FLAG:
            free = sorted(set(range(n)) - set(credited))
            i = free[rng.randrange(len(free))]
            target = sub + 1 + rng.randrange(2)
            pending.setdefault(target, {}).setdefault(p.index, []).append((lines[i][0], DUP_LINE))
        for _ in range(plan.redeliveries):
            i = rng.randrange(n)
            lines[i] = (lines[i][0], REDELIVERED)
        extra: list[Entry] = []
        if plan.flags & ORPHAN_FLAG:
            extra.append((self._copy(p, lines[rng.randrange(n)][0]), ORPHAN))
        for _ in range(plan.malformed):
            extra.append((self._copy(p, lines[rng.randrange(n)][0]), MALFORMED))
        for e in extra:
            lines.insert(rng.randrange(len(lines) + 1), e)
        return lines

    @staticmethod
    def _copy(p: Provider, d: dict[str, Any]) -> dict[str, Any]:
        """A copy of a line under a new line id."""
        copy = dict(d)
        copy["line_id"] = f"{p.agb}-{p.lines:08d}"
        p.lines += 1
        return copy
