"""``claimwatch demo``: the whole system on one machine, with a live view.

Starts the embedded broker (unless ``CLAIMWATCH_BROKER`` names one), creates the
topics, starts worker processes, and streams a synthetic history (or ``--input``
archives, with their contracts and department register) through them while the
terminal shows throughput, lag, the providers closest to their cost ceiling, alerts
as they fire, and the department and region alerts (cruciale ggz, SPEC §9). With ``--until-idle`` it
waits until everything is processed, writes alerts and the snapshot in the offline
formats, and exits; otherwise Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.domain.alerts import euros
from streams.domain.errors import ClaimwatchError
from streams.domain.policy import Policy
from streams.kafka.offsets import read_all
from streams.local.cluster import Cluster, free_port
from streams.pipeline.settings import Settings
from streams.portal.run import PortalService
from streams.portal.settings import PortalSettings
from streams.replay.producer import (
    ProduceStats,
    archive_lines,
    contract_lines,
    department_lines,
    produce_history,
    send_final_tick,
)

VAR = Path("var/demo")
CRUCIAL_RULES = frozenset({"department_activity_drop", "department_stopped", "region_category_gap"})
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "warning": "yellow", "info": "cyan"}


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _history(args: Any, console: Console) -> tuple[list[Path], Path | None]:
    if args.input:
        for f in args.input:
            if not Path(f).is_file():
                raise ClaimwatchError(f"{f}: no such file")
        if args.contracts and not Path(args.contracts).is_file():
            raise ClaimwatchError(f"{args.contracts}: no such file")
        return [Path(f) for f in args.input], Path(args.contracts) if args.contracts else None
    from streams.synth.generate import GenerateOptions, generate

    out = VAR / f"history-{args.providers}p-{args.lines}l-s{args.seed}"
    decl = out / "declarations.ndjson"
    if not decl.exists():
        with console.status(
            f"generating a synthetic history of {args.lines:,} lines for {args.providers} providers"
        ):
            generate(
                out, GenerateOptions(providers=args.providers, lines=args.lines, seed=args.seed)
            )
    return [decl], out / "contracts.ndjson"


def _register(args: Any, contracts: Path | None) -> Path | None:
    """The department register: ``--departments`` with ``--input``, else the
    generated history's (a history generated before it had one: none)."""
    if args.input:
        path = getattr(args, "departments", None)
        if path and not Path(path).is_file():
            raise ClaimwatchError(f"{path}: no such file")
        return Path(path) if path else None
    generated = contracts.parent / "departments.ndjson" if contracts is not None else None
    return generated if generated is not None and generated.is_file() else None


def run_demo(args: Any, policy: Policy) -> int:
    console = Console(stderr=True)
    if args.offline:
        return _offline(args, policy, console)
    env_settings = Settings.from_env()
    settings = env_settings.with_(
        tick_seconds=env_settings.tick_seconds or 10.0,
        store=env_settings.store,
    )
    files, contracts = _history(args, console)
    VAR.mkdir(parents=True, exist_ok=True)
    import os

    policy_path = args.policy or os.environ.get("CLAIMWATCH_POLICY")
    cluster = Cluster(settings, var_dir=VAR, policy_path=policy_path)
    # The broker and workers run in sessions of their own (Ctrl-C reaches the demo,
    # which stops them in order). A closed terminal (SIGHUP) or a kill (SIGTERM) takes
    # the same way out; before, either ended the demo at once and left both running.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with console.status("starting the broker and workers"):
            cluster.start_broker()
            cluster.create_topics()
            first = args.web_port or 6066
            for i in range(args.workers):
                port = first + i if _port_free(first + i) else free_port()
                cluster.add_worker(port=port)
            cluster.wait_ready()
        where = (
            f"embedded tansu on {cluster.settings.broker} (log {VAR / 'tansu.log'})"
            if cluster.broker
            else cluster.settings.broker
        )
        console.print(f"[bold]claimwatch demo[/]: broker {where}")
        for w in cluster.workers:
            console.print(
                f"  worker {w.index}: metrics http://127.0.0.1:{w.port}/metrics  (log {w.log_path})"
            )
        portal = _portal_settings(cluster)
        console.print(f"  [bold]purchaser portal: http://127.0.0.1:{portal.port}/[/]")
        return asyncio.run(_run(args, policy, cluster, files, contracts, console, portal))
    except KeyboardInterrupt:
        console.print("stopping…")
        return 130
    finally:
        for sig in previous:  # a second signal must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        try:
            cluster.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _portal_settings(cluster: Cluster) -> PortalSettings:
    """The purchaser portal over the demo's topics, on 8080 when that port is free."""
    env = PortalSettings.from_env()
    port = env.port if _port_free(env.port) else free_port()
    return env.__class__(
        kafka=cluster.settings, topic_departments=env.topic_departments, port=port, bind="127.0.0.1"
    )


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


