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
common case pays nothing; there it is a few passes of ``bytes`` methods in C.
"""

from __future__ import annotations

import re

MAX_DEPTH = 64

# Keep quotes and brackets, both kinds of bracket written as [ ] (the depth does not
# depend on which kind; the decoders refuse a mismatch anyway).
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
# A JSON string, also one cut off at the end of the text. Possessive: on a string that
# never ends it does not backtrack, so the scan stays linear on any input.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"?', re.DOTALL)


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text ``raw`` (or a sequence of JSON texts) opens more than
    ``limit`` arrays or objects inside one another anywhere.

    Exact for valid JSON. For text that is not, an upper bound of the depth a decoder
    reaches before it stops at the error.
    """
    # Depth needs an opening bracket per level: few of them, nothing to scan.
    # (Deleting one byte value is a memchr loop, far faster than bytes.count.)
    size = len(raw)
    if 2 * size - len(raw.replace(b"{", b"")) - len(raw.replace(b"[", b"")) <= limit:
        return False
    return _exceeds(_structure(raw), limit)


def _structure(raw: bytes) -> bytes:
    """The brackets of ``raw`` outside its strings, all written ``[`` and ``]``."""
    if b"\\" not in raw:
        # Without escapes a string is '"' [^"]* '"'. Keep quotes and brackets: a string
        # without brackets becomes '""'; if removing every '""' removes every quote, no
        # string held a bracket (a string whose content stays leaves a quote, whatever
        # the pairs the removal happens to cut).
        kept = raw.translate(_SQUARE, _NOT_STRUCTURE).replace(b'""', b"")
        if b'"' not in kept:
            return kept
    return _STRING.sub(b"", raw).translate(_SQUARE, _NOT_BRACKET)


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
