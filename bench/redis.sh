#!/usr/bin/env bash
# Redis-backed endpoints benchmark, in one run on this machine:
#
#   peak     wrk, DURATION seconds each, CONNECTIONS connections:
#            GET /health (an actix endpoint with no I/O, the ceiling),
#            GET /session/{id}, POST /rate-limit/check, GET /cache/get/{key}
#   scale    redis-benchmark GET and EVALSHA (the rate-limit script) on the
#            same Redis, with as many connections
#   latency  hey at half of each endpoint's peak rate: p50 and p99
#
# Usage: bench/redis.sh [DURATION=10] [CONNECTIONS=32]
# The gateway runs as in production: API key authentication and the
# per-key gateway rate limit on every request (with a limit high enough not
# to deny).
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

ensure_debian_packages wrk hey
bench_setup
trap bench_cleanup EXIT

cat >"$work/bench.toml" <<TOML
[rate_limit]
gateway_policy = "bench-gateway"
default_policy = "bench"

[rate_limit.policies.bench]
limits = [{ name = "second", limit = 1000000, window = "1s" }]

[rate_limit.policies.bench-gateway]
limits = [{ name = "second", limit = 1000000, window = "1s" }]
TOML

port=$((GATEWAY_PORT + 101))
base="http://127.0.0.1:$port"
start_gateway "$port" --config "$work/bench.toml"
key=$("$gateway_bin" keys create --tenant "bench-$(date +%s)" --scopes all --name bench)
auth="Authorization: Bearer $key"

session=$(curl -sS -f -H "$auth" -H 'Content-Type: application/json' \
  -d '{"user_id": "bench-user", "data": {"role": "reader", "cart": [1, 2, 3]}, "ttl_seconds": 3600}' \
  "$base/session/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])')
curl -sS -f -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
  -d '{"key": "bench:report", "value": {"rows": [1, 2, 3], "label": "weekly"}, "ttl_seconds": 3600}' \
  "$base/cache/set"

cat >"$work/check.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"key": "bench-user", "policy": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

names=(no_io session rate_limit cache)
declare -A method=([no_io]=GET [session]=GET [rate_limit]=POST [cache]=GET)
declare -A path=([no_io]=/health [session]="/session/$session" [rate_limit]=/rate-limit/check [cache]=/cache/get/bench:report)

redis_pid=$(cat "$RUN_DIR/redis.pid")

# wrk_run NAME: prints "RPS P50_MS P99_MS GATEWAY_CPU_MS REDIS_CPU_MS".
wrk_run() {
  local name=$1 args=(-t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency)
  if [ "${method[$name]}" = POST ]; then
    args+=(-s "$work/check.lua")
  else
    args+=(-H "$auth")
  fi
  local g0 r0
  g0=$(cpu_ms "$gateway_pid")
  r0=$(cpu_ms "$redis_pid")
  wrk "${args[@]}" "$base${path[$name]}" >"$work/wrk-$name.txt"
  echo "$(($(cpu_ms "$gateway_pid") - g0)) $(($(cpu_ms "$redis_pid") - r0))" >"$work/cpu-$name.txt"
  python3 - "$work/wrk-$name.txt" "$work/cpu-$name.txt" "$DURATION" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
if re.search(r"Non-2xx or 3xx responses: (\d+)", text):
    sys.exit("wrk saw error responses:\n" + text)
def ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", text).groups())
p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups())
gateway_ms, redis_ms = open(sys.argv[2]).read().split()
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {gateway_ms} {redis_ms}")
PY
}

