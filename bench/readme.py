#!/usr/bin/env python3
"""Writes README.md's performance section from the benchmarks' closing JSON
lines: target/bench/BENCH.json as the last run of each left them, or the
files named on the command line.

    bench/files.sh 256 5 && bench/redis.sh && ... && python3 bench/readme.py

Only the text between the section's two markers is replaced; a benchmark
with no result keeps nothing there, so run them all first.
"""

import glob
import json
import os
import sys

BEGIN = "<!-- performance:begin (written by bench/readme.py) -->"
END = "<!-- performance:end -->"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(paths):
    results = {}
    for path in paths:
        with open(path) as f:
            line = json.loads(f.read().strip().splitlines()[-1])
        results[line["bench"]] = line
    return results


def fig(s, digits=1):
    """'median (min-max)' of a spread."""
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def machine(r):
    load = " / ".join(f"{x:.2f}" for x in r["load_at_start"])
    return f"{r['cores']} cores, load {load} at start"


def files(r):
    m, ratio, cpu, rss = r["mib_s"], r["ratios"], r["cpu_ms_per_file"], r["peak_rss_mib"]
    runs = m["upload_gateway"]["runs"]
    return f"""### Files

`{r['command']}` ({machine(r)}): {r['size_mib']:.0f} MiB files of random
bytes, {runs} runs. Uploads are timed in pairs that reach the same end
state: stored on one node with replication left to the Cluster (the
gateway's default answer, against the Cluster's `/add?local=true`; Kubo's
own `/api/v0/add` without a pin is the floor), and pinned on two peers
before the answer (the gateway's `?wait=pinned`, against the Cluster's
`/add`, which sends every block to each allocated peer, polled until two
report the pin at the gateway's own 250 ms interval). Downloads read the
gateway's upload from Kubo node 1, both orders in every run.

| MiB/s, median (min-max) | gateway | store | gateway / store |
|---|---|---|---|
| upload, stored on one node: Kubo's `/api/v0/add` | {fig(m['upload_gateway'])} | {fig(m['upload_kubo'])} | {ratio['upload_gateway_over_kubo']:.2f} |
| upload, stored on one node: Cluster `/add?local=true` | {fig(m['upload_gateway'])} | {fig(m['upload_cluster_local'])} | {ratio['upload_gateway_over_cluster_local']:.2f} |
| upload, pinned on 2 peers: `?wait=pinned` / Cluster `/add` | {fig(m['upload_gateway_pinned'])} | {fig(m['upload_cluster'])} | {ratio['upload_gateway_pinned_over_cluster']:.2f} |
| download: Kubo's HTTP gateway | {fig(m['download_gateway'])} | {fig(m['download_kubo'])} | {ratio['download_gateway_over_kubo']:.2f} |

CPU per file, ms: an upload through the gateway took
{fig(cpu['upload_gateway'], 0)} in the gateway and
{fig(cpu['upload_kubo_via_gateway'], 0)} in Kubo, against
{fig(cpu['upload_kubo_direct'], 0)} in Kubo for a direct add; a download
{fig(cpu['download_gateway'], 0)} in the gateway and
{fig(cpu['download_kubo_via_gateway'], 0)} in Kubo, against
{fig(cpu['download_kubo_direct'], 0)} in Kubo alone. Peak RSS of a fresh
gateway: {rss['start']:.1f} MiB after start, {rss['after_upload']:.1f} MiB
after a {rss['large_mib']:.0f} MiB upload, {rss['after_download']:.1f} MiB
after its download.
"""


