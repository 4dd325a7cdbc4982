"""Kubernetes manifests in deploy/k8s, read with PyYAML and checked against each other.

Where kubectl is installed (scripts/system-deps.sh installs Debian's where none is),
the kustomization is also rendered; the other tests read the files it lists.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import fastjsonschema
import pytest
import yaml

from streams.domain.policy import load_policy, parse_policy
from streams.kafka.topics import leader_topic, state_changelog, topic_specs
from streams.pipeline.settings import Settings
from streams.portal.settings import PortalSettings
from tests.deploy.deploy_helpers import (
    GRAFANA,
    K8S,
    PROMETHEUS,
    REPO,
    documented_env_vars,
    load_yaml,
    load_yaml_documents,
)

MANIFEST_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
MANIFESTS = [(path.name, doc) for path in MANIFEST_FILES for doc in load_yaml_documents(path)]


KAFKA_NAMESPACE_KINDS = {"KafkaTopic", "KafkaUser"}
STRIMZI_CRDS = Path(__file__).parent / "strimzi" / "crds-1.0.0.yaml"


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in MANIFESTS if doc["kind"] == kind]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(kind) if name is None or d["metadata"]["name"] == name]
    return doc


STATEFULSET = one("StatefulSet")
POD = STATEFULSET["spec"]["template"]
(CONTAINER,) = POD["spec"]["containers"]
POD_LABELS = POD["metadata"]["labels"]


def container_env() -> dict[str, Any]:
    """The worker's environment: ConfigMap envFrom first, then `env` entries (which win)."""
    env: dict[str, Any] = {}
    for source in CONTAINER.get("envFrom", []):
        env.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in CONTAINER.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def selects_pods(selector: dict[str, str]) -> bool:
    return bool(selector) and all(POD_LABELS.get(k) == v for k, v in selector.items())


def test_every_manifest_parses_to_the_expected_kinds() -> None:
    kinds = sorted({doc["kind"] for _, doc in MANIFESTS})
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "KafkaTopic",
            "KafkaUser",
            "Namespace",
            "PodDisruptionBudget",
            "PodMonitor",
            "PrometheusRule",
            "Service",
            "StatefulSet",
        ]
    )
    for name, doc in MANIFESTS:
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), name


def test_kustomization_lists_every_manifest_file() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFEST_FILES)


def test_every_namespaced_resource_names_its_namespace() -> None:
    for name, doc in MANIFESTS:
        if doc["kind"] == "Namespace":
            continue
        namespace = doc["metadata"].get("namespace")
        # Strimzi's operators and its Kafka Exporter live in the Kafka cluster's namespace.
        in_kafka = doc["kind"] in KAFKA_NAMESPACE_KINDS or name == "kafka-exporter-podmonitor.yaml"
        expected = "kafka" if in_kafka else "claimwatch"
        assert namespace == expected, (name, doc["kind"], doc["metadata"]["name"])
    assert one("Namespace")["metadata"]["name"] == "claimwatch"


