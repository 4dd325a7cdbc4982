"""docker-compose.yml, the Dockerfile and the topic-creation script, read without a Docker engine."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from streams.kafka.topics import topic_specs
from streams.pipeline.settings import Settings
from tests.deploy.deploy_helpers import (
    ALERTMANAGER,
    DEPLOY,
    GRAFANA,
    PROMETHEUS,
    REPO,
    compose,
    documented_env_vars,
    env_list_to_dict,
    interpolate_default,
    load_yaml,
)

SERVICES = compose()["services"]
CLAIMWATCH_SERVICES = [name for name, s in SERVICES.items() if "build" in s]


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path in the repo, container path) of every bind mount of a service."""
    mounts = []
    for volume in service.get("volumes", []):
        spec = volume if isinstance(volume, str) else f"{volume['source']}:{volume['target']}"
        source, target = interpolate_default(spec).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((REPO / source).resolve(), target))
    return mounts


def container_path_to_repo(service: dict[str, Any], path: str) -> Path:
    """The repository file a container sees at ``path`` through the service's bind mounts."""
    for host, target in bind_mounts(service):
        inner = PurePosixPath(path)
        if inner == PurePosixPath(target) or PurePosixPath(target) in inner.parents:
            return host / inner.relative_to(target)
    raise AssertionError(f"{path} is not bind-mounted")


def environment(name: str) -> dict[str, str]:
    return env_list_to_dict(SERVICES[name].get("environment"))


def test_the_stack_has_its_services() -> None:
    assert {"kafka", "topics", "worker", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)
    assert {"worker", "replay-worker", "replay"} <= set(CLAIMWATCH_SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_mounted_host_path_exists_in_the_repo(name: str) -> None:
    for host, _ in bind_mounts(SERVICES[name]):
        assert host.exists(), f"{name} mounts {host}, which does not exist"
        assert REPO in host.parents, f"{name} mounts {host} from outside the repository"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned_to_a_tag(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: {image} has no tag"
    assert tag not in {"latest", "main", "master", "edge"}, f"{name}: {image}"


def test_the_claimwatch_image_tag_is_the_package_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name in CLAIMWATCH_SERVICES:
        assert SERVICES[name]["image"] == f"claimwatch:{version}", name


def host_ports() -> list[tuple[str, str]]:
    ports = []
    for name, service in SERVICES.items():
        for spec in service.get("ports", []):
            parts = str(spec).split(":")
            assert len(parts) >= 2, f"{name}: {spec} publishes a random host port"
            ports.append((name, parts[-2]))
    return ports


def published_addresses(spec: str | dict[str, Any]) -> tuple[str, str]:
    """(the host address a `ports:` entry listens on with .env unset, its raw form)."""
    if isinstance(spec, dict):  # long syntax
        raw = str(spec.get("host_ip", ""))
    else:
        parts = str(spec).rsplit(":", 2)
        raw = parts[0] if len(parts) == 3 else ""
    return interpolate_default(raw), raw


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if "ports" in s))
def test_published_ports_listen_on_loopback_unless_the_operator_says_otherwise(name: str) -> None:
    # Kafka's host listener is plaintext, Prometheus and Alertmanager have no login:
    # nothing may answer on a non-loopback address of a host that runs the stack
    # with the defaults. An entry without an address publishes on all interfaces.
    for spec in SERVICES[name]["ports"]:
        address, raw = published_addresses(spec)
        assert address == "127.0.0.1", f"{name}: {spec} listens on {address or 'every address'}"
        assert raw == "${CLAIMWATCH_BIND:-127.0.0.1}", (
            f"{name}: {spec}: one variable, CLAIMWATCH_BIND, moves every published port"
        )


def test_no_service_uses_the_host_network() -> None:
    assert not [n for n, s in SERVICES.items() if s.get("network_mode") == "host"]


def test_prometheus_offers_no_lifecycle_or_admin_endpoint() -> None:
    # --web.enable-lifecycle lets anyone who reaches port 9090 stop or reload Prometheus.
    for name, service in SERVICES.items():
        command = " ".join(str(part) for part in service.get("command", []))
        assert "--web.enable-lifecycle" not in command, name
        assert "--web.enable-admin-api" not in command, name
    assert any(a.startswith("--config.file=") for a in SERVICES["prometheus"]["command"])