async def _run(
    args: Any,
    policy: Policy,
    cluster: Cluster,
    files: list[Path],
    contracts: Path | None,
    console: Console,
    portal_settings: PortalSettings | None = None,
) -> int:
    portal = PortalService(portal_settings, policy) if portal_settings is not None else None
    if portal is not None:
        await portal.start()
    try:
        return await _stream(args, policy, cluster, files, contracts, console)
    finally:
        if portal is not None:
            await portal.stop()


async def _stream(
    args: Any,
    policy: Policy,
    cluster: Cluster,
    files: list[Path],
    contracts: Path | None,
    console: Console,
) -> int:
    s = cluster.settings
    crows = contract_lines(contracts)
    drows = department_lines(_register(args, contracts))

    view = LiveView(cluster, policy)

    ordered = crows  # contract_lines returns them in event-time order

    async def after_contracts(sent: int) -> None:
        await asyncio.to_thread(cluster.wait_contracts, ordered[:sent])

    async def after_departments(sent: int) -> None:
        await asyncio.to_thread(cluster.wait_departments, drows[:sent])

    async def sync(stats: ProduceStats) -> None:
        targets = {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}
        await asyncio.to_thread(cluster.wait_processed, targets)

    def progress(stats: ProduceStats) -> None:
        view.produced = stats.lines

    rate = None if args.input else args.rate
    producer = asyncio.create_task(
        produce_history(
            s.broker or "",
            archive_lines(files),
            topic=s.topic_declarations,
            contracts=crows,
            contracts_topic=s.topic_contracts,
            departments=drows,
            departments_topic=s.topic_departments,
            after_departments=after_departments,
            batch_size=args.batch_size,
            rate=rate,
            after_contracts=after_contracts,
            sync=sync if args.input else None,
            on_progress=progress,
            client_kwargs=s.kafka_client_kwargs(),
        )
    )
    alerts_task = asyncio.create_task(view.follow_alerts())
    stats = await _watch(view, producer, console, until_idle=args.until_idle)
    await _evaluate_at_end(cluster, stats)
    alerts_task.cancel()
    snapshot, firing = await asyncio.to_thread(cluster.snapshot, policy)
    alerts = [
        orjson.loads(v)
        for _k, v, _h in await read_all(
            s.broker or "", s.topic_alerts, 30.0, s.kafka_client_kwargs()
        )
    ]
    if args.alerts_out:
        Path(args.alerts_out).write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    if args.snapshot_out:
        Path(args.snapshot_out).write_bytes(
            orjson.dumps(snapshot, option=orjson.OPT_INDENT_2) + b"\n"
        )
    c = snapshot["counts"]
    print(
        f"processed {stats.lines:,} lines ({stats.messages:,} messages): {c['accepted']:,} accepted, "
        f"{sum(c['rejected'].values()):,} dead-lettered; {len(alerts)} alert transitions, {len(firing)} alerts firing"
    )
    return 0


