# Shared by the benchmarks under bench/: the running stack, a release
# gateway of their own, a scratch folder. Sourced after common.sh.
#
#   bench_setup                     stack up, env, release build (or $GATEWAY_BIN), $work
#   start_gateway PORT [ARGS...]    (re)start the gateway: `serve ARGS` on PORT
#   stop_gateway
#   cpu_ms PID                      CPU time (user + system, ms) PID has used

bench_setup() {
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
    kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null || true
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
