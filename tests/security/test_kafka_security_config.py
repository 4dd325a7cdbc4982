"""Kafka security from the environment to every client the code creates.

CLAIMWATCH_SECURITY_PROTOCOL / SASL_* / SSL_* → ``Settings.from_env`` → the Faust
app's broker credentials → the aiokafka producer and consumer Faust builds from
them; and the same settings → every aiokafka client claimwatch creates itself
(topic set-up, the replay producer, the final tick, the alerts-topic reader at
recovery, the cluster harness, the demo's alert follower). No broker is needed: the
clients are built for real (so aiokafka checks the arguments) but never started.
A bad combination ends in one line from the CLI.
"""

from __future__ import annotations

import ast
import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiokafka
import pytest

import streams.local.broker
import streams.local.cluster
from streams.domain.errors import ClaimwatchError
from streams.domain.policy import load_policy
from streams.pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CN = "claimwatch-test-ca"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A self-signed certificate: CA bundle and client certificate at once."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    for name, cn in (("", CN), ("other-", "other")):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-subj", f"/CN={cn}", "-days", "2",
             "-keyout", str(d / f"{name}key.pem"), "-out", str(d / f"{name}cert.pem")],
            check=True,
            capture_output=True,
        )  # fmt: skip
    (d / "junk.pem").write_text("not a certificate\n")
    return SimpleNamespace(
        cafile=str(d / "cert.pem"),
        certfile=str(d / "cert.pem"),
        keyfile=str(d / "key.pem"),
        other_key=str(d / "other-key.pem"),
        junk=str(d / "junk.pem"),
    )


def security_env(protocol: str, tls: SimpleNamespace) -> dict[str, str]:
    env = {
        "CLAIMWATCH_BROKER": "kafka-1:9093,kafka-2:9093",
        "CLAIMWATCH_SECURITY_PROTOCOL": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        env["CLAIMWATCH_SSL_CAFILE"] = tls.cafile
    if protocol == "SSL":  # mutual TLS: the client certificate is the credential
        env["CLAIMWATCH_SSL_CERTFILE"] = tls.certfile
        env["CLAIMWATCH_SSL_KEYFILE"] = tls.keyfile
    if protocol.startswith("SASL"):
        env.update(
            {
                "CLAIMWATCH_SASL_MECHANISM": "SCRAM-SHA-512" if protocol == "SASL_SSL" else "PLAIN",
                "CLAIMWATCH_SASL_USERNAME": "claimwatch-worker",
                "CLAIMWATCH_SASL_PASSWORD": "s3cret-pw",
            }
        )
    return env


PROTOCOLS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


def assert_client_secured(client: Any, env: dict[str, str]) -> None:
    """``client`` is an aiokafka AIOKafkaClient (producer.client, consumer._client …)."""
    protocol = env["CLAIMWATCH_SECURITY_PROTOCOL"]
    assert client._security_protocol == protocol
    ctx = client._ssl_context
    if protocol in ("SSL", "SASL_SSL"):
        assert isinstance(ctx, ssl.SSLContext)
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        subjects = [dict(x[0] for x in c["subject"]).get("commonName") for c in ctx.get_ca_certs()]
        assert subjects == [CN], "the CA bundle of CLAIMWATCH_SSL_CAFILE, and only it"
    else:
        assert ctx is None
    if protocol.startswith("SASL"):
        assert client._sasl_mechanism == env["CLAIMWATCH_SASL_MECHANISM"]
        assert client._sasl_plain_username == env["CLAIMWATCH_SASL_USERNAME"]
        assert client._sasl_plain_password == env["CLAIMWATCH_SASL_PASSWORD"]


# -- Faust ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_environment_reaches_the_clients_faust_builds(
    protocol: str, tls: SimpleNamespace
) -> None:
    from faust.auth import SASLCredentials, SSLCredentials

    from streams.pipeline.app import create_app

    env = security_env(protocol, tls)
    app = create_app(Settings.from_env(env), load_policy())
    creds = app.conf.broker_credentials
    if protocol == "PLAINTEXT":
        assert creds is None
    elif protocol == "SSL":
        assert isinstance(creds, SSLCredentials)
    else:
        assert isinstance(creds, SASLCredentials)
        assert creds.protocol.value == protocol
        assert "s3cret" not in repr(creds)

    producer = app.producer._new_producer()
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert_client_secured(producer.client, env)
        assert_client_secured(consumer._client, env)
        assert consumer._client._bootstrap_servers == ["kafka-1:9093", "kafka-2:9093"]
    finally:
        await producer.stop()
        await consumer.stop()


