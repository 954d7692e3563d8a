#!/usr/bin/env bash
# Files benchmark: the gateway against the stores it fronts, side by side in
# one run on this machine, on files of the same size and random content.
#
#   upload, pairs timed to the same end state (same chunker, CIDv1, raw
#   leaves, inlining, replication 2..3):
#     stored on one node, replication left to the Cluster in the background:
#       gateway POST /files/upload  vs  Cluster /add?local=true  (and Kubo's
#       own /api/v0/add, no pin, the floor)
#     replicated: answered and pinned on replication_min peers:
#       gateway POST /files/upload?wait=pinned  vs  Cluster /add (blocks sent
#       to every allocated peer), then polled until pinned on as many peers,
#       at the gateway's own 250 ms interval
#   download  gateway GET /files/{cid}/download  vs  Kubo's HTTP gateway,
#             both orders in every run
#   memory    the gateway's peak RSS over a large upload and a large download
#
# Usage: bench/files.sh [SIZE_MIB=256] [RUNS=5] [LARGE_MIB=1024]
# An untimed warm-up of every contender comes first. Each run uploads a
# fresh random file per contender, so none finds its blocks already stored
# by another; the order of the uploads turns by one place each run (with
# RUNS a multiple of 5 each contender holds each place equally often), and
# each starts once the previous upload is pinned everywhere (untimed).
# Reports medians with min-max, ratios of medians, and a closing JSON line.
set -euo pipefail
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/bench.sh
source "$REPO_ROOT/scripts/lib/bench.sh"
cd "$REPO_ROOT"

SIZE_MIB=${1:-256}
RUNS=${2:-5}
LARGE_MIB=${3:-1024}
CHUNKER=size-262144
ADD_QUERY="cid-version=1&raw-leaves=true&chunker=$CHUNKER&inline=true&inline-limit=32"

bench_setup "$@"
key=""
bench_port=$((GATEWAY_PORT + 100))
gateway_url="http://127.0.0.1:$bench_port"
cluster_api="$IPFS_CLUSTER_URL"
gateway_cids=()
cluster_cids=()
cleanup() {
  log "removing the benchmark's files from the stack"
  for cid in "${gateway_cids[@]}"; do
    curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $key" "$gateway_url/files/$cid" || true
  done
  for cid in "${cluster_cids[@]}"; do
    curl -sS -o /dev/null -X DELETE "$cluster_api/pins/$cid" || true
  done
  stop_gateway
  collect_unpinned "${gateway_cids[@]}" "${cluster_cids[@]}"
  bench_cleanup
}
trap cleanup EXIT

start_gateway "$bench_port"
key=$("$gateway_bin" keys create --tenant "bench-$(date +%s)" --scopes all --name bench)

kubo_api="http://127.0.0.1:$(kubo_api_port 1)/api/v0"
kubo_gateway="http://127.0.0.1:$(kubo_gateway_port 1)"

