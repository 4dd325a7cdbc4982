"""Worker settings from the environment (documented in docs/configuration.md)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from streams.domain.errors import ClaimwatchError
from streams.pipeline.processor import CHECKPOINT_CHUNK, CHECKPOINT_SEGMENTS

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True, slots=True)
class Settings:
    broker: str | None = None
    app_id: str = "claimwatch"
    topic_declarations: str = "ggz.declarations.v1"
    topic_contracts: str = "ggz.contracts.v1"
    topic_alerts: str = "ggz.alerts.v1"
    topic_rejected: str = "ggz.declarations.rejected.v1"
    # The compacted per-provider-year summaries every worker reads its peer mean from
    # (SPEC §10; streams/pipeline/status.py). A replay gets its own (from_env).
    topic_provider_status: str = "ggz.provider-status.v1"
    # Wall-clock seconds between two publications of a provider's status (a tick
    # publishes as well): it decides when a summary goes out, never what it says.
    status_interval: float = 5.0
    partitions: int = 8
    store: str = "memory://"
    # Where a worker keeps its line index, ADHD clients and event ids: "heap" (C hash
    # tables, fastest) or "disk" (a local RocksDB cache, streams/store/offheap.py:
    # RSS grows less with state, the worker is slower). "disk" needs rocksdb://.
    line_index: str = "heap"
    data_dir: Path = Path("var/worker")
    web_port: int = 6066
    web_bind: str = "0.0.0.0"
    web_token: str | None = None
    policy: str | None = None
    tick_seconds: float | None = None  # None: the policy's
    replay: bool = False
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    log_level: str = "info"
    rebalance_timeout: float = 10.0
    # aiokafka's batch size in bytes (see streams/pipeline/app.py). A message's changelog records
    # are tens of KB each, so the default holds several; on Kafka and on the
    # embedded tansu broker alike (1 would put every record in a batch of its own).
    producer_batch_bytes: int = 524288
    # How long the broker may hold the worker's fetch when no data is there (aiokafka's
    # fetch_max_wait_ms; Faust fixes it at 1500, see streams/kafka/transport.py).
    fetch_wait_ms: int = 50
    # Idempotent producer (Kafka's enable.idempotence): a produce retried after a
    # network fault is not written twice. tansu has no InitProducerId, so the embedded
    # broker turns it off (streams/kafka/producer.py).
    producer_idempotence: bool = True
    # glibc's allocator: "compact" fixes the mmap threshold and arena count
    # (streams/pipeline/run.py, tune_malloc): about 160 bytes of RSS a line of state
    # in a memory-store worker; "glibc" leaves glibc's defaults: 205-220 bytes a
    # line, but a quarter more lines a second (bench/RESULTS.md).
    malloc: str = "compact"
    # A provider's state is checkpointed into the changelog in records of this many
    # line-index entries (about 50 bytes each as JSON: 2.5 MB at the default; lower it
    # where the changelog topic's max.message.bytes is smaller), once its journal
    # holds ``checkpoint_segments`` segments (streams/pipeline/processor.py).
    checkpoint_chunk: int = CHECKPOINT_CHUNK
    checkpoint_segments: int = CHECKPOINT_SEGMENTS

    @property
    def topic_control(self) -> str:
        """Internal, co-partitioned with the declarations: contracts and ticks per provider."""
        return f"{self.app_id}-control"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> str | None:
            value = e.get(f"CLAIMWATCH_{name}")
            return value if value not in (None, "") else default

        def integer(name: str, default: int, lower: int, upper: int) -> int:
            text = get(name)
            if text is None:
                return default
            try:
                value = int(text)
            except ValueError:
                raise ClaimwatchError(f"CLAIMWATCH_{name}={text!r} is not a whole number") from None
            if not lower <= value <= upper:
                raise ClaimwatchError(
                    f"CLAIMWATCH_{name}={value} must be between {lower} and {upper}"
                )
            return value

        store, line_index = _store(get)
        malloc = (get("MALLOC", "compact") or "").lower()
        if malloc not in ("compact", "glibc"):
            raise ClaimwatchError(f"CLAIMWATCH_MALLOC={malloc!r}: use compact or glibc")
        protocol, mechanism = _security(get)
        tick_seconds, status_interval = _intervals(get)
        app_id = get("APP_ID", "claimwatch") or "claimwatch"
        replay = (get("REPLAY", "false") or "").lower() in ("1", "true", "yes")
        # A replay's summaries must not enter the live topic, nor the live ones its
        # peer mean: unless named, its topic is its application's own.
        status_topic = get("TOPIC_PROVIDER_STATUS") or (
            f"{app_id}-provider-status" if replay else "ggz.provider-status.v1"
        )
        settings = cls(
            broker=get("BROKER"),
            app_id=app_id,
            topic_declarations=get("TOPIC_DECLARATIONS") or "ggz.declarations.v1",
            topic_contracts=get("TOPIC_CONTRACTS") or "ggz.contracts.v1",
            topic_alerts=get("TOPIC_ALERTS") or "ggz.alerts.v1",
            topic_rejected=get("TOPIC_REJECTED") or "ggz.declarations.rejected.v1",
            topic_provider_status=status_topic,
            status_interval=status_interval,
            partitions=integer("PARTITIONS", 8, 1, 1024),
            store=store,
            line_index=line_index,
            malloc=malloc,
            data_dir=Path(get("DATA_DIR", "var/worker") or "var/worker"),
            web_port=integer("WEB_PORT", 6066, 1, 65535),
            web_bind=get("WEB_BIND", "0.0.0.0") or "0.0.0.0",
            web_token=get("WEB_TOKEN"),
            policy=get("POLICY"),
            tick_seconds=tick_seconds,
            replay=replay,
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=get("SASL_USERNAME"),
            sasl_password=get("SASL_PASSWORD"),
            ssl_cafile=get("SSL_CAFILE"),
            ssl_certfile=get("SSL_CERTFILE"),
            ssl_keyfile=get("SSL_KEYFILE"),
            log_level=(get("LOG_LEVEL", "info") or "info").lower(),
            rebalance_timeout=float(integer("REBALANCE_TIMEOUT_SECONDS", 10, 1, 600)),
            producer_batch_bytes=integer("PRODUCER_BATCH_BYTES", 524288, 1, 1 << 20),
            fetch_wait_ms=integer("FETCH_WAIT_MS", 50, 1, 10000),
            producer_idempotence=(get("PRODUCER_IDEMPOTENCE", "true") or "").lower()
            in ("1", "true", "yes"),
            checkpoint_chunk=integer("CHECKPOINT_CHUNK", CHECKPOINT_CHUNK, 1, 1_000_000),
            checkpoint_segments=integer("CHECKPOINT_SEGMENTS", CHECKPOINT_SEGMENTS, 1, 1_000_000),
        )
        settings.ssl_context()  # unreadable or non-PEM files fail here, in one line
        return settings

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every Kafka client (None without TLS).

        Verifies the broker's certificate and host name against the CA file, or the
        system's CAs when none is given.
        """
        if self.security_protocol not in TLS_PROTOCOLS:
            return None
        from aiokafka.helpers import create_ssl_context

        try:
            return create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(
                f"CLAIMWATCH_{name}={path}"
                for name, path in (
                    ("SSL_CAFILE", self.ssl_cafile),
                    ("SSL_CERTFILE", self.ssl_certfile),
                    ("SSL_KEYFILE", self.ssl_keyfile),
                )
                if path
            )
            reason = (exc.strerror or str(exc)).split(" (_ssl.c:")[0]
            raise ClaimwatchError(
                f"cannot set up TLS from {files or 'the system CAs'}: {reason}"
            ) from None

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Security keyword arguments for aiokafka clients (producer, consumer, admin)."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in TLS_PROTOCOLS:
            kw["ssl_context"] = self.ssl_context()
        if self.security_protocol in SASL_PROTOCOLS:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        return kw


