#!/usr/bin/env bash
# Creates claimwatch's topics with explicit partitions and configs: the four
# of SPEC §1, the provider statuses (§10), the department register (§9) and the worker's internal ones (streams/kafka/topics.py lists
# the same set). Run by the one-shot `topics` service of docker-compose.yml;
# safe to re-run (--if-not-exists). On Kubernetes, deploy/k8s/kafkatopics.yaml
# declares the same topics for the Strimzi Topic Operator.
#
# The declarations topic and the internal topics keyed by provider (control,
# changelogs) must have the same partition count, CLAIMWATCH_PARTITIONS: it
# bounds how many workers are useful.
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
PARTITIONS="${CLAIMWATCH_PARTITIONS:-8}"
REPLICATION="${KAFKA_REPLICATION_FACTOR:-1}"
TOPICS_BIN="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

WEEK_MS=$((7 * 24 * 3600 * 1000))
# The worker produces messages up to 16 MiB (a batch holds up to 1000 lines).
BIG=max.message.bytes=16777216

create() {
  local topic="$1" partitions="$2"
  shift 2
  local configs=()
  for c in "$@"; do configs+=(--config "$c"); done
  "$TOPICS_BIN" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor "$REPLICATION" \
    "${configs[@]}"
  echo "topic $topic: $partitions partitions $*"
}

# One application's topics: app id, declarations, contracts, alerts, dead letters,
# provider statuses, department register.
create_app_topics() {
  local app="$1" declarations="$2" contracts="$3" alerts="$4" rejected="$5" statuses="$6"
  local departments="$7"
  # Input, keyed by provider AGB. Kept: rebuilding state (a new app id after a
  # fix) needs the whole contract year and the one before it.
  create "$declarations" "$PARTITIONS" cleanup.policy=delete retention.ms=-1 "$BIG"
  # Contracts keyed <agb>:<year>; compacted, one partition so that every
  # contract change is read in the order it was written.
  create "$contracts" 1 cleanup.policy=compact min.cleanable.dirty.ratio=0.1
  # Alerts for the purchasers' systems (keyed by provider) and dead letters
  # (original bytes + reason headers): nothing is dropped silently.
  create "$alerts" "$PARTITIONS" cleanup.policy=delete retention.ms=-1
  create "$rejected" "$PARTITIONS" cleanup.policy=delete retention.ms=-1 "$BIG"
  # Internal, co-partitioned with the declarations: contract changes and ticks
  # re-keyed by provider, and the changelogs of the worker's tables.
  create "$app-control" "$PARTITIONS" cleanup.policy=delete "retention.ms=$WEEK_MS" "$BIG"
  create "$app-state-changelog" "$PARTITIONS" cleanup.policy=compact "$BIG"
  # Faust's leader election (never written to; Faust would create it with defaults).
  create "$app-__assignor-__leader" 1 cleanup.policy=delete max.message.bytes=1048588
  # One summary per provider-year (SPEC §10), read whole by every worker for the
  # peer mean: compacted, one partition, records of a few KB in producer batches
  # of at most 1 MiB.
  create "$statuses" 1 cleanup.policy=compact max.message.bytes=2097152
  # The department register (SPEC §9), keyed <agb>:<department>: compacted like the
  # contracts, one partition, read whole by every worker and by the portal.
  create "$departments" 1 cleanup.policy=compact min.cleanable.dirty.ratio=0.1
}

create_app_topics "${CLAIMWATCH_APP_ID:-claimwatch}" \
  "${CLAIMWATCH_TOPIC_DECLARATIONS:-ggz.declarations.v1}" \
  "${CLAIMWATCH_TOPIC_CONTRACTS:-ggz.contracts.v1}" \
  "${CLAIMWATCH_TOPIC_ALERTS:-ggz.alerts.v1}" \
  "${CLAIMWATCH_TOPIC_REJECTED:-ggz.declarations.rejected.v1}" \
  "${CLAIMWATCH_TOPIC_PROVIDER_STATUS:-ggz.provider-status.v1}" \
  "${CLAIMWATCH_TOPIC_DEPARTMENTS:-ggz.departments.v1}"

# The replay profile's application (SPEC §6: replays never page purchasers and
# never touch the live contracts), when REPLAY_APP_ID is set. Compose sets it,
# so the topics exist before anyone starts a replay.
if [ -n "${REPLAY_APP_ID:-}" ]; then
  create_app_topics "$REPLAY_APP_ID" \
    "$REPLAY_TOPIC_DECLARATIONS" "$REPLAY_TOPIC_CONTRACTS" \
    "$REPLAY_TOPIC_ALERTS" "$REPLAY_TOPIC_REJECTED" \
    "${REPLAY_TOPIC_PROVIDER_STATUS:-$REPLAY_APP_ID-provider-status}" \
    "${REPLAY_TOPIC_DEPARTMENTS:-$REPLAY_APP_ID-departments}"
fi
