#!/usr/bin/env bash
# Event ingestion benchmark, in one run on this machine: events per second
# accepted by the gateway and visible in ClickHouse, against clickhouse-client
# inserting the same rows directly.
#
#   batch    POST /analytics/events with NDJSON batches of BATCH events,
#            CONCURRENCY requests at a time
#   single   POST /analytics/events with one event per request (wrk, 10 s)
#   direct   clickhouse-client INSERT ... FORMAT JSONEachRow of the same rows
#
# Each rate runs from the first request to the moment ClickHouse counts
# every event (uniqExact of the event ids), so it covers the spool, the
# batching and the insert.
#
# Then the dashboard query over those events (GET /analytics/user-activity,
# hourly over the day), wrk for 10 s each:
#   cached     the same query every time: answered from Redis
#   uncached   each request a user_id filter of its own, so each one runs in ClickHouse
#
# Usage: bench/analytics.sh [EVENTS=500000] [BATCH=10000] [CONCURRENCY=4]
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

ensure_debian_packages wrk
bench_setup
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
key=$("$gateway_bin" keys create --tenant "$tenant" --scopes all --name bench)

ch() { curl -sS -f "$CLICKHOUSE_HOST/?database=$CLICKHOUSE_DB" --data-binary "$1"; }
# count TENANT: distinct events of TENANT in ClickHouse.
count() { ch "SELECT uniqExact(event_id) FROM user_activity WHERE tenant_id = '$1'"; }
# wait_for TENANT N: waits until ClickHouse counts N events of TENANT.
wait_for() {
  for _ in $(seq 1 3000); do
    [ "$(count "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  die "ClickHouse holds $(count "$1") of $2 events of $1"
}

log "writing $EVENTS events as NDJSON batches of $BATCH, and as ClickHouse rows"
python3 - "$work" "$EVENTS" "$BATCH" "$tenant-direct" <<'PY'
import json, os, sys, time, uuid
work, events, batch, direct_tenant = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(f"{work}/batches")
now = int(time.time())
stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
with open(f"{work}/direct.ndjson", "w") as direct:
    for start in range(0, events, batch):
        with open(f"{work}/batches/{start:012d}.ndjson", "w") as out:
            for i in range(start, min(start + batch, events)):
                event_id = str(uuid.uuid4())
                properties = {"page": f"/p/{i % 100}", "ms": i % 1000}
                out.write(json.dumps({"event_id": event_id, "event_type": "page_view",
                    "user_id": f"user-{i % 5000}", "timestamp": stamp, "properties": properties}) + "\n")
                direct.write(json.dumps({"event_id": str(uuid.uuid4()), "tenant_id": direct_tenant,
                    "user_id": f"user-{i % 5000}", "event_type": "page_view", "timestamp": now,
                    "properties": json.dumps(properties, separators=(",", ":"))}) + "\n")
PY

log "batch endpoint: $EVENTS events, $CONCURRENCY requests at a time"
started=$(date +%s.%N)
find "$work/batches" -name '*.ndjson' -print0 | xargs -0 -P "$CONCURRENCY" -I{} \
  curl -sS -f -o /dev/null -H "Authorization: Bearer $key" -H "Content-Type: application/x-ndjson" \
  --data-binary @{} "$base/analytics/events"
accepted=$(date +%s.%N)
wait_for "$tenant" "$EVENTS"
visible=$(date +%s.%N)

log "single-event requests: wrk for 10 s"
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
before_single=$(count "$tenant")
single_started=$(date +%s.%N)
wrk -t1 -c32 -d10s -s "$work/single.lua" "$base/analytics/events" >"$work/wrk.txt"
grep -q "Non-2xx" "$work/wrk.txt" && die "wrk saw error responses: $(cat "$work/wrk.txt")"
sent=$(python3 -c 'import re,sys; print(re.search(r"(\d+) requests in", open(sys.argv[1]).read()).group(1))' "$work/wrk.txt")
wait_for "$tenant" $((before_single + sent))
single_visible=$(date +%s.%N)

log "direct: clickhouse-client inserting the same number of rows"
direct_started=$(date +%s.%N)
clickhouse-client --port "$CLICKHOUSE_TCP_PORT" --database "$CLICKHOUSE_DB" \
  --query "INSERT INTO user_activity (event_id, tenant_id, user_id, event_type, timestamp, properties) FORMAT JSONEachRow" \
  <"$work/direct.ndjson"
direct_done=$(date +%s.%N)
wait_for "$tenant-direct" "$EVENTS"

day=$(date -u +%Y-%m-%d)
query="/analytics/user-activity?from=${day}T00:00:00Z&interval=hour"
log "dashboard query, cached: wrk for 10 s"
first=$(curl -sS -f -D - -o /dev/null -H "Authorization: Bearer $key" "$base$query&to=${day}T23:59:59Z")
grep -qi "x-cache: MISS" <<<"$first" || die "the first query was not a miss: $first"
cat >"$work/cached.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $key"
LUA
wrk -t1 -c4 -d10s --timeout 30s --latency -s "$work/cached.lua" "$base$query&to=${day}T23:59:59Z" >"$work/cached.txt"
log "dashboard query, uncached: wrk for 10 s"
# Each request filters by a user id of its own: a new cache key, so a
# ClickHouse query, every time (ranges are widened to whole intervals, so
# moving the range by a second would share one entry).
cat >"$work/uncached.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $key"
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, string.format("$query&to=${day}T23:59:59Z&user_id=bench-miss-%d", counter))
end
LUA
wrk -t1 -c4 -d10s --timeout 30s --latency -s "$work/uncached.lua" "$base" >"$work/uncached.txt"
for run in cached uncached; do
  grep -q "Non-2xx" "$work/$run.txt" && die "wrk saw error responses: $(cat "$work/$run.txt")"
