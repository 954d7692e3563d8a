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
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
cd "$REPO_ROOT"

SIZE_MIB=${1:-256}
RUNS=${2:-5}
LARGE_MIB=${3:-1024}
CHUNKER=size-262144
ADD_QUERY="cid-version=1&raw-leaves=true&chunker=$CHUNKER&inline=true&inline-limit=32"

scripts/stack up
eval "$(scripts/stack env)"
log "building the gateway (release)"
cargo build --locked --release --quiet
gateway_bin="$REPO_ROOT/target/release/storage-gateway"

work=$(mktemp -d)
gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

bench_port=$((GATEWAY_PORT + 100))
gateway_url="http://127.0.0.1:$bench_port"
start_gateway() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null || true
  PORT=$bench_port RUST_LOG=warn "$gateway_bin" serve 2>>"$work/gateway.log" &
  gateway_pid=$!
  wait_for_port "$bench_port" 60 || die "the gateway did not start (log: $work/gateway.log)"
}
start_gateway
key=$("$gateway_bin" keys create --tenant "bench-$(date +%s)" --scopes all --name bench)

kubo_api="http://127.0.0.1:$(kubo_api_port 1)/api/v0"
kubo_gateway="http://127.0.0.1:$(kubo_gateway_port 1)"
cluster_api="$IPFS_CLUSTER_URL"

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

declare -A seconds
record() { seconds[$1]="${seconds[$1]:-} $2"; }

log "$RUNS runs of ${SIZE_MIB} MiB uploads and downloads"
contenders=(gateway kubo cluster)
for run in $(seq 1 "$RUNS"); do
  # The order turns each run, so no contender always meets a fresher disk.
  shift_by=$((run % 3))
  order=("${contenders[@]:$shift_by}" "${contenders[@]:0:$shift_by}")
  for contender in "${order[@]}"; do
    random_file "$work/file.bin"
    read -r took cid < <("upload_$contender" "$work/file.bin")
    record "upload_$contender" "$took"
    if [ "$contender" = gateway ]; then
      gateway_cid=$cid
    fi
  done
  # Both downloads read the gateway's upload, whose blocks are on Kubo node 1,
  # in turns as well.
  if [ $((run % 2)) -eq 0 ]; then
    record download_gateway "$(download_gateway "$gateway_cid")"
    record download_kubo "$(download_kubo "$gateway_cid")"
  else
    record download_kubo "$(download_kubo "$gateway_cid")"
    record download_gateway "$(download_gateway "$gateway_cid")"
  fi
  log "  run $run done"
done
rm -f "$work/file.bin"

log "peak RSS of a fresh gateway over a ${LARGE_MIB} MiB upload and download"
start_gateway
rss_after_start=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
large_cid=$(head -c "$((LARGE_MIB * 1048576))" /dev/urandom |
  curl -sS -f -X POST -T - -H "Authorization: Bearer $key" -H "Content-Type: application/octet-stream" \
    "$gateway_url/files/upload?name=large.bin" | cid_of)
rss_after_upload=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
curl -sS -f -o /dev/null -H "Authorization: Bearer $key" "$gateway_url/files/$large_cid/download"
rss_after_download=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")

python3 - "$SIZE_MIB" "$LARGE_MIB" "$rss_after_start" "$rss_after_upload" "$rss_after_download" \
  "${seconds[upload_gateway]}" "${seconds[upload_kubo]}" "${seconds[upload_cluster]}" \
  "${seconds[download_gateway]}" "${seconds[download_kubo]}" <<'PY'
import statistics, sys
size, large, rss0, rss1, rss2 = (float(x) for x in sys.argv[1:6])
names = ["upload_gateway", "upload_kubo", "upload_cluster", "download_gateway", "download_kubo"]
rates = {n: [size / float(s) for s in sys.argv[6 + i].split()] for i, n in enumerate(names)}
med = {n: statistics.median(v) for n, v in rates.items()}
print(f"\nfiles benchmark: {size:.0f} MiB random files, {len(rates['upload_gateway'])} runs, medians")
print(f"  upload   gateway {med['upload_gateway']:8.1f} MiB/s")
print(f"  upload   kubo    {med['upload_kubo']:8.1f} MiB/s   gateway/kubo    = {med['upload_gateway']/med['upload_kubo']:.2f}")
print(f"  upload   cluster {med['upload_cluster']:8.1f} MiB/s   gateway/cluster = {med['upload_gateway']/med['upload_cluster']:.2f}")
print(f"  download gateway {med['download_gateway']:8.1f} MiB/s")
print(f"  download kubo gw {med['download_kubo']:8.1f} MiB/s   gateway/kubo gw = {med['download_gateway']/med['download_kubo']:.2f}")
print(f"  gateway peak RSS: {rss0/1024:.1f} MiB after start, {rss1/1024:.1f} MiB after a {large:.0f} MiB upload, {rss2/1024:.1f} MiB after its download")
PY