random_file() { head -c "$((SIZE_MIB * 1048576))" /dev/urandom >"$1"; }
cid_of() { python3 -c 'import json,sys
for line in sys.stdin:
    line=line.strip()
    if line:
        d=json.loads(line)
        d = d[-1] if isinstance(d, list) else d
        last=d.get("cid") or d.get("Hash")
        last = last["/"] if isinstance(last, dict) else last
print(last)'; }

# Each timed call prints "SECONDS CID"; curl streams the file from disk.
upload_gateway() {
  curl -sS -f -X POST -T "$1" -H "Authorization: Bearer $key" -H "Content-Type: application/octet-stream" \
    -o "$work/answer" -w '%{time_total}' "$gateway_url/files/upload?name=bench.bin"
  echo " $(cid_of <"$work/answer")"
}
upload_kubo() {
  curl -sS -f -X POST -F "file=@$1" -o "$work/answer" -w '%{time_total}' "$kubo_api/add?$ADD_QUERY&pin=false&quieter=true"
  echo " $(cid_of <"$work/answer")"
}
cluster_add() {
  curl -sS -f -X POST -F "file=@$1" -o "$work/answer" -w '%{time_total}' \
    "$cluster_api/add?$ADD_QUERY&replication-min=2&replication-max=3&name=bench.bin&stream-channels=false$2"
  echo " $(cid_of <"$work/answer")"
}
upload_cluster_local() { cluster_add "$1" "&local=true"; }
upload_gateway_pinned() {
  curl -sS -f -X POST -T "$1" -H "Authorization: Bearer $key" -H "Content-Type: application/octet-stream" \
    -o "$work/answer" -w '%{time_total}' "$gateway_url/files/upload?name=bench.bin&wait=pinned"
  echo " $(cid_of <"$work/answer")"
}
# The Cluster's /add, timed until replication_min (2) peers report the pin
# pinned, as the gateway's wait=pinned is.
upload_cluster() {
  local started took cid
  started=$(date +%s%N)
  read -r took cid < <(cluster_add "$1" "")
  until pinned_on "$cid" 2; do sleep 0.25; done
  echo "$(python3 -c "print(($(date +%s%N) - $started) / 1e9)") $cid"
}
download_gateway() {
  curl -sS -f -o /dev/null -H "Authorization: Bearer $key" -w '%{time_total}' "$gateway_url/files/$1/download"
}
download_kubo() {
  curl -sS -f -o /dev/null -w '%{time_total}' "$kubo_gateway/ipfs/$1"
}

# pinned_on CID N: whether at least N peers report CID pinned (counted
# without starting an interpreter: this runs inside a timed upload).
pinned_on() {
  local pinned
  pinned=$(curl -sS -f "$cluster_api/pins/$1" | grep -o '"status":"pinned"' | wc -l)
  [ "$pinned" -ge "$2" ]
}

# Waits, untimed, until every peer the Cluster allocated CID to has pinned
# it: replication runs in the background after an upload answers, and would
# otherwise take CPU from whichever contender runs next.
wait_replicated() {
  local cid=$1
  for _ in $(seq 1 240); do
    curl -sS -f "$cluster_api/pins/$cid" | python3 -c 'import json,sys
peers = json.load(sys.stdin).get("peer_map") or {}
sys.exit(0 if peers and all(p["status"] == "pinned" for p in peers.values()) else 1)' && return 0
    sleep 0.5
  done
  log "warning: $cid not pinned everywhere after 2 minutes"
}

declare -A seconds
record() { seconds[$1]="${seconds[$1]:-} $2"; }

# CPU time (user + system, ms) a process has used so far: on a 2-core
# machine a proxy's throughput is bounded by the CPU the whole chain needs,
# so the report shows where each transfer's CPU went.
kubo_pid=$(cat "$RUN_DIR/kubo1.pid")
declare -A cpu
# timed ACTION CONTENDER ARG: runs "ACTION_CONTENDER ARG", records its
# seconds and the CPU the gateway and Kubo used meanwhile, and leaves what
# the command printed after its time (a CID for uploads) in $printed.
timed() {
  local g0 k0 took
  g0=$(cpu_ms "$gateway_pid")
  k0=$(cpu_ms "$kubo_pid")
  # Downloads print no newline, so read meets the end of input: not an error.
  read -r took printed < <("$1_$2" "$3") || [ -n "$took" ]
  record "$1_$2" "$took"
  cpu["$1_gateway_$2"]="${cpu["$1_gateway_$2"]:-} $(($(cpu_ms "$gateway_pid") - g0))"
  cpu["$1_kubo_$2"]="${cpu["$1_kubo_$2"]:-} $(($(cpu_ms "$kubo_pid") - k0))"
}

contenders=(gateway kubo cluster_local gateway_pinned cluster)
# upload_one CONTENDER FILE: uploads, keeps the CID for removal, waits
# (untimed) for the replication to finish; "timed" or "untimed".
upload_one() {
  local contender=$1 how=$3
  if [ "$how" = timed ]; then
    timed upload "$contender" "$2"
  else
    read -r _ printed < <("upload_$contender" "$2")
  fi
  case $contender in
    gateway*) gateway_cids+=("$printed") ;;
    cluster*) cluster_cids+=("$printed") ;;
  esac
  [ "$contender" = kubo ] || wait_replicated "$printed"
}

log "warm-up (untimed): one 16 MiB upload per contender, and a download each way"
for contender in "${contenders[@]}"; do
  head -c $((16 * 1048576)) /dev/urandom >"$work/warm.bin"
  upload_one "$contender" "$work/warm.bin" untimed
done
download_gateway "${gateway_cids[-1]}" >/dev/null
download_kubo "${gateway_cids[-1]}" >/dev/null

