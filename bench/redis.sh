#!/usr/bin/env bash
# Redis-backed endpoints benchmark, in one run on this machine:
#
#   peak     wrk, DURATION seconds each, CONNECTIONS connections:
#            GET /health (an actix endpoint with no I/O, the ceiling),
#            GET /session/{id}, POST /rate-limit/check, GET /cache/get/{key}
#   latency  hey (eight processes of two workers) at half of each
#            endpoint's median peak rate: p50 and p99
#   scale    redis-benchmark GET and EVALSHA (the rate-limit script) on the
#            same Redis, with as many connections
#
# Every authenticated request also passes the gateway's own per-key rate
# limit, in two set-ups, both measured and printed:
#   default  the shipped gateway policy (5000 per second per key), the load
#            spread over 16 keys so none is denied; the gateway holds a
#            reservation of 1/64 of a key's burst (78 units) per Redis call
#   lifted   one key under a policy of a million per second, so that
#            reservation is 15625 units: fewer Redis calls than production
# POST /rate-limit/check checks a policy of a million per second in both,
# so every decision is an allow.
#
# Usage: bench/redis.sh [DURATION=10] [CONNECTIONS=32] [REPEATS=3]
# After an untimed warm-up of each endpoint, every measurement is repeated
# REPEATS times, endpoints in turn. Reports medians with min-max, and a
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
CONNECTIONS=${2:-32}
REPEATS=${3:-3}

ensure_debian_packages wrk hey
bench_setup "$@"
trap bench_cleanup EXIT

port=$((GATEWAY_PORT + 101))
base="http://127.0.0.1:$port"
redis_pid=$(cat "$RUN_DIR/redis.pid")
check_body='{"key": "bench-user", "policy": "bench"}'
names=(no_io session rate_limit cache)
declare -A method=([no_io]=GET [session]=GET [rate_limit]=POST [cache]=GET)
declare -A path

# setup_variant NAME: starts the gateway for it, makes its keys, a session
# and a cache entry.
setup_variant() {
  local variant=$1 count=16
  {
    echo '[rate_limit]'
    if [ "$variant" = lifted ]; then
      echo 'gateway_policy = "bench-gateway"'
      count=1
    fi
    echo '[rate_limit.policies.bench]'
    echo 'limits = [{ name = "second", limit = 1000000, window = "1s" }]'
    echo '[rate_limit.policies.bench-gateway]'
    echo 'limits = [{ name = "second", limit = 1000000, window = "1s" }]'
  } >"$work/$variant.toml"
  start_gateway "$port" --config "$work/$variant.toml"
  local tenant i
  tenant="bench-$variant-$(date +%s)"
  keys=()
  for i in $(seq 1 "$count"); do
    keys+=("$("$gateway_bin" keys create --tenant "$tenant" --scopes all --name "bench-$i")")
  done
  local auth="Authorization: Bearer ${keys[0]}"
  session=$(curl -sS -f -H "$auth" -H 'Content-Type: application/json' \
    -d '{"user_id": "bench-user", "data": {"role": "reader", "cart": [1, 2, 3]}, "ttl_seconds": 3600}' \
    "$base/session/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])')
  curl -sS -f -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
    -d '{"key": "bench:report", "value": {"rows": [1, 2, 3], "label": "weekly"}, "ttl_seconds": 3600}' \
    "$base/cache/set"
  path=([no_io]=/health [session]="/session/$session" [rate_limit]=/rate-limit/check [cache]=/cache/get/bench:report)
  # Requests take the keys in turn.
  {
    printf 'local keys = {'
    printf '"%s",' "${keys[@]}"
    printf '}\nlocal turn = 0\n'
    cat <<'LUA'
request = function()
  turn = turn + 1
  wrk.headers["Authorization"] = "Bearer " .. keys[turn % #keys + 1]
  return wrk.format()
end
LUA
  } >"$work/keys.lua"
  cp "$work/keys.lua" "$work/check.lua"
  cat >>"$work/check.lua" <<LUA
wrk.method = "POST"
wrk.body = '$check_body'
wrk.headers["Content-Type"] = "application/json"
LUA
}

# wrk_run NAME SECONDS: prints "RPS P50_MS P99_MS GATEWAY_CPU_MS REDIS_CPU_MS REQUESTS".
wrk_run() {
  local name=$1 seconds=$2 args
  args=(-t1 -c"$CONNECTIONS" -d"${seconds}s" --latency)
  case $name in
    no_io) ;;
    rate_limit) args+=(-s "$work/check.lua") ;;
    *) args+=(-s "$work/keys.lua") ;;
  esac
  local g0 r0
  g0=$(cpu_ms "$gateway_pid")
  r0=$(cpu_ms "$redis_pid")
  wrk "${args[@]}" "$base${path[$name]}" >"$work/wrk-$name.txt"
  echo "$(($(cpu_ms "$gateway_pid") - g0)) $(($(cpu_ms "$redis_pid") - r0))" >"$work/cpu-$name.txt"
  python3 - "$work/wrk-$name.txt" "$work/cpu-$name.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
