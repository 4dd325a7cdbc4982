"""Kubernetes manifests in deploy/k8s, read with PyYAML and checked against each other."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from deploy_helpers import K8S, REPO, documented_env_vars, load_yaml, load_yaml_documents

from streams.domain.policy import load_policy, parse_policy
from streams.kafka.topics import topic_specs
from streams.pipeline.settings import Settings

MANIFEST_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
MANIFESTS = [(path.name, doc) for path in MANIFEST_FILES for doc in load_yaml_documents(path)]


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
            "KafkaTopic",
            "KafkaUser",
            "Namespace",
            "PodDisruptionBudget",
            "PodMonitor",
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
        expected = "kafka" if doc["apiVersion"].startswith("kafka.strimzi.io/") else "claimwatch"
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


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe", "startupProbe"])
def test_probes_ask_health_on_the_web_port(probe: str) -> None:
    http = CONTAINER[probe]["httpGet"]
    assert http["path"] == "/health"
    assert port_number(http["port"]) == 6066 == int(container_env()["CLAIMWATCH_WEB_PORT"])


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
        assert selects_pods(service["spec"]["selector"]), name
        for port in service["spec"]["ports"]:
            assert port_number(port["targetPort"]) == 6066, name
    assert selects_pods(STATEFULSET["spec"]["selector"]["matchLabels"])


def test_metrics_are_scraped_from_every_pod_as_job_claimwatch() -> None:
    monitor = one("PodMonitor")
    assert selects_pods(monitor["spec"]["selector"]["matchLabels"])
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert port_number(endpoint["port"]) == 6066 and endpoint["path"] == "/metrics"
    # The alert rules select up{job="claimwatch"}.
    assert POD_LABELS[monitor["spec"]["jobLabel"]] == "claimwatch"


def test_a_disruption_budget_keeps_workers_running_during_drains() -> None:
    pdb = one("PodDisruptionBudget")
    assert selects_pods(pdb["spec"]["selector"]["matchLabels"])
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable")


def test_strimzi_topics_match_what_the_worker_expects() -> None:
    settings = Settings.from_env({k: v for k, v in container_env().items() if isinstance(v, str)})
    topics = {t["spec"]["topicName"]: t for t in of_kind("KafkaTopic")}
    for topic in topics.values():
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"]
        assert topic["spec"]["replicas"] >= 3
    expected = {spec.name: spec for spec in topic_specs(settings)}
    assert set(topics) == set(expected)
    for name, spec in expected.items():
        assert topics[name]["spec"]["partitions"] == spec.partitions, name
        assert topics[name]["spec"]["config"]["cleanup.policy"] == spec.configs["cleanup.policy"], (
            name
        )
        if "max.message.bytes" in spec.configs:  # what the worker writes there must fit
            got = str(topics[name]["spec"]["config"].get("max.message.bytes"))
            assert got == spec.configs["max.message.bytes"], name


def test_no_more_workers_than_partitions() -> None:
    partitions = int(container_env()["CLAIMWATCH_PARTITIONS"])
    assert 1 <= STATEFULSET["spec"]["replicas"] <= partitions


def test_the_kafka_user_may_use_the_topics_and_the_consumer_group() -> None:
    user = one("KafkaUser")
    acls = user["spec"]["authorization"]["acls"]
    env = container_env()
    # SCRAM-SHA-512, the `sasl-mechanism` the README puts in the Secret.
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"

    def allowed(kind: str, name: str, operation: str) -> bool:
        for acl in acls:
            resource = acl["resource"]
            if resource["type"] != kind or operation not in acl["operations"]:
                continue
            pattern = resource.get("name", "")
            if (
                resource.get("patternType") == "prefix"
                and name.startswith(pattern)
                or pattern == name
            ):
                return True
        return False

    settings = Settings.from_env({k: v for k, v in env.items() if isinstance(v, str)})
    for spec in topic_specs(settings):
        assert allowed("topic", spec.name, "Read") or spec.name == settings.topic_alerts, spec.name
        assert allowed("topic", spec.name, "Write") or spec.name == settings.topic_contracts, (
            spec.name
        )
    assert allowed("group", settings.app_id, "Read")


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


def test_kustomize_renders_every_manifest(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize build is checked where it is")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(MANIFESTS)
