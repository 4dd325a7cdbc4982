"""Reading archive files: NDJSON, optionally gzip-compressed, with clear errors."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from streams.domain.contracts import Contract, ContractError, parse_contract
from streams.domain.departments import Department, DepartmentError, parse_department
from streams.domain.errors import InputError

BLOCK = 1 << 16  # bytes read at a time: about 130 declaration lines


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def iter_blocks(path: str | Path, progress: Any = None) -> Iterator[bytes]:
    """A file as blocks of whole lines, about ``BLOCK`` bytes each, every one ending
    with a newline (one is added to a last line without it).

    gzip is recognised by its magic bytes, whatever the name. ``progress`` is an
    optional callable taking the number of compressed bytes consumed so far. A block
    of lines is what a hot loop wants: one C call can decode all of it
    (``Engine.process_block``) or split it into lines (``iter_chunks``).
    """
    p = Path(path)
    try:
        compressed = _is_gzip(p)
        raw = p.open("rb")
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    with raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        number = 0
        tail = b""
        try:
            while True:
                chunk = stream.read(BLOCK)
                if not chunk:
                    break
                if progress is not None:
                    progress(raw.tell())
                buf = tail + chunk if tail else chunk
                cut = buf.rfind(b"\n") + 1
                if cut == 0:  # no line ends in it yet: a line longer than a block
                    tail = buf
                    continue
                tail = buf[cut:]
                block = buf[:cut]
                if compressed:  # for the error below; counting costs 0.4 µs a line
                    number += block.count(b"\n")
                yield block
        except (OSError, EOFError, zlib.error) as exc:
            if not compressed:
                raise InputError(f"{p}: cannot be read ({exc})") from None
            raise InputError(f"{p}: unreadable gzip data after line {number} ({exc})") from None
        if tail:
            yield tail + b"\n"


def iter_chunks(path: str | Path, progress: Any = None) -> Iterator[list[bytes]]:
    """The lines of a file (without newlines, blank ones included), a block at a time
    (``iter_blocks``). A list per block lets a hot loop iterate in C instead of
    resuming a generator per line."""
    for block in iter_blocks(path, progress):
        parts = block.split(b"\n")
        parts.pop()  # the empty string after the block's last newline
        yield parts


def iter_lines(path: str | Path, progress: Any = None) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without newline) of a file; blank lines are skipped."""
    number = 0
    for parts in iter_chunks(path, progress):
        for part in parts:
            number += 1
            if part.strip():
                yield number, part


def read_contracts(path: str | Path) -> list[Contract]:
    """All contract events of a file, in event-time order (file order breaks ties)."""
    contracts: list[Contract] = []
    for number, raw in iter_lines(path):
        try:
            obj = orjson.loads(raw)
            contracts.append(parse_contract(obj))
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: invalid_json: {exc}") from None
        except ContractError as exc:
            raise InputError(f"{path}:{number}: schema: {exc}") from None
    contracts.sort(key=lambda c: c.updated_at)
    return contracts


def read_departments(path: str | Path) -> list[Department]:
    """All department register events of a file (SPEC §9), in event-time order."""
    entries: list[Department] = []
    for number, raw in iter_lines(path):
        try:
            entries.append(parse_department(orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: invalid_json: {exc}") from None
        except DepartmentError as exc:
            raise InputError(f"{path}:{number}: schema: {exc}") from None
    entries.sort(key=lambda d: d.updated_at)
    return entries