async def _watch(
    view: LiveView, producer: asyncio.Task[ProduceStats], console: Console, until_idle: bool
) -> ProduceStats:
    """Show the live view until the production ends (``until_idle``) or Ctrl-C."""
    live = (
        Live(view.render(), console=console, refresh_per_second=2, transient=False)
        if console.is_terminal
        else None
    )
    stats: ProduceStats | None = None
    try:
        if live is not None:
            live.start()
        last_print = 0.0
        while True:
            await view.refresh()
            if live is not None:
                live.update(view.render())
            elif time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                console.print(view.line())
            if stats is None and producer.done():
                stats = producer.result()
                view.done_producing = True
                if until_idle:
                    return stats
            await asyncio.sleep(0.5)
    finally:
        if live is not None:
            live.stop()
        if not producer.done():
            producer.cancel()


async def _evaluate_at_end(cluster: Cluster, stats: ProduceStats) -> None:
    """Everything produced: wait until processed, then one final evaluation of the
    structural rules, as the offline replay does at its end (after every worker has
    published its providers' final statuses: send_final_tick)."""
    s = cluster.settings
    targets = {f"{s.topic_declarations}:{p}": o for p, o in stats.end_offsets.items()}
    await asyncio.to_thread(cluster.wait_processed, targets)

    async def flushed(offsets: dict[int, int]) -> None:
        flushes = {f"{s.topic_control}:{p}": o for p, o in offsets.items()}
        await asyncio.to_thread(cluster.wait_processed, flushes)

    ticks = await send_final_tick(
        s.broker or "",
        s.topic_control,
        s.partitions,
        s.kafka_client_kwargs(),
        stats.end_offsets,
        processed=flushed,
    )
    await asyncio.to_thread(
        cluster.wait_processed, {f"{s.topic_control}:{p}": o for p, o in ticks.items()}
    )


def _utilisation_style(share: float) -> str:
    if share >= 1:
        return "bold red"
    return "red" if share >= 0.9 else "yellow" if share >= 0.7 else ""


def _pace_cell(month: int, projected: int | None, pace: float | None) -> Text:
    """Where the year lands at the spend of its covered months (SPEC §8.2), or why
    there is no projection yet."""
    if projected is None or pace is None:
        return Text(
            f"after {month} covered months: not yet" if month else "no month covered yet",
            style="dim",
        )
    style = "red" if pace >= 1.1 else "cyan" if pace <= 0.9 else ""
    return Text(f"{euros(projected)} ({pace:.0%} of ceiling, month {month})", style=style)


