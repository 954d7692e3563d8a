#!/usr/bin/env bash
# Uncached dashboard queries as the events in range grow, in one run on this
# machine: for each size, a tenant of its own holding that many events spread
# evenly over the 7 days of the default daily dashboard
# (GET /analytics/user-activity), inserted directly into ClickHouse (untimed).
# For each size, REQUESTS times each:
#
#   raw       the query over the raw events that the dashboard ran before the
#             hourly counts (uniqExact(event_id) by day and type, and in total),
#             sent straight to ClickHouse's HTTP interface
#   first     the gateway's first query after loading: every hour in range is
#             computed from the raw events (once per size)
#   current   a gateway query with nothing written since: hourly counts only
#   written   a gateway query after one more event lands in one hour, a
#             different hour each time: that hour is computed again
#
# Every gateway query asks for a range of its own (the week plus some empty
# days around it), so each one runs in ClickHouse: its X-Cache must be MISS,
# and its total must equal the events stored. Latency is each request's wall
# time, on a connection of its own; the figures are medians with min-max.
#
# Usage: bench/dashboards.sh [SIZES="1000000 10000000 30000000"] [REQUESTS=15]
set -euo pipefail
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/bench.sh
source "$REPO_ROOT/scripts/lib/bench.sh"
cd "$REPO_ROOT"

SIZES=${1:-1000000 10000000 30000000}
REQUESTS=${2:-15}

bench_setup "$@"
# A database of its own, dropped at the end: the sizes add gigabytes.
database="bench_dashboards_$(date +%s)"
cleanup() {
  bench_cleanup
  curl -sS -o /dev/null "$CLICKHOUSE_HOST/" --data-binary "DROP DATABASE IF EXISTS $database" || true
}
trap cleanup EXIT

port=$((GATEWAY_PORT + 103))
cat >"$work/bench.toml" <<TOML
[rate_limit]
gateway_policy = ""
[clickhouse]
database = "$database"
TOML
CLICKHOUSE_DB=$database start_gateway "$port" --config "$work/bench.toml"

# The week: the 7 whole days before today, UTC.
today=$(($(date +%s) / 86400 * 86400))
week_from=$((today - 7 * 86400))

results="$work/results.jsonl"
for size in $SIZES; do
  tenant="bench-dash-$size-$(date +%s)"
  key=$("$gateway_bin" keys create --tenant "$tenant" --scopes all --name bench)
  log "$size events over the week for $tenant, inserted directly (untimed)"
  clickhouse-client --port "$CLICKHOUSE_TCP_PORT" --database "$database" --query \
    "INSERT INTO user_activity (event_id, tenant_id, user_id, event_type, timestamp, properties)
     SELECT generateUUIDv4(), '$tenant', concat('user-', toString(number % 5000)),
            ['page_view', 'click', 'login'][number % 3 + 1],
            toDateTime($week_from + intDiv(number * 604800, $size)), '{}'
     FROM system.numbers LIMIT $size"
  log "querying ($REQUESTS requests of each kind)"
  python3 - "$size" "$REQUESTS" "$tenant" "$key" "$port" "$week_from" "$database" >>"$results" <<'PY'
import concurrent.futures, http.client, json, os, sys, time, urllib.parse
size, requests, tenant, key, port, week_from, database = sys.argv[1:]
size, requests, port, week_from = int(size), int(requests), int(port), int(week_from)
DAY = 86400
clickhouse = urllib.parse.urlsplit(os.environ["CLICKHOUSE_HOST"])

