#!/usr/bin/env bash
# Event ingestion benchmark, in one run on this machine: events per second
# accepted by the gateway and visible in ClickHouse, against clickhouse-client
# inserting the same number of rows directly.
#
#   batch    POST /analytics/events with NDJSON batches of BATCH events,
#            CONCURRENCY requests at a time
#   direct   clickhouse-client INSERT ... FORMAT JSONEachRow of as many rows
#   single   POST /analytics/events with one event per request (wrk, 10 s)
#
# Both batch and direct are timed alike: from just before their client
# starts until ClickHouse counts every row (count() of the tenant's rows,
# each id unique, polled every 100 ms). They alternate which goes first,
# REPEATS times, with fresh rows each time, after an untimed warm-up of
# each.
#
# Then the dashboard query (GET /analytics/user-activity, hourly over the
# day) over a tenant of its own holding DASHBOARD_EVENTS events of the day
# (inserted directly, untimed), wrk for 10 s each, REPEATS times,
# alternating:
#   cached     the same query every time: answered from Redis
#   uncached   each request a range of its own, so each one runs in
#              ClickHouse (on the hourly counts: bench/dashboards.sh compares
#              them with the raw events); every answer's X-Cache is counted,
#              and must be MISS
#
# Usage: bench/analytics.sh [EVENTS=500000] [BATCH=10000] [CONCURRENCY=4] [REPEATS=3]
#                           [DASHBOARD_EVENTS=500000]
# Reports medians with min-max, ratios of medians, and a closing JSON line.
set -euo pipefail
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/install.sh
source "$REPO_ROOT/scripts/lib/install.sh"
# shellcheck source=../scripts/lib/bench.sh
source "$REPO_ROOT/scripts/lib/bench.sh"
cd "$REPO_ROOT"

EVENTS=${1:-500000}
BATCH=${2:-10000}
CONCURRENCY=${3:-4}
REPEATS=${4:-3}
DASHBOARD_EVENTS=${5:-500000}

ensure_debian_packages wrk
bench_setup "$@"
trap bench_cleanup EXIT

port=$((GATEWAY_PORT + 102))
base="http://127.0.0.1:$port"
# The gateway's own per-key limit is lifted: this measures ingestion.
cat >"$work/bench.toml" <<TOML
[rate_limit]
gateway_policy = ""
TOML
start_gateway "$port" --config "$work/bench.toml"
tenant="bench-$(date +%s)"
direct_tenant="$tenant-direct"
key=$("$gateway_bin" keys create --tenant "$tenant" --scopes all --name bench)

