"""Reading the deployment files of deploy/, docker-compose.yml and the docs they must agree with."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.domain.rules import RULES

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager"
GRAFANA = DEPLOY / "grafana"
K8S = DEPLOY / "k8s"
ALERT_RULES = PROMETHEUS / "rules" / "claimwatch-alerts.yml"
RECORDING_RULES = PROMETHEUS / "rules" / "claimwatch-recording.yml"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# The rules of SPEC §5, the pace rules of §8.2, group_share_not_rising of §8.4 and the
# department rules of §9, by
# the name the worker puts in the `rule` label: each has an alerting rule of its own. Any other rule of the registry
# (streams/domain/rules/) pages through the generic ClaimwatchRuleFiring.
SPEC_RULES = (
    "ceiling_utilisation",
    "ceiling_pace_high",
    "ceiling_underrun",
    "group_share_low",
    "group_share_not_rising",
    "group_consult_staffing",
    "clinical_detox_high",
    "adhd_growth",
    "zvt_setting_mismatch",
    "digital_share_low",
    "department_activity_drop",
    "department_stopped",
)
# Every rule the worker can report, as the registry lists it.
REGISTRY_RULES = RULES.names()
# Labels Alertmanager routes, groups and inhibits on.
ROUTING_LABELS = ("provider", "year", "purchaser", "region", "severity")


def need_binary(name: str) -> str:
    """Path of a binary the test runs for real; skips only when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/system-deps.sh installs it)")
    return path


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alerting_rules() -> list[dict[str, Any]]:
    return [r for r in rules_of(ALERT_RULES) if "alert" in r]


def recording_rules() -> list[dict[str, Any]]:
    return [r for path in (RECORDING_RULES, ALERT_RULES) for r in rules_of(path) if "record" in r]


def compose() -> dict[str, Any]:
    return load_yaml(REPO / "docker-compose.yml")


def documented_env_vars() -> set[str]:
    """Every CLAIMWATCH_* variable in the table of docs/configuration.md."""
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`(CLAIMWATCH_[A-Z0-9_]+)`", first_cell))
    return names


def metrics_doc_tables() -> list[dict[str, str]]:
    """Rows of the tables in docs/metrics.md whose first cell is a `claimwatch_*` name.

    Each row is a dict keyed by the table's lower-cased header cells.
    """
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in (REPO / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        name = re.fullmatch(r"`(claimwatch_[a-z0-9_]+)`", cells[0])
        if name:
            rows.append(dict(zip(header, cells, strict=False)) | {"metric": name.group(1)})
    return rows


def env_list_to_dict(env: Any) -> dict[str, str]:
    """Compose `environment:` as a mapping, whichever of its two forms is used."""
    if env is None:
        return {}
    if isinstance(env, dict):
        return {k: "" if v is None else str(v) for k, v in env.items()}
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)


def interpolate_default(value: str) -> str:
    """Compose's `${VAR:-default}` / `${VAR-default}` with VAR unset: the default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)