if re.search(r"Non-2xx or 3xx responses: (\d+)", text):
    sys.exit("wrk saw error responses:\n" + text)
def ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
requests = int(re.search(r"(\d+) requests in", text).group(1))
p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", text).groups())
p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups())
gateway_ms, redis_ms = open(sys.argv[2]).read().split()
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {gateway_ms} {redis_ms} {requests}")
PY
}

# hey_run NAME RATE: prints "P50_MS P99_MS" at RATE requests per second in
# all, from eight hey processes of two workers each (the same client for
# every endpoint and set-up; with 16 keys each process has its own, well
# within its limit while RATE stays under 30000), their latencies pooled.
hey_run() {
  local name=$1 rate=$2 processes=8 workers=2 i
  local per_worker=$(( (rate + processes * workers - 1) / (processes * workers) ))
  local pids=()
  for i in $(seq 0 $((processes - 1))); do
    local args=(-z "${DURATION}s" -c "$workers" -q "$per_worker" -m "${method[$name]}" -o csv)
    if [ "${method[$name]}" = POST ]; then args+=(-T application/json -d "$check_body"); fi
    hey "${args[@]}" -H "Authorization: Bearer ${keys[$((i % ${#keys[@]}))]}" "$base${path[$name]}" \
      >"$work/hey-$name-$i.csv" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  python3 - "$work"/hey-"$name"-*.csv <<'PY'
import csv, statistics, sys
times, bad = [], 0
for path in sys.argv[1:]:
    for row in csv.DictReader(open(path)):
        if row["status-code"] != "200":
            bad += 1
        times.append(float(row["response-time"]) * 1000)
if bad:
    sys.exit(f"hey saw {bad} answers other than 200")
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"{pick(0.50):.3f} {pick(0.99):.3f}")
PY
  rm -f "$work"/hey-"$name"-*.csv
}

declare -A peaks halves
for variant in default lifted; do
  log "$variant gateway policy: starting the gateway"
  setup_variant "$variant"
  for name in "${names[@]}"; do
    wrk_run "$name" 2 >/dev/null
  done
  for repeat in $(seq 1 "$REPEATS"); do
    for name in "${names[@]}"; do
      log "$variant, $repeat of $REPEATS: wrk, $name, for ${DURATION}s"
      # Assigned alone, so a failed run stops the benchmark.
      result=$(wrk_run "$name" "$DURATION")
      peaks[$variant.$name]="${peaks[$variant.$name]:-}$result;"
    done
  done
  for repeat in $(seq 1 "$REPEATS"); do
    for name in "${names[@]}"; do
      rate=$(python3 -c 'import statistics,sys; print(int(statistics.median(float(r.split()[0]) for r in sys.argv[1].split(";") if r) / 2))' "${peaks[$variant.$name]}")
      log "$variant, $repeat of $REPEATS: hey, $name, at $rate requests/s for ${DURATION}s"
      result=$(hey_run "$name" "$rate")
      halves[$variant.$name]="${halves[$variant.$name]:-}$rate $result;"
    done
  done
done

