# shellcheck shell=bash
# The names set here are read by the scripts that source this file.
# shellcheck disable=SC2034
# Shared settings of the local stack: paths, versions and every port in one place.
# Sourced by scripts/stack, scripts/run and scripts/test.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
RUN_DIR="$STACK_DIR/run"
LOG_DIR="$STACK_DIR/logs"

# Built tools live outside the clone, per version, so fresh clones reuse them.
TOOLS_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/storage-gateway"
KUBO_VERSION="v0.39.0"
CLUSTER_VERSION="v1.1.6"
# Kubo v0.39.0 is made for Go 1.25: one of its dependencies (cockroachdb/swiss)
# refuses to build on Go 1.26, so it builds with the 1.25 toolchain, which the
# go command fetches from the module proxy. IPFS Cluster v1.1.6 needs Go 1.26.
KUBO_GO_TOOLCHAIN="go1.25.9"
KUBO_BIN_DIR="$TOOLS_CACHE/bin/kubo-$KUBO_VERSION"
CLUSTER_BIN_DIR="$TOOLS_CACHE/bin/ipfs-cluster-$CLUSTER_VERSION"
# envoyproxy/ratelimit, the rate limiter bench/ratelimit-envoy.sh compares with.
ENVOY_RATELIMIT_VERSION="v1.4.0"
ENVOY_RATELIMIT_BIN_DIR="$TOOLS_CACHE/bin/envoy-ratelimit-$ENVOY_RATELIMIT_VERSION"
# Property-based tests of the API description, from PyPI into a venv.
SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_DIR="$TOOLS_CACHE/schemathesis-$SCHEMATHESIS_VERSION"
# Checks the dependency tree against deny.toml, built from crates.io.
CARGO_DENY_VERSION="0.20.2"
CARGO_DENY="$TOOLS_CACHE/bin/cargo-deny-$CARGO_DENY_VERSION/bin/cargo-deny"

# Every port of the stack, shifted together by STACK_PORT_OFFSET so two
# checkouts can run side by side. None is a service's default port.
STACK_PORT_OFFSET="${STACK_PORT_OFFSET:-0}"
port() { echo $(($1 + STACK_PORT_OFFSET)); }
GATEWAY_PORT=$(port 4007)
POSTGRES_PORT=$(port 25432)
REDIS_PORT=$(port 26379)
# The Redis Cluster's masters (1..3), beside the single Redis.
redis_cluster_port() { port $((26380 + $1)); }
CLICKHOUSE_HTTP_PORT=$(port 28123)
CLICKHOUSE_TCP_PORT=$(port 29000)
CLICKHOUSE_INTERSERVER_PORT=$(port 29009)
# The local IPFS nodes: Kubo node i and Cluster peer i run side by side.
NODES=(1 2 3)
# Kubo node i (1..3): RPC API, HTTP gateway, swarm.
kubo_api_port() { port $((25000 + $1)); }
kubo_gateway_port() { port $((28079 + $1)); }
kubo_swarm_port() { port $((24000 + $1)); }
# Cluster peer i (1..3): REST API, IPFS proxy, cluster swarm, pinning-service API.
cluster_rest_port() { port $((29094 + 100 * ($1 - 1))); }
cluster_proxy_port() { port $((29095 + 100 * ($1 - 1))); }
cluster_swarm_port() { port $((29096 + 100 * ($1 - 1))); }
cluster_pinsvc_port() { port $((29097 + 100 * ($1 - 1))); }
cluster_metrics_port() { port $((29098 + 100 * ($1 - 1))); }
PROMETHEUS_PORT=$(port 29090)

POSTGRES_DB="storage_gateway"
CLICKHOUSE_DB="fathuss_analytics"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to $2 seconds for port $1; returns non-zero on time-out.
wait_for_port() {
  local p=$1 limit=${2:-30} i=0
  while ! port_open "$p"; do
    i=$((i + 1))
    [ "$i" -gt $((limit * 5)) ] && return 1
    sleep 0.2
  done
}

# Waits up to $2 seconds until nothing listens on port $1 any more.
wait_for_port_closed() {
  local p=$1 limit=${2:-30} i=0
  while port_open "$p"; do
    i=$((i + 1))
    [ "$i" -gt $((limit * 5)) ] && return 1
    sleep 0.2
  done
}