ch() { curl -sS -f "$CLICKHOUSE_HOST/?database=$CLICKHOUSE_DB" --data-binary "$1"; }
# rows TENANT: the tenant's rows in user_activity (ids are unique, so
# before any merge this is the number of events).
rows() { ch "SELECT count() FROM user_activity WHERE tenant_id = '$1'"; }
# wait_for TENANT N: waits until ClickHouse holds N rows of TENANT.
wait_for() {
  for _ in $(seq 1 3000); do
    [ "$(rows "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  die "ClickHouse holds $(rows "$1") of $2 rows of $1"
}
now_s() { date +%s.%N; }

# rows_files N DIR: N fresh events, as NDJSON batches of BATCH for the
# gateway under DIR/batches, and as ClickHouse rows in DIR/direct.ndjson.
rows_files() {
  python3 - "$2" "$1" "$BATCH" "$direct_tenant" <<'PY'
import json, os, sys, time, uuid
work, events, batch, direct_tenant = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(f"{work}/batches")
now = int(time.time())
stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
with open(f"{work}/direct.ndjson", "w") as direct:
    for start in range(0, events, batch):
        with open(f"{work}/batches/{start:012d}.ndjson", "w") as out:
            for i in range(start, min(start + batch, events)):
                properties = {"page": f"/p/{i % 100}", "ms": i % 1000}
                out.write(json.dumps({"event_id": str(uuid.uuid4()), "event_type": "page_view",
                    "user_id": f"user-{i % 5000}", "timestamp": stamp, "properties": properties}) + "\n")
                direct.write(json.dumps({"event_id": str(uuid.uuid4()), "tenant_id": direct_tenant,
                    "user_id": f"user-{i % 5000}", "event_type": "page_view", "timestamp": now,
                    "properties": json.dumps(properties, separators=(",", ":"))}) + "\n")
PY
}

# Each sets $took (seconds from its client's start to all rows visible).
batch_run() {
  local dir=$1 n=$2 before started
  before=$(rows "$tenant")
  started=$(now_s)
  find "$dir/batches" -name '*.ndjson' -print0 | xargs -0 -P "$CONCURRENCY" -I{} \
    curl -sS -f -o /dev/null -H "Authorization: Bearer $key" -H "Content-Type: application/x-ndjson" \
    --data-binary @{} "$base/analytics/events"
  wait_for "$tenant" $((before + n))
  took=$(python3 -c "print($(now_s) - $started)")
}
direct_run() {
  local dir=$1 n=$2 before started
  before=$(rows "$direct_tenant")
  started=$(now_s)
  clickhouse-client --port "$CLICKHOUSE_TCP_PORT" --database "$CLICKHOUSE_DB" \
    --query "INSERT INTO user_activity (event_id, tenant_id, user_id, event_type, timestamp, properties) FORMAT JSONEachRow" \
    <"$dir/direct.ndjson"
  wait_for "$direct_tenant" $((before + n))
  took=$(python3 -c "print($(now_s) - $started)")
}

log "warm-up (untimed): 20000 events each way"
mkdir -p "$work/warm"
rows_files 20000 "$work/warm"
batch_run "$work/warm" 20000
direct_run "$work/warm" 20000
rm -rf "$work/warm"

batch_s=()
direct_s=()
for repeat in $(seq 1 "$REPEATS"); do
  dir="$work/run"
  rm -rf "$dir" && mkdir -p "$dir"
  rows_files "$EVENTS" "$dir"
  # ClickHouse merges what the previous one wrote: let it settle (untimed).
  sleep 5
  if [ $((repeat % 2)) -eq 1 ]; then
    batch_run "$dir" "$EVENTS"; batch_s+=("$took"); sleep 5
    direct_run "$dir" "$EVENTS"; direct_s+=("$took")
  else
    direct_run "$dir" "$EVENTS"; direct_s+=("$took"); sleep 5
    batch_run "$dir" "$EVENTS"; batch_s+=("$took")
  fi
  log "repeat $repeat: gateway batches ${batch_s[-1]} s, clickhouse-client ${direct_s[-1]} s"
done
rm -rf "$work/run"

cat >"$work/single.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
local counter = 0
math.randomseed(os.time())
request = function()
  counter = counter + 1
  local id = string.format("%08x-%04x-4%03x-a%03x-%012x", math.random(0, 0xffffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff), counter)
  return wrk.format(nil, nil, nil,
    '{"event_id": "' .. id .. '", "event_type": "click", "user_id": "single", "properties": {"n": ' .. counter .. '}}')
end
LUA
single_rate=()
for repeat in $(seq 1 "$REPEATS"); do
  log "single-event requests: wrk for 10 s ($repeat of $REPEATS)"
  before=$(rows "$tenant")
  started=$(now_s)
  wrk -t1 -c32 -d10s -s "$work/single.lua" "$base/analytics/events" >"$work/wrk.txt"
  if grep -q "Non-2xx" "$work/wrk.txt"; then die "wrk saw error responses: $(cat "$work/wrk.txt")"; fi
  sent=$(python3 -c 'import re,sys; print(re.search(r"(\d+) requests in", open(sys.argv[1]).read()).group(1))' "$work/wrk.txt")
  wait_for "$tenant" $((before + sent))
  single_rate+=("$(python3 -c "print($sent / ($(now_s) - $started))")")
done

log "dashboard tenant: $DASHBOARD_EVENTS events of the day, inserted directly (untimed)"
dashboard_tenant="bench-dash-$(date +%s)"
dashboard_key=$("$gateway_bin" keys create --tenant "$dashboard_tenant" --scopes all --name bench)
python3 - "$DASHBOARD_EVENTS" "$dashboard_tenant" <<'PY' |
import json, sys, time, uuid
events, tenant = int(sys.argv[1]), sys.argv[2]
now = int(time.time())
midnight = now - now % 86400
for i in range(events):
    print(json.dumps({"event_id": str(uuid.uuid4()), "tenant_id": tenant, "user_id": f"user-{i % 5000}",
        "event_type": ("page_view", "click", "login")[i % 3], "timestamp": midnight + i % max(1, now - midnight),
        "properties": "{}"}))
PY
  clickhouse-client --port "$CLICKHOUSE_TCP_PORT" --database "$CLICKHOUSE_DB" \
    --query "INSERT INTO user_activity (event_id, tenant_id, user_id, event_type, timestamp, properties) FORMAT JSONEachRow"
wait_for "$dashboard_tenant" "$DASHBOARD_EVENTS"

day=$(date -u +%Y-%m-%d)
query="/analytics/user-activity?from=${day}T00:00:00Z&interval=hour&to=${day}T23:59:59Z"
first=$(curl -sS -f -D - -o /dev/null -H "Authorization: Bearer $dashboard_key" "$base$query")
grep -qi "x-cache: MISS" <<<"$first" || die "the first query was not a miss: $first"
total=$(rows "$dashboard_tenant")
# Both scripts count the answers' X-Cache values; done() prints them.
cat >"$work/count.lua" <<LUA
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) hits = 0; misses = 0; others = 0 end
function response(status, headers, body)
  local cache = headers["x-cache"] or headers["X-Cache"]
  if cache == "HIT" then hits = hits + 1 elseif cache == "MISS" then misses = misses + 1 else others = others + 1 end
