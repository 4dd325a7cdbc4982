"""``python -m bench.hotspots``: where the offline replay spends its time (cProfile).

Profiles one ``replay_offline`` of the cached benchmark history and prints the top
functions by own time and by cumulative time. cProfile slows the run down (roughly
2x) and inflates many-small-call code most, so read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys

from bench.history import SEED, VAR, cached_history
from bench.offline import replay


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__)
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args(argv)
    history = cached_history(args.lines, args.seed)
    profiler = cProfile.Profile()
    profiler.enable()
    lines, seconds, _, _ = replay(history, VAR / "run-hotspots")
    profiler.disable()
    print(f"replay_offline of {lines:,} lines under cProfile: {seconds:.1f} s\n")
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key)
        stats.print_stats(args.top)
        body = out.getvalue()
        start = body.find("   ncalls")
        print(f"--- top {args.top} by {title} ---")
        print(body[start:].rstrip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