def test_the_workers_keep_rocksdb_state_on_a_persistent_volume() -> None:
    env = container_env()
    assert env["CLAIMWATCH_STORE"] == "rocksdb://"
    (claim,) = STATEFULSET["spec"]["volumeClaimTemplates"]
    (mount,) = [m for m in CONTAINER["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert mount["mountPath"] == env["CLAIMWATCH_DATA_DIR"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]


def port_number(port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in CONTAINER["ports"] if p.get("name") == port]
    return int(number)


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/health"), ("readinessProbe", "/ready"), ("livenessProbe", "/live")],
)
def test_each_probe_asks_its_own_view_on_the_web_port(probe: str, path: str) -> None:
    """Readiness waits for the state's recovery, liveness for a stuck agent
    (streams/pipeline/probes.py); the startup probe only for the process."""
    http = CONTAINER[probe]["httpGet"]
    assert http["path"] == path
    assert port_number(http["port"]) == 6066 == int(container_env()["CLAIMWATCH_WEB_PORT"])


def test_the_probe_paths_are_routes_the_worker_serves() -> None:
    from streams.domain.policy import load_policy
    from streams.pipeline.worker import Worker

    worker = Worker(Settings(broker="127.0.0.1:9", app_id="k8s-probes"), load_policy())
    worker.app.web.init_server()
    routes = {r.resource.canonical for r in worker.app.web.web_app.router.routes()}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert CONTAINER[probe]["httpGet"]["path"] in routes, probe


def test_resources_are_requested_and_limited() -> None:
    resources = CONTAINER["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[part]), part


def test_the_worker_runs_unprivileged() -> None:
    assert POD["spec"]["securityContext"]["runAsNonRoot"] is True
    assert CONTAINER["securityContext"]["allowPrivilegeEscalation"] is False
    assert CONTAINER["args"] == ["worker"]


def test_worker_variables_are_documented() -> None:
    used = {k for k in container_env() if k.startswith("CLAIMWATCH_")}
    undocumented = used - documented_env_vars()
    assert not undocumented, sorted(undocumented)
    assert set(container_env()) == used, "only CLAIMWATCH_* settings are passed to the worker"


def test_kafka_credentials_come_from_a_secret_and_the_ca_is_mounted() -> None:
    env = container_env()
    for name in (
        "CLAIMWATCH_SECURITY_PROTOCOL",
        "CLAIMWATCH_SASL_MECHANISM",
        "CLAIMWATCH_SASL_USERNAME",
        "CLAIMWATCH_SASL_PASSWORD",
    ):
        assert isinstance(env[name], dict) and "secretKeyRef" in env[name], (
            f"{name} must come from a Secret"
        )
    secret = env["CLAIMWATCH_SASL_PASSWORD"]["secretKeyRef"]["name"]
    cafile = PurePosixPath(env["CLAIMWATCH_SSL_CAFILE"])
    (mount,) = [
        m for m in CONTAINER["volumeMounts"] if PurePosixPath(m["mountPath"]) == cafile.parent
    ]
    (volume,) = [v for v in POD["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == secret
    assert cafile.name in {item["path"] for item in volume["secret"]["items"]}
    for _, doc in MANIFESTS:
        assert doc["kind"] != "Secret", (
            "no Secret in the repository: README.md shows how to create it"
        )


def test_the_policy_configmap_is_a_valid_policy_mounted_where_the_worker_reads_it() -> None:
    env = container_env()
    policy_file = PurePosixPath(env["CLAIMWATCH_POLICY"])
    (mount,) = [
        m for m in CONTAINER["volumeMounts"] if PurePosixPath(m["mountPath"]) == policy_file.parent
    ]
    (volume,) = [v for v in POD["spec"]["volumes"] if v["name"] == mount["name"]]
    text = one("ConfigMap", volume["configMap"]["name"])["data"][policy_file.name]
    policy = parse_policy(tomllib.loads(text), source="deploy/k8s/configmap.yaml")
    assert policy.ceiling == load_policy().ceiling


def test_services_select_the_workers_and_the_headless_one_backs_the_statefulset() -> None:
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    headless = services[STATEFULSET["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert any("metrics" in name for name in services)
    for name, service in services.items():
        if name == "claimwatch-portal":
            continue  # the portal's own (test_the_portal_service_reaches_the_portal_pods)
        assert selects_pods(service["spec"]["selector"]), name
        for port in service["spec"]["ports"]:
            assert port_number(port["targetPort"]) == 6066, name
    assert selects_pods(STATEFULSET["spec"]["selector"]["matchLabels"])


def test_the_portal_service_reaches_the_portal_pods_which_are_ready_once_read() -> None:
    (portal,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "claimwatch-portal"]
    service = next(s for s in of_kind("Service") if s["metadata"]["name"] == "claimwatch-portal")
    labels = portal["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert not selects_pods(service["spec"]["selector"])  # never a worker
    (container,) = portal["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["portal"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[service["spec"]["ports"][0]["targetPort"]] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_metrics_are_scraped_from_every_pod_as_job_claimwatch() -> None:
    monitor = one("PodMonitor", "claimwatch")
    assert selects_pods(monitor["spec"]["selector"]["matchLabels"])
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert port_number(endpoint["port"]) == 6066 and endpoint["path"] == "/metrics"
    # The alert rules select up{job="claimwatch"}.
    assert POD_LABELS[monitor["spec"]["jobLabel"]] == "claimwatch"


def test_a_disruption_budget_keeps_workers_running_during_drains() -> None:
    pdb = one("PodDisruptionBudget")
    assert selects_pods(pdb["spec"]["selector"]["matchLabels"])
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable")


def departments_topic(settings: Settings) -> str:
    """The department register's topic (SPEC §9): the worker's setting where it has one,
    else the portal's, read from the same environment."""
    env = {k: v for k, v in container_env().items() if isinstance(v, str)}
    return getattr(settings, "topic_departments", None) or (
        PortalSettings.from_env(env).topic_departments
    )


def test_strimzi_topics_match_what_the_worker_expects() -> None:
    settings = Settings.from_env({k: v for k, v in container_env().items() if isinstance(v, str)})
    topics = {t["spec"]["topicName"]: t for t in of_kind("KafkaTopic")}
    for topic in topics.values():
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"]
        assert topic["spec"]["replicas"] >= 3
    expected = {spec.name: spec for spec in topic_specs(settings)}
    assert set(topics) == set(expected) | {departments_topic(settings)}
    for name, spec in expected.items():
        assert topics[name]["spec"]["partitions"] == spec.partitions, name
        assert topics[name]["spec"]["config"]["cleanup.policy"] == spec.configs["cleanup.policy"], (
            name
        )
        if "max.message.bytes" in spec.configs:  # what the worker writes there must fit
            got = str(topics[name]["spec"]["config"].get("max.message.bytes"))
            assert got == spec.configs["max.message.bytes"], name


def test_the_department_register_is_compacted_on_one_partition() -> None:
    # Keyed <agb>:<department>, the latest version wins (SPEC §9): compaction keeps
    # every department's latest entry, one partition keeps a department's versions
    # in the order they were written, like the contracts.
    settings = worker_settings()
    (topic,) = [
        t for t in of_kind("KafkaTopic") if t["spec"]["topicName"] == departments_topic(settings)
    ]
    contracts = next(
        t for t in of_kind("KafkaTopic") if t["spec"]["topicName"] == settings.topic_contracts
    )
    assert topic["spec"]["partitions"] == 1
    assert topic["spec"]["config"] == contracts["spec"]["config"]


def test_no_more_workers_than_partitions() -> None:
    partitions = int(container_env()["CLAIMWATCH_PARTITIONS"])
    assert 1 <= STATEFULSET["spec"]["replicas"] <= partitions


def worker_settings() -> Settings:
    return Settings.from_env({k: v for k, v in container_env().items() if isinstance(v, str)})


def granted(user: dict[str, Any], kind: str, name: str) -> set[str]:
    """The operations a KafkaUser's ACLs allow on one topic or group."""
    operations: set[str] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if resource["type"] != kind or acl.get("type", "allow") != "allow":
            continue
        pattern = resource.get("name", "")
        literal = resource.get("patternType", "literal") == "literal"
        if pattern == "*" or (name == pattern if literal else name.startswith(pattern)):
            operations |= set(acl["operations"])
    return operations


def worker_needs(settings: Settings) -> dict[str, set[str]]:
    """What the worker does on each topic (streams/pipeline/app.py, streams/kafka/*)."""
    read, write = {"Describe", "Read"}, {"Describe", "Write"}
    return {
        settings.topic_declarations: read,
        settings.topic_contracts: read,
        # The department register: the worker and the portal read it (the portal runs
        # as this user); the insurer's register feed writes it.
        departments_topic(settings): read,
        # Read at every rebalance: which transitions are published already.
        settings.topic_alerts: read | write,
        # Written, never read: it holds rejected lines' original bytes.
        settings.topic_rejected: write,
        settings.topic_provider_status: read | write,
        # Faust declares its internal topics (Create); the changelog's
        # max.message.bytes is read at start (DescribeConfigs).
        settings.topic_control: read | write | {"Create"},
        state_changelog(settings): read | write | {"Create", "DescribeConfigs"},
        leader_topic(settings): read | {"Create"},
    }


def test_the_worker_user_has_exactly_the_acls_it_needs() -> None:
    user = one("KafkaUser", "claimwatch")
    # SCRAM-SHA-512, the `sasl-mechanism` the README puts in the Secret.
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    settings = worker_settings()
    needs = worker_needs(settings)
    assert set(needs) == {spec.name for spec in topic_specs(settings)} | {
        departments_topic(settings)
    }
    for topic, operations in needs.items():
        assert granted(user, "topic", topic) == operations, topic
    assert granted(user, "group", settings.app_id) == {"Read"}
    acls = user["spec"]["authorization"]["acls"]
    # Least privilege: no wildcard, no prefix (it would reach the replay's or
    # anyone's topics), no cluster-wide right, no "All".
    for acl in acls:
        resource = acl["resource"]
        assert resource["type"] in {"topic", "group"}, acl
        assert resource.get("patternType", "literal") == "literal" and resource["name"] != "*"
        assert "All" not in acl["operations"], acl
        assert acl.get("type", "allow") == "allow", acl
    assert sum(1 for a in acls if a["resource"]["type"] == "topic") == len(needs)


def test_only_the_rejects_user_may_read_the_dead_letters() -> None:
    # docs/operations.md: the dead letters keep client references; restrict them
    # to the operators who handle rejects.
    topic = worker_settings().topic_rejected
    readers = {
        u["metadata"]["name"] for u in of_kind("KafkaUser") if "Read" in granted(u, "topic", topic)
    }
    assert readers == {"claimwatch-rejects"}
    rejects = one("KafkaUser", "claimwatch-rejects")
    topics = {
        a["resource"]["name"]
        for a in rejects["spec"]["authorization"]["acls"]
        if a["resource"]["type"] == "topic"
    }
    assert topics == {topic}
    assert granted(rejects, "topic", topic) == {"Describe", "Read"}


def test_the_portal_reads_as_the_worker_user_which_reads_the_register_and_writes_no_input() -> None:
    # The portal's Kafka identity is the workers' Secret: what it reads (SPEC §11),
    # that user may read; no claimwatch user may write the register or the contracts.
    (portal,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "claimwatch-portal"]
    (container,) = portal["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    secret = env["CLAIMWATCH_SASL_USERNAME"]["secretKeyRef"]["name"]
    assert secret == container_env()["CLAIMWATCH_SASL_USERNAME"]["secretKeyRef"]["name"]
    settings = worker_settings()
    user = one("KafkaUser", "claimwatch")
    for topic in (
        departments_topic(settings),
        settings.topic_provider_status,
        settings.topic_alerts,
    ):
        assert {"Describe", "Read"} <= granted(user, "topic", topic), topic
    for u in of_kind("KafkaUser"):
        for topic in (departments_topic(settings), settings.topic_contracts):
            assert "Write" not in granted(u, "topic", topic), (u["metadata"]["name"], topic)


def strimzi_schemas() -> dict[str, dict[str, Any]]:
    """kind -> the openAPIV3Schema of version v1 in Strimzi 1.0's CRDs."""
    schemas = {}
    for crd in load_yaml_documents(STRIMZI_CRDS):
        (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        assert v1["served"] and v1["storage"]
        schemas[crd["spec"]["names"]["kind"]] = v1["schema"]["openAPIV3Schema"]
    return schemas


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not name. Kubernetes drops them silently (pruning), so a
    v1beta2 field name left in a v1 resource would vanish without an error."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{n}]")
    return found


@pytest.mark.parametrize("kind", sorted(KAFKA_NAMESPACE_KINDS))
def test_strimzi_resources_are_valid_v1_resources_of_strimzi_1_0(kind: str) -> None:
    # Strimzi 1.0 serves only kafka.strimzi.io/v1.
    schema = strimzi_schemas()[kind]
    validate = fastjsonschema.compile(schema)
    for doc in of_kind(kind):
        assert doc["apiVersion"] == "kafka.strimzi.io/v1", doc["metadata"]["name"]
        validate(doc)
        assert unknown_fields(doc["spec"], schema["properties"]["spec"], "spec") == [], doc[
            "metadata"
        ]["name"]


def test_the_readme_explains_scaling_and_the_secret() -> None:
    text = (K8S / "README.md").read_text(encoding="utf-8")
    for phrase in (
        "partition",
        "rebalance",
        "in steps",
        "SASL_SSL",
        "CLAIMWATCH_SASL_PASSWORD",
        "kubectl -n claimwatch create secret generic claimwatch-kafka",
    ):
        assert phrase in text, phrase


# ---------------------------------------------------------------- rules and dashboards

RENDER_SCRIPT = K8S / "render-prometheusrule.py"
GRAFANA_KUSTOMIZATION = GRAFANA / "kustomization.yaml"


def test_the_prometheus_rules_are_shipped_as_prometheusrules_equal_to_the_rule_files() -> None:
    rules = {r["metadata"]["name"]: r for r in of_kind("PrometheusRule")}
    files = sorted((PROMETHEUS / "rules").glob("*.yml"))
    assert sorted(rules) == [f.stem for f in files]
    for path in files:
        assert rules[path.stem]["apiVersion"] == "monitoring.coreos.com/v1"
        assert rules[path.stem]["spec"]["groups"] == load_yaml(path)["groups"], path.name
    result = subprocess.run(
        [sys.executable, str(RENDER_SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def dashboard_generators() -> dict[str, dict[str, Any]]:
    """file name of each dashboard -> the configMapGenerator entry that ships it."""
    kustomization = load_yaml(GRAFANA_KUSTOMIZATION)
    by_file = {}
    for generator in kustomization["configMapGenerator"]:
        (file,) = generator["files"]
        by_file[PurePosixPath(file).name] = generator
    return by_file


def test_every_dashboard_is_a_configmap_for_the_grafana_sidecar() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert "../grafana" in kustomization.get("bases", []) + kustomization.get("resources", [])
    grafana = load_yaml(GRAFANA_KUSTOMIZATION)
    assert grafana["namespace"] == "claimwatch"
    options = grafana["generatorOptions"]
    assert options["labels"]["grafana_dashboard"] == "1"
    # A hash suffix leaves the old ConfigMap behind: the sidecar would load both.
    assert options["disableNameSuffixHash"] is True
    generators = dashboard_generators()
    assert sorted(generators) == sorted(p.name for p in (GRAFANA / "dashboards").glob("*.json"))
    for name, generator in generators.items():
        assert (GRAFANA / generator["files"][0]).resolve() == GRAFANA / "dashboards" / name


# ---------------------------------------------------------------- sizing

NATIONAL_LINES_A_YEAR = 30_000_000  # bench/README.md, "a national year"
MIB = 2**20


def sizing_rows() -> list[dict[str, str]]:
    """The rows of the sizing table in docs/deploy.md."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text.split("### Sizing", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True))
        for line in lines[2:]
    ]


def number(cell: str) -> int:
    return int(re.sub(r"[^0-9]", "", cell))


def required_memory_mib(lines: float, per_line: int) -> int:
    """384 MiB fixed plus bytes a line, rounded up to 256 MiB (docs/deploy.md, "Sizing")."""
    return math.ceil((384 * MIB + per_line * lines) / (256 * MIB)) * 256


def test_the_sizing_table_follows_its_formula() -> None:
    policy = load_policy()
    open_years = policy.retention.line_index_years + 1
    partitions = int(container_env()["CLAIMWATCH_PARTITIONS"])
    rows = sizing_rows()
    assert len(rows) >= 3
    for row in rows:
        workers = number(row["workers"])
        held = number(row["partitions a worker holds with one worker away"])
        assert held == math.ceil(partitions / max(workers - 1, 1)), row
        lines = number(row["lines a year"]) * open_years * held / partitions
        assert number(row["lines of state a worker holds"]) == lines, row
        assert number(row["memory, rocksdb://"]) == required_memory_mib(lines, 20), row
        assert number(row["memory, memory://"]) == required_memory_mib(lines, 200), row
        assert number(row["disk"]) == math.ceil(lines * 200 / 1e9), row


def quantity_mib(value: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    match = re.fullmatch(r"(\d+)(Mi|Gi)", value)
    assert match, value
    return int(match.group(1)) * units[match.group(2)]


def test_worker_memory_is_sized_for_national_volume_with_one_worker_away() -> None:
    resources = CONTAINER["resources"]
    replicas = STATEFULSET["spec"]["replicas"]
    (row,) = [
        r
        for r in sizing_rows()
        if number(r["lines a year"]) == NATIONAL_LINES_A_YEAR and number(r["workers"]) == replicas
    ]
    assert container_env()["CLAIMWATCH_STORE"] == "rocksdb://"
    assert quantity_mib(resources["limits"]["memory"]) == number(row["memory, rocksdb://"])
    # Request = limit: eviction under node memory pressure costs a rebalance and a restore.
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    (claim,) = STATEFULSET["spec"]["volumeClaimTemplates"]
    disk_gb = quantity_mib(claim["spec"]["resources"]["requests"]["storage"]) * MIB / 1e9
    assert disk_gb >= number(row["disk"])


# ---------------------------------------------------------------- kustomize


def kustomize_build() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (scripts/system-deps.sh installs it)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_renders_the_manifests_rules_and_dashboards() -> None:
    rendered = kustomize_build()
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    by_key = {key(d): d for d in rendered}
    assert len(by_key) == len(rendered)
    dashboards = {g["name"]: name for name, g in dashboard_generators().items()}
    assert set(by_key) == {key(d) for _, d in MANIFESTS} | {("ConfigMap", n) for n in dashboards}
    for name, file in dashboards.items():
        config_map = by_key[("ConfigMap", name)]
        assert config_map["metadata"]["namespace"] == "claimwatch"
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["data"] == {
            file: (GRAFANA / "dashboards" / file).read_text(encoding="utf-8")
        }
    for _, doc in MANIFESTS:  # the rendered resources are the files, image aside
        if doc["kind"] != "StatefulSet":
            assert by_key[key(doc)] == doc, key(doc)
    for doc in rendered:
        if doc["apiVersion"].startswith("kafka.strimzi.io/"):
            assert doc["apiVersion"] == "kafka.strimzi.io/v1", key(doc)
    rules = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "PrometheusRule"}
    for path in sorted((PROMETHEUS / "rules").glob("*.yml")):
        assert rules[path.stem]["spec"]["groups"] == load_yaml(path)["groups"]