def redis(r):
    labels = {"no_io": "`GET /health` (no I/O)", "session": "`GET /session/{id}`",
              "rate_limit": "`POST /rate-limit/check`", "cache": "`GET /cache/get/{key}`"}
    runs = r["default"]["no_io"]["rps"]["runs"]
    out = [f"""### Sessions, rate limits, cache

`{r['command']}` ({machine(r)}): `wrk` for {r['duration_s']} s at
{r['connections']} connections, {runs} runs of each endpoint in turn after a
warm-up, then `hey` at half of each median peak for latency; CPU per
request is the gateway's and Redis's CPU time over the `wrk` runs divided by
their requests. Every authenticated request passes the gateway's own
per-key limit: with the shipped policy (5000 per second per key, load over
16 keys; each Redis call reserves 78 units) and with it lifted (one key, a
million per second; 15,625 units per call). `/rate-limit/check` checks a
policy that allows every decision.
"""]
    for variant, title in (("default", "shipped gateway policy"), ("lifted", "gateway policy lifted")):
        v = r[variant]
        out.append(f"""
{title}, median (min-max):

| | peak rps | / `/health` | gateway µs per request | Redis µs per request | p50 / p99 ms at half the peak |
|---|---|---|---|---|---|""")
        for name, label in labels.items():
            e = v[name]
            out.append(f"| {label} | {fig(e['rps'], 0)} | {e['of_health']:.2f} | {fig(e['gateway_cpu_us'])} |"
                       f" {fig(e['redis_cpu_us'])} | {e['half_p50_ms']['median']:.2f} / {fig(e['half_p99_ms'], 2)} |")
    b = r["redis_benchmark_rps"]
    out.append(f"""
On the same Redis, `redis-benchmark` at {r['connections']} connections:
GET {fig(b['get'], 0)} rps, EVALSHA of the rate-limit script
{fig(b['evalsha'], 0)} rps.
""")
    return "\n".join(out)


def ratelimit_envoy(r):
    e, g, ratio = r["envoy"], r["gateway"], r["ratios"]
    runs = e["decisions_per_s"]["runs"]
    rows = []
    for label, side in ((f"envoyproxy/ratelimit {r['envoy_version']}, gRPC `ShouldRateLimit`", e),
                        ("gateway, `POST /rate-limit/check`", g)):
        rows.append(f"| {label} | {fig(side['decisions_per_s'], 0)} | {fig(side['p99_ms'], 2)} |"
                    f" {fig(side['server_cpu_us'])} | {fig(side['redis_cpu_us'])} | {fig(side['total_cpu_us'])} |"
                    f" {fig(side['client_cpu_us'])} |")
    table = "\n".join(rows)
    return f"""### Against envoyproxy/ratelimit

`{r['command']}` ({machine(r)}): one Go load generator
(`bench/ratelimit-load`) with {r['workers']} workers drives each limiter for
{r['duration_s']} s on the same Redis, {runs} runs taking turns after a
warm-up. Both allow every decision (a million per second); envoy counts in a
fixed window, the gateway runs GCRA in one script call, and also passes
each request through its own per-API-key limit (the shipped policy, load
over 16 keys). CPU is per decision.

| median (min-max) | decisions/s | p99 ms | server µs | Redis µs | server + Redis µs | generator µs |
|---|---|---|---|---|---|---|
{table}

Gateway / envoy: {ratio['gateway_over_envoy_decisions_per_s']:.2f}x the decisions per second at
{ratio['gateway_over_envoy_total_cpu_per_decision']:.2f}x the CPU (server + Redis) per decision.
"""


