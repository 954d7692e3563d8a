#!/usr/bin/env bash
# The gateway's rate limiter against envoyproxy/ratelimit, in one run on the
# same Redis, driven by the same Go load generator (bench/ratelimit-load):
#
#   envoy    envoy.service.ratelimit.v2.RateLimitService/ShouldRateLimit over
#            gRPC, one descriptor (user=bench-user) under a fixed window of a
#            million per second
#   gateway  POST /rate-limit/check over HTTP/1.1 keep-alive, one key under
#            a GCRA policy of a million per second; each request also passes
#            the gateway's own per-API-key limit (the shipped 5000 per second,
#            the workers spread over 16 keys), which envoy has no part of
#
# Every decision is an allow on both sides. For each: decisions per second,
# p50/p99 latency as the generator saw it, and CPU per decision of the
# server and of Redis (read from /proc before and after). The generator's
# own CPU is printed too: on a small machine it takes its share from both.
#
# Usage: bench/ratelimit-envoy.sh [DURATION=10] [WORKERS=32] [REPEATS=3]
# After an untimed warm-up of each side, the sides take turns REPEATS
# times, the first place alternating. Reports medians with min-max, and a
# closing JSON line.
set -euo pipefail
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/install.sh
source "$REPO_ROOT/scripts/lib/install.sh"
# shellcheck source=../scripts/lib/bench.sh
source "$REPO_ROOT/scripts/lib/bench.sh"
cd "$REPO_ROOT"

DURATION=${1:-10}
WORKERS=${2:-32}
REPEATS=${3:-3}

bench_setup "$@"
ensure_ratelimit_bench_tools
envoy_pid=""
cleanup() {
  if [ -n "$envoy_pid" ] && kill "$envoy_pid" 2>/dev/null; then
    wait "$envoy_pid" 2>/dev/null || true
  fi
  bench_cleanup
}
trap cleanup EXIT

gateway_port=$((GATEWAY_PORT + 111))
envoy_grpc_port=$((GATEWAY_PORT + 112))
envoy_http_port=$((GATEWAY_PORT + 113))
envoy_debug_port=$((GATEWAY_PORT + 114))
redis_pid=$(cat "$RUN_DIR/redis.pid")

log "starting envoyproxy/ratelimit $ENVOY_RATELIMIT_VERSION on 127.0.0.1:$envoy_grpc_port"
mkdir -p "$work/runtime/ratelimit/config"
cat >"$work/runtime/ratelimit/config/bench.yaml" <<'YAML'
domain: bench
descriptors:
  - key: user
    rate_limit:
      unit: second
      requests_per_unit: 1000000
YAML
# Its bind address is fixed at all interfaces; the ports are the stack's own.
USE_STATSD=false LOG_LEVEL=warn REDIS_SOCKET_TYPE=tcp REDIS_URL="127.0.0.1:$REDIS_PORT" \
  RUNTIME_ROOT="$work/runtime" RUNTIME_SUBDIRECTORY=ratelimit \
  GRPC_PORT=$envoy_grpc_port PORT=$envoy_http_port DEBUG_PORT=$envoy_debug_port \
  "$ENVOY_RATELIMIT_BIN_DIR/service_cmd" 2>>"$work/envoy.log" &
envoy_pid=$!
wait_for_port "$envoy_grpc_port" 30 || die "envoyproxy/ratelimit did not start (log: $work/envoy.log)"

log "starting the gateway on 127.0.0.1:$gateway_port"
cat >"$work/gateway.toml" <<'TOML'
[rate_limit.policies.bench]
limits = [{ name = "second", limit = 1000000, window = "1s" }]
TOML
start_gateway "$gateway_port" --config "$work/gateway.toml"
tenant="bench-envoy-$(date +%s)"
keys=()
for i in $(seq 1 16); do
  keys+=("$("$gateway_bin" keys create --tenant "$tenant" --scopes all --name "bench-$i")")
done
key_list=$(IFS=,; echo "${keys[*]}")

