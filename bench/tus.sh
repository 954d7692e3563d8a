#!/usr/bin/env bash
# Resumable uploads: tus (creation, then PATCHes of CHUNK_MIB) against
# POST /files/upload of the same size, side by side in one run, both sent by
# curl from files on disk; then the gateway's peak RSS over one LARGE_MIB tus
# upload streamed from /dev/urandom.
#
# Usage: bench/tus.sh [SIZE_MIB=256] [RUNS=5] [CHUNK_MIB=8] [LARGE_MIB=1024]
# Every upload is of fresh random bytes (no dedup); the order of the two
# alternates run by run, after an untimed warm-up of each, and each starts
# once the Cluster has finished replicating the one before (untimed). Reports medians
# (MiB/s) with min-max and the ratio tus / plain.
set -euo pipefail
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/bench.sh
source "$REPO_ROOT/scripts/lib/bench.sh"
cd "$REPO_ROOT"

SIZE_MIB=${1:-256}
RUNS=${2:-5}
CHUNK_MIB=${3:-8}
LARGE_MIB=${4:-1024}

bench_setup "$@"
bench_port=$((GATEWAY_PORT + 101))
url="http://127.0.0.1:$bench_port"
key=""
cids=()
cleanup() {
  for cid in "${cids[@]}"; do
    curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $key" "$url/files/$cid" || true
  done
  stop_gateway
  collect_unpinned "${cids[@]}"
  bench_cleanup
}
trap cleanup EXIT
start_gateway "$bench_port"
key=$("$gateway_bin" keys create --tenant "bench-tus-$(date +%s)" --scopes all --name bench)
auth="Authorization: Bearer $key"

now_ns() { date +%s%N; }