def analytics(r):
    i, d, dm = r["ingest_events_s"], r["dashboard_rps"], r["dashboard_median_ms"]
    runs = i["gateway_batch"]["runs"]
    return f"""### Event ingestion and dashboards

`{r['command']}` ({machine(r)}): {r['events']} fresh events per run,
{runs} runs, gateway and `clickhouse-client` alternating which goes first,
each timed from just before its client starts until ClickHouse counts every
row (polled every 100 ms).

| events/s, median (min-max) | |
|---|---|
| gateway, NDJSON batches of 10,000, 4 requests at a time | {fig(i['gateway_batch'], 0)} |
| `clickhouse-client`, one `INSERT ... FORMAT JSONEachRow` | {fig(i['clickhouse_client'], 0)} |
| gateway / `clickhouse-client` | {r['ingest_ratio']:.2f} |
| gateway, one event per request (`wrk`, 32 connections, 10 s) | {fig(i['gateway_single'], 0)} |

The dashboard query (`GET /analytics/user-activity`, hourly over the day)
for a tenant of its own holding {r['events_in_dashboard_range']} events of
the day (inserted directly beforehand), `wrk` at 4 connections for 10 s,
{d['cached']['runs']} runs alternating: the
same query each time (answered from Redis), and each request a range of its
own (a ClickHouse query each; all {r['uncached_miss_answers']} answers
counted `X-Cache: MISS`).

| median (min-max) | requests/s | median latency, ms |
|---|---|---|
| cached (`X-Cache: HIT`) | {fig(d['cached'], 0)} | {fig(dm['cached'], 2)} |
| uncached (`X-Cache: MISS`) | {fig(d['uncached'], 1)} | {fig(dm['uncached'], 1)} |
"""


def dashboards(r):
    rows = "\n".join(
        f"| {x['events']:,} | {fig(x['raw_ms'])} | {fig(x['hourly_ms'])} | {fig(x['one_hour_written_ms'])} "
        f"| {x['first_ms']:.0f} |"
        for x in r["sizes"])
    return f"""### Dashboards as events grow

`{r['command']}` ({machine(r)}): the uncached daily user-activity dashboard
over 7 days, for tenants holding each number of events in that week,
{r['requests']} requests of each kind, every answer checked for
`X-Cache: MISS` and a total equal to the events stored. *Raw events* is the
query over the raw rows the dashboard ran before the hourly counts, sent
straight to ClickHouse; *hourly counts* is the gateway with nothing written
since its last query; *one hour written* is the gateway after one more event
lands in one hour of the week (that hour is computed again); *first* is the
gateway's first query after loading, which computes every hour.

| events in range | raw events, ms | hourly counts, ms | one hour written, ms | first, ms |
|---|---|---|---|---|
{rows}
"""


def tus(r):
    m, rss = r["mib_s"], r["peak_rss_mib"]
    return f"""### Resumable uploads

`{r['command']}` ({machine(r)}): tus (creation, then {r['chunk_mib']} MiB
PATCHes on one connection) against `POST /files/upload` of the same
{r['size_mib']} MiB, {m['plain']['runs']} runs alternating after a warm-up:
plain {fig(m['plain'])} MiB/s, tus {fig(m['tus'])} MiB/s, tus / plain
{r['tus_over_plain']:.2f}. Peak RSS {rss['before']:.1f} MiB before and
{rss['after']:.1f} MiB after a {rss['large_mib']} MiB tus upload.
"""


def psa(r):
    s = r["seconds"]
    return f"""### Remote pinning

`{r['command']}` ({machine(r)}): Kubo's `ipfs pin remote add` of
{r['cids']} small CIDs one after the other (each waits until pinned),
through the gateway's `/psa` and through the Cluster's own Pinning Service
endpoint, {s['gateway']['runs']} rounds alternating: gateway
{fig(s['gateway'])} s, Cluster {fig(s['cluster'])} s, gateway / Cluster
{r['gateway_over_cluster']:.2f}.
"""


WRITERS = [("files", files), ("redis", redis), ("ratelimit-envoy", ratelimit_envoy), ("analytics", analytics), ("dashboards", dashboards), ("tus", tus), ("psa", psa)]


def main():
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(ROOT, "target", "bench", "*.json")))
    results = load(paths)
    missing = [name for name, _ in WRITERS if name not in results]
    if missing:
        sys.exit(f"no result of {', '.join(missing)}: run those benchmarks first")
    body = "\n".join(writer(results[name]) for name, writer in WRITERS)
    readme_path = os.path.join(ROOT, "README.md")
    readme = open(readme_path).read()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    with open(readme_path, "w") as f:
        f.write(readme[:start] + "\n\n" + body + "\n" + readme[end:])
    print(f"README.md: performance section written from {len(results)} results")


if __name__ == "__main__":
    main()