def _hours(duration: str) -> float:
    """An Alertmanager duration (``168h``, ``4h``, ``30m``, ``1d``) in hours."""
    units = {"m": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)([mhdw])", duration))


def test_alertmanager_keeps_its_notification_log_longer_than_the_longest_repeat() -> None:
    """A notification log shorter than a route's repeat_interval forgets that a weekly
    digest went out, and the purchaser gets it again after the retention (120h by
    default)."""

    def repeats(route: dict[str, Any]) -> list[str]:
        own = [route["repeat_interval"]] if "repeat_interval" in route else []
        return own + [r for child in route.get("routes", []) for r in repeats(child)]

    longest = max(map(_hours, repeats(load_yaml(ALERTMANAGER / "alertmanager.yml")["route"])))
    flags = [str(a) for a in SERVICES["alertmanager"]["command"]]
    (retention,) = [a.split("=", 1)[1] for a in flags if a.startswith("--data.retention=")]
    assert _hours(retention) > longest


def test_grafana_requires_an_admin_password_and_has_no_anonymous_access() -> None:
    env = environment("grafana")
    # `${VAR:?message}`: compose stops with the message when VAR is unset or empty.
    # `${VAR:-admin}` or a literal would start Grafana with a known password.
    assert re.fullmatch(r"\$\{GF_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"]), env[
        "GF_SECURITY_ADMIN_PASSWORD"
    ]
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE" not in env


def test_the_env_example_names_the_stack_variables_and_env_stays_out_of_git() -> None:
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    assignments = dict(
        line.lstrip("#").split("=", 1)
        for line in example.splitlines()
        if re.match(r"#?[A-Z][A-Z0-9_]*=", line)
    )
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert {"GF_ADMIN_PASSWORD", "CLAIMWATCH_BIND"} <= set(assignments)
    assert set(assignments) <= used, sorted(set(assignments) - used)
    assert assignments["GF_ADMIN_PASSWORD"] == "", "the example must not suggest a password"
    assert (
        "/.env" in (REPO / ".gitignore").read_text().split()
        or ".env" in (REPO / ".gitignore").read_text().split()
    )


def test_host_ports_are_unique() -> None:
    seen = [port for _, port in host_ports()]
    assert len(seen) == len(set(seen)), host_ports()


def test_the_worker_can_be_scaled() -> None:
    worker = SERVICES["worker"]
    assert "ports" not in worker, "a fixed host port stops `--scale worker=2`"
    assert "container_name" not in worker
    assert "6066" in [str(p) for p in worker.get("expose", [])]


def test_the_worker_starts_after_the_topics_are_created() -> None:
    depends = SERVICES["worker"]["depends_on"]
    assert depends["topics"]["condition"] == "service_completed_successfully"
    assert depends["kafka"]["condition"] == "service_healthy"
    assert SERVICES["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["kafka"]


def test_kafka_runs_in_kraft_mode_on_a_single_node() -> None:
    env = environment("kafka")
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in " ".join(env).lower()
    assert env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0] == "PLAINTEXT://kafka:9092"
    assert environment("worker")["CLAIMWATCH_BROKER"] == "kafka:9092"


@pytest.mark.parametrize("name", CLAIMWATCH_SERVICES + ["topics"])
def test_claimwatch_variables_are_documented(name: str) -> None:
    used = {k for k in environment(name) if k.startswith("CLAIMWATCH_")}
    assert used, name
    undocumented = used - documented_env_vars()
    assert not undocumented, (
        f"{name} sets undocumented {sorted(undocumented)} (docs/configuration.md)"
    )


def test_documented_variables_are_read_from_the_configuration_table() -> None:
    assert {
        "CLAIMWATCH_BROKER",
        "CLAIMWATCH_STORE",
        "CLAIMWATCH_SASL_USERNAME",
        "CLAIMWATCH_SASL_PASSWORD",
    } <= (documented_env_vars())


def test_settings_accept_the_worker_environment() -> None:
    for name in CLAIMWATCH_SERVICES:
        settings = Settings.from_env(environment(name))
        assert settings.broker == "kafka:9092", name


