# shellcheck shell=bash
# Shared by the benchmarks under bench/: the running stack, a release
# gateway of their own, a scratch folder. Sourced after common.sh.
#
#   bench_setup "$@"                machine line, stack up, env, release build (or
#                                   $GATEWAY_BIN), $work; reports import bench_report
#   start_gateway PORT [ARGS...]    (re)start the gateway: `serve ARGS` on PORT
#   stop_gateway
#   cpu_ms PID                      CPU time (user + system, ms) PID has used
#   collect_unpinned CID...         wait until the Cluster unpinned them, then GC every Kubo

bench_setup() {
  # How this run was started, for its closing JSON line.
  BENCH_COMMAND="bench/$(basename "$0")${*:+ $*}"
  export BENCH_COMMAND
  # The machine as the benchmark found it, before the stack or a build
  # added load of their own.
  BENCH_CORES=$(nproc)
  BENCH_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  export BENCH_CORES BENCH_LOAD
  export REPO_ROOT PYTHONPATH="$REPO_ROOT/scripts/lib${PYTHONPATH:+:$PYTHONPATH}"
  log "machine: $BENCH_CORES cores, load $BENCH_LOAD"
  scripts/stack up
  eval "$(scripts/stack env)"
  # GATEWAY_BIN names another build to measure (an older one, to compare).
  if [ -n "${GATEWAY_BIN:-}" ]; then
    gateway_bin=$GATEWAY_BIN
  else
    log "building the gateway (release)"
    cargo build --locked --release --quiet
    gateway_bin="$REPO_ROOT/target/release/storage-gateway"
  fi
  gateway_pid=""
  work=$(mktemp -d)
}

stop_gateway() {
  if [ -n "${gateway_pid:-}" ]; then
    if kill "$gateway_pid" 2>/dev/null; then
      wait "$gateway_pid" 2>/dev/null || true
    fi
  fi
  gateway_pid=""
}

# Stops the gateway and removes the scratch folder; the default EXIT trap.
bench_cleanup() {
  stop_gateway
  rm -rf "${work:?}"
}

start_gateway() {
  local port=$1
  shift
  stop_gateway
  GATEWAY__ANALYTICS__SPOOL_DIR="$work/spool" PORT=$port RUST_LOG=warn \
    "$gateway_bin" serve "$@" 2>>"$work/gateway.log" &
  gateway_pid=$!
  wait_for_port "$port" 60 || die "the gateway did not start (log: $work/gateway.log)"
}

cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }

# Leaves the stack as a benchmark found it: benchmarks add gigabytes, and the
# Cluster stops allocating to a peer whose Kubo repository looks full. Unpins
# reach the Kubo nodes asynchronously, so this collects once every peer
# reports each CID unpinned.
collect_unpinned() {
  local cid
  for cid in "$@"; do
    for _ in $(seq 1 120); do
      curl -sS "$IPFS_CLUSTER_URL/pins/$cid" 2>/dev/null | python3 -c 'import json,sys
peers = json.load(sys.stdin).get("peer_map") or {}
sys.exit(0 if all(p["status"] == "unpinned" for p in peers.values()) else 1)' && break
      sleep 0.5
    done
  done
  for node in "${NODES[@]}"; do
    curl -sS -o /dev/null -X POST "http://127.0.0.1:$(kubo_api_port "$node")/api/v0/repo/gc" || true
  done
}
