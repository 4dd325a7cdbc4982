# Types of the compiled kernel (kernel.pyx), for mypy and readers.
from array import array
from typing import Any

def configure(
    *,
    consult: int,
    digital: int,
    group: int,
    group_over2: int,
    group_ge4: int,
    detox_clinical: int,
    detox_ambulant: int,
    mismatch: int,
    adhd: int,
    tally_mask: int,
    stay_bits: int,
    mix: int,
    key_mask: int,
) -> None: ...
def configure_state(
    *,
    accepted: str,
    duplicate: str,
    duplicate_line: str,
    line_index_expired: str,
    client_key: Any,
    shared: int,
) -> None: ...
def key_of(identifier: str) -> int: ...
def table_arrays(table: Any) -> tuple[array[int], array[int]] | None: ...
def dims_cells(
    index: Any, skip: int, need: int, months: int, n_dims: int
) -> dict[int, list[int]]: ...
def dims_groups(
    index: Any, skip: int, need: int, months: int, dims: list[Any], places: tuple[int, ...]
) -> list[dict[Any, list[int]]]: ...

class YearCore:
    net_cents: int
    lines: int
    consults: int
    group_consults: int
    group_ge4: int
    group_over2: int
    digital: int
    detox_clinical: int
    detox_ambulant: int
    mismatch: int
    changes: int
    by_month: list[int]
    adhd: dict[int, Any]
    clients_detox: Any
    clients_clinical: Any
    clients_consult: Any
    clients_digital: Any
    dept_cells: dict[int, list[Any]]
    dept_live: Any
    def month_cents(self, month: int) -> int: ...
    def apply(
        self,
        flags: int,
        amount_cents: int,
        month: int,
        dims: int,
        client: Any,
        sign: int,
        dept: int = -1,
    ) -> None: ...

class StateCore:
    watermark: float
    _roll: float
    _cy: int
    open_from: int
    _cl: Any
    _cc: Any
    _ce: Any
    _cys: Any
    journal: Any
    counts: Any
    _dim_ids: dict[Any, int]
    _packs: dict[int, int]
    dept_of: list[int]
    dims_live: list[int]
    hashed: bool
    def accept(self, decoded: Any) -> str: ...

class JournalCore:
    keys: array[int]
    events: array[int]
    years: array[int]
    entries: array[int]
    clients: array[int]
    mismatch_at: array[int]
    line_ids: list[str]
    with_client: int
    def debit(
        self, key: Any, event: Any, year: int, packed: int, client: Any, line_id: str | None
    ) -> None: ...