# -- claimwatch's own clients ------------------------------------------------------------


class Made:
    """Every aiokafka client constructed while patched: its kind and the real object."""

    def __init__(self) -> None:
        self.clients: list[tuple[str, Any]] = []

    def kinds(self) -> list[str]:
        return [k for k, _ in self.clients]


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[Made]:
    """Replace aiokafka's client classes by stand-ins that build the real client (so
    aiokafka validates the arguments), keep it for inspection, and answer like an
    empty broker without connecting anywhere."""
    made = Made()
    real_producer, real_consumer = aiokafka.AIOKafkaProducer, aiokafka.AIOKafkaConsumer
    real_admin = streams.local.broker.AIOKafkaAdminClient

    class Meta(SimpleNamespace):
        pass

    class Producer:
        def __init__(self, **kw: Any) -> None:
            self.real = real_producer(**kw)
            made.clients.append(("producer", self.real))

        async def start(self) -> None: ...

        async def flush(self) -> None: ...

        async def stop(self) -> None:
            await self.real.stop()

        async def send(
            self,
            topic: str,
            value: Any = None,
            key: Any = None,
            partition: int | None = None,
            **kw: Any,
        ) -> Any:
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(Meta(partition=partition or 0, offset=0))
            return fut

        async def send_and_wait(self, *args: Any, **kw: Any) -> Any:
            return await (await self.send(*args, **kw))

    class Consumer:
        def __init__(self, *topics: str, **kw: Any) -> None:
            self.real = real_consumer(*topics, **kw)
            made.clients.append(("consumer", self.real))
            self._client = SimpleNamespace(force_metadata_update=self._noop)

        async def _noop(self) -> None: ...

        async def start(self) -> None: ...

        async def stop(self) -> None:
            await self.real.stop()

        def partitions_for_topic(self, topic: str) -> set[int] | None:
            return None

        def __aiter__(self) -> Consumer:
            return self

        async def __anext__(self) -> Any:
            raise StopAsyncIteration

    class Admin:
        def __init__(self, **kw: Any) -> None:
            self.real = real_admin(**kw)
            made.clients.append(("admin", self.real))

        async def start(self) -> None: ...

        async def close(self) -> None:
            await self.real.close()

        async def create_topics(self, topics: list[Any]) -> Any:
            return SimpleNamespace(topic_errors=[(t.name, 0, None) for t in topics])

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", Producer)
    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", Consumer)
    monkeypatch.setattr(streams.local.broker, "AIOKafkaAdminClient", Admin)
    yield made


