"""Contracts (zorgkostenplafond per provider and year): the latest version wins."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.domain import schemas
from streams.domain.model import parse_time


@dataclass(frozen=True, slots=True)
class Contract:
    provider: str
    year: int
    ceiling_cents: int
    purchaser: str
    provider_name: str
    region: str
    version: int
    updated_at: float  # unix seconds
    # SPEC §8.4: the share of consult clients with digital care the purchaser agreed
    # with this provider (0..1); None: the policy's default target applies.
    digital_target: float | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.year}"

    @classmethod
    def from_event(cls, obj: dict[str, Any]) -> Contract:
        """Build from a contract event already checked against ``contract.v1.json``."""
        return cls(
            obj["provider_agb"],
            obj["year"],
            obj["ceiling_cents"],
            obj["purchaser"],
            obj["provider_name"],
            obj["region"],
            obj["version"],
            parse_time(obj["updated_at"]),
            _target(obj.get("digital_target")),
        )


def _target(value: Any) -> float | None:
    return None if value is None else float(value)  # the schema allows an integer 0 or 1


class ContractError(ValueError):
    """A contract event that does not match ``contract.v1.json``."""


def parse_contract(obj: Any) -> Contract:
    problem = schemas.check(schemas.CONTRACT, obj)
    if problem is not None:
        raise ContractError(problem)
    try:
        return Contract.from_event(obj)
    except ValueError as exc:  # a timestamp the schema's format check let through
        raise ContractError(f"updated_at: {exc}") from None


class ContractBook:
    """Current contract per (provider, year)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], Contract] = {}
        # (provider, year) → current contract or None: the hot path calls dict.get itself
        self.lookup = self._by_key.get

    def apply(self, contract: Contract) -> bool:
        """Store ``contract`` if it is newer than what we have; True when it changed."""
        key = (contract.provider, contract.year)
        current = self._by_key.get(key)
        if current is not None and current.version >= contract.version:
            return False
        self._by_key[key] = contract
        return True

    def get(self, provider: str, year: int) -> Contract | None:
        return self._by_key.get((provider, year))

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Contract]:
        return iter(self._by_key.values())