def stamp(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

def ch(sql):
    connection = http.client.HTTPConnection(clickhouse.hostname, clickhouse.port, timeout=600)
    connection.request("POST", f"/?database={database}", body=sql.encode())
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        sys.exit(f"ClickHouse answered {response.status}: {body[:300]!r}")
    return body

ranges = iter((a, b) for total in range(0, 24) for a in range(total + 1) for b in [total - a])
stored = size

def dashboard():
    """One uncached query: its wall time in ms, after checking the answer."""
    before, after = next(ranges)
    path = (f"/analytics/user-activity?from={stamp(week_from - before * DAY)}"
            f"&to={stamp(week_from + (7 + after) * DAY)}")
    # A connection each: the raw queries between them can outlast the
    # gateway's keep-alive.
    gateway = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    gateway.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = gateway.getresponse()
    body = response.read()
    took = (time.perf_counter() - started) * 1000
    gateway.close()
    if response.status != 200:
        sys.exit(f"{path}: {response.status} {body[:300]!r}")
    if response.getheader("X-Cache") != "MISS":
        sys.exit(f"{path}: X-Cache {response.getheader('X-Cache')}, not MISS")
    total = json.loads(body)["total"]
    if total != stored:
        sys.exit(f"{path}: total {total}, but {stored} events are stored")
    return took

where = (f"tenant_id = '{tenant}' AND timestamp >= toDateTime({week_from}) "
         f"AND timestamp < toDateTime({week_from + 7 * DAY})")
raw_queries = [
    f"SELECT toUInt64(intDiv(toUInt32(timestamp), {DAY}) * {DAY}) AS bucket, event_type, "
    f"uniqExact(event_id) AS events FROM user_activity WHERE {where} "
    "GROUP BY bucket, event_type ORDER BY bucket, event_type LIMIT 1001",
    f"SELECT uniqExact(event_id) FROM user_activity WHERE {where}",
]

def raw():
    started = time.perf_counter()
    # The dashboard sent both at once.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(ch, raw_queries))
    took = (time.perf_counter() - started) * 1000
    if int(answers[1]) != stored:
        sys.exit(f"raw: {int(answers[1])} events, {stored} stored")
    return took

first = dashboard()
runs = {"raw": [], "current": [], "written": []}
for i in range(requests):
    runs["raw"].append(raw())
    runs["current"].append(dashboard())
    hour = week_from + (i * 7 * 24 // requests) * 3600 + 1800
    ch("INSERT INTO user_activity (event_id, tenant_id, user_id, event_type, timestamp, properties) "
       f"SELECT generateUUIDv4(), '{tenant}', 'late', 'click', toDateTime({hour}), '{{}}'")
    stored += 1
    runs["written"].append(dashboard())
print(json.dumps({"events": size, "first": first, **runs}))
PY
  tail -1 "$results" | python3 -c 'import json,statistics,sys
r = json.load(sys.stdin)
print("  ".join(f"{k} {statistics.median(r[k]):.1f} ms" for k in ("raw", "current", "written")), " first %.0f ms" % r["first"])'
done

python3 - "$results" "$REQUESTS" <<'PY'
import json, sys
from bench_report import emit, median, spread, text
rows = [json.loads(line) for line in open(sys.argv[1])]
requests = int(sys.argv[2])
print(f"\nuncached user-activity dashboard, daily over 7 days; {requests} requests each; ms, median (min-max)")
print(f"  {'events':>10s}  {'raw events':>24s}  {'hourly counts':>24s}  {'one hour written':>24s}  {'first':>8s}")
for r in rows:
    print(f"  {r['events']:>10d}  {text(r['raw'], 1):>24s}  {text(r['current'], 1):>24s}"
          f"  {text(r['written'], 1):>24s}  {r['first']:>8.0f}")
    print(f"  {'':>10s}  raw / hourly counts = {median(r['raw']) / median(r['current']):.0f}x,"
          f" raw / one hour written = {median(r['raw']) / median(r['written']):.1f}x")
if len(rows) > 1:
    a, b = rows[0], rows[-1]
    growth = b["events"] / a["events"]
    print(f"  from {a['events']} to {b['events']} events ({growth:.0f}x): raw grows"
          f" {median(b['raw']) / median(a['raw']):.1f}x, hourly counts"
          f" {median(b['current']) / median(a['current']):.1f}x, one hour written"
          f" {median(b['written']) / median(a['written']):.1f}x")
emit("dashboards", {
    "requests": requests,
    "sizes": [{
        "events": r["events"],
        "raw_ms": spread(r["raw"], 1),
        "hourly_ms": spread(r["current"], 1),
        "one_hour_written_ms": spread(r["written"], 1),
        "first_ms": round(r["first"], 1),
    } for r in rows],
})
PY