def inner(kind: str, obj: Any) -> Any:
    return obj.client if kind == "producer" else obj._client


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CLAIMWATCH_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_replay_command_secures_topic_setup_producer_and_final_tick(
    protocol: str,
    tls: SimpleNamespace,
    made: Made,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streams.cli import main

    env = security_env(protocol, tls) | {"CLAIMWATCH_TOPIC_DECLARATIONS": "replay.declarations"}
    use_env(monkeypatch, env)
    archive = tmp_path / "declarations.ndjson"
    archive.write_text('{"provider_agb": "12345678", "submitted_at": "2026-03-01T10:00:00Z"}\n')
    asked: list[dict[str, Any]] = []

    async def committed(bootstrap: str, group: str, keys: Any, client_kwargs: Any) -> Any:
        # The replay waits for the workers' commits before its final tick (the status
        # flush, SPEC §10); no worker here: every target counts as committed.
        asked.append(dict(client_kwargs or {}))
        return {k: 1 << 62 for k in keys}

    monkeypatch.setattr(streams.local.cluster, "committed_offsets", committed)
    assert main(["replay", str(archive)]) == 0, capsys.readouterr().err
    assert made.kinds() == ["admin", "producer", "producer"]  # topics, lines, final tick
    for kind, obj in made.clients:
        assert_client_secured(inner(kind, obj), env)
    assert asked and all(kw.get("security_protocol") == protocol for kw in asked)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_worker_secures_topic_setup_and_its_alerts_topic_reader(
    protocol: str, tls: SimpleNamespace, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faust

    from streams.pipeline.app import create_app
    from streams.pipeline.run import run_worker

    env = security_env(protocol, tls)
    use_env(monkeypatch, env)

    class Worker:
        def __init__(self, app: Any, **kw: Any) -> None:
            self.exit_code = 0

        def execute_from_commandline(self) -> None: ...

    monkeypatch.setattr(faust, "Worker", Worker)
    assert await asyncio.to_thread(run_worker, load_policy()) == 0
    # At recovery the worker reads the alerts topic, so it never publishes a
    # transition twice: that reader is a client of its own.
    app = create_app(Settings.from_env(), load_policy())
    for callback in app.tables["state"]._recover_callbacks:
        await callback()
    assert made.kinds() == ["admin", "consumer"]
    for kind, obj in made.clients:
        assert_client_secured(inner(kind, obj), env)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cluster_harness_and_demo_follower_are_secured(
    protocol: str, tls: SimpleNamespace, made: Made, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streams.local.cluster import Cluster, WorkerProc
    from streams.local.demo import LiveView

    env = security_env(protocol, tls)
    use_env(monkeypatch, env)
    cluster = Cluster(Settings.from_env(), var_dir=tmp_path)
    await asyncio.to_thread(cluster.create_topics)
    await asyncio.to_thread(cluster.read_topic, "ggz.alerts.v1", 1.0)
    await LiveView(cluster, load_policy()).follow_alerts()
    assert made.kinds() == ["admin", "consumer", "consumer"]
    for kind, obj in made.clients:
        assert_client_secured(inner(kind, obj), env)
    # worker processes the harness starts get the same settings, not the parent's
    w = WorkerProc(0, 6066, tmp_path / "w0", tmp_path / "w0.log")
    child = cluster.worker_env(w)
    assert {k: v for k, v in child.items() if k in env} == env


def test_embedded_broker_drops_security_meant_for_a_real_cluster(
    tls: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``claimwatch demo`` without CLAIMWATCH_BROKER runs plaintext tansu on loopback."""
    from streams.local.cluster import Cluster, WorkerProc

    env = security_env("SASL_SSL", tls)
    del env["CLAIMWATCH_BROKER"]
    use_env(monkeypatch, env)

    class FakeBroker:
        bootstrap = "127.0.0.1:19092"

        def __init__(self, **kw: Any) -> None: ...

        def start(self) -> FakeBroker:
            return self

    monkeypatch.setattr("streams.local.cluster.EmbeddedBroker", FakeBroker)
    cluster = Cluster(Settings.from_env(), var_dir=tmp_path)
    cluster.start_broker()
    assert cluster.settings.kafka_client_kwargs() == {"security_protocol": "PLAINTEXT"}
    child = cluster.worker_env(WorkerProc(0, 6066, tmp_path / "w0", tmp_path / "w0.log"))
    assert child["CLAIMWATCH_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not {
        k
        for k in child
        if k.startswith(("CLAIMWATCH_SASL_U", "CLAIMWATCH_SASL_P", "CLAIMWATCH_SSL_"))
    }


def test_every_aiokafka_client_in_streams_takes_the_security_kwargs() -> None:
    """A guard for clients added later: each constructor call passes ``**kwargs``."""
    names = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "create_conn"}
    calls = []
    for path in sorted((REPO / "streams").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = (
                    f.id
                    if isinstance(f, ast.Name)
                    else f.attr
                    if isinstance(f, ast.Attribute)
                    else ""
                )
                if name in names:
                    calls.append((f"{path.relative_to(REPO)}:{node.lineno}", name, node))
    assert len(calls) >= 5
    for where, name, node in calls:
        assert any(k.arg is None for k in node.keywords), (
            f"{where}: {name}(…) without **security kwargs"
        )


# -- bad combinations: one line --------------------------------------------------------


def bad_cases(tls: SimpleNamespace) -> list[tuple[dict[str, str], str]]:
    return [
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SASL_SSL", "CLAIMWATCH_SASL_PASSWORD": "pw"},
         "CLAIMWATCH_SECURITY_PROTOCOL=SASL_SSL needs CLAIMWATCH_SASL_USERNAME"),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CLAIMWATCH_SASL_USERNAME": "u"},
         "needs CLAIMWATCH_SASL_PASSWORD"),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SSL", "CLAIMWATCH_SSL_CAFILE": "/nonexistent/ca.pem"},
         "CLAIMWATCH_SSL_CAFILE=/nonexistent/ca.pem: no such file"),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SSL", "CLAIMWATCH_SSL_CAFILE": tls.junk},
         "cannot set up TLS from CLAIMWATCH_SSL_CAFILE="),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SSL", "CLAIMWATCH_SSL_CERTFILE": tls.certfile,
          "CLAIMWATCH_SSL_KEYFILE": tls.other_key}, "key values mismatch"),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SSL", "CLAIMWATCH_SSL_KEYFILE": tls.keyfile},
         "CLAIMWATCH_SSL_KEYFILE needs CLAIMWATCH_SSL_CERTFILE"),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SASL_SSL", "CLAIMWATCH_SASL_USERNAME": "u",
          "CLAIMWATCH_SASL_PASSWORD": "pw", "CLAIMWATCH_SSL_CAFILE": "/run/secrets/ca.crt"},
         "CLAIMWATCH_SSL_CAFILE=/run/secrets/ca.crt: no such file"),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "TLS"}, "CLAIMWATCH_SECURITY_PROTOCOL='TLS': use one of"),
        ({"CLAIMWATCH_SECURITY_PROTOCOL": "SASL_SSL", "CLAIMWATCH_SASL_MECHANISM": "GSSAPI"},
         "CLAIMWATCH_SASL_MECHANISM='GSSAPI': use one of"),
    ]  # fmt: skip


def test_bad_combinations_are_refused_with_a_message_naming_the_variable(
    tls: SimpleNamespace,
) -> None:
    for env, expected in bad_cases(tls):
        with pytest.raises(ClaimwatchError) as info:
            Settings.from_env(env)
        text = str(info.value)
        assert expected in text, (env, text)
        assert "\n" not in text and "pw" not in text.replace("PASSWORD", "")


def test_settings_the_protocol_does_not_use_are_ignored(tls: SimpleNamespace) -> None:
    """A shared environment may carry TLS files or SASL credentials for another
    protocol: they are not read (a missing file is no error) and never sent."""
    env = {
        "CLAIMWATCH_SSL_CAFILE": "/not/mounted/ca.crt",
        "CLAIMWATCH_SASL_USERNAME": "u",
        "CLAIMWATCH_SASL_PASSWORD": "pw",
    }
    assert Settings.from_env(env).kafka_client_kwargs() == {"security_protocol": "PLAINTEXT"}
    ssl_only = Settings.from_env(
        env | {"CLAIMWATCH_SECURITY_PROTOCOL": "SSL", "CLAIMWATCH_SSL_CAFILE": tls.cafile}
    )
    assert set(ssl_only.kafka_client_kwargs()) == {"security_protocol", "ssl_context"}


@pytest.mark.parametrize("command", [["worker"], ["replay", "--", "x.ndjson"]])
def test_cli_prints_one_line_for_a_bad_security_setting(
    command: list[str],
    tls: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streams.cli import main

    for env, expected in bad_cases(tls):
        use_env(monkeypatch, {"CLAIMWATCH_BROKER": "kafka-1:9093", **env})
        assert main(command) == 1
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert len(lines) == 1 and expected in lines[0], captured.err
        assert "Traceback" not in captured.err + captured.out