end
function done(summary, latency, requests)
  local h, m, o = 0, 0, 0
  for _, t in ipairs(threads) do h = h + t:get("hits"); m = m + t:get("misses"); o = o + t:get("others") end
  io.write(string.format("x-cache: hit=%d miss=%d other=%d\n", h, m, o))
end
LUA
cat "$work/count.lua" - >"$work/cached.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $dashboard_key"
LUA
# Each request asks for a range of its own: all of the day, plus A hours
# before it and B after it (no events there), every (A, B) once across all
# repeats. A new cache key, so a ClickHouse query over all of the day's
# events, every time (ranges widen to whole intervals, so moving one by a
# second would share an entry). 88 x 88 ranges stay within the 200 hourly
# buckets a query may hold; past them answers turn HIT, and the count fails.
day_start=$(date -u -d "${day}T00:00:00Z" +%s)
cat "$work/count.lua" - >"$work/uncached.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $dashboard_key"
local offset = 0
local counter = 0
request = function()
  local n = offset + counter
  counter = counter + 1
  local from = $day_start - 3600 * (n % 88)
  local to = $day_start + 86400 + 3600 * math.floor(n / 88)
  return wrk.format(nil, string.format("/analytics/user-activity?interval=hour&from=%s&to=%s",
    os.date("!%Y-%m-%dT%H:%M:%SZ", from), os.date("!%Y-%m-%dT%H:%M:%SZ", to)))
end
LUA
uncached_sent=0
for repeat in $(seq 1 "$REPEATS"); do
  if [ $((repeat % 2)) -eq 1 ]; then order=(cached uncached); else order=(uncached cached); fi
  for kind in "${order[@]}"; do
    log "dashboard query, $kind: wrk for 10 s ($repeat of $REPEATS)"
    # Each repeat starts past every range an earlier one asked for.
    sed -i "s/^local offset = .*/local offset = $uncached_sent/" "$work/uncached.lua"
    wrk -t1 -c4 -d10s --timeout 30s --latency -s "$work/$kind.lua" "$base$query" >"$work/$kind-$repeat.txt"
    if grep -q "Non-2xx" "$work/$kind-$repeat.txt"; then die "wrk saw error responses: $(cat "$work/$kind-$repeat.txt")"; fi
    if [ "$kind" = uncached ]; then
      uncached_sent=$((uncached_sent + $(grep -o '[0-9]* requests in' "$work/$kind-$repeat.txt" | cut -d' ' -f1) + 100))
    fi
  done
