#!/usr/bin/env bash
# Files benchmark: the gateway against the stores it fronts, side by side in
# one run on this machine, on files of the same size and random content.
#
#   upload    gateway POST /files/upload  vs  Kubo /api/v0/add  vs  Cluster /add
#             (same chunker, CIDv1, raw leaves, inlining, replication 2..3)
#   download  gateway GET /files/{cid}/download  vs  Kubo's HTTP gateway
#   memory    the gateway's peak RSS over a large upload and a large download
#
# Usage: bench/files.sh [SIZE_MIB=256] [RUNS=5] [LARGE_MIB=1024]
# Each run uploads a fresh random file per contender, so none finds its
# blocks already stored by another. Reports medians (MiB/s) and ratios.
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

bench_setup
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
upload_cluster() {
  curl -sS -f -X POST -F "file=@$1" -o "$work/answer" -w '%{time_total}' \
    "$cluster_api/add?$ADD_QUERY&replication-min=2&replication-max=3&name=bench.bin&stream-channels=false"
  echo " $(cid_of <"$work/answer")"
}
download_gateway() {
  curl -sS -f -o /dev/null -H "Authorization: Bearer $key" -w '%{time_total}' "$gateway_url/files/$1/download"
}
download_kubo() {
  curl -sS -f -o /dev/null -w '%{time_total}' "$kubo_gateway/ipfs/$1"
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

log "$RUNS runs of ${SIZE_MIB} MiB uploads and downloads"
contenders=(gateway kubo cluster)
for run in $(seq 1 "$RUNS"); do
  # The order turns each run, so no contender always meets a fresher disk.
  shift_by=$((run % 3))
  order=("${contenders[@]:$shift_by}" "${contenders[@]:0:$shift_by}")
  for contender in "${order[@]}"; do
    random_file "$work/file.bin"
    timed upload "$contender" "$work/file.bin"
    case $contender in
      gateway) gateway_cid=$printed && gateway_cids+=("$printed") ;;
      cluster) cluster_cids+=("$printed") ;;
    esac
    [ "$contender" = kubo ] || wait_replicated "$printed"
  done
  # Both downloads read the gateway's upload, whose blocks are on Kubo node 1,
  # in turns as well.
  if [ $((run % 2)) -eq 0 ]; then
    timed download gateway "$gateway_cid"
    timed download kubo "$gateway_cid"
  else
    timed download kubo "$gateway_cid"
    timed download gateway "$gateway_cid"
  fi
  log "  run $run done"
done
rm -f "$work/file.bin"

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
  "${seconds[upload_gateway]}" "${seconds[upload_kubo]}" "${seconds[upload_cluster]}" \
  "${seconds[download_gateway]}" "${seconds[download_kubo]}" \
  "${cpu[upload_gateway_gateway]}" "${cpu[upload_kubo_gateway]}" "${cpu[upload_kubo_kubo]}" \
  "${cpu[download_gateway_gateway]}" "${cpu[download_kubo_gateway]}" "${cpu[download_kubo_kubo]}" <<'PY'
import statistics, sys
size, large, rss0, rss1, rss2 = (float(x) for x in sys.argv[1:6])
names = ["upload_gateway", "upload_kubo", "upload_cluster", "download_gateway", "download_kubo"]
rates = {n: [size / float(s) for s in sys.argv[6 + i].split()] for i, n in enumerate(names)}
med = {n: statistics.median(v) for n, v in rates.items()}
cpu = [statistics.median(int(x) for x in a.split()) for a in sys.argv[11:17]]
print(f"\nfiles benchmark: {size:.0f} MiB random files, {len(rates['upload_gateway'])} runs, medians")
print(f"  upload   gateway {med['upload_gateway']:8.1f} MiB/s")
print(f"  upload   kubo    {med['upload_kubo']:8.1f} MiB/s   gateway/kubo    = {med['upload_gateway']/med['upload_kubo']:.2f}")
print(f"  upload   cluster {med['upload_cluster']:8.1f} MiB/s   gateway/cluster = {med['upload_gateway']/med['upload_cluster']:.2f}")
print(f"  download gateway {med['download_gateway']:8.1f} MiB/s")
print(f"  download kubo gw {med['download_kubo']:8.1f} MiB/s   gateway/kubo gw = {med['download_gateway']/med['download_kubo']:.2f}")
for what, (gw, kubo_via_gw, kubo_direct) in (("upload", cpu[0:3]), ("download", cpu[3:6])):
    print(f"  {what} CPU per file: through the gateway {gw:.0f} ms gateway + {kubo_via_gw:.0f} ms Kubo;"
          f" direct {kubo_direct:.0f} ms Kubo")
print(f"  gateway peak RSS: {rss0/1024:.1f} MiB after start, {rss1/1024:.1f} MiB after a {large:.0f} MiB upload, {rss2/1024:.1f} MiB after its download")
PY