log "redis-benchmark: GET and EVALSHA of the rate-limit script"
sha=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat src/stores/redis/scripts/gcra.lua)")
redis-cli -p "$REDIS_PORT" SET bench:get '{"rows": [1, 2, 3], "label": "weekly"}' >/dev/null
requests=$((DURATION * 20000))
redis_get=()
redis_evalsha=()
for _ in $(seq 1 "$REPEATS"); do
  redis_get+=("$(redis-benchmark -p "$REDIS_PORT" -c "$CONNECTIONS" -n "$requests" --csv GET bench:get | tail -n 1 | cut -d, -f2 | tr -d '"')")
  redis_evalsha+=("$(redis-benchmark -p "$REDIS_PORT" -c "$CONNECTIONS" -n "$requests" --csv \
    EVALSHA "$sha" 1 bench:rl:key 1 1 1 1000000 | tail -n 1 | cut -d, -f2 | tr -d '"')")
done

args=()
for variant in default lifted; do
  for name in "${names[@]}"; do
    args+=("${peaks[$variant.$name]}" "${halves[$variant.$name]}")
  done
done
python3 - "$DURATION" "$CONNECTIONS" "${redis_get[*]}" "${redis_evalsha[*]}" "${args[@]}" <<'PY'
import sys
from bench_report import emit, median, spread, text
duration, connections = sys.argv[1:3]
redis_get = [float(x) for x in sys.argv[3].split()]
redis_evalsha = [float(x) for x in sys.argv[4].split()]
names = ["no_io", "session", "rate_limit", "cache"]
labels = {"no_io": "GET /health (no I/O)", "session": "GET /session/{id}",
          "rate_limit": "POST /rate-limit/check", "cache": "GET /cache/get/{key}"}
runs = lambda arg: [[float(v) for v in r.split()] for r in arg.split(";") if r]
rest = iter(sys.argv[5:])
figures = {}
for variant in ("default", "lifted"):
    figures[variant] = {}
    for name in names:
        peak, half = runs(next(rest)), runs(next(rest))
        figures[variant][name] = {
            "rps": [r[0] for r in peak],
            "gateway_cpu_us": [r[3] / r[5] * 1000 for r in peak],
            "redis_cpu_us": [r[4] / r[5] * 1000 for r in peak],
            "half_rate": [r[0] for r in half],
            "half_p50_ms": [r[1] for r in half],
            "half_p99_ms": [r[2] for r in half],
        }
print(f"\nRedis-backed endpoints: wrk {duration} s x {connections} connections, then hey at half of each median peak;"
      " median (min-max)")
out = {}
for variant, title in (("default", "shipped gateway policy, 16 keys"), ("lifted", "gateway policy lifted, one key")):
    print(f"  {title}:")
    print(f"    {'endpoint':<24} {'peak rps':>20} {'/health':>7} {'gateway us/req':>16} {'Redis us/req':>14} {'p99 ms at half':>16}")
    ceiling = median(figures[variant]["no_io"]["rps"])
    out[variant] = {}
    for name in names:
        f = figures[variant][name]
        ratio = median(f["rps"]) / ceiling
        print(f"    {labels[name]:<24} {text(f['rps'], 0):>20} {ratio:7.2f} {text(f['gateway_cpu_us'], 0):>16}"
              f" {text(f['redis_cpu_us'], 0):>14} {text(f['half_p99_ms'], 2):>16}")
        out[variant][name] = {
            "rps": spread(f["rps"], 0), "of_health": round(ratio, 2),
            "gateway_cpu_us": spread(f["gateway_cpu_us"], 1), "redis_cpu_us": spread(f["redis_cpu_us"], 1),
            "half_rate_rps": spread(f["half_rate"], 0),
            "half_p50_ms": spread(f["half_p50_ms"], 2), "half_p99_ms": spread(f["half_p99_ms"], 2),
        }
print(f"  redis-benchmark GET {text(redis_get, 0)} rps, EVALSHA (GCRA) {text(redis_evalsha, 0)} rps")
emit("redis", {"duration_s": int(duration), "connections": int(connections), **out,
               "redis_benchmark_rps": {"get": spread(redis_get, 0), "evalsha": spread(redis_evalsha, 0)}})
PY
