"""The bench's output: a plain-text table of figures and ratios, and the JSON file."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import orjson

NATIONAL_YEAR = 30_000_000
NATIONAL_TARGET_S = 600.0


def extrapolate(results: dict[str, Any]) -> dict[str, Any]:
    """Time for a national year of lines at the measured rates."""
    out: dict[str, Any] = {"lines": NATIONAL_YEAR, "target_streaming_s": NATIONAL_TARGET_S}
    offline = results.get("offline", {}).get("replay_lines_per_s")
    if offline:
        out["offline_s"] = NATIONAL_YEAR / offline
    # Every one-worker run on the streaming topic in this run (the scaling stage's
    # and the streaming stage's): their median, so that one lucky or unlucky run
    # does not decide the verdict.
    rates = results.get("scaling", {}).get("all_one_worker_lines_per_s") or [
        r for r in [results.get("streaming", {}).get("worker_lines_per_s")] if r
    ]
    if rates:
        out["worker_lines_per_s"] = statistics.median(rates)
        out["worker_runs"] = len(rates)
        out["streaming_s"] = NATIONAL_YEAR / out["worker_lines_per_s"]
    return out


def _rate(x: float) -> str:
    return f"{x:,.0f} lines/s"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _dur(s: float) -> str:
    return f"{s:,.1f} s" if s < 120 else f"{s / 60:,.1f} min"


# A follower's lag moves by what one fetch wait holds (the portal's consumer waits up
# to 200 ms for records): lag that grows means more than that between the first and
# the last third of the run.
PORTAL_FETCH_WAIT_S = 0.2


def _lag_flat(f: dict[str, Any]) -> bool:
    slack = f["rate_per_s"] * PORTAL_FETCH_WAIT_S
    return bool(f["lag_mean_last_third"] <= f["lag_mean_first_third"] + slack)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(stage, figure, value, target + verdict) rows of the table."""
    out: list[tuple[str, str, str, str]] = []
    o = results.get("offline")
    if o and "error" not in o:
        n = f"{o['lines']:,} lines, best of {o['runs']}"
        out.append(("offline", f"bare read + orjson ({n})", _rate(o["bare_lines_per_s"]), ""))
        out.append(("offline", "replay_offline", _rate(o["replay_lines_per_s"]), ""))
        out.append(
            (
                "offline",
                "ratio replay / bare",
                _pct(o["ratio"]),
                f">= {_pct(o['target_ratio'])}  {_verdict(o['ratio'] >= o['target_ratio'])}",
            )
        )
        if "cpu_ratio" in o:
            out.append(
                (
                    "offline",
                    "bare / replay, per CPU-second",
                    f"{o['bare_lines_per_cpu_s']:,.0f} / {o['replay_lines_per_cpu_s']:,.0f}",
                    "",
                )
            )
            out.append(
                (
                    "offline",
                    "ratio replay / bare, per CPU-second",
                    _pct(o["cpu_ratio"]),
                    f">= {_pct(o['target_ratio'])}  {_verdict(o['cpu_ratio'] >= o['target_ratio'])}",
                )
            )
    s = results.get("streaming")
    if s and "error" not in s:
        n = f"{s['lines']:,} lines in {s['messages']:,} messages"
        if s.get("batch_size", 500) != 500:
            n += f" of at most {s['batch_size']}"
        out.append(
            ("streaming", f"raw aiokafka consume + orjson ({n})", _rate(s["raw_lines_per_s"]), "")
        )
        if "floor_lines_per_s" in s:
            out.append(
                (
                    "streaming",
                    "Faust alone: the worker's consumer, decode and count (bench.faust_floor)",
                    _rate(s["floor_lines_per_s"]),
                    f"{_pct(s['floor_ratio'])} of raw",
                )
            )
        out.append(
            ("streaming", "one worker (start-up excluded)", _rate(s["worker_lines_per_s"]), "")
        )
        if "worker_lines_per_cpu_s" in s:
            out.append(
                (
                    "streaming",
                    "one worker, per CPU-second of the worker process",
                    f"{s['worker_lines_per_cpu_s']:,.0f} lines/CPU-s",
                    "",
                )
            )
        out.append(
            (
                "streaming",
                "worker start-up / total wall",
                f"{s['worker_startup_s']:.1f} s / {s['worker_total_s']:.1f} s",
                "",
            )
        )
        out.append(
            (
                "streaming",
                "ratio worker / raw",
                _pct(s["ratio"]),
                f">= {_pct(s['target_ratio'])}  {_verdict(s['ratio'] >= s['target_ratio'])}",
            )
        )
        if "worker_of_floor" in s:
            out.append(("streaming", "ratio worker / Faust alone", _pct(s["worker_of_floor"]), ""))
        if "ratio_bound" in s:
            out.append(
                (
                    "streaming",
                    "no broker: orjson decode alone / processor alone (bench.inmemory)",
                    f"{s['decode_lines_per_s']:,.0f} / {s['processor_lines_per_s']:,.0f} lines/s",
                    "",
                )
            )
            out.append(
                (
                    "streaming",
                    "a line: Faust's consumer path (decode out) + processor alone",
                    f"{s['faust_path_us']:.1f} + {s['processor_us']:.1f} us",
                    f"target leaves the processor {s['processor_budget_us']:.1f} us",
                )
            )
            out.append(
                (
                    "streaming",
                    "most the ratio can be with this processor (raw / that sum)",
                    _pct(s["ratio_bound"]),
                    "",
                )
            )
            out.append(
                (
                    "streaming",
                    "the same without Faust (the raw loop's consumer + processor)",
                    _pct(s["ratio_bound_no_faust"]),
                    f"consumer path {s['fetch_path_us']:.1f} us a line",
                )
            )
    lat = results.get("latency")
    if lat and "error" not in lat:
        out.append(
            (
                "latency",
                f"input rate (target {lat['rate_target']:,.0f}/s, {lat['seconds']:.0f} s)",
                _rate(lat["rate_achieved"]),
                "",
            )
        )
        out.append(
            (
                "latency",
                "ceiling alerts measured / expected",
                f"{lat['alerts_measured']} / {lat['alerts_expected']}",
                "",
            )
        )
        out.append(("latency", "event time -> alert p50", f"{1000 * lat['p50_s']:.0f} ms", ""))
        out.append(
            (
                "latency",
                "  of which to detection / to arrival, p50",
                f"{1000 * lat['detect_p50_s']:.0f} / {1000 * lat['deliver_p50_s']:.0f} ms",
                "",
            )
        )
        out.append(
            (
                "latency",
                "floor: raw consumer, the worker's fetch wait, p50 / p99",
                f"{1000 * lat['floor_p50_s']:.0f} / {1000 * lat['floor_p99_s']:.0f} ms",
                "",
            )
        )
        out.append(
            (
                "latency",
                "event time -> alert p99 (max)",
                f"{1000 * lat['p99_s']:.0f} ms ({1000 * lat['max_s']:.0f} ms)",
                f"< {1000 * lat['target_p99_s']:.0f} ms  {_verdict(lat['p99_s'] < lat['target_p99_s'])}",
            )
        )
    out.extend(_state_rows(results.get("state")))
    sc = results.get("scaling")
    if sc and "error" not in sc:
        ones = len(sc["all_one_worker_lines_per_s"])
        also = (
            ", streaming stage's run included" if sc["one_worker_includes_streaming_stage"] else ""
        )
        n = f"{sc['lines']:,} lines, best of {ones}{also}"
        out.append(("scaling", f"one worker ({n})", _rate(sc["one_worker_lines_per_s"]), ""))
        split = " + ".join(str(len(a)) for a in sc["two_workers_assignments"])
        out.append(
            (
                "scaling",
                f"two workers, one group (partitions {split}, best of {sc['runs']})",
                _rate(sc["two_workers_lines_per_s"]),
                "",
            )
        )
        out.append(
            ("scaling", "speed-up two / one", f"{sc['speedup']:.2f} x", "no target in #5 (2 cores)")
        )
    po = results.get("portal")
    if po and "follow" in po:
        f, r = po["follow"], po["render"]
        out.append(
            (
                "portal",
                f"follow {f['updates']:,} status updates ({f['lines']:,} lines' worth) at {f['rate_per_s']:,.0f}/s",
                f"lag max {f['lag_max']:,} ({f['lag_max'] / f['rate_per_s']:.2f} s)",
                f"mean lag first third {f['lag_mean_first_third']:.1f}, last third "
                f"{f['lag_mean_last_third']:.1f}; not growing: {_verdict(_lag_flat(f))}",
            )
        )
        for page in ("overview", "provider"):
            out.append(
                (
                    "portal",
                    f"render {page} page, {r['providers']:,} providers",
                    f"{r[page + '_ms_median']:.0f} ms median",
                    f"max {r[page + '_ms_max']:.0f} ms; < 200 ms: {_verdict(r[page + '_ms_max'] < 200)}",
                )
            )
    elif po and "error" in po:
        out.append(("portal", "error", po["error"], ""))
    pe = results.get("peer")
    if pe and "skipped" in pe:
        out.append(("peer", "quixstreams", "skipped", pe["skipped"]))
    elif pe and "error" not in pe:
        n = f"{pe['lines']:,} lines, quixstreams {pe['quixstreams']}"
        out.append(("peer", f"quixstreams, same topic ({n})", _rate(pe["quix_lines_per_s"]), ""))
        out.append(
            (
                "peer",
                "quixstreams, per CPU-second of its process",
                f"{pe['quix_lines_per_cpu_s']:,.0f} lines/CPU-s",
                "",
            )
        )
        if "ratio" in pe:
            out.append(
                (
                    "peer",
                    "claimwatch one worker (best in this run)",
                    _rate(pe["claimwatch_lines_per_s"]),
                    "",
                )
            )
            out.append(
                (
                    "peer",
                    "ratio claimwatch / quixstreams",
                    _pct(pe["ratio"]),
                    f"> 100.0 % (ahead)  {_verdict(pe['ratio'] > pe['target_ratio'])}",
                )
            )
        if "cpu_ratio" in pe:
            out.append(
                (
                    "peer",
                    "claimwatch one worker, per CPU-second (best in this run)",
                    f"{pe['claimwatch_lines_per_cpu_s']:,.0f} lines/CPU-s",
                    "",
                )
            )
            out.append(
                (
                    "peer",
                    "ratio claimwatch / quixstreams, per CPU-second",
                    _pct(pe["cpu_ratio"]),
                    f"> 100.0 % (ahead)  {_verdict(pe['cpu_ratio'] > 1.0)}",
                )
            )
    e = results.get("extrapolation", {})
    if "offline_s" in e:
        out.append(
            (
                "extrapolated",
                f"{e['lines'] / 1e6:.0f}M lines, offline replay",
                _dur(e["offline_s"]),
                "",
            )
        )
    if "streaming_s" in e:
        ok = e["streaming_s"] < e["target_streaming_s"]
        out.append(
            (
                "extrapolated",
                f"{e['lines'] / 1e6:.0f}M lines, one worker (median of "
                f"{e.get('worker_runs', 1)} run{'s' if e.get('worker_runs', 1) > 1 else ''})",
                _dur(e["streaming_s"]),
                f"< {_dur(e['target_streaming_s'])}  {_verdict(ok)}",
            )
        )
    for stage in ("offline", "streaming", "latency", "state", "scaling", "peer"):
        r = results.get(stage)
        if r and "error" in r:
            out.append((stage, "FAILED", r["error"][:60], ""))
    return out


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n / 1e3:.0f}k"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def _state_rows(st: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    if not st or "error" in st:
        return out
    for name in ("memory", "rocksdb"):
        r = st[name]
        sizes = " / ".join(_count(p["distinct_lines"]) for p in r["points"])
        peaks = " / ".join(f"{p['peak_rss'] / 1e6:,.0f}" for p in r["points"])
        out.append(
            (
                "memory",
                f"{r['store']} peak RSS at {sizes} lines (idle {_mb(r['idle_rss'])})",
                f"{peaks} MB",
                "",
            )
        )
        per_m = r["bytes_per_line"]
        if name == "memory":
            target = st["target_memory_bytes_per_line"]
            verdict = f"<= {target} B/line  {_verdict(per_m <= target)}"
        else:
            verdict = ""
        out.append(
            (
                "memory",
                f"{r['store']} (peak − idle) / distinct lines",
                f"{per_m:,.0f} B/line",
                verdict,
            )
        )
        slope = r["slope_bytes_per_line"]
        if name == "rocksdb":
            flat = st["flat_bytes_per_line"]
            verdict = f"flat (<= {flat} B/line)  {_verdict(slope <= flat)}"
        else:
            verdict = ""
        out.append(
            (
                "memory",
                f"{r['store']} growth between first and last size",
                f"{slope:,.0f} B/line",
                verdict,
            )
        )
    target = st["target_recovery_s_per_million"]
    for name in ("memory", "rocksdb"):
        rec = st[name]["recovery"]
        lines = st[name]["distinct_lines"]
        out.append(
            (
                "recovery",
                f"{st[name]['store']} restart, {_count(lines)} lines: group joined / state rebuilt",
                f"{rec['assigned_s']:.1f} s / {rec['restored_s']:.1f} s",
                "",
            )
        )
        per_m = rec["recovery_s_per_million"]
        out.append(
            (
                "recovery",
                f"{st[name]['store']} restart until processing again ({rec['recovery_s']:.1f} s)",
                f"{per_m:,.1f} s per 1M lines",
                f"< {target:.0f} s  {_verdict(per_m < target)}",
            )
        )
    return out


def table(results: dict[str, Any]) -> str:
    body = rows(results)
    widths = [max(len(r[i]) for r in body) if body else 0 for i in range(4)]
    m = results["meta"]
    head = (
        f"claimwatch bench  {m['date']}  Python {m['python']}  {m['cpus']} CPUs"
        f"  ({'quick' if m['quick'] else 'full'})  CLAIMWATCH_MALLOC={m.get('malloc', 'compact')}"
    )
    git = m.get("git") or {}
    if git.get("commit"):
        head += f"  {git['commit']}{' + uncommitted streams/' if git.get('streams_dirty') else ''}"
    lines = [head, "-" * len(head)]
    for stage, figure, value, target in body:
        lines.append(
            f"{stage:<{widths[0]}}  {figure:<{widths[1]}}  {value:>{widths[2]}}  {target}".rstrip()
        )
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
