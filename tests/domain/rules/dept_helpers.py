"""Shared by the department rule tests: a department's clients per service month,
and register entries."""

from __future__ import annotations

from typing import Any

from streams.domain.departments import Department, parse_department
from tests.domain.rules.rule_helpers import AGB


def months(
    line: Any, clients: dict[str, int], submitted: str, department: str = "crisis", **kw: Any
) -> list[dict[str, Any]]:
    """``clients["2026-03"]`` distinct clients of ``department`` in that service month,
    one consult each, all submitted at ``submitted``."""
    kw.setdefault("setting", 4)
    return [
        line(
            department=department,
            service_date=f"{month}-10",
            submitted_at=submitted,
            **kw,
        )
        for month, n in clients.items()
        for _ in range(n)
    ]


def register(category: str, department: str = "crisis", version: int = 1) -> Department:
    return parse_department(
        {
            "schema": "ggz.department/1",
            "provider_agb": AGB,
            "department": department,
            "name": department.title(),
            "category": category,
            "region": "Utrecht",
            "version": version,
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )


def steady(n: int, first: str = "2026-01", count: int = 6) -> dict[str, int]:
    """``n`` clients in each of ``count`` months from ``first``."""
    year, month = int(first[:4]), int(first[5:])
    out = {}
    for k in range(count):
        y, m = divmod(year * 12 + month - 1 + k, 12)
        out[f"{y}-{m + 1:02d}"] = n
    return out