# hey_run NAME RATE: prints "P50_MS P99_MS" at RATE requests per second in all.
hey_run() {
  local name=$1 rate=$2 workers=16
  local per_worker=$(( (rate + workers - 1) / workers ))
  local args=(-z "${DURATION}s" -c "$workers" -q "$per_worker" -m "${method[$name]}")
  if [ "${method[$name]}" = POST ]; then
    args+=(-T application/json -d '{"key": "bench-user", "policy": "bench"}')
  fi
  hey "${args[@]}" -H "$auth" "$base${path[$name]}" >"$work/hey-$name.txt"
  python3 - "$work/hey-$name.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)
if any(code != "200" for code, _ in codes):
    sys.exit("hey saw error responses:\n" + text)
p50 = float(re.search(r"50%+ in ([\d.]+) secs", text).group(1)) * 1000
p99 = float(re.search(r"99%+ in ([\d.]+) secs", text).group(1)) * 1000
print(f"{p50:.3f} {p99:.3f}")
PY
}

declare -A peak half
for name in "${names[@]}"; do
  log "wrk: ${method[$name]} ${path[$name]%%/bench*} for ${DURATION}s"
  peak[$name]=$(wrk_run "$name")
done
for name in "${names[@]}"; do
  rps=${peak[$name]%% *}
  log "hey: ${method[$name]} at $((rps / 2)) requests/s for ${DURATION}s"
  half[$name]="$((rps / 2)) $(hey_run "$name" $((rps / 2)))"
done

log "redis-benchmark: GET and EVALSHA of the rate-limit script"
sha=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat src/rate_limit/gcra.lua)")
redis-cli -p "$REDIS_PORT" SET bench:get '{"rows": [1, 2, 3], "label": "weekly"}' >/dev/null
requests=$((DURATION * 20000))
redis_get=$(redis-benchmark -p "$REDIS_PORT" -c "$CONNECTIONS" -n "$requests" --csv GET bench:get | tail -n 1)
redis_evalsha=$(redis-benchmark -p "$REDIS_PORT" -c "$CONNECTIONS" -n "$requests" --csv \
  EVALSHA "$sha" 1 bench:rl:key 1 1 1 1000000 | tail -n 1)

python3 - "$DURATION" "$CONNECTIONS" "$redis_get" "$redis_evalsha" \
  "${peak[no_io]}" "${peak[session]}" "${peak[rate_limit]}" "${peak[cache]}" \
  "${half[no_io]}" "${half[session]}" "${half[rate_limit]}" "${half[cache]}" <<'PY'
import csv, io, sys
duration, connections = sys.argv[1:3]
def redis_rps(line):
    row = next(csv.reader(io.StringIO(line)))
    return float(row[1])
redis_get, redis_evalsha = (redis_rps(x) for x in sys.argv[3:5])
labels = ["no I/O (GET /health)", "GET /session/{id}", "POST /rate-limit/check", "GET /cache/get/{key}"]
peaks = [tuple(float(v) for v in a.split()) for a in sys.argv[5:9]]
requests = [rps * float(duration) for rps, *_ in peaks]
halves = [tuple(float(v) for v in a.split()) for a in sys.argv[9:13]]
ceiling = peaks[0][0]
print(f"\nRedis-backed endpoints: wrk {duration}s x {connections} connections, then hey at half of each peak")
print(f"  {'endpoint':<26} {'peak rps':>9} {'/no I/O':>8} {'p50 ms':>7} {'p99 ms':>7}   {'at rps':>7} {'p50 ms':>7} {'p99 ms':>7}")
for label, (rps, p50, p99, _, _), (rate, hp50, hp99) in zip(labels, peaks, halves):
    print(f"  {label:<26} {rps:9.0f} {rps / ceiling:8.2f} {p50:7.2f} {p99:7.2f}   {rate:7.0f} {hp50:7.2f} {hp99:7.2f}")
print(f"  redis-benchmark GET       {redis_get:9.0f} rps   EVALSHA (GCRA) {redis_evalsha:9.0f} rps")
print("  CPU per request at peak (us): " + ", ".join(
    f"{label.split(' (')[0]}: gateway {g / n * 1000:.0f} + Redis {r / n * 1000:.0f}"
    for label, (_, _, _, g, r), n in zip(labels, peaks, requests)))
PY