def test_a_replay_never_shares_the_live_application() -> None:
    # SPEC §6: own application id (consumer group, changelogs), own alert topic,
    # own contracts topic (the live compacted topic must not be overwritten).
    live = Settings.from_env(environment("worker"))
    for name in ("replay-worker", "replay"):
        assert SERVICES[name]["profiles"] == ["replay"]
        replay = Settings.from_env(environment(name))
        assert replay.replay is True
        assert replay.app_id != live.app_id
        assert replay.topic_alerts != live.topic_alerts
        assert replay.topic_contracts != live.topic_contracts
        assert replay.topic_declarations != live.topic_declarations
        assert replay.topic_provider_status != live.topic_provider_status  # peer means
    producer, worker = (Settings.from_env(environment(n)) for n in ("replay", "replay-worker"))
    for field in (
        "app_id",
        "topic_declarations",
        "topic_contracts",
        "topic_alerts",
        "topic_rejected",
        "topic_provider_status",
    ):
        assert getattr(producer, field) == getattr(worker, field), field
    assert live.replay is False
    assert live.store == "rocksdb://"


def test_the_replay_job_reads_its_archives_from_a_mounted_directory() -> None:
    replay = SERVICES["replay"]
    command = [interpolate_default(str(part)) for part in replay["command"]]
    assert command[0] == "replay" and "--contracts" in command
    for path in (c for c in command if c.startswith("/")):
        assert container_path_to_repo(replay, path).parent.is_dir(), path


def test_prometheus_grafana_and_alertmanager_use_the_files_in_deploy() -> None:
    mounts = {
        name: dict((t, h) for h, t in bind_mounts(SERVICES[name]))
        for name in ("prometheus", "alertmanager", "grafana")
    }
    assert mounts["prometheus"]["/etc/prometheus"] == PROMETHEUS
    assert mounts["alertmanager"]["/etc/alertmanager"] == ALERTMANAGER
    assert mounts["grafana"]["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    assert mounts["grafana"]["/etc/grafana/dashboards"] == GRAFANA / "dashboards"

    def flag(service: str, name: str) -> str:
        (value,) = [
            a.split("=", 1)[1] for a in SERVICES[service]["command"] if a.startswith(f"--{name}=")
        ]
        return value

    assert container_path_to_repo(SERVICES["prometheus"], flag("prometheus", "config.file")) == (
        PROMETHEUS / "prometheus.yml"
    )
    assert container_path_to_repo(
        SERVICES["alertmanager"], flag("alertmanager", "config.file")
    ) == (ALERTMANAGER / "alertmanager.yml")
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "claimwatch.yml")["providers"][0]
    assert (
        container_path_to_repo(SERVICES["grafana"], provider["options"]["path"])
        == GRAFANA / "dashboards"
    )
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert container_path_to_repo(SERVICES["grafana"], home).is_file()


def test_prometheus_finds_every_scaled_worker_by_dns_and_alerts_through_alertmanager() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "claimwatch"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A"
    assert str(sd["port"]) == environment("worker")["CLAIMWATCH_WEB_PORT"]
    assert "replay-worker" not in str(config), "the replay worker must not be scraped (SPEC §6)"
    (targets,) = [t for am in config["alerting"]["alertmanagers"] for t in am["static_configs"]]
    host, port = targets["targets"][0].split(":")
    assert host == "alertmanager"
    assert any(str(p).endswith(f":{port}:{port}") for p in SERVICES["alertmanager"]["ports"])
    datasource = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_alertmanager_mail_lands_in_the_stacks_mail_catcher() -> None:
    # A new operator sees the purchasers' digests without a mail server of their own.
    host, port = load_yaml(ALERTMANAGER / "alertmanager.yml")["global"]["smtp_smarthost"].split(":")
    assert host in SERVICES and host in SERVICES["alertmanager"]["depends_on"]
    assert SERVICES[host]["image"].startswith("axllent/mailpit:") and port == "1025"


# ---------------------------------------------------------------- topics


