# syntax=docker/dockerfile:1
# The claimwatch image: `claimwatch worker` by default, any other subcommand
# (`replay`, `validate`, ...) by passing it as the command.
#   docker build -t claimwatch:0.1.0 .
#   docker run --rm -e CLAIMWATCH_BROKER=kafka:9092 -p 6066:6066 claimwatch:0.1.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 claimwatch \
 && useradd --system --uid 10001 --gid claimwatch --no-create-home \
      --home-dir /var/lib/claimwatch --shell /usr/sbin/nologin claimwatch \
 && install -d -o claimwatch -g claimwatch -m 0750 /var/lib/claimwatch

# .dockerignore lets in only what the package needs: pyproject.toml, README,
# streams/ and schemas/. The install is editable on purpose: schemas/ sits
# beside the package, not inside it, and the code loads it from there.
WORKDIR /opt/claimwatch
COPY . .
# cykhash has no wheel: it builds from source (about two minutes), with a compiler
# that is removed again in the same layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install -e . \
 && apt-get purge -y --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && claimwatch --help > /dev/null

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
