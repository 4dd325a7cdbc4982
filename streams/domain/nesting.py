"""How deeply a JSON text nests, found without decoding it.

The JSON decoders (msgspec, orjson) recurse once per level of nesting, and so does
the Python that walks what they return: a message of a few kilobytes nested
thousands deep makes them raise RecursionError. Such a message is refused before any
of them sees it (``Decoder.split``: ``invalid_json``, "nested deeper than 64").

A declaration nests 1 deep, a batch 3 (envelope, its ``lines`` array, a line), and an
unknown extra field (SPEC §2 allows them) adds its own depth. ``MAX_DEPTH`` = 64 leaves
room for any plausible extra field and stays far below the decoders' limits
(msgspec: Python's recursion limit, 1000; orjson: 1024 when decoding, 255 when a dead
letter is encoded again).

Brackets inside strings do not count. The scan runs only where the typed path's
strict decoders (which cannot recurse, see ``typed``) refused a message, so the
common case pays nothing; there it is a few passes of ``bytes`` methods in C (about
0.5 µs per declaration line of a batch).
"""

from __future__ import annotations

MAX_DEPTH = 64

# Keep quotes and brackets, both kinds of bracket written as [ ] (the depth does not
# depend on which kind; the decoders refuse a mismatch anyway).
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_QUOTE_OR_BACKSLASH = (b'"', b"\\")
_COUNTED = 1 << 13  # shorter texts are first counted, not scanned


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text ``raw`` (or a sequence of JSON texts) opens more than
    ``limit`` arrays or objects inside one another anywhere.

    Exact for valid JSON. For text that is not, an upper bound of the depth a decoder
    reaches before it stops at the error.
    """
    # Depth needs an opening bracket per level: few of them, nothing to scan. (Deleting
    # one byte value is a memchr loop, far faster than bytes.count.) A batch always has
    # more: no need to count.
    size = len(raw)
    if size <= limit:
        return False
    if (
        size < _COUNTED
        and 2 * size - len(raw.replace(b"{", b"")) - len(raw.replace(b"[", b"")) <= limit
    ):
        return False
    return _exceeds(_structure(raw), limit)


def _structure(raw: bytes) -> bytes:
    """The brackets of ``raw`` outside its strings, all written ``[`` and ``]``."""
    if b"\\" in raw and _escapes_a_quote(raw):
        # Inside a string a backslash escapes the next byte: without the escaped
        # backslashes, then the escaped quotes, every quote left opens or closes a string.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes and brackets only. A string without brackets becomes '""', and so does the
    # end of one string next to the start of the next: removing those pairs leaves the
    # quotes of the strings that hold brackets, still in open/close pairs.
    kept = raw.translate(_SQUARE, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in kept:
        kept = b"".join(kept.split(b'"')[::2])  # what lies between those strings
    return kept


def _escapes_a_quote(raw: bytes) -> bool:
    """Might a backslash in ``raw`` escape a quote or a backslash? (An escape such as
    ``\\u00e9`` leaves the quotes alone.) Looked at escape by escape while they are
    few, each found by memchr; many, and the answer is yes."""
    at, seen, most = raw.find(b"\\"), 0, len(raw) >> 8
    while at >= 0:
        if raw[at + 1 : at + 2] in _QUOTE_OR_BACKSLASH or seen > most:
            return True
        seen += 1
        at = raw.find(b"\\", at + 2)
    return False


def _exceeds(text: bytes, limit: int) -> bool:
    """Depth of a text of ``[`` and ``]`` above ``limit``?

    Each pass removes the innermost pairs, so a balanced text empties after as many
    passes as it is deep. What no pass can remove is unbalanced (``]]][[``): each of its
    openers may still add a level to the pairs around it.
    """
    passes = 0
    while text:
        shorter = text.replace(b"[]", b"")
        if len(shorter) == len(text):
            break
        passes += 1
        if passes > limit:
            return True
        text = shorter
    return passes + text.count(b"[") > limit
