"""Generated input for the benchmarks, cached under var/bench/ by size and seed.

Generating a million lines takes tens of seconds; a rerun with the same size and seed
reuses the files. A ``complete`` marker is written last, so an interrupted generation
is redone rather than half-used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.synth.generate import GenerateOptions, generate

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"  # <repo>/var is git-ignored
SEED = 7


@dataclass(frozen=True, slots=True)
class History:
    declarations: Path
    contracts: Path
    lines: int
    providers: int


def providers_for(lines: int) -> int:
    """Zipf-skewed providers; about one per 5,000 lines, between 20 and 400."""
    return max(20, min(400, lines // 5_000))


def cached_history(lines: int, seed: int = SEED, var: Path = VAR) -> History:
    providers = providers_for(lines)
    out = var / f"history-{lines}-s{seed}-p{providers}"
    marker = out / "complete"
    if not marker.exists():
        summary = generate(out, GenerateOptions(providers=providers, lines=lines, seed=seed))
        marker.write_text(f"{summary.lines}\n")
    return History(
        declarations=out / "declarations.ndjson",
        contracts=out / "contracts.ndjson",
        lines=int(marker.read_text()),
        providers=providers,
    )
