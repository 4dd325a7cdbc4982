"""BSN look-alikes (SPEC §2 step 3, §12) and masking them wherever input is echoed.

A ``client_ref`` is BSN-like when it is exactly nine decimal digits (of any script:
``１２３４５６７８９`` too) after, in this order: stripping whitespace at both ends;
removing an optional ``NL`` prefix (any case, full-width too); removing every space
separator (Unicode Zs), dash (Pd), tab and full stop. So ``123 456 789``,
``123.456.789``, ``NL123456789``, ``nl-123-456-789`` and ``123–456–789`` are BSN-like.

Such a value never leaves claimwatch in the clear: ``mask_bsn`` masks every
``client_ref`` value that is BSN-like in a dead letter's bytes (also one spelled with
JSON escapes, at any depth, in text that is not JSON at all), and ``mask_text`` every
BSN-like number in a text such as a dead letter's ``detail``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import orjson

MASK = "*********"
_MASKED = b'"' + MASK.encode() + b'"'
_NL = frozenset(n + ell for n in "NnＮｎ" for ell in "LlＬｌ")
# ASCII characters no BSN look-alike can start with (whitespace, digits, N, n, "-" and
# "." can); a first character outside ASCII is left to the full check.
NEVER_FIRST = frozenset(
    c for c in map(chr, range(128)) if not (c.isspace() or c.isdecimal() or c in "Nn-.")
)
# Every ASCII character a look-alike can hold: ``value.lstrip(MAYBE)`` is empty for
# each one, and for an ordinary pseudonym stops at its first letter.
MAYBE = "".join(c for c in map(chr, range(128)) if c.isspace() or c.isdecimal() or c in "NnLl-.")


@cache
def _separators() -> dict[int, None]:
    """Zs, Pd, tab and full stop, as a ``str.translate`` table that deletes them.

    Unicode assigns Zs and Pd only in planes 0 and 1 (``tests/domain/test_bsn.py``
    checks it for the running Python), so the scan stops there: 20 ms, once."""
    table: dict[int, None] = {ord("\t"): None, ord("."): None}
    for code in range(0x20000):
        if unicodedata.category(chr(code)) in ("Zs", "Pd"):
            table[code] = None
    return table


def is_bsn_like(value: object) -> bool:
    """Is ``value`` a string that is BSN-like (see the module docstring)?"""
    if type(value) is not str:
        return False
    ascii_only = value.isascii()
    if ascii_only and value.lstrip(MAYBE):  # a character no look-alike has
        return False
    text = value.strip()
    if text[:2] in _NL:
        text = text[2:]
    if ascii_only:  # str.translate is slow for ASCII; four replaces are not
        text = text.replace(" ", "").replace("-", "").replace("\t", "").replace(".", "")
    else:
        text = text.translate(_separators())
    return len(text) == 9 and text.isdecimal()


def _spelled(name: str) -> bytes:
    """A pattern for ``name`` as a JSON string's content: each character as itself or
    as a ``\\u`` escape (hex digits in either case), the only other way to write it."""
    parts = []
    for char in name:
        hex_digits = "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{ord(char):04x}")
        parts.append(f"(?:{re.escape(char)}|\\\\u{hex_digits})")
    return "".join(parts).encode()


# "client_ref": <a string, also one cut off at the end, or a number>. A key can only
# match where a string starts: inside a string every quote is escaped, and the quote
# that closes the key would end such a string.
_PAIR = re.compile(
    b'"' + _spelled("client_ref") + rb'"\s*:\s*("[^"\\]*+(?:\\.[^"\\]*+)*+"?|-?[0-9][0-9.eE+-]*)',
    re.DOTALL,
)


def mask_bsn(payload: bytes) -> bytes:
    """``payload`` with every BSN-like ``client_ref`` value replaced by ``"*********"``.

    Works on the bytes as they are (nothing else changes), whether or not they are
    valid JSON, and reads JSON escapes in keys and values (``"client\\u005fref"``,
    ``"\\uff11..."``). A number as a ``client_ref`` value is masked the same way.
    """
    return _PAIR.sub(_mask, payload)


def _mask(match: re.Match[bytes]) -> bytes:
    if not is_bsn_like(_text(match.group(1))):
        return match.group(0)
    return match.group(0)[: match.start(1) - match.start(0)] + _MASKED


def _text(token: bytes) -> str:
    """A JSON string or number token as text; one that does not decode (a bad escape,
    cut off) as its bytes."""
    if token[:1] == b'"':
        try:
            decoded = orjson.loads(token)
        except orjson.JSONDecodeError:
            return token.strip(b'"').decode("utf-8", "replace")
        return decoded if type(decoded) is str else ""
    return token.decode("ascii", "replace")


@cache
def _number_run() -> re.Pattern[str]:
    """Decimal digits joined by separators, optionally after an NL prefix."""
    sep = "[" + "".join(re.escape(chr(code)) for code in sorted(_separators())) + "]"
    return re.compile(rf"(?:[NnＮｎ][LlＬｌ]{sep}*)?\d(?:{sep}*\d)*")


_DIGIT = re.compile(r"\d")
_NINE = re.compile(r"(?<!\d)\d{9}(?!\d)")


def mask_text(text: str) -> str:
    """``text`` with every BSN-like number masked: a run of digits and separators
    that is BSN-like as a whole, and any nine digits in a row on their own."""
    if _DIGIT.search(text) is None:
        return text
    return _number_run().sub(_mask_run, text)


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if is_bsn_like(run):
        return MASK
    return _NINE.sub(MASK, run)
