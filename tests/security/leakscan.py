"""Finding client references in what a real worker leaves behind, and saying where.

A surface (a log file, a topic, an HTTP view) is a list of units, each with the place
it came from ("log line 812", "claimwatch-control p2@41 value"). ``scan`` looks for
every needle (the client references of the input) and for BSN-shaped values in them,
and reports each finding by place and by a short hash of the needle, never the needle
itself: a test report must not become the leak it looks for.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# A BSN-shaped value: exactly nine ASCII digits, not part of a longer number or a
# decimal, inside a quoted string (JSON, Python reprs in log lines, label values).
# Numbers outside quotes are amounts, offsets, timestamps and 60-bit keys.
_QUOTED = re.compile(rb'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
_NINE = re.compile(rb"(?<![0-9.])[0-9]{9}(?![0-9])")
# A random UUID (a Kafka group member id, an event id) holds nine digits in a row
# about once in eighty; it is not client data, so UUIDs are blanked before the search.
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# So does an object's address in a repr (``<... object at 0x7ff834288450>``, Faust's
# ``MethodQueueWorker@0x7ff834288450`` in a DEBUG line): blanked as well.
_ADDRESS = re.compile(rb"0x[0-9a-fA-F]+")


def fingerprint(value: bytes | str) -> str:
    """How a report names a needle: a short hash, so the value itself is not printed."""
    raw = value.encode() if isinstance(value, str) else value
    return "#" + hashlib.sha256(raw).hexdigest()[:10]


def needles(values: Iterable[str], what: str = "client_ref") -> dict[bytes, str]:
    """The byte forms a value can take in a log line or a record (as is, and
    JSON-escaped as a hostile producer may send it, with the backslashes a repr
    doubles), each to what a report calls it: ``what`` and the value's fingerprint."""
    out: dict[bytes, str] = {}
    for value in values:
        label = f"{what} {fingerprint(value)}"
        out[value.encode()] = label
        escaped = "".join(f"\\u{ord(ch):04x}" for ch in value).encode()
        out[escaped] = label
        out[escaped.replace(b"\\", b"\\\\")] = label
    return out


@dataclass
class Surface:
    name: str
    units: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, where: str, data: bytes | None) -> None:
        if data:
            self.units.append((where, data))

    def size(self) -> int:
        return sum(len(data) for _w, data in self.units)


@dataclass(frozen=True)
class Finding:
    where: str
    what: str  # "client_ref #ab12..." or "BSN-shaped value #ab12..."
    # the start of the unit with every needle and BSN-shaped value masked, to tell
    # which kind of log line or record it is
    context: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" + (f" in {self.context}" if self.context else "")


def scan(
    surface: Surface,
    refs: dict[bytes, str],
    allowed: Iterable[bytes] = (),
    per_needle: int = 3,
    with_context: int = 20,
) -> list[Finding]:
    """Every unit of ``surface`` that holds a needle of ``refs`` (at most ``per_needle``
    units reported per needle), or a BSN-shaped value other than the ``allowed`` ones
    (nine-digit numbers claimwatch sets itself, e.g. a topic's retention.ms)."""
    allowed = set(allowed)
    units = dict(surface.units)
    sep = b"\x00"
    blob = sep.join(data for _w, data in surface.units)
    starts: list[int] = []
    pos = 0
    for _w, data in surface.units:
        starts.append(pos)
        pos += len(data) + len(sep)
    found: list[Finding] = []
    for needle, fp in refs.items():
        at = blob.find(needle)
        n = 0
        while at != -1 and n < per_needle:
            unit = bisect.bisect_right(starts, at) - 1
            found.append(Finding(surface.units[unit][0], fp))
            n += 1
            next_unit = starts[unit + 1] if unit + 1 < len(starts) else len(blob)
            at = blob.find(needle, next_unit)
    for where, data in surface.units:
        for quoted in _QUOTED.findall(data):
            for nine in _NINE.findall(_ADDRESS.sub(b"0x", _UUID.sub(b"-", quoted))):
                if nine not in allowed:
                    found.append(Finding(where, f"BSN-shaped value {fingerprint(nine)}"))
    return [
        Finding(f.where, f.what, _masked(units[f.where], refs)) if i < with_context else f
        for i, f in enumerate(found)
    ]


def _masked(data: bytes, refs: dict[bytes, str], limit: int = 110) -> str:
    for needle in refs:
        if needle in data:
            data = data.replace(needle, b"<ref>")
    data = _NINE.sub(b"<nine>", data)
    text = data.decode("utf-8", "replace")
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def report(findings: list[Finding], limit: int = 12) -> str:
    places = sorted({f.where for f in findings})
    lines = [str(f) for f in findings[:limit]]  # in the order found: needle by needle
    more = f"\n  ... {len(findings) - limit} more" if len(findings) > limit else ""
    return f"{len(findings)} findings in {len(places)} places:\n  " + "\n  ".join(lines) + more


def shape(key: str, limit: int = 40) -> str:
    """A key as a report may show it: a one-letter prefix ("h:") kept, then ASCII
    digits as 9, ASCII letters as x, punctuation kept, anything else as ?."""
    prefix = key[:2] if re.match(r"[a-z]:", key) else ""
    masked = prefix + "".join(
        "9"
        if "0" <= ch <= "9"
        else "x"
        if ch.isascii() and ch.isalpha()
        else ch
        if ch.isascii() and ch.isprintable()
        else "?"
        for ch in key[len(prefix) :]
    )
    return masked[:limit] + ("..." if len(masked) > limit else "")
