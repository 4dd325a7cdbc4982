"""What Linux's /proc says about a process: resident memory and CPU time."""

from __future__ import annotations

import os

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, int]:
    """Current (``rss``) and peak (``peak_rss``) resident set size, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for row in f:
            if row.startswith(("VmRSS:", "VmHWM:")):
                name, value = row.split(":", 1)
                out["rss" if name == "VmRSS" else "peak_rss"] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S
