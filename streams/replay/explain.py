"""``claimwatch explain ALERT_ID FILE…``: why one alert fired, from the archive (SPEC §8.3).

The offline replay itself (the same engine, rules and contracts as ``claimwatch
replay --offline``) yields the alert's transitions with their ``explain`` objects
(computation, pace, breakdown) and, at the end of the input, the provider's state.
For ceiling and pace rules the lines of the provider-year are summarised per service
month from that state: its line index (one entry per accepted debit, in its service
month, marked when credited) and ``YearState.by_month`` (net cents), so the table
holds exactly what the rules counted. For ``zvt_setting_mismatch`` a second pass
reads the alert's provider's lines again and judges them as the engine does
(``Decoder.check``, then ``ProviderState.accept``, so redeliveries, duplicates and
rejected lines drop out) and shows each mismatching line. No client reference or
trajectory is printed; line ids, departments and prestatie codes are the provider's
text and pass ``mask_text`` (a BSN-shaped number in them is masked).

The report is in the policy's message language (Dutch by default), for purchasers.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.domain.acceptance import Decoder
from streams.domain.alerts import MONTH_NAMES, Language, euros, number, pct
from streams.domain.bsn import mask_text
from streams.domain.errors import InputError
from streams.domain.explain import measured
from streams.domain.indicators import breakdown
from streams.domain.model import ACCEPTED, MISMATCH, Line
from streams.domain.policy import Policy
from streams.domain.rules import RULES
from streams.domain.state import CREDITED, ProviderState, unpack_entry
from streams.replay.files import iter_lines
from streams.replay.offline import replay_offline

ALERT_ID = re.compile(r"^([a-z_0-9]+):([0-9]{8}):([0-9]{4})(?::([A-Za-z0-9-]+))?$")
# Rules whose lines are all lines of the provider-year, shown per service month.
MONTHLY = frozenset({"ceiling_utilisation", "ceiling_pace_high", "ceiling_underrun"})
MONEY = MONTHLY  # their numerator and denominator are cents
COUNTED = frozenset({"zvt_setting_mismatch"})  # value and threshold are counts, not shares
ACTIVITIES = {"nl": {"consult": "consult", "stay": "verblijf", "other": "overig"}, "en": {}}


# What numerator and denominator count, per rule: (Dutch, English) each.
FIGURES = {
    "ceiling_utilisation": (("netto gedeclareerd", "net declared"), ("plafond", "ceiling")),
    "group_share_low": (("groepsconsulten", "group consults"), ("consulten", "consults")),
    "group_consult_staffing": (
        ("groepsconsulten met 4+ behandelaars", "group consults with 4+ practitioners"),
        ("groepsconsulten", "group consults"),
    ),
    "clinical_detox_high": (("klinisch", "clinical"), ("alle detox", "all detox")),
    "adhd_growth": (
        ("cliënten met ADHD in het kwartaal", "ADHD clients in the quarter"),
        ("een jaar eerder", "a year earlier"),
    ),
    "digital_share_low": (("digitaal", "digital"), ("alle consulten", "all consults")),
    "zvt_setting_mismatch": (
        ("regels met zvt 1/2 in die settings", "lines of zvt 1/2 in those settings"),
        ("alle regels van het jaar", "all lines of the year"),
    ),
}

# A breakdown's dimensions as the report names them: (Dutch, English).
DIMENSION_NAMES = {
    "setting": ("setting", "setting"),
    "department": ("afdeling", "department"),
    "prestatie_code": ("prestatiecode", "prestatie code"),
}
# The NZa settings (informatiekaart settings, docs/purchasers.md): (Dutch, English).
SETTINGS = {
    1: ("ambulant, kwaliteitsstatuut II", "ambulant, section II"),
    2: ("ambulant III, monodisciplinair", "ambulant III, monodisciplinary"),
    3: ("ambulant III, multidisciplinair", "ambulant III, multidisciplinary"),
    4: ("outreachend", "outreach"),
    5: ("klinisch", "clinical"),
    6: ("forensisch en beveiligd, klinisch", "forensic and secured, clinical"),
    7: ("forensisch en beveiligd, niet-klinisch", "forensic and secured, non-clinical"),
    8: ("hoogspecialistisch", "high-specialist"),
}

# Report wording: key → (Dutch, English).
_TEXT = {
    "title": ("Alert {aid}", "Alert {aid}"),
    "provider": ("Zorgaanbieder: {who}, jaar {year}", "Provider: {who}, year {year}"),
    "transitions": ("Overgangen", "Transitions"),
    "firing": ("gaat af", "firing"),
    "resolved": ("opgeheven", "resolved"),
    "value": ("waarde {value}, drempel {threshold}", "value {value}, threshold {threshold}"),
    "computation": ("Berekening (bij de laatste overgang)", "Computation (at the last transition)"),
    "policy": ("beleid [{rule}]: {params}", "policy [{rule}]: {params}"),
    "numerator": ("teller ({what}): {n}", "numerator ({what}): {n}"),
    "denominator": ("noemer ({what}): {n}", "denominator ({what}): {n}"),
    "cause": (
        "oorzaak: {cause} (contractversie {version})",
        "cause: {cause} (contract version {version})",
    ),
    "declarations": ("declaraties", "declarations"),
    "contract_change": ("contractwijziging", "contract change"),
    "pace": (
        "tempo: gedekt t/m maand {covered_month}, verwacht aandeel {expected}, "
        "prognose {projected} tegen plafond {ceiling}",
        "pace: covered through month {covered_month}, expected share {expected}, "
        "projected {projected} against ceiling {ceiling}",
    ),
    "breakdown": ("Uitsplitsing (top 5 per kenmerk)", "Breakdown (top 5 per dimension)"),
    "breakdown_row": ("{by} {key}: {cents} in {lines}", "{by} {key}: {cents} in {lines}"),
    "breakdown_end": (
        "Uitsplitsing aan het eind van de invoer (top 5 per kenmerk)",
        "Breakdown at the end of the input (top 5 per dimension)",
    ),
    "no_key": ("(geen)", "(none)"),
    "monthly": (
        "Declaratieregels {year} per servicemaand (tot het eind van de invoer)",
        "Declaration lines {year} by service month (to the end of the input)",
    ),
    "monthly_head": (
        ("maand", "regels", "gecred.", "gedeclareerd", "gecrediteerd", "netto", "cumulatief"),
        ("month", "lines", "credited", "declared", "credited", "net", "cumulative"),
    ),
    "total": ("totaal", "total"),
    "of_ceiling": ("van plafond", "of ceiling"),
    "mismatch": (
        "Declaratieregels {year} met zorgvraagtype 1/2 in setting {settings}",
        "Declaration lines {year} of zorgvraagtype 1/2 in setting {settings}",
    ),
    "mismatch_row": (
        "{line_id}  {service_date}  ingediend {submitted}  {activity}, setting {setting}, "
        "zvt {zvt}, afdeling {department}, prestatie {prestatie}, {amount}{credited}",
        "{line_id}  {service_date}  submitted {submitted}  {activity}, setting {setting}, "
        "zvt {zvt}, department {department}, prestatie {prestatie}, {amount}{credited}",
    ),
    "credited": (" — gecrediteerd", " — credited"),
    "mismatch_total": (
        "{live} regels niet gecrediteerd ({cents}), {credited} gecrediteerd",
        "{live} lines not credited ({cents}), {credited} credited",
    ),
    "none": ("geen", "none"),
}


def _t(key: str, language: Language) -> Any:
    nl, en = _TEXT[key]
    return nl if language == "nl" else en


@dataclass(slots=True)
class _Month:
    debits: int | None = 0  # None: not known (the year's line index was dropped)
    credits: int = 0
    debit_cents: int = 0
    credit_cents: int = 0
    net: int = 0


@dataclass(slots=True)
class _Lines:
    """The accepted zvt-mismatching lines of one provider-year, as the report shows
    them."""

    mismatching: dict[str, dict[str, Any]] = field(default_factory=dict)  # line id → line


def explain_alert(
    alert_id: str,
    files: Sequence[str | Path],
    policy: Policy,
    *,
    contracts: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    departments: str | Path | None = None,
) -> str:
    """The report on ``alert_id``; ``InputError`` (one line) when the id is malformed
    or no such alert fired in the replay."""
    language = policy.language
    match = ALERT_ID.match(alert_id)
    if match is None or match.group(1) not in RULES:
        raise InputError(_unknown(alert_id, language))
    rule, provider, year = match.group(1), match.group(2), int(match.group(3))
    paths = [Path(f) for f in files]
    size = sum(p.stat().st_size for p in paths if p.is_file())
    listed = rule == "zvt_setting_mismatch"  # its lines are read again, one by one
    total = 2 * size if listed else size

    def first(done: int, _: int) -> None:
        if progress is not None:
            progress(done, total)

    with tempfile.TemporaryDirectory(prefix="claimwatch-explain-") as tmp:
        out = Path(tmp) / "alerts.ndjson"
        _, engine = replay_offline(
            paths,
            policy,
            contracts=contracts,
            departments=departments,
            alerts_out=out,
            progress=first,
            replay_flag=True,
        )
        transitions = [
            event
            for event in map(orjson.loads, out.read_bytes().splitlines())
            if event["alert_id"] == alert_id
        ]
    if not transitions:
        raise InputError(_unknown(alert_id, language))
    contract = engine.contracts.get(provider, year)
    report = _Report(language)
    report.head(alert_id, provider, contract.provider_name if contract else None, year)
    report.transitions(transitions, counted=rule in COUNTED)
    why = transitions[-1].get("explain") or {}
    report.computation(rule, policy, why)
    st = engine.providers[provider]
    explains = RULES.rule(rule).explains
    if explains is not None:
        rows = breakdown(st, year, *measured(explains, match.group(4)))
        if rows != why.get("breakdown"):  # the lines changed after the last transition
            report.breakdown_at_end(rows)
    if rule in MONTHLY:
        ceiling = contract.ceiling_cents if contract else None
        report.monthly(year, _months(st, year), ceiling)
    elif listed:
        lines = _read_lines(paths, policy, provider, year, size, progress)
        settings = "/".join(str(s) for s in sorted(policy.mismatch.settings))
        report.mismatching(year, settings, lines.mismatching)
    return report.text()


def _months(st: ProviderState, year: int) -> dict[int, _Month]:
    """The provider-year's accepted lines per service month, from the replay's state:
    debits and credited debits from the line index (a credit counts in its debit's
    month, as it subtracts there), net cents from ``by_month``. Without the index (a
    year dropped by retention before the end of the input) only the net is known:
    ``debits`` stays None."""
    ys = st.years[year]
    index = st.lines.get(year)
    months = {m + 1: _Month(net=net) for m, net in enumerate(ys.by_month) if net}
    if index is None:
        for month in months.values():
            month.debits = None
        return months
    for packed in index.values():
        m, _, amount, _ = unpack_entry(packed)
        month = months.setdefault(m, _Month())
        month.debits = (month.debits or 0) + 1
        month.debit_cents += amount
        if packed & CREDITED:
            month.credits += 1
            month.credit_cents += amount
    return months


def _unknown(alert_id: str, language: Language) -> str:
    shown = mask_text(alert_id[:120])
    if language == "nl":
        return (
            f"explain: geen alert {shown!r} in deze replay (vorm: <regel>:<agb>:<jaar>[:<detail>])"
        )
    return f"explain: no alert {shown!r} in this replay (form: <rule>:<agb>:<year>[:<detail>])"


def _read_lines(
    paths: Sequence[Path],
    policy: Policy,
    provider: str,
    year: int,
    offset: int,
    progress: Callable[[int, int], None] | None,
) -> _Lines:
    """The second pass: the provider's accepted lines of ``year``."""
    decoder = Decoder(policy)
    state = ProviderState(provider, keep_years=policy.retention.line_index_years, hashed=False)
    found = _Lines()
    needle = provider.encode()
    done = offset
    for p in paths:

        def tick(pos: int, base: int = done) -> None:
            if progress is not None:
                progress(base + pos, 2 * offset)

        for _, raw in iter_lines(p, tick):
            if needle not in raw:  # cheap: most lines are other providers'
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict) or obj.get("provider_agb") != provider:
                continue
            line = decoder.check(obj, None)
            if type(line) is not Line or state.accept(line) != ACCEPTED or line.year != year:
                continue
            _count(found, line, obj)
        done += p.stat().st_size
    return found


