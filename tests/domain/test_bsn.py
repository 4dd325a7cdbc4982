"""``bsn``: which client references are BSN-like (SPEC §2 step 3, §12), and masking them."""

from __future__ import annotations

import re
import unicodedata

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.bsn import (
    MAYBE,
    NEVER_FIRST,
    _separators,
    is_bsn_like,
    mask_bsn,
    mask_text,
)

_DECIMAL = re.compile(r"\d")  # a decimal digit of any script, as str.isdecimal
LOOK_ALIKES = [
    "123456789",
    "１２３４５６７８９",  # full-width digits
    "١٢٣٤٥٦٧٨٩",  # Arabic-Indic digits
    "123 456 789",
    "123.456.789",
    "NL123456789",
    "nl-123-456-789",
    " 123456789 ",
    "123\t456\t789",
    "123–456–789",  # en dash (Pd)
    "123\u00a0456\u2009789",  # no-break space, thin space (Zs)
    "ＮＬ１２３４５６７８９",  # full-width prefix
    "ｎＬ 123 456 789",
    "\n NL 123-456-789 \r\n",  # whitespace of any kind at the ends
    "12-34.56 7\t89",
    "-123456789",
    "123456789.",
    "Nl123456789",
]

NOT_BSN = [
    "12345678",  # eight digits
    "1234567890",  # ten
    "12345678a",
    "a12345678",
    "NL12345678",
    "NLNL123456789",  # one prefix only
    "-NL123456789",  # the prefix must come first once the ends are stripped
    "N L123456789",
    "BE123456789",
    "123\n456\n789",  # a line break inside is not a separator
    "123/456/789",
    "123_456_789",
    "123,456,789",
    "¹²³⁴⁵⁶⁷⁸⁹",  # superscripts: digits, but not decimal
    "c-fd6abe251c27cc076166",
    "206e0493-9f2b-4c5b-a5c6-f79ef8858fb5",
    "",
    " ",
    "NL",
]


@pytest.mark.parametrize("value", LOOK_ALIKES)
def test_look_alikes_of_a_bsn_are_bsn_like(value):
    assert is_bsn_like(value)


@pytest.mark.parametrize("value", NOT_BSN)
def test_other_values_are_not(value):
    assert not is_bsn_like(value)


@pytest.mark.parametrize("value", [123456789, None, b"123456789", ["123456789"]])
def test_only_strings_are_bsn_like(value):
    assert not is_bsn_like(value)


def spec_bsn_like(value: str) -> bool:
    """SPEC §12 read literally, character by character (the fuzz tests use it too)."""
    if len(_DECIMAL.findall(value)) != 9:  # nothing removed is a digit: a quick way out
        return False
    text = value.strip()
    if len(text) >= 2 and text[0] in "NnＮｎ" and text[1] in "LlＬｌ":  # any case, either width
        text = text[2:]
    text = "".join(
        c for c in text if c not in "\t." and unicodedata.category(c) not in ("Zs", "Pd")
    )
    return len(text) == 9 and all(c.isdecimal() for c in text)


_CHARS = st.sampled_from(
    list("0123456789 .-\t\nNnLlxＮｎＬｌ１٣") + ["\u2013", "\u00a0", "\u3000", "\u2212"]
)


@given(st.lists(_CHARS, max_size=16).map("".join))
def test_is_bsn_like_is_the_rule_of_spec_section_12(value):
    assert is_bsn_like(value) == spec_bsn_like(value)


def test_the_pre_checks_never_skip_a_look_alike():
    """``Decoder.check`` skips ``is_bsn_like`` on these two tests alone."""
    for value in LOOK_ALIKES:
        assert value[0] not in NEVER_FIRST
        assert not value.isascii() or not value.lstrip(MAYBE)


def test_space_separators_and_dashes_exist_only_in_the_planes_the_table_scans():
    every = {code for code in range(0x110000) if unicodedata.category(chr(code)) in ("Zs", "Pd")}
    assert every <= set(_separators())
    assert {ord("\t"), ord(".")} <= set(_separators())


# -- masking ---------------------------------------------------------------------------


def line(ref: object, **extra: object) -> bytes:
    return orjson.dumps({"schema": "ggz.declaration/1", "client_ref": ref, "x": 1, **extra})


@pytest.mark.parametrize("ref", LOOK_ALIKES)
def test_a_look_alike_client_ref_is_masked_in_the_bytes(ref):
    masked = mask_bsn(line(ref))
    assert orjson.loads(masked) == {
        "schema": "ggz.declaration/1",
        "client_ref": "*********",
        "x": 1,
    }


@pytest.mark.parametrize("ref", ["c-123456789", "123456789012", "12345678"])
def test_other_client_refs_and_other_fields_stay_as_they_are(ref):
    raw = line(ref, line_id="123456789", other={"trajectory_id": "123 456 789"})
    assert mask_bsn(raw) == raw


def test_a_look_alike_is_masked_however_json_spells_it():
    escaped = b'{"client\\u005fref" : "\\uff11\\uff12\\uff13 456\\t789", "a": "b\\"c"}'
    assert orjson.loads(mask_bsn(escaped)) == {"client_ref": "*********", "a": 'b"c'}
    spaced = b'{ "client_ref"\n:\t"NL-123-456-789" }'
    assert orjson.loads(mask_bsn(spaced)) == {"client_ref": "*********"}


def test_a_look_alike_is_masked_at_any_depth_and_as_a_number():
    raw = orjson.dumps(
        {"lines": [{"client_ref": "123.456.789"}, {"extra": {"client_ref": 123456789}}]}
    )
    assert b"123" not in mask_bsn(raw)


def test_a_look_alike_is_masked_in_text_that_is_not_json():
    for raw in (
        b'{"client_ref": "123 456 789", "kind": debit',
        b'garbage "client_ref":"NL123456789',  # cut off inside the value
        b'[[[{"client_ref":"123456789"',
        b'{"a":"\\x", "client_ref": "123456789"}',  # a bad escape elsewhere
    ):
        masked = mask_bsn(raw)
        assert b"456" not in masked, raw
        assert masked.count(b"*********") == 1


def test_a_key_inside_a_string_value_is_not_taken_for_one():
    raw = b'{"note": "\\"client_ref\\": \\"123456789\\"", "client_ref": "c1"}'
    assert mask_bsn(raw) == raw


def test_mask_text_masks_look_alikes_and_nine_digits_in_a_row():
    assert mask_text("credit for line 123 456 789 that was never debited") == (
        "credit for line ********* that was never debited"
    )
    assert mask_text("key NL-１２３-456-789!") == "key *********!"
    assert mask_text("line 123456789-2") == "line *********-2"
    plain = "submitted_at (UTC) 2026-01-04 is before service_date 2026-01-05, line 12345678"
    assert mask_text(plain) == plain