def _check_security(protocol: str, get: Callable[[str], str | None]) -> None:
    """Refuse a protocol whose credentials or files are missing. (Settings the
    protocol does not use are ignored, as docs/configuration.md says.)"""
    user, password = get("SASL_USERNAME"), get("SASL_PASSWORD")
    if protocol in SASL_PROTOCOLS and not (user and password):
        missing = " and ".join(
            f"CLAIMWATCH_SASL_{n}" for n, v in (("USERNAME", user), ("PASSWORD", password)) if not v
        )
        raise ClaimwatchError(f"CLAIMWATCH_SECURITY_PROTOCOL={protocol} needs {missing}")
    if protocol not in TLS_PROTOCOLS:
        return
    files = {n: get(n) for n in ("SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE")}
    for name, path in files.items():
        if path and not os.path.isfile(path):
            raise ClaimwatchError(f"CLAIMWATCH_{name}={path}: no such file")
    if files["SSL_KEYFILE"] and not files["SSL_CERTFILE"]:
        raise ClaimwatchError(
            "CLAIMWATCH_SSL_KEYFILE needs CLAIMWATCH_SSL_CERTFILE (the client certificate)"
        )


Get = Callable[..., str | None]


def _store(get: Get) -> tuple[str, str]:
    """CLAIMWATCH_STORE and CLAIMWATCH_LINE_INDEX, checked together."""
    store = get("STORE", "memory://")
    assert store is not None
    if store.split("://")[0] not in ("memory", "rocksdb"):
        raise ClaimwatchError(f"CLAIMWATCH_STORE={store!r}: use memory:// or rocksdb://")
    rocksdb = store.startswith("rocksdb:")
    line_index = (get("LINE_INDEX", "disk" if rocksdb else "heap") or "").lower()
    if line_index not in ("heap", "disk"):
        raise ClaimwatchError(f"CLAIMWATCH_LINE_INDEX={line_index!r}: use heap or disk")
    if line_index == "disk" and not rocksdb:
        raise ClaimwatchError(
            "CLAIMWATCH_LINE_INDEX=disk needs CLAIMWATCH_STORE=rocksdb:// (the memory "
            "store keeps the state in memory anyway)"
        )
    return store, line_index


