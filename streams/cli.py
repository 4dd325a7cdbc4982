"""``claimwatch``: parse arguments, call one function, print the result.

Every error a user can make ends in one line on stderr and a non-zero exit status:
2 for a bad command line, 1 for bad input or a failed run. Heavy imports (Faust,
aiokafka) happen inside the command that needs them, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from streams.domain.errors import ClaimwatchError

if TYPE_CHECKING:
    from streams.domain.policy import Policy

PROG = "claimwatch"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _years(text: str) -> tuple[int, ...]:
    try:
        years = tuple(sorted({int(y) for y in text.split(",") if y.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid years {text!r}: expected e.g. 2025,2026"
        ) from None
    if not years or any(not 2000 <= y <= 2100 for y in years):
        raise argparse.ArgumentTypeError(f"invalid years {text!r}: expected e.g. 2025,2026")
    return years


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: expected a positive number"
            ) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be > 0")
        return value

    return parse


def _batch_size(text: str) -> int:
    value = _positive(int)(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(
            f"invalid batch size {text}: at most 1000 lines per batch (SPEC §2)"
        )
    return int(value)


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, read only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("claimwatch")
        except PackageNotFoundError:
            text = "unknown (not installed: pip install .)"
        print(f"{parser.prog} {text}")
        raise SystemExit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Real-time monitor of GGZ declaration flows.")
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--policy", help="policy TOML file (default: $CLAIMWATCH_POLICY or the shipped defaults)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser(
        "demo", help="broker + worker + synthetic stream on this machine, live view"
    )
    demo.add_argument(
        "--input", nargs="+", metavar="FILE", help="push this history instead of a synthetic stream"
    )
    demo.add_argument("--contracts", metavar="FILE", help="contract events (NDJSON) for --input")
    demo.add_argument(
        "--departments", metavar="FILE", help="department register events (NDJSON) for --input"
    )
    demo.add_argument("--until-idle", action="store_true", help="exit once all input is processed")
    demo.add_argument("--alerts-out", metavar="A", help="write alerts (NDJSON) here")
    demo.add_argument("--snapshot-out", metavar="S", help="write the final snapshot (JSON) here")
    demo.add_argument(
        "--providers", type=_positive(int), default=40, help="synthetic providers (default 40)"
    )
    demo.add_argument(
        "--lines", type=_positive(int), default=300_000, help="synthetic lines (default 300000)"
    )
    demo.add_argument(
        "--rate", type=_positive(float), default=20_000.0, help="lines per second (default 20000)"
    )
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--workers", type=_positive(int), default=1, help="worker processes (default 1)"
    )
    demo.add_argument("--batch-size", type=_batch_size, default=500)
    demo.add_argument(
        "--web-port",
        type=_positive(int),
        default=None,
        help="metrics port of the first worker (default 6066)",
    )
    demo.add_argument(
        "--offline",
        action="store_true",
        help="no broker: run the history through the offline engine",
    )

    sub.add_parser(
        "worker", help="a Faust worker against the configured Kafka ($CLAIMWATCH_BROKER)"
    )

    replay = sub.add_parser(
        "replay", help="replay archived declarations (into Kafka, or --offline)"
    )
    replay.add_argument("files", nargs="+", metavar="FILE", help="NDJSON archives (.gz allowed)")
    replay.add_argument("--contracts", metavar="FILE", help="contract events (NDJSON)")
    replay.add_argument("--departments", metavar="FILE", help="department register events (NDJSON)")
    replay.add_argument("--offline", action="store_true", help="compute without Kafka")
    replay.add_argument("--alerts-out", metavar="A", help="offline: write alerts (NDJSON) here")
    replay.add_argument(
        "--snapshot-out", metavar="S", help="offline: write the final snapshot (JSON) here"
    )
    replay.add_argument(
        "--rejected-out", metavar="R", help="offline: write dead-lettered lines (NDJSON) here"
    )
    replay.add_argument(
        "--batch-size", type=_batch_size, default=500, help="lines per Kafka message (default 500)"
    )
    rate = replay.add_mutually_exclusive_group()
    rate.add_argument(
        "--rate", type=_positive(float), help="lines per second (default: as fast as possible)"
    )
    rate.add_argument(
        "--speed", type=_positive(float), help="times real speed against event time, e.g. 3600"
    )
    replay.add_argument(
        "--live", action="store_true", help="produce into the live topics (default: replay topics)"
    )
    replay.add_argument(
        "--no-final-tick",
        action="store_true",
        help="do not ask workers for a final rule evaluation",
    )

    gen = sub.add_parser(
        "generate",
        help="write a realistic synthetic history (anomalies planted past the --policy thresholds)",
    )
    gen.add_argument("--out", required=True, metavar="DIR", help="output directory")
    gen.add_argument("--providers", type=_positive(int), default=40)
    gen.add_argument("--lines", type=_positive(int), default=200_000)
    gen.add_argument("--years", type=_years, default=(2025, 2026), help="e.g. 2025,2026")
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--gzip", action="store_true", help="write declarations.ndjson.gz")
    gen.add_argument(
        "--policy",
        default=argparse.SUPPRESS,  # unless given here, the one before the command holds
        help="policy TOML file whose thresholds the anomalies are planted past",
    )

    exp = sub.add_parser(
        "explain",
        help="replay offline and show why one alert fired: computation, breakdown, its lines",
    )
    exp.add_argument(
        "alert_id", metavar="ALERT_ID", help="e.g. ceiling_utilisation:12345678:2026:70"
    )
    exp.add_argument("files", nargs="+", metavar="FILE", help="NDJSON archives (.gz allowed)")
    exp.add_argument("--contracts", metavar="FILE", help="contract events (NDJSON)")
    exp.add_argument("--departments", metavar="FILE", help="department register events")

    sub.add_parser(
        "portal",
        help="the purchaser portal: a read-only web page over the status, alerts and "
        "department topics ($CLAIMWATCH_BROKER)",
    )
    snap = sub.add_parser(
        "snapshot", help="one snapshot of the cluster, merged from the provider-status topic"
    )
    snap.add_argument("--out", metavar="S", help="write it here (default: standard output)")

    val = sub.add_parser("validate", help="check files against the schemas")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.add_argument("--kind", choices=("auto", "declaration", "contract"), default="auto")
    val.add_argument(
        "--max-report", type=_positive(int), default=1000, help="bad lines to print (default 1000)"
    )
    return parser


def _policy(args: argparse.Namespace) -> Policy:
    from streams.domain.policy import load_policy

    return load_policy(args.policy or os.environ.get("CLAIMWATCH_POLICY") or None)


def _progress_bar(
    enabled: bool, description: str = "replaying", unit: str = "bytes"
) -> tuple[Any, Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal (stderr), of bytes or of lines; nothing otherwise."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn() if unit == "bytes" else MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    )
    task = bar.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def cmd_replay(args: argparse.Namespace) -> int:
    if not args.offline:
        if args.alerts_out or args.snapshot_out or args.rejected_out:
            raise ClaimwatchError(
                "--alerts-out/--snapshot-out/--rejected-out need --offline (or use `claimwatch demo --input …`)"
            )
        from streams.replay.producer import run_replay

        return run_replay(args, _policy(args))
    from streams.replay.offline import replay_offline

    policy = _policy(args)
    bar, update = _progress_bar(sys.stderr.isatty())
    if bar is not None:
        bar.start()
    try:
        summary, _ = replay_offline(
            args.files,
            policy,
            contracts=args.contracts,
            departments=args.departments,
            alerts_out=args.alerts_out,
            snapshot_out=args.snapshot_out,
            rejected_out=args.rejected_out,
            progress=update,
        )
    finally:
        if bar is not None:
            bar.stop()
    c = summary.counts
    rejected = sum(c["rejected"].values())
    print(
        f"replayed {summary.lines:,} lines in {summary.seconds:.1f} s ({summary.lines_per_second:,.0f} lines/s): "
        f"{c['accepted']:,} accepted, {c['duplicate'] + c['duplicate_line'] + c['duplicate_credit']:,} ignored as duplicates, "
        f"{rejected:,} rejected; {summary.alerts} alert transitions, {summary.firing} firing at the end"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from streams.replay.explain import explain_alert

    policy = _policy(args)
    bar, update = _progress_bar(sys.stderr.isatty())
    if bar is not None:
        bar.start()
    try:
        report = explain_alert(
            args.alert_id,
            args.files,
            policy,
            contracts=args.contracts,
            progress=update,
            departments=args.departments,
        )
    finally:
        if bar is not None:
            bar.stop()
    sys.stdout.write(report)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from streams.synth.generate import GenerateOptions, generate

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ClaimwatchError(f"{out}: exists and is not a directory")
    options = GenerateOptions(
        providers=args.providers, lines=args.lines, years=args.years, seed=args.seed, gzip=args.gzip
    )
    policy = _policy(args)
    bar, update = _progress_bar(sys.stderr.isatty(), "generating", unit="lines")
    if bar is not None:
        bar.start()
    try:
        out.mkdir(parents=True, exist_ok=True)
        summary = generate(out, options, policy, progress=update)
    except OSError as exc:
        raise ClaimwatchError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        if bar is not None:
            bar.stop()
    print(summary.describe())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from streams.replay.validate import validate_files

    report = validate_files(
        args.files, kind=args.kind, max_report=args.max_report, out=sys.stdout, policy=_policy(args)
    )
    print(report.summary(), file=sys.stderr if report.bad else sys.stdout)
    return 1 if report.bad else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.local.demo import run_demo

    return run_demo(args, _policy(args))


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.pipeline.run import run_worker

    return run_worker(_policy(args))


def cmd_portal(args: argparse.Namespace) -> int:
    from streams.portal.run import run_portal

    return run_portal(_policy(args))


def cmd_snapshot(args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from streams.pipeline.settings import Settings
    from streams.portal.snapshot import cluster_snapshot

    settings = Settings.from_env()
    if not settings.broker:
        raise ClaimwatchError("CLAIMWATCH_BROKER is not set: which cluster?")
    snap, malformed = asyncio.run(cluster_snapshot(settings, _policy(args)))
    body = orjson.dumps(snap, option=orjson.OPT_INDENT_2) + b"\n"
    if args.out:
        try:
            Path(args.out).write_bytes(body)
        except OSError as exc:
            raise ClaimwatchError(f"{args.out}: cannot write ({exc.strerror or exc})") from None
    else:
        sys.stdout.buffer.write(body)
    if malformed:
        print(f"{PROG}: {malformed} unreadable status records skipped", file=sys.stderr)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "worker": cmd_worker,
    "replay": cmd_replay,
    "generate": cmd_generate,
    "validate": cmd_validate,
    "explain": cmd_explain,
    "portal": cmd_portal,
    "snapshot": cmd_snapshot,
}


def _check_environment() -> None:
    """A ``CLAIMWATCH_*`` variable that is no setting stops every command, not only
    those that read the settings (docs/configuration.md, "How values are read")."""
    from streams.pipeline.settings import check_variables

    check_variables(os.environ)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_environment()
        return COMMANDS[args.command](args)
    except ClaimwatchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