# drive SIDE SECONDS: prints the generator's JSON line with the server's and
# Redis's CPU (ms) over the run added.
drive() {
  local side=$1 seconds=$2 server_pid args s0 r0 line
  case $side in
    envoy)
      server_pid=$envoy_pid
      args=(-target grpc -address "127.0.0.1:$envoy_grpc_port" -domain bench -descriptor user=bench-user)
      ;;
    gateway)
      server_pid=$gateway_pid
      args=(-target http -address "http://127.0.0.1:$gateway_port" -keys "$key_list"
        -body '{"key": "bench-user", "policy": "bench"}')
      ;;
  esac
  s0=$(cpu_ms "$server_pid")
  r0=$(cpu_ms "$redis_pid")
  line=$("$RATELIMIT_LOAD_BIN" "${args[@]}" -workers "$WORKERS" -duration "${seconds}s")
  python3 - "$line" "$(($(cpu_ms "$server_pid") - s0))" "$(($(cpu_ms "$redis_pid") - r0))" <<'PY'
import json, sys
run = json.loads(sys.argv[1])
if run["errors"] or run["denied"]:
    sys.exit(f"{run['target']}: {run['errors']} errors, {run['denied']} denied: {run.get('first_error', '')}")
run["server_cpu_ms"], run["redis_cpu_ms"] = int(sys.argv[2]), int(sys.argv[3])
print(json.dumps(run))
PY
}

for side in envoy gateway; do
  log "warm-up: $side, 3 s"
  drive "$side" 3 >/dev/null
done
declare -A runs
for repeat in $(seq 1 "$REPEATS"); do
  order=(envoy gateway)
  [ $((repeat % 2)) -eq 0 ] && order=(gateway envoy)
  for side in "${order[@]}"; do
    log "$repeat of $REPEATS: $side, $WORKERS workers for ${DURATION}s"
    # Assigned alone, so a failed run stops the benchmark.
    result=$(drive "$side" "$DURATION")
    runs[$side]="${runs[$side]:-}$result"$'\n'
  done
  sleep 2
done

python3 - "$DURATION" "$WORKERS" "$ENVOY_RATELIMIT_VERSION" "${runs[envoy]}" "${runs[gateway]}" <<'PY'
import json, sys
from bench_report import emit, median, spread, text
duration, workers, version = sys.argv[1:4]
sides = {"envoy": [json.loads(l) for l in sys.argv[4].splitlines() if l],
         "gateway": [json.loads(l) for l in sys.argv[5].splitlines() if l]}
figures = {}
for side, runs in sides.items():
    figures[side] = {
        "decisions_per_s": [r["decisions_per_second"] for r in runs],
        "p50_ms": [r["p50_ms"] for r in runs],
        "p99_ms": [r["p99_ms"] for r in runs],
        "server_cpu_us": [r["server_cpu_ms"] * 1000 / r["decisions"] for r in runs],
        "redis_cpu_us": [r["redis_cpu_ms"] * 1000 / r["decisions"] for r in runs],
        "total_cpu_us": [(r["server_cpu_ms"] + r["redis_cpu_ms"]) * 1000 / r["decisions"] for r in runs],
        "client_cpu_us": [r["client_cpu_ms"] * 1000 / r["decisions"] for r in runs],
    }
rate_ratio = median(figures["gateway"]["decisions_per_s"]) / median(figures["envoy"]["decisions_per_s"])
cpu_ratio = median(figures["gateway"]["total_cpu_us"]) / median(figures["envoy"]["total_cpu_us"])
print(f"\nRate-limit decisions: one Go generator, {workers} workers, {duration} s per run, the same Redis;"
      " median (min-max)")
print(f"  {'':<34} {'decisions/s':>22} {'p99 ms':>17} {'server us':>14} {'Redis us':>14} {'total us':>14} {'generator us':>14}")
titles = {"envoy": f"envoyproxy/ratelimit {version} (gRPC)", "gateway": "gateway /rate-limit/check (HTTP)"}
for side in ("envoy", "gateway"):
    f = figures[side]
    print(f"  {titles[side]:<34} {text(f['decisions_per_s'], 0):>22} {text(f['p99_ms'], 2):>17}"
          f" {text(f['server_cpu_us'], 1):>14} {text(f['redis_cpu_us'], 1):>14} {text(f['total_cpu_us'], 1):>14}"
          f" {text(f['client_cpu_us'], 1):>14}")
print(f"  gateway / envoy: {rate_ratio:.2f}x decisions per second, {cpu_ratio:.2f}x CPU (server + Redis) per decision")
emit("ratelimit-envoy", {
    "duration_s": int(duration), "workers": int(workers), "envoy_version": version,
    **{side: {name: spread(values, 2) for name, values in f.items()} for side, f in figures.items()},
    "ratios": {"gateway_over_envoy_decisions_per_s": round(rate_ratio, 2),
               "gateway_over_envoy_total_cpu_per_decision": round(cpu_ratio, 2)},
})
PY
