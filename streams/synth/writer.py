"""Serialising a month of prepared lines: submission files, timestamps, event ids,
the faults and the malformed lines, and the counts of every kind of line.

A provider submits a service month's lines in one to three files on business days
early in the next month; lines of a file follow each other at a few a second.
"""

from __future__ import annotations

from datetime import date
from random import Random
from typing import Any

import orjson

from streams.synth.dates import business_days, timestamp
from streams.synth.departments import legacy_delta
from streams.synth.lines import Entry
from streams.synth.options import KINDS
from streams.synth.providers import Provider
from streams.synth.tables import (
    CORRECTION,
    CREDIT,
    DEBIT,
    DUP_CREDIT,
    DUP_LINE,
    MALFORMED,
    MISSING_FIELDS,
    ORPHAN,
    VARIANT,
)

# (epoch seconds UTC, sequence, line + newline, provider AGB)
Row = tuple[int, int, bytes, str]
_CORRECTION_FACTORS = (0.85, 0.9, 1.1, 1.15, 1.2, 1.25, 0.8, 1.05)


class Writer:
    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.counts = dict.fromkeys(KINDS, 0)
        self.faults: dict[str, list[str]] = {
            "redelivered_event_ids": [],
            "duplicate_line_ids": [],
            "duplicate_credit_line_ids": [],
            "orphan_credit_line_ids": [],
        }
        self.seq = 0
        self.malformed_turn = 0

    def emit(self, p: Provider, sub: int, entries: list[Entry], batch: list[Row]) -> None:
        """Split a provider's lines of one submission month into files and serialise them."""
        rng = self.rng
        sy, sm = divmod(sub, 12)
        n = len(entries)
        files = min(n, (1 + rng.randrange(3)) if p.institution else (1 + rng.randrange(2)))
        days = sorted(rng.sample(business_days(sy, sm + 1, 1, 14), files))
        cuts = sorted(rng.sample(range(1, n), files - 1)) if files > 1 else []
        bounds = zip([0, *cuts], [*cuts, n], strict=True)
        for day, (lo, hi) in zip(days, bounds, strict=True):
            self._file(p, day, entries[lo:hi], batch)

    def _file(self, p: Provider, day: date, entries: list[Entry], batch: list[Row]) -> None:
        grb = self.rng.getrandbits
        dumps = orjson.dumps
        counts, redelivered = self.counts, self.faults["redelivered_event_ids"]
        rate = max((5, 10, 20, 40)[grb(2)], -(-len(entries) // 21600))
        start = self.rng.randrange(8 * 3600, 16 * 3600)
        base_text, base_epoch = timestamp(day, 0)
        date_part, offset = base_text[:11], base_text[19:]
        last_sec = -1
        stamp = ""
        agb = p.agb
        for i, (d, tag) in enumerate(entries):
            sec = start + i // rate
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
            if tag <= DEBIT:  # DEBIT, or REDELIVERED: a debit delivered twice
                d["event_id"] = event_id
                d["submitted_at"] = stamp
                # `+ b"\n"` also copies orjson's oversized buffer into a compact object
                value = dumps(d) + b"\n"
                counts["debit"] += 1
                if tag < DEBIT:
                    self.seq += 1
                    batch.append((epoch, self.seq, value, agb))
                    counts["redelivery"] += 1
                    redelivered.append(event_id)
            else:
                value = self._other(p, d, tag, event_id, stamp)
            self.seq += 1
            batch.append((epoch, self.seq, value, agb))

    def _other(self, p: Provider, d: dict[str, Any], tag: int, event_id: str, stamp: str) -> bytes:
        """A line that is not a first debit: a correction, a credit or a fault."""
        d = dict(d)
        d["event_id"] = event_id
        d["submitted_at"] = stamp
        if tag == CORRECTION:
            d["line_id"] = f"{p.agb}-{p.lines:08d}"
            p.lines += 1
            factor = _CORRECTION_FACTORS[self.rng.getrandbits(3)]
            d["amount_cents"] = max(1, round(d["amount_cents"] * factor))
            self.counts["correction"] += 1
        elif tag == MALFORMED:
            return self._malform(d)
        elif tag == DUP_LINE:
            self.counts["duplicate_line"] += 1
            self.faults["duplicate_line_ids"].append(d["line_id"])
        else:
            d["kind"] = "credit"
            if tag == CREDIT:
                self.counts["credit"] += 1
            elif tag == DUP_CREDIT:
                self.counts["duplicate_credit"] += 1
                self.faults["duplicate_credit_line_ids"].append(d["line_id"])
            elif tag == ORPHAN:
                self.counts["orphan_credit"] += 1
                self.faults["orphan_credit_line_ids"].append(d["line_id"])
        return orjson.dumps(d) + b"\n"

    def _malform(self, d: dict[str, Any]) -> bytes:
        turn = self.malformed_turn
        self.malformed_turn += 1
        if turn % 3 == 0:
            self.counts["malformed_invalid_json"] += 1
            raw = orjson.dumps(d)
            # drawn on the length the line had before teams and wards were split
            # (departments.py): the seeded history's later draws stay as they were
            n = len(raw) - 40 + legacy_delta(d.get("department"))
            return raw[: 20 + self.rng.randrange(n)] + b"\n"
        if turn % 3 == 1:
            self.counts["malformed_missing_field"] += 1
            del d[MISSING_FIELDS[(turn // 3) % len(MISSING_FIELDS)]]
            return orjson.dumps(d) + b"\n"
        self.counts["malformed_bsn_client_ref"] += 1
        d["client_ref"] = bsn(self.rng)
        return orjson.dumps(d) + b"\n"


def bsn(rng: Random) -> str:
    """A 9-digit number passing the BSN eleven-test: the shape the acceptance rejects."""
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        digits[0] = digits[0] or 1
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10:
            return "".join(map(str, digits)) + str(last)