log "$RUNS runs of ${SIZE_MIB} MiB uploads and downloads"
[ $((RUNS % ${#contenders[@]})) -eq 0 ] ||
  log "note: with RUNS not a multiple of ${#contenders[@]}, some contenders upload first more often"
for run in $(seq 1 "$RUNS"); do
  shift_by=$(((run - 1) % ${#contenders[@]}))
  order=("${contenders[@]:$shift_by}" "${contenders[@]:0:$shift_by}")
  for contender in "${order[@]}"; do
    random_file "$work/file.bin"
    upload_one "$contender" "$work/file.bin" timed
    if [ "$contender" = gateway ]; then gateway_cid=$printed; fi
  done
  # Both downloads read the gateway's upload (its blocks are on Kubo node
  # 1), in both orders every run, so neither always meets a warmer cache.
  timed download gateway "$gateway_cid"
  timed download kubo "$gateway_cid"
  timed download kubo "$gateway_cid"
  timed download gateway "$gateway_cid"
  log "  run $run done (order: ${order[*]})"
done
rm -f "$work/file.bin" "$work/warm.bin"

log "peak RSS of a fresh gateway over a ${LARGE_MIB} MiB upload and download"
start_gateway "$bench_port"
rss_after_start=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
large_cid=$(head -c "$((LARGE_MIB * 1048576))" /dev/urandom |
  curl -sS -f -X POST -T - -H "Authorization: Bearer $key" -H "Content-Type: application/octet-stream" \
    "$gateway_url/files/upload?name=large.bin" | cid_of)
gateway_cids+=("$large_cid")
rss_after_upload=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
curl -sS -f -o /dev/null -H "Authorization: Bearer $key" "$gateway_url/files/$large_cid/download"
rss_after_download=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")

python3 - "$SIZE_MIB" "$LARGE_MIB" "$rss_after_start" "$rss_after_upload" "$rss_after_download" \
  "${seconds[upload_gateway]}" "${seconds[upload_kubo]}" "${seconds[upload_cluster_local]}" \
  "${seconds[upload_gateway_pinned]}" "${seconds[upload_cluster]}" \
  "${seconds[download_gateway]}" "${seconds[download_kubo]}" \
  "${cpu[upload_gateway_gateway]}" "${cpu[upload_kubo_gateway]}" "${cpu[upload_kubo_kubo]}" \
  "${cpu[download_gateway_gateway]}" "${cpu[download_kubo_gateway]}" "${cpu[download_kubo_kubo]}" <<'PY'
import sys
from bench_report import emit, median, spread, text
size, large, rss0, rss1, rss2 = (float(x) for x in sys.argv[1:6])
names = ["upload_gateway", "upload_kubo", "upload_cluster_local", "upload_gateway_pinned",
         "upload_cluster", "download_gateway", "download_kubo"]
rates = {n: [size / float(s) for s in sys.argv[6 + i].split()] for i, n in enumerate(names)}
med = {n: median(v) for n, v in rates.items()}
cpu_names = ["upload_gateway", "upload_kubo_via_gateway", "upload_kubo_direct",
             "download_gateway", "download_kubo_via_gateway", "download_kubo_direct"]
cpu = {n: [int(x) for x in sys.argv[13 + i].split()] for i, n in enumerate(cpu_names)}
ratio = lambda a, b: round(med[a] / med[b], 2)
ratios = {
    "upload_gateway_over_kubo": ratio("upload_gateway", "upload_kubo"),
    "upload_gateway_over_cluster_local": ratio("upload_gateway", "upload_cluster_local"),
    "upload_gateway_pinned_over_cluster": ratio("upload_gateway_pinned", "upload_cluster"),
    "download_gateway_over_kubo": ratio("download_gateway", "download_kubo"),
}
runs = len(rates["upload_gateway"])
row = lambda label, n: print(f"  {label:44s} {text(rates[n], 1):>24s}")
print(f"\nfiles benchmark: {size:.0f} MiB random files, {runs} runs; MiB/s, median (min-max)")
print("  stored on one node, replication in the background:")
row("upload through the gateway", "upload_gateway")
row("upload into Kubo directly (no pin)", "upload_kubo")
row("upload through the Cluster's /add?local=true", "upload_cluster_local")
print(f"    gateway/Kubo {ratios['upload_gateway_over_kubo']:.2f}, "
      f"gateway/Cluster local {ratios['upload_gateway_over_cluster_local']:.2f}")
print("  answered once pinned on 2 peers:")
row("upload through the gateway, wait=pinned", "upload_gateway_pinned")
row("upload through the Cluster's /add, polled", "upload_cluster")
print(f"    gateway/Cluster {ratios['upload_gateway_pinned_over_cluster']:.2f}")
print(f"  downloads ({2 * runs} each, both orders every run):")
row("download through the gateway", "download_gateway")
row("download from Kubo's gateway", "download_kubo")
print(f"    gateway/Kubo {ratios['download_gateway_over_kubo']:.2f}")
for what in ("upload", "download"):
    print(f"  {what} CPU per file, ms: through the gateway {text(cpu[what + '_gateway'], 0)} gateway"
          f" + {text(cpu[what + '_kubo_via_gateway'], 0)} Kubo; direct {text(cpu[what + '_kubo_direct'], 0)} Kubo")
print(f"  gateway peak RSS: {rss0/1024:.1f} MiB after start, {rss1/1024:.1f} MiB after a {large:.0f} MiB upload,"
      f" {rss2/1024:.1f} MiB after its download")
emit("files", {
    "size_mib": size,
    "mib_s": {n: spread(v, 1) for n, v in rates.items()},
    "ratios": ratios,
    "cpu_ms_per_file": {n: spread(v, 0) for n, v in cpu.items()},
    "peak_rss_mib": {"start": round(rss0 / 1024, 1), "after_upload": round(rss1 / 1024, 1),
                     "after_download": round(rss2 / 1024, 1), "large_mib": large},
})
PY