@pytest.fixture(scope="module")
def created_topics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run deploy/kafka/create-topics.sh as the `topics` service would, against a fake kafka-topics.sh."""
    tmp = tmp_path_factory.mktemp("topics")
    calls = tmp / "calls"
    fake = tmp / "kafka-topics.sh"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    fake.chmod(0o755)
    service = SERVICES["topics"]
    script = container_path_to_repo(service, service["entrypoint"][-1])
    env = environment("topics") | {"KAFKA_TOPICS_BIN": str(fake), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    topics: dict[str, dict[str, Any]] = {}
    for line in calls.read_text().splitlines():
        if "--create" not in line:
            continue
        args = line.split()
        assert "--if-not-exists" in args, line
        name = args[args.index("--topic") + 1]
        configs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--config")
        topics[name] = {"partitions": int(args[args.index("--partitions") + 1]), "configs": configs}
    return topics


@pytest.mark.parametrize("name", ["worker", "replay-worker"])
def test_topic_creation_matches_what_the_worker_expects(
    name: str, created_topics: dict[str, Any]
) -> None:
    for spec in topic_specs(Settings.from_env(environment(name))):
        assert spec.name in created_topics, f"{name} needs {spec.name}, which is not created"
        topic = created_topics[spec.name]
        assert topic["partitions"] == spec.partitions, spec.name
        assert topic["configs"]["cleanup.policy"] == spec.configs["cleanup.policy"], spec.name
        if "max.message.bytes" in spec.configs:  # what the worker writes there must fit
            got = topic["configs"].get("max.message.bytes")
            assert got == spec.configs["max.message.bytes"], spec.name


def test_topics_have_explicit_partitions_and_the_contracts_topic_is_compacted(
    created_topics: dict[str, Any],
) -> None:
    partitions = int(environment("topics")["CLAIMWATCH_PARTITIONS"])
    assert partitions == int(environment("worker")["CLAIMWATCH_PARTITIONS"])
    assert created_topics["ggz.declarations.v1"]["partitions"] == partitions
    assert created_topics["ggz.contracts.v1"]["configs"]["cleanup.policy"] == "compact"
    assert {"ggz.alerts.v1", "ggz.declarations.rejected.v1"} <= set(created_topics)
    assert int(environment("kafka")["KAFKA_NUM_PARTITIONS"]) == partitions


def test_the_department_register_is_created_compacted_for_the_live_and_the_replay_app(
    created_topics: dict[str, Any],
) -> None:
    # SPEC §9: keyed <agb>:<department>, the latest version wins; a replay reads its
    # own register, never the live one (SPEC §6), like its contracts.
    for name in (
        environment("topics")["CLAIMWATCH_TOPIC_DEPARTMENTS"],
        environment("topics")["REPLAY_TOPIC_DEPARTMENTS"],
    ):
        topic = created_topics[name]
        assert topic["partitions"] == 1, name
        assert topic["configs"]["cleanup.policy"] == "compact", name
    assert (
        environment("portal")["CLAIMWATCH_TOPIC_DEPARTMENTS"]
        == environment("topics")["CLAIMWATCH_TOPIC_DEPARTMENTS"]
    )


# ---------------------------------------------------------------- image


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (m.group(1).upper(), m.group(2).strip())
        for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.MULTILINE)
        if not m.group(0).lstrip().startswith("#")
    ]


def test_the_image_runs_the_worker_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    get = lambda key: [v for k, v in instructions if k == key]  # noqa: E731
    assert get("FROM")[0].startswith("python:3.11-slim")
    assert get("ENTRYPOINT") == ['["claimwatch"]']
    assert get("CMD") == ['["worker"]']
    assert get("EXPOSE") == ["6066"]
    user = get("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert "/health" in get("HEALTHCHECK")[0]
    assert any("pip install" in run for run in get("RUN"))


def test_the_build_context_holds_the_package_and_nothing_local() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: exclude everything, then name what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "streams", "schemas"} <= allowed
    assert not allowed & {".venv", ".git", "var", "tests", "deploy"}


def test_the_deploy_directory_has_no_stray_files() -> None:
    # Everything under deploy/ is referenced by compose, k8s or the docs.
    expected_dirs = {"prometheus", "alertmanager", "grafana", "k8s", "kafka", "replay"}
    assert {p.name for p in DEPLOY.iterdir() if p.is_dir()} == expected_dirs