def _security(get: Get) -> tuple[str, str]:
    """CLAIMWATCH_SECURITY_PROTOCOL and CLAIMWATCH_SASL_MECHANISM, and what they need."""
    protocol = (get("SECURITY_PROTOCOL", "PLAINTEXT") or "").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ClaimwatchError(
            f"CLAIMWATCH_SECURITY_PROTOCOL={protocol!r}: use one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    mechanism = (get("SASL_MECHANISM", "PLAIN") or "").upper()
    if mechanism not in SASL_MECHANISMS:
        raise ClaimwatchError(
            f"CLAIMWATCH_SASL_MECHANISM={mechanism!r}: use one of {', '.join(SASL_MECHANISMS)}"
        )
    _check_security(protocol, get)
    return protocol, mechanism


def _intervals(get: Get) -> tuple[float | None, float]:
    """CLAIMWATCH_TICK_SECONDS (None: the policy's) and CLAIMWATCH_STATUS_INTERVAL."""
    tick = get("TICK_SECONDS")
    try:
        tick_seconds = float(tick) if tick is not None else None
    except ValueError:
        raise ClaimwatchError(f"CLAIMWATCH_TICK_SECONDS={tick!r} is not a number") from None
    if tick_seconds is not None and tick_seconds <= 0:
        raise ClaimwatchError("CLAIMWATCH_TICK_SECONDS must be > 0")
    interval = get("STATUS_INTERVAL", "5")
    try:
        status_interval = float(interval or "5")
    except ValueError:
        raise ClaimwatchError(f"CLAIMWATCH_STATUS_INTERVAL={interval!r} is not a number") from None
    if not 0 < status_interval <= 3600:
        raise ClaimwatchError("CLAIMWATCH_STATUS_INTERVAL must be > 0 and at most 3600")
    return tick_seconds, status_interval