done

python3 - "$EVENTS" "$started" "$accepted" "$visible" "$sent" "$single_started" "$single_visible" \
  "$direct_started" "$direct_done" "$BATCH" "$CONCURRENCY" "$work" <<'PY'
import sys
events = int(sys.argv[1])
started, accepted, visible = (float(x) for x in sys.argv[2:5])
sent = int(sys.argv[5])
single_started, single_visible, direct_started, direct_done = (float(x) for x in sys.argv[6:10])
batch, concurrency = sys.argv[10:12]
batch_rate = events / (visible - started)
direct_rate = events / (direct_done - direct_started)
single_rate = sent / (single_visible - single_started)
print(f"\nevent ingestion: {events} events, accepted and counted in ClickHouse")
print(f"  batch endpoint   {batch_rate:10.0f} events/s   (NDJSON x {batch}, {concurrency} at a time; all accepted after {accepted - started:.2f} s, all visible after {visible - started:.2f} s)")
print(f"  single events    {single_rate:10.0f} events/s   ({sent} requests in 10 s, visible {single_visible - single_started:.2f} s after the first)")
print(f"  clickhouse-client{direct_rate:10.0f} events/s   (one INSERT of the same rows)")
print(f"  batch / direct = {batch_rate / direct_rate:.2f}")

import re
def wrk_figures(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    median = re.search(r"50%\s+([\d.]+\w+)", text).group(1)
    return rps, median
work = sys.argv[12]
cached, cached_median = wrk_figures(f"{work}/cached.txt")
uncached, uncached_median = wrk_figures(f"{work}/uncached.txt")
print(f"\ndashboard query (user-activity, hourly over the day's {events}+ events; wrk 4 connections, 10 s)")
print(f"  cached (HIT)     {cached:10.0f} requests/s   median {cached_median}")
print(f"  uncached (MISS)  {uncached:10.0f} requests/s   median {uncached_median}")
print(f"  cached / uncached = {cached / uncached:.1f}x")
PY
