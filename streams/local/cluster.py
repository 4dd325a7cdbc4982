"""A claimwatch cluster on one machine: broker, worker processes, and their views.

``claimwatch demo`` and the pipeline tests both use it. Workers are real
``claimwatch worker`` processes (so they can be killed and restarted), each with its
own web port; the cluster talks to them only through their HTTP views and Kafka.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from streams.domain.errors import ClaimwatchError
from streams.domain.policy import Policy
from streams.domain.snapshot import merge_snapshots
from streams.kafka.offsets import read_all
from streams.kafka.topics import topic_specs
from streams.local.broker import EmbeddedBroker, ensure_topics_sync
from streams.pipeline.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0, token: str | None = None) -> Any:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return orjson.loads(resp.read())


@dataclass
class WorkerProc:
    index: int
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None


@dataclass
class Cluster:
    settings: Settings
    var_dir: Path = Path("var")
    workers: list[WorkerProc] = field(default_factory=list)
    broker: EmbeddedBroker | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    policy_path: str | None = None

    # -- lifecycle ------------------------------------------------------------
    def start_broker(self) -> None:
        """Use the configured broker, or start the embedded one."""
        if self.settings.broker:
            return
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(log_path=self.var_dir / "tansu.log").start()
        # The embedded broker speaks plaintext on loopback: security settings meant
        # for a real cluster do not apply to it. The producers keep the production
        # batching: what reads a topic's end copes with tansu's ListOffsets
        # (streams/kafka/offsets.py).
        self.settings = self.settings.with_(
            broker=self.broker.bootstrap,
            producer_idempotence=False,  # tansu has no idempotent producers
            security_protocol="PLAINTEXT",
            sasl_username=None,
            sasl_password=None,
            ssl_cafile=None,
            ssl_certfile=None,
            ssl_keyfile=None,
        )

    def create_topics(self) -> None:
        ensure_topics_sync(
            self.settings.broker or "",
            topic_specs(self.settings),
            **self.settings.kafka_client_kwargs(),
        )

    def add_worker(self, port: int | None = None) -> WorkerProc:
        i = len(self.workers)
        w = WorkerProc(
            i,
            port or free_port(),
            self.var_dir / f"worker-{i}",
            self.var_dir / f"worker-{i}.log",
        )
        self.workers.append(w)
        self.start_worker(w)
        return w

    def worker_env(self, w: WorkerProc) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "CLAIMWATCH_BROKER": s.broker or "",
                "CLAIMWATCH_APP_ID": s.app_id,
                "CLAIMWATCH_TOPIC_DECLARATIONS": s.topic_declarations,
                "CLAIMWATCH_TOPIC_CONTRACTS": s.topic_contracts,
                "CLAIMWATCH_TOPIC_DEPARTMENTS": s.topic_departments,
                "CLAIMWATCH_TOPIC_ALERTS": s.topic_alerts,
                "CLAIMWATCH_TOPIC_REJECTED": s.topic_rejected,
                "CLAIMWATCH_TOPIC_PROVIDER_STATUS": s.topic_provider_status,
                "CLAIMWATCH_STATUS_INTERVAL": str(s.status_interval),
                "CLAIMWATCH_PARTITIONS": str(s.partitions),
                "CLAIMWATCH_STORE": s.store,
                "CLAIMWATCH_DATA_DIR": str(w.data_dir),
                "CLAIMWATCH_WEB_PORT": str(w.port),
                "CLAIMWATCH_WEB_BIND": "127.0.0.1",
                "CLAIMWATCH_REPLAY": "true" if s.replay else "false",
                "CLAIMWATCH_LOG_LEVEL": s.log_level,
                "CLAIMWATCH_LOG_FORMAT": s.log_format,
                "CLAIMWATCH_PRODUCER_BATCH_BYTES": str(s.producer_batch_bytes),
                "CLAIMWATCH_FETCH_WAIT_MS": str(s.fetch_wait_ms),
                "CLAIMWATCH_PRODUCER_IDEMPOTENCE": "true" if s.producer_idempotence else "false",
                "CLAIMWATCH_MALLOC": s.malloc,
                "CLAIMWATCH_CHECKPOINT_CHUNK": str(s.checkpoint_chunk),
                "CLAIMWATCH_CHECKPOINT_SEGMENTS": str(s.checkpoint_segments),
            }
        )
        # Security from these settings, not whatever the parent's environment holds
        # (see start_broker): unset values must not be inherited.
        security = {
            "CLAIMWATCH_SECURITY_PROTOCOL": s.security_protocol,
            "CLAIMWATCH_SASL_MECHANISM": s.sasl_mechanism,
            "CLAIMWATCH_SASL_USERNAME": s.sasl_username,
            "CLAIMWATCH_SASL_PASSWORD": s.sasl_password,
            "CLAIMWATCH_SSL_CAFILE": s.ssl_cafile,
            "CLAIMWATCH_SSL_CERTFILE": s.ssl_certfile,
            "CLAIMWATCH_SSL_KEYFILE": s.ssl_keyfile,
            "CLAIMWATCH_WEB_TOKEN": s.web_token,
        }
        for name, value in security.items():
            if value:
                env[name] = value
            else:
                env.pop(name, None)
        if s.tick_seconds is not None:
            env["CLAIMWATCH_TICK_SECONDS"] = str(s.tick_seconds)
        if self.policy_path:
            env["CLAIMWATCH_POLICY"] = self.policy_path
        env.update(self.env)
        return env

    def start_worker(self, w: WorkerProc) -> None:
        w.data_dir.mkdir(parents=True, exist_ok=True)
        w.log = w.log_path.open("ab")
        w.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=self.worker_env(w),
            stdout=w.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the demo reaches the demo, which stops workers in order
        )

    def kill_worker(self, w: WorkerProc, sig: int = signal.SIGKILL) -> None:
        if w.proc is not None and w.proc.poll() is None:
            w.proc.send_signal(sig)
            try:
                w.proc.wait(30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(10)
        if w.log is not None:
            w.log.close()
            w.log = None

    def restart_worker(self, w: WorkerProc) -> None:
        self.kill_worker(w, signal.SIGKILL)
        self.start_worker(w)

    def stop(self) -> None:
        for w in self.workers:
            self.kill_worker(w, signal.SIGTERM)
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- views ----------------------------------------------------------------
    def alive(self) -> list[WorkerProc]:
        return [w for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def statuses(self) -> list[dict[str, Any]]:
        out = []
        for w in self.alive():
            try:
                out.append(http_get(w.port, "/status", timeout=2.0, token=self.settings.web_token))
            except OSError:
                continue
        return out

    def check_workers(self) -> None:
        for w in self.workers:
            if (
                w.proc is not None
                and w.proc.poll() is not None
                and w.proc.returncode not in (0, -9, -15)
            ):
                tail = (
                    w.log_path.read_text(errors="replace").splitlines()[-5:]
                    if w.log_path.exists()
                    else []
                )
                raise ClaimwatchError(
                    f"worker {w.index} exited with {w.proc.returncode}; see {w.log_path}: {' | '.join(tail)}"
                )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the live workers together hold every partition."""
        deadline = time.monotonic() + timeout
        want = set(range(self.settings.partitions))
        while time.monotonic() < deadline:
            self.check_workers()
            sts = self.statuses()
            held: set[int] = set()
            for st in sts:
                held.update(st["assigned"])
            if len(sts) == len(self.alive()) and held >= want and all(st["assigned"] for st in sts):
                return
            time.sleep(0.25)
        raise ClaimwatchError(
            f"workers did not get their partitions within {timeout:.0f} s (logs in {self.var_dir})"
        )

    def progress(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for st in self.statuses():
            for k, v in st["progress"].items():
                merged[k] = max(merged.get(k, -1), v)
        return merged

    def committed(self, keys: Iterable[str]) -> dict[str, int]:
        """The consumer group's committed offsets of some "<topic>:<partition>" keys, as
        the last offset processed. Unlike the workers' progress, which starts empty in
        every process, they survive restarts and rebalances."""
        s = self.settings
        try:
            return asyncio.run(
                committed_offsets(s.broker or "", s.app_id, keys, s.kafka_client_kwargs())
            )
        except Exception:  # noqa: BLE001 - a view; the broker may be away for a moment
            return {}

    def wait_processed(self, targets: Mapping[str, int], timeout: float = 300.0) -> None:
        """Until every "<topic>:<partition>" has been processed up to its offset.

        A worker's progress covers what its own process did; input that a killed or
        departed worker processed and committed shows in the committed offsets."""
        deadline = time.monotonic() + timeout
        ask_group = time.monotonic() + 1.0
        done: dict[str, int] = {}
        while time.monotonic() < deadline:
            self.check_workers()
            done = self.progress()
            if time.monotonic() >= ask_group:
                for k, v in self.committed(targets).items():
                    done[k] = max(done.get(k, -1), v)
                ask_group = time.monotonic() + 1.0
            if all(done.get(k, -1) >= v for k, v in targets.items()):
                return
            time.sleep(0.2)
        missing = {k: v for k, v in targets.items() if done.get(k, -1) < v}
        raise ClaimwatchError(f"input not processed within {timeout:.0f} s: {missing}")

    def wait_contracts(self, rows: list[bytes], timeout: float = 60.0) -> None:
        """Until the workers hold the latest version of every contract in ``rows``."""
        latest: dict[tuple[str, int], int] = {}
        for raw in rows:
            c = orjson.loads(raw)
            key = (c["provider_agb"], c["year"])
            latest[key] = max(latest.get(key, 0), c["version"])
        want = sum(latest.values())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(st.get("contract_versions", 0) for st in self.statuses()) >= want:
                return
            time.sleep(0.1)
        raise ClaimwatchError(
            f"workers did not receive {len(rows)} contract events within {timeout:.0f} s"
        )

    def wait_departments(self, rows: list[bytes], timeout: float = 60.0) -> None:
        """Until every live worker's register holds the latest version of every entry
        in ``rows`` (each worker reads the whole register: streams/pipeline/register.py)."""
        latest: dict[tuple[str, str], int] = {}
        for raw in rows:
            d = orjson.loads(raw)
            key = (d["provider_agb"], d["department"])
            latest[key] = max(latest.get(key, 0), d["version"])
        want = sum(latest.values())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sts = self.statuses()
            if len(sts) == len(self.alive()) and all(
                st.get("department_versions", 0) >= want for st in sts
            ):
                return
            time.sleep(0.1)
        raise ClaimwatchError(
            f"workers did not read {len(rows)} register entries within {timeout:.0f} s"
        )

    def snapshot(self, policy: Policy) -> tuple[dict[str, Any], set[str]]:
        """The merged snapshot of all workers and the alert ids firing anywhere."""
        parts = []
        firing: set[str] = set()
        for w in self.alive():
            part = http_get(w.port, "/snapshot", timeout=30.0, token=self.settings.web_token)
            firing.update(part.pop("firing"))
            parts.append(part)
        return merge_snapshots(parts, policy), firing

    def read_topic(
        self, topic: str, timeout: float = 30.0
    ) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
        return asyncio.run(
            read_all(
                self.settings.broker or "", topic, timeout, self.settings.kafka_client_kwargs()
            )
        )


async def committed_offsets(
    bootstrap: str, group: str, keys: Iterable[str], client_kwargs: dict[str, Any] | None = None
) -> dict[str, int]:
    """A consumer group's committed offsets: "<topic>:<partition>" → last offset done.
    (The partitions are named: tansu's answer for "all of the group's" is unreadable.)"""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    tps = [TopicPartition(k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1])) for k in keys]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_kwargs or {}))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await admin.close()
    return {
        f"{tp.topic}:{tp.partition}": meta.offset - 1
        for tp, meta in offsets.items()
        if meta is not None and meta.offset > 0
    }
