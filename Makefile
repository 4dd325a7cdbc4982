# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment in .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pyproject.toml's [build-system] requires: installed first, then claimwatch builds
# its compiled kernel (streams/native/) without an isolated environment of its own.
BUILD_REQUIRES := 'setuptools>=68' wheel 'Cython>=3.0,<4' 'cykhash>=2.0.1,<3'

.PHONY: demo test bench lint system-deps audit clean lock sbom

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(BUILD_REQUIRES)
	$(PY) -m pip install -q --no-build-isolation -e '.[dev,local]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/claimwatch demo

system-deps:
	./scripts/system-deps.sh

test: $(STAMP) system-deps audit lint
	$(PY) -m pytest -q

# pip-audit over the venv: fails on a known vulnerability, warns (and passes) when
# the vulnerability service cannot be reached. CLAIMWATCH_AUDIT_IGNORE=ID,ID accepts findings.
audit: $(STAMP)
	$(PY) scripts/audit.py

# the bench's peer figure needs the optional `bench` extra (quixstreams)
$(VENV)/.installed-bench: $(STAMP)
	$(PY) -m pip install -q --no-build-isolation -e '.[dev,local,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) -m bench

# ruff (with its complexity rule on streams/), the format, and mypy over streams/
# (pyproject.toml [tool.mypy])
lint: $(STAMP)
	$(VENV)/bin/ruff check streams tests bench
	$(VENV)/bin/ruff format --check streams tests bench
	$(PY) -m mypy

clean:
	rm -rf $(VENV) var

# The production image installs requirements.lock (every runtime dependency pinned,
# with the hashes of its files on PyPI; no `local`, `dev` or `bench` extra) and ships
# sbom.cdx.json (CycloneDX) made from it. Run after changing the dependencies in
# pyproject.toml and commit both files; tests/deploy/test_image.py checks they agree.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --quiet --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --index-url https://pypi.org/simple --custom-compile-command "make lock" \
	  -o requirements.lock
	$(MAKE) sbom

sbom: $(STAMP)
	PYTHONWARNINGS=ignore::UserWarning $(VENV)/bin/cyclonedx-py requirements \
	  requirements.lock --pyproject pyproject.toml --mc-type application \
	  --output-reproducible -o sbom.cdx.json