# plain FILE: POST /files/upload; sets $elapsed (microseconds), records the CID.
plain() {
  local start end cid
  start=$(now_ns)
  cid=$(curl -sS -f -X POST -T "$1" -H "$auth" -H 'Content-Type: application/octet-stream' \
    "$url/files/upload?name=plain" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cid"])')
  end=$(now_ns)
  cids+=("$cid")
  elapsed=$(( (end - start) / 1000 ))
}

# tus FILE: a creation and PATCHes of CHUNK_MIB (parts cut beforehand,
# outside the timer); sets $elapsed (microseconds), records the CID.
tus() {
  local file=$1 size parts start end location offset=0 part cid=""
  size=$(stat -c %s "$file")
  parts="$work/parts"
  rm -rf "$parts" && mkdir -p "$parts"
  split -b "${CHUNK_MIB}M" -d -a 4 "$file" "$parts/p"
  start=$(now_ns)
  location=$(curl -sS -f -o /dev/null -D - -X POST -H "$auth" -H 'Tus-Resumable: 1.0.0' \
    -H "Upload-Length: $size" -H "Upload-Metadata: filename $(printf tus | base64)" "$url/files/tus" |
    tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
  # One curl for every PATCH (--next), on one connection, as a tus client
  # keeps it: a process and a connection per part would be the client's cost.
  local args=() n=0
  for part in "$parts"/p*; do
    [ "$n" -gt 0 ] && args+=(--next)
    args+=(-sS -f -o /dev/null -D "$parts/h$n" -X PATCH -T "$part" -H "$auth" -H 'Tus-Resumable: 1.0.0'
      -H "Upload-Offset: $offset" -H 'Content-Type: application/offset+octet-stream' "$location")
    offset=$((offset + $(stat -c %s "$part")))
    n=$((n + 1))
  done
  curl "${args[@]}"
  cid=$(tr -d '\r' <"$parts/h$((n - 1))" | awk 'tolower($1) == "x-ipfs-path:" {sub("/ipfs/", "", $2); print $2}')
  end=$(now_ns)
  [ -n "$cid" ] || die "the last PATCH named no CID"
  cids+=("$cid")
  elapsed=$(( (end - start) / 1000 ))
}

# Waits (untimed) until every peer holding the last upload's pin has it
# pinned: the Cluster copies each upload to the other peers on this same
# machine, which would otherwise slow whichever contender runs next.
settle() {
  local cid=${cids[-1]}
  for _ in $(seq 1 600); do
    curl -sS "$IPFS_CLUSTER_URL/pins/$cid" 2>/dev/null | python3 -c 'import json,sys
peers = json.load(sys.stdin).get("peer_map") or {}
sys.exit(0 if peers and all(p["status"] == "pinned" for p in peers.values()) else 1)' && return 0
    sleep 0.2
  done
  curl -sS "$IPFS_CLUSTER_URL/pins/$cid" >&2 || true
  die "the pin of $cid did not settle in 120 s"
}

fresh() { head -c "$(($1 * 1024 * 1024))" /dev/urandom >"$work/$2"; }

log "warm-up (untimed): one of each at 16 MiB"
fresh 16 warm-a; plain "$work/warm-a"; settle
fresh 16 warm-b; tus "$work/warm-b"; settle

plain_us=()
tus_us=()
for run in $(seq 1 "$RUNS"); do
  fresh "$SIZE_MIB" a; fresh "$SIZE_MIB" b
  if [ $((run % 2)) -eq 1 ]; then
    plain "$work/a"; plain_us+=("$elapsed"); settle
    tus "$work/b"; tus_us+=("$elapsed"); settle
  else
    tus "$work/b"; tus_us+=("$elapsed"); settle
    plain "$work/a"; plain_us+=("$elapsed"); settle
  fi
  log "run $run: plain ${plain_us[-1]} us, tus ${tus_us[-1]} us"
done


log "peak RSS over one ${LARGE_MIB} MiB tus upload (fresh gateway)"
start_gateway "$bench_port"
before=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
size=$((LARGE_MIB * 1024 * 1024))
location=$(curl -sS -f -o /dev/null -D - -X POST -H "$auth" -H 'Tus-Resumable: 1.0.0' \
  -H "Upload-Length: $size" -H "Upload-Metadata: filename $(printf large | base64)" "$url/files/tus" |
  tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
offset=0
chunk=$((CHUNK_MIB * 1024 * 1024))
cid=""
while [ "$offset" -lt "$size" ]; do
  [ $((size - offset)) -lt "$chunk" ] && chunk=$((size - offset))
  cid=$(head -c "$chunk" /dev/urandom | curl -sS -f -o /dev/null -D - -X PATCH -T - -H "$auth" \
    -H 'Tus-Resumable: 1.0.0' -H "Upload-Offset: $offset" \
    -H 'Content-Type: application/offset+octet-stream' "$location" |
    tr -d '\r' | awk 'tolower($1) == "x-ipfs-path:" {sub("/ipfs/", "", $2); print $2}')
  offset=$((offset + chunk))
done
if [ -n "$cid" ]; then cids+=("$cid"); fi
after=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")

python3 - "$SIZE_MIB" "$CHUNK_MIB" "${plain_us[*]}" "${tus_us[*]}" "$before" "$after" "$LARGE_MIB" <<'PY'
import sys
from bench_report import emit, median, spread, text
size, chunk = int(sys.argv[1]), int(sys.argv[2])
rate = lambda us: [size / (u / 1e6) for u in map(int, us.split())]
plain, tus = rate(sys.argv[3]), rate(sys.argv[4])
before, after, large = (int(x) for x in sys.argv[5:8])
print(f"\nresumable uploads: {size} MiB random files, {len(plain)} runs; MiB/s, median (min-max)")
for name, rates in (("POST /files/upload", plain), (f"tus, {chunk} MiB PATCHes", tus)):
    print(f"  {name:26s} {text(rates, 1):>24s}")
ratio = median(tus) / median(plain)
print(f"  tus / plain: {ratio:.2f}")
print(f"  peak RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after a {large} MiB tus upload")
emit("tus", {"size_mib": size, "chunk_mib": chunk, "mib_s": {"plain": spread(plain, 1), "tus": spread(tus, 1)},
             "tus_over_plain": round(ratio, 2),
             "peak_rss_mib": {"before": round(before / 1024, 1), "after": round(after / 1024, 1), "large_mib": large}})
PY