class LiveView:
    def __init__(self, cluster: Cluster, policy: Policy) -> None:
        self.cluster = cluster
        self.policy = policy
        self.produced = 0
        self.done_producing = False
        self.statuses: list[dict[str, Any]] = []
        self.alerts: collections.deque[dict[str, Any]] = collections.deque(maxlen=12)
        # department and region alerts (SPEC §9), apart: the others would scroll them away
        self.crucial: collections.deque[dict[str, Any]] = collections.deque(maxlen=8)
        self.alert_count = 0
        self.firing_count = 0
        # (provider, year, net cents, utilisation, covered month, projected cents, pace)
        self.top: list[tuple[str, str, int, float, int, int | None, float | None]] = []
        self._rate_mark = (time.monotonic(), 0)
        self.rate = 0.0
        self._last_snapshot = 0.0

    async def refresh(self) -> None:
        self.statuses = await asyncio.to_thread(self.cluster.statuses)
        lines = sum(st.get("lines", 0) for st in self.statuses)
        now = time.monotonic()
        t0, l0 = self._rate_mark
        if now - t0 >= 1.0:
            self.rate = (lines - l0) / (now - t0)
            self._rate_mark = (now, lines)
        if now - self._last_snapshot > 2.0:
            self._last_snapshot = now
            try:
                snap, firing = await asyncio.to_thread(self.cluster.snapshot, self.policy)
            except OSError:
                return
            self.firing_count = len(firing)
            rows = []
            for agb, years in snap["providers"].items():
                for year, ind in years.items():
                    if ind["ceiling_utilisation"] is not None:
                        rows.append(
                            (
                                agb,
                                year,
                                ind["net_cents"],
                                ind["ceiling_utilisation"],
                                ind.get("covered_month", 0),
                                ind.get("projected_cents"),
                                ind.get("pace_ratio"),
                            )
                        )
            rows.sort(key=lambda r: -r[3])
            self.top = rows[:8]

    async def follow_alerts(self) -> None:
        from aiokafka import AIOKafkaConsumer

        s = self.cluster.settings
        consumer = AIOKafkaConsumer(
            s.topic_alerts,
            bootstrap_servers=s.broker,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **s.kafka_client_kwargs(),
        )
        await consumer.start()
        try:
            async for record in consumer:
                self.alert_count += 1
                alert = orjson.loads(record.value)
                self.alerts.appendleft(alert)
                if alert.get("rule") in CRUCIAL_RULES:
                    self.crucial.appendleft(alert)
        finally:
            await consumer.stop()

    def processed(self) -> int:
        return sum(st.get("lines", 0) for st in self.statuses)

    def line(self) -> str:
        return (
            f"produced {self.produced:,} lines, processed {self.processed():,} ({self.rate:,.0f} lines/s), "
            f"{self.alert_count} alert transitions, {self.firing_count} firing"
        )

    def render(self) -> Group:
        head = Table.grid(padding=(0, 3))
        head.add_row(
            Text(f"produced {self.produced:,}", style="bold"),
            Text(f"processed {self.processed():,}", style="bold"),
            Text(f"{self.rate:,.0f} lines/s", style="bold green"),
            Text(f"backlog {max(0, self.produced - self.processed()):,} lines"),
            Text(f"workers {len(self.statuses)}"),
            Text(
                "stream complete — Ctrl-C to stop" if self.done_producing else "streaming…",
                style="dim",
            ),
        )
        top = Table(title="Closest to their cost ceiling", expand=True)
        for col in ("provider", "year", "net declared", "utilisation", "pace: projected landing"):
            top.add_column(col)
        for agb, year, net, util, month, projected, pace in self.top:
            top.add_row(
                agb,
                year,
                euros(net),
                Text(f"{util:.1%}", style=_utilisation_style(util)),
                _pace_cell(month, projected, pace),
            )
        alerts = Table(
            title=f"Alerts ({self.alert_count} transitions, {self.firing_count} firing)",
            expand=True,
        )
        for col in ("state", "severity", "alert", "message"):
            alerts.add_column(col, overflow="fold")
        for a in self.alerts:
            alerts.add_row(
                a["state"],
                Text(a["severity"], style=SEVERITY_STYLE.get(a["severity"], "")),
                a["alert_id"],
                a["message"],
            )
        crucial = Table(title="Cruciale ggz: departments and regions", expand=True)
        for col in ("state", "severity", "where", "message"):
            crucial.add_column(col, overflow="fold")
        for a in self.crucial:
            where = (
                f"{a['provider_agb']} {a.get('department') or ''}".strip()
                if a["provider_agb"]
                else f"region {a['region']}"
            )
            crucial.add_row(
                a["state"],
                Text(a["severity"], style=SEVERITY_STYLE.get(a["severity"], "")),
                where,
                a["message"],
            )
        return Group(head, top, alerts, crucial)


def _offline(args: Any, policy: Policy, console: Console) -> int:
    from streams.replay.offline import replay_offline

    files, contracts = _history(args, console)
    VAR.mkdir(parents=True, exist_ok=True)
    alerts_out = Path(args.alerts_out) if args.alerts_out else VAR / "alerts.ndjson"
    summary, engine = replay_offline(
        files,
        policy,
        contracts=contracts,
        departments=_register(args, contracts),
        alerts_out=alerts_out,
        snapshot_out=args.snapshot_out,
        replay_flag=False,
    )
    for raw in alerts_out.read_bytes().splitlines()[-15:]:
        a = orjson.loads(raw)
        console.print(
            f"[{SEVERITY_STYLE.get(a['severity'], '')}]{a['state']:8} {a['alert_id']}[/]: {a['message']}"
        )
    print(
        f"offline: {summary.lines:,} lines, {summary.alerts} alert transitions, {summary.firing} firing ({alerts_out})"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