def _count(found: _Lines, line: Line, obj: dict[str, Any]) -> None:
    if line.credit:
        shown = found.mismatching.get(line.line_id)
        if shown is not None:
            shown["credited"] = True
        return
    if line.flags & MISMATCH:
        found.mismatching[line.line_id] = {
            "line_id": mask_text(line.line_id),
            "service_date": obj["service_date"],
            "submitted_at": obj["submitted_at"],
            "activity": obj["activity"],
            "setting": obj["setting"],
            "care_demand_type": obj["care_demand_type"],
            "department": mask_text(str(obj["department"])) if "department" in obj else None,
            "prestatie_code": (
                mask_text(str(obj["prestatie_code"])) if "prestatie_code" in obj else None
            ),
            "amount_cents": line.amount_cents,
            "credited": False,
        }


class _Report:
    """The report's text, line by line, in one language."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self.out: list[str] = []

    def t(self, text: str, **kw: Any) -> str:
        return str(_t(text, self.language)).format(**kw)

    def add(self, text: str = "") -> None:
        self.out.append(text)

    def text(self) -> str:
        return "\n".join(self.out) + "\n"

    def head(self, aid: str, provider: str, name: str | None, year: int) -> None:
        who = f"{name} (AGB-code {provider})" if name else f"AGB-code {provider}"
        self.add(self.t("title", aid=aid))
        self.add(self.t("provider", who=who, year=year))

    def transitions(self, events: list[dict[str, Any]], counted: bool) -> None:
        lang = self.language

        def shown(x: float | None) -> str:
            return "–" if x is None else number(round(x), lang) if counted else pct(x, lang)

        self.add()
        self.add(self.t("transitions"))
        for e in events:
            when = str(e["event_time"]).replace("T", " ").removesuffix("Z") + " UTC"
            value = self.t("value", value=shown(e["value"]), threshold=shown(e["threshold"]))
            state = self.t(e["state"])
            self.add(f"  {when}  {state} ({value})")
            self.add(f"    {e['message']}")

    def computation(self, rule: str, policy: Policy, why: dict[str, Any]) -> None:
        lang = self.language
        self.add()
        self.add(self.t("computation"))
        params = policy.rules[rule]
        shown = "; ".join(
            f"{f.name} = {_param(getattr(params, f.name))}"
            for f in dataclasses.fields(params)
            if f.init
        )
        self.add("  " + self.t("policy", rule=rule, params=shown))
        money = rule in MONEY
        figures = FIGURES.get(rule, (("", ""), ("", "")))
        for key, names in zip(("numerator", "denominator"), figures, strict=True):
            if key in why:
                n = why[key]
                text = "–" if n is None else euros(n, lang) if money else number(n, lang)
                what = names[0] if lang == "nl" else names[1]
                self.add("  " + self.t(key, n=text, what=what).replace(" ()", ""))
        if "cause" in why:
            cause = self.t(why["cause"])
            self.add("  " + self.t("cause", cause=cause, version=why.get("contract_version")))
        pace = why.get("pace")
        if pace:
            self.add("  " + self._pace(pace))
        breakdown = why.get("breakdown")
        if breakdown:
            self.add()
            self.add(self.t("breakdown"))
            for row in breakdown:
                self.add("  " + self._breakdown_row(row))

    def _breakdown_row(self, row: dict[str, Any]) -> str:
        lang = self.language
        nl = lang == "nl"
        by, key = row["by"], row["key"]
        if key is None:
            shown = self.t("no_key")
        elif by == "setting" and key in SETTINGS:
            shown = f"{key} ({SETTINGS[key][0 if nl else 1]})"
        else:
            shown = mask_text(str(key))
        name = DIMENSION_NAMES.get(by, (by, by))[0 if nl else 1]
        cents, n = euros(row["cents"], lang), _lines_of(row["lines"], lang)
        return self.t("breakdown_row", by=name, key=shown, cents=cents, lines=n)

    def breakdown_at_end(self, rows: list[dict[str, Any]]) -> None:
        self.add()
        self.add(self.t("breakdown_end"))
        for row in rows:
            self.add("  " + self._breakdown_row(row))

    def _pace(self, pace: dict[str, Any]) -> str:
        lang = self.language

        def money(cents: int | None) -> str:
            return "–" if cents is None else euros(cents, lang)

        return self.t(
            "pace",
            covered_month=pace["covered_month"],
            expected=pct(pace["expected_share"], lang),
            projected=money(pace["projected_cents"]),
            ceiling=money(pace["ceiling_cents"]),
        )

    def monthly(self, year: int, months: dict[int, _Month], ceiling: int | None) -> None:
        """The table per service month; with a ceiling, the cumulative net as a share
        of it (the "expected by now" of an even spread is 1/12 a month)."""
        lang = self.language
        self.add()
        self.add(self.t("monthly", year=year))
        head = _t("monthly_head", lang)
        if ceiling:
            head = (*head, self.t("of_ceiling"))
        rows = [head]
        cumulative = 0
        total = _Month()
        for m in sorted(months):
            mo = months[m]
            cumulative += mo.net
            total.net += mo.net
            for name in ("credits", "debit_cents", "credit_cents"):
                setattr(total, name, getattr(total, name) + getattr(mo, name))
            total.debits = None if mo.debits is None else (total.debits or 0) + mo.debits
            rows.append(self._month_row(MONTH_NAMES[lang][m - 1], mo, cumulative, ceiling))
        rows.append(self._month_row(self.t("total"), total, cumulative, ceiling))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for r in rows:
            cells = [r[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
            ]
            self.add("  " + "  ".join(cells))

    def _month_row(
        self, label: str, mo: _Month, cumulative: int, ceiling: int | None
    ) -> tuple[str, ...]:
        lang = self.language
        known = mo.debits is not None  # else only the net of the month is known
        row = (
            label,
            number(mo.debits, lang) if mo.debits is not None else "–",
            number(mo.credits, lang) if known else "–",
            euros(mo.debit_cents, lang) if known else "–",
            euros(mo.credit_cents, lang) if known else "–",
            euros(mo.net, lang),
            euros(cumulative, lang),
        )
        return (*row, pct(cumulative / ceiling, lang)) if ceiling else row

    def mismatching(self, year: int, settings: str, lines: dict[str, dict[str, Any]]) -> None:
        lang = self.language
        self.add()
        self.add(self.t("mismatch", year=year, settings=settings))
        none = self.t("no_key")
        live = cents = credited = 0
        for row in lines.values():
            if row["credited"]:
                credited += 1
            else:
                live += 1
                cents += row["amount_cents"]
            self.add(
                "  "
                + self.t(
                    "mismatch_row",
                    line_id=row["line_id"],
                    service_date=row["service_date"],
                    submitted=row["submitted_at"],
                    activity=ACTIVITIES[lang].get(row["activity"], row["activity"]),
                    setting=row["setting"],
                    zvt=row["care_demand_type"],
                    department=row["department"] or none,
                    prestatie=row["prestatie_code"] or none,
                    amount=euros(row["amount_cents"], lang),
                    credited=self.t("credited") if row["credited"] else "",
                )
            )
        self.add(
            "  "
            + self.t(
                "mismatch_total",
                live=number(live, lang),
                cents=euros(cents, lang),
                credited=number(credited, lang),
            )
        )


def _lines_of(n: int, language: Language) -> str:
    if language == "nl":
        return f"{number(n, language)} {'regel' if n == 1 else 'regels'}"
    return f"{number(n, language)} {'line' if n == 1 else 'lines'}"


def _param(value: Any) -> str:
    if isinstance(value, frozenset):
        value = sorted(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
