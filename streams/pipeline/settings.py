"""Worker settings from the environment (documented in docs/configuration.md)."""

from __future__ import annotations

import difflib
import math
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

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
    # The department register (SPEC §9), read whole by every worker (and the portal).
    topic_departments: str = "ggz.departments.v1"
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
    # "text" or "json" (one JSON object a line; streams/pipeline/logs.py)
    log_format: str = "text"
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
        """The settings of this process's environment (or ``env``), each parsed strictly.

        A bad value, or a ``CLAIMWATCH_*`` variable that is no setting, is a
        ``ClaimwatchError`` of one line naming the variable and what it accepts.
        """
        e = EnvReader(os.environ if env is None else env)
        check_variables(e.env)
        store, line_index = _store(e)
        protocol, mechanism = _security(e)
        tick_seconds = e.number("TICK_SECONDS", None, above=0, most=86400)
        app_id = e.text("APP_ID") or "claimwatch"
        replay = e.boolean("REPLAY", False)
        # A replay's summaries must not enter the live topic, nor the live ones its
        # peer mean: unless named, its topic is its application's own.
        status_topic = e.text("TOPIC_PROVIDER_STATUS") or (
            f"{app_id}-provider-status" if replay else "ggz.provider-status.v1"
        )
        settings = cls(
            broker=_broker(e.text("BROKER")),
            app_id=app_id,
            topic_declarations=e.text("TOPIC_DECLARATIONS") or "ggz.declarations.v1",
            topic_contracts=e.text("TOPIC_CONTRACTS") or "ggz.contracts.v1",
            topic_alerts=e.text("TOPIC_ALERTS") or "ggz.alerts.v1",
            topic_rejected=e.text("TOPIC_REJECTED") or "ggz.declarations.rejected.v1",
            topic_departments=e.text("TOPIC_DEPARTMENTS") or "ggz.departments.v1",
            topic_provider_status=status_topic,
            status_interval=e.number("STATUS_INTERVAL", 5.0, above=0, most=3600) or 5.0,
            partitions=e.integer("PARTITIONS", 8, 1, 1024),
            store=store,
            line_index=line_index,
            malloc=e.choice("MALLOC", "compact", MALLOC_MODES),
            data_dir=Path(e.text("DATA_DIR") or "var/worker"),
            web_port=e.integer("WEB_PORT", 6066, 1, 65535),
            web_bind=e.text("WEB_BIND") or "0.0.0.0",
            web_token=e.text("WEB_TOKEN"),
            policy=e.text("POLICY"),
            tick_seconds=tick_seconds,
            replay=replay,
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=e.text("SASL_USERNAME"),
            sasl_password=e.text("SASL_PASSWORD"),
            ssl_cafile=e.text("SSL_CAFILE"),
            ssl_certfile=e.text("SSL_CERTFILE"),
            ssl_keyfile=e.text("SSL_KEYFILE"),
            log_level=e.choice("LOG_LEVEL", "info", LOG_LEVELS),
            log_format=e.choice("LOG_FORMAT", "text", LOG_FORMATS),
            rebalance_timeout=float(e.integer("REBALANCE_TIMEOUT_SECONDS", 10, 1, 600)),
            producer_batch_bytes=e.integer("PRODUCER_BATCH_BYTES", 524288, 1, 1 << 20),
            fetch_wait_ms=e.integer("FETCH_WAIT_MS", 50, 1, 10000),
            producer_idempotence=e.boolean("PRODUCER_IDEMPOTENCE", True),
            checkpoint_chunk=e.integer("CHECKPOINT_CHUNK", CHECKPOINT_CHUNK, 1, 1_000_000),
            checkpoint_segments=e.integer("CHECKPOINT_SEGMENTS", CHECKPOINT_SEGMENTS, 1, 1_000_000),
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


# Every CLAIMWATCH_* variable: the settings above (read by ``from_env``) and the few
# that other parts of the project read. A name outside this table is refused, not
# ignored: a misspelt CLAIMWATCH_WEB_TOKEN or CLAIMWATCH_REPLAY would otherwise run a
# worker with open endpoints or a replay that writes into the live status topic.
VARIABLES: dict[str, str] = {
    "BROKER": "setting",
    "APP_ID": "setting",
    "TOPIC_DECLARATIONS": "setting",
    "TOPIC_CONTRACTS": "setting",
    "TOPIC_ALERTS": "setting",
    "TOPIC_REJECTED": "setting",
    "TOPIC_DEPARTMENTS": "setting",
    "TOPIC_PROVIDER_STATUS": "setting",
    "STATUS_INTERVAL": "setting",
    "PARTITIONS": "setting",
    "STORE": "setting",
    "LINE_INDEX": "setting",
    "DATA_DIR": "setting",
    "WEB_PORT": "setting",
    "WEB_BIND": "setting",
    "WEB_TOKEN": "setting",
    "POLICY": "setting",
    "TICK_SECONDS": "setting",
    "REPLAY": "setting",
    "SECURITY_PROTOCOL": "setting",
    "SASL_MECHANISM": "setting",
    "SASL_USERNAME": "setting",
    "SASL_PASSWORD": "setting",
    "SSL_CAFILE": "setting",
    "SSL_CERTFILE": "setting",
    "SSL_KEYFILE": "setting",
    "LOG_LEVEL": "setting",
    "LOG_FORMAT": "setting",
    "REBALANCE_TIMEOUT_SECONDS": "setting",
    "PRODUCER_BATCH_BYTES": "setting",
    "FETCH_WAIT_MS": "setting",
    "PRODUCER_IDEMPOTENCE": "setting",
    "MALLOC": "setting",
    "CHECKPOINT_CHUNK": "setting",
    "CHECKPOINT_SEGMENTS": "setting",
    "PORTAL_PORT": "claimwatch portal (streams/portal/settings.py)",
    "PORTAL_BIND": "claimwatch portal (streams/portal/settings.py)",
    "PORTAL_TOKEN": "claimwatch portal (streams/portal/settings.py)",
    "SCHEMAS": "streams/domain/schemas.py: a directory of schemas to use instead",
    "BIND": "docker-compose.yml: the host address published ports bind to",
    "KAFKA_HOST": "docker-compose.yml: the host name Kafka advertises to the host",
    "AUDIT_IGNORE": "make audit (scripts/audit.py)",
    "FUZZ_EXAMPLES": "tests/security/test_fuzz_acceptance.py",
}

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
MALLOC_MODES = ("compact", "glibc")
STORES = ("memory://", "rocksdb://")
LINE_INDEXES = ("heap", "disk")
PREFIX = "CLAIMWATCH_"


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """``CLAIMWATCH_*`` names in ``env`` that claimwatch does not read, each with the
    closest known name when one is close: ``CLAIMWATCH_REPLY (did you mean
    CLAIMWATCH_REPLAY?)``."""
    known = [PREFIX + name for name in VARIABLES]
    found = []
    for name in sorted(env):
        if name.startswith(PREFIX) and name[len(PREFIX) :] not in VARIABLES:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found


def check_variables(env: Mapping[str, str]) -> None:
    """Refuse, in one line, any ``CLAIMWATCH_*`` variable claimwatch does not read."""
    unknown = unknown_variables(env)
    if unknown:
        raise ClaimwatchError(
            f"unknown setting {', '.join(unknown)}: docs/configuration.md lists the "
            "CLAIMWATCH_* variables"
        )


class EnvReader:
    """Reads ``CLAIMWATCH_*`` variables, each one strictly for its kind.

    An empty value counts as unset (compose and Kubernetes write ``NAME=`` for an
    optional value left out). Every refusal is one line: the variable, the value as
    given, what the variable accepts.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        assert name in VARIABLES, f"CLAIMWATCH_{name} is missing from VARIABLES"
        value = self.env.get(PREFIX + name)
        return value if value else None

    def refuse(self, name: str, accepted: str) -> NoReturn:
        raise ClaimwatchError(f"{PREFIX}{name}={self.env.get(PREFIX + name)!r}: {accepted}")

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        self.refuse(name, "use true or false (or yes/no, 1/0; any case)")

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices`` in any case; returned as ``choices`` spell it."""
        value = self.text(name)
        if value is None:
            return default
        for known in choices:
            if value.lower() == known.lower():
                return known
        self.refuse(name, f"use one of {', '.join(choices)}")

    def integer(self, name: str, default: int, lower: int, upper: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or not lower <= number <= upper:
            self.refuse(name, f"use a whole number from {lower} to {upper}")
        return number

    def number(self, name: str, default: float | None, above: float, most: float) -> float | None:
        """A finite number greater than ``above`` and at most ``most``."""
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and above < number <= most):
            self.refuse(name, f"use a number greater than {above:g} and at most {most:g}")
        return number


def _broker(value: str | None) -> str | None:
    """CLAIMWATCH_BROKER as ``host:port[,host:port]``, checked before anything connects."""
    if value is None:
        return None
    for item in value.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not (host and sep and port.isdigit() and 1 <= int(port) <= 65535):
            raise ClaimwatchError(
                f"CLAIMWATCH_BROKER={value!r}: use host:port[,host:port] "
                f"({item.strip()!r} is not host:port)"
            )
    return value


def _check_security(protocol: str, e: EnvReader) -> None:
    """Refuse a protocol whose credentials or files are missing. (Settings the
    protocol does not use are ignored, as docs/configuration.md says.)"""
    user, password = e.text("SASL_USERNAME"), e.text("SASL_PASSWORD")
    if protocol in SASL_PROTOCOLS and not (user and password):
        missing = " and ".join(
            f"CLAIMWATCH_SASL_{n}" for n, v in (("USERNAME", user), ("PASSWORD", password)) if not v
        )
        raise ClaimwatchError(f"CLAIMWATCH_SECURITY_PROTOCOL={protocol} needs {missing}")
    if protocol not in TLS_PROTOCOLS:
        return
    files = {n: e.text(n) for n in ("SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE")}
    for name, path in files.items():
        if path and not os.path.isfile(path):
            raise ClaimwatchError(f"CLAIMWATCH_{name}={path}: no such file")
    if files["SSL_KEYFILE"] and not files["SSL_CERTFILE"]:
        raise ClaimwatchError(
            "CLAIMWATCH_SSL_KEYFILE needs CLAIMWATCH_SSL_CERTFILE (the client certificate)"
        )


def _store(e: EnvReader) -> tuple[str, str]:
    """CLAIMWATCH_STORE and CLAIMWATCH_LINE_INDEX, checked together."""
    text = e.text("STORE") or "memory://"
    scheme = next((known for known in STORES if text.lower().startswith(known)), None)
    if scheme is None:
        e.refuse("STORE", f"use one of {', '.join(STORES)}")
    store = scheme + text[len(scheme) :]
    rocksdb = scheme == "rocksdb://"
    line_index = e.choice("LINE_INDEX", "disk" if rocksdb else "heap", LINE_INDEXES)
    if line_index == "disk" and not rocksdb:
        raise ClaimwatchError(
            "CLAIMWATCH_LINE_INDEX=disk needs CLAIMWATCH_STORE=rocksdb:// (the memory "
            "store keeps the state in memory anyway)"
        )
    return store, line_index


def _security(e: EnvReader) -> tuple[str, str]:
    """CLAIMWATCH_SECURITY_PROTOCOL and CLAIMWATCH_SASL_MECHANISM, and what they need."""
    protocol = e.choice("SECURITY_PROTOCOL", "PLAINTEXT", SECURITY_PROTOCOLS)
    mechanism = e.choice("SASL_MECHANISM", "PLAIN", SASL_MECHANISMS)
    _check_security(protocol, e)
    return protocol, mechanism