done

python3 - "$EVENTS" "$BATCH" "$CONCURRENCY" "$REPEATS" "$total" "$work" \
  "${batch_s[*]}" "${direct_s[*]}" "${single_rate[*]}" <<'PY'
import re, sys
from bench_report import emit, median, spread, text
events, batch, concurrency, repeats, total = (int(x) for x in sys.argv[1:6])
work = sys.argv[6]
batch_rate = [events / float(s) for s in sys.argv[7].split()]
direct_rate = [events / float(s) for s in sys.argv[8].split()]
single_rate = [float(s) for s in sys.argv[9].split()]

def wrk_figures(path):
    text_ = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text_).group(1))
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)", text_).groups()
    median_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    hit, miss, other = (int(x) for x in re.search(r"x-cache: hit=(\d+) miss=(\d+) other=(\d+)", text_).groups())
    return rps, median_ms, hit, miss, other

runs = {kind: [wrk_figures(f"{work}/{kind}-{r}.txt") for r in range(1, repeats + 1)] for kind in ("cached", "uncached")}
for kind, expected in (("cached", "HIT"), ("uncached", "MISS")):
    for rps, _, hit, miss, other in runs[kind]:
        wrong = other + (miss if expected == "HIT" else hit)
        # The cached query's first answer in a repeat may be a MISS only if
        # its entry expired meanwhile; any other answer is a defect.
        if kind == "uncached" and wrong:
            sys.exit(f"{wrong} uncached answers were not X-Cache: MISS")
misses = sum(r[3] for r in runs["uncached"])
ratio = median(batch_rate) / median(direct_rate)
print(f"\nevent ingestion: {events} events per repeat, {repeats} repeats, timed until ClickHouse counts every row;"
      " events/s, median (min-max)")
print(f"  gateway, NDJSON x {batch}, {concurrency} at a time  {text(batch_rate, 0):>28s}")
print(f"  clickhouse-client, one INSERT            {text(direct_rate, 0):>28s}")
print(f"    gateway / clickhouse-client = {ratio:.2f}")
print(f"  gateway, one event per request (wrk 32)  {text(single_rate, 0):>28s}")
cached = [r[0] for r in runs["cached"]]
uncached = [r[0] for r in runs["uncached"]]
print(f"\ndashboard query (user-activity, hourly over the day and more: {total} events of the tenant in range; wrk 4 connections, 10 s)")
print(f"  cached (HIT)     requests/s {text(cached, 0):>24s}   median latency, ms {text([r[1] for r in runs['cached']], 2)}")
print(f"  uncached (MISS)  requests/s {text(uncached, 1):>24s}   median latency, ms {text([r[1] for r in runs['uncached']], 1)}")
print(f"  {misses} uncached answers, every one X-Cache: MISS; cached / uncached = {median(cached) / median(uncached):.1f}x")
emit("analytics", {
    "events": events,
    "events_in_dashboard_range": total,
    "ingest_events_s": {"gateway_batch": spread(batch_rate, 0), "clickhouse_client": spread(direct_rate, 0),
                        "gateway_single": spread(single_rate, 0)},
    "ingest_ratio": round(ratio, 2),
    "dashboard_rps": {"cached": spread(cached, 1), "uncached": spread(uncached, 2)},
    "dashboard_median_ms": {"cached": spread([r[1] for r in runs["cached"]], 2),
                            "uncached": spread([r[1] for r in runs["uncached"]], 1)},
    "uncached_miss_answers": misses,
})
PY
