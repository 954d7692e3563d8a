#!/usr/bin/env bash
# Remote pinning with Kubo's own client, side by side in one run: `ipfs pin
# remote add` of CIDS small CIDs, one after the other as a script would run
# them (each waits until the service says pinned), through the gateway's
# /psa against the IPFS Cluster's own Pinning Service endpoint on the same
# stack. The content lives on a Kubo node of the benchmark's own, outside
# the Cluster, which Kubo names as the origin.
#
# Usage: bench/psa.sh [CIDS=100] [ROUNDS=3]
# Each round pins fresh CIDs (4 KiB of random bytes each) with each service,
# in alternating order, after an untimed warm-up of each. Reports the median
# wall time with min-max, and the ratio gateway / Cluster.
set -euo pipefail
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/bench.sh
source "$REPO_ROOT/scripts/lib/bench.sh"
cd "$REPO_ROOT"

CIDS=${1:-100}
ROUNDS=${2:-3}

bench_setup "$@"
bench_port=$((GATEWAY_PORT + 102))
url="http://127.0.0.1:$bench_port"
cluster_psa="http://127.0.0.1:$(cluster_pinsvc_port 1)"
origin="$work/origin"
origin_pid=""
pinned=()
cleanup() {
  log "removing the benchmark's pins"
  local i cid service
  for ((i = 0; i < ${#pinned[@]}; i += 10)); do
    local filter=()
    for cid in "${pinned[@]:i:10}"; do filter+=("--cid=$cid"); done
    for service in gw cluster; do
      ipfs_origin pin remote rm --service="$service" "${filter[@]}" \
        --status=queued,pinning,pinned,failed --force >/dev/null 2>&1 || true
    done
  done
  if [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null; then
    wait "$origin_pid" 2>/dev/null || true
  fi
  stop_gateway
  collect_unpinned "${pinned[@]}"
  bench_cleanup
}
trap cleanup EXIT

ipfs_origin() { IPFS_PATH=$origin IPFS_TELEMETRY=off ipfs "$@"; }

log "starting the origin Kubo node"
ipfs_origin init --profile=test -e >/dev/null
while read -r name value; do
  ipfs_origin config --json "$name" "$value"
done <<'SETTINGS'
Routing.Type "none"
Bootstrap []
Discovery.MDNS.Enabled false
AutoConf.Enabled false
DNS.Resolvers {}
Routing.DelegatedRouters []
Ipns.DelegatedPublishers []
AutoTLS.Enabled false
SETTINGS
# Started directly, not through the function: $! must be the daemon itself,
# or stopping it at the end would stop only a subshell.
IPFS_PATH=$origin IPFS_TELEMETRY=off ipfs daemon --enable-gc=false >"$work/origin.log" 2>&1 &
origin_pid=$!
for _ in $(seq 1 300); do [ -f "$origin/api" ] && ipfs_origin id >/dev/null 2>&1 && break; sleep 0.2; done
ipfs_origin id >/dev/null || die "the origin node did not start (log: $work/origin.log)"

start_gateway "$bench_port"
key=$("$gateway_bin" keys create --tenant "bench-psa-$(date +%s)" --scopes all --name bench)
ipfs_origin pin remote service add gw "$url/psa" "$key"
# The Cluster's endpoint has no credentials set here; Kubo needs a token anyway.
ipfs_origin pin remote service add cluster "$cluster_psa" none

# fresh N: adds N new small files to the origin node only; prints their CIDs.
fresh() {
  local i
  for i in $(seq 1 "$1"); do
    head -c 4096 /dev/urandom | ipfs_origin add -Q --cid-version=1
  done
}

# pin_all SERVICE CID...: `ipfs pin remote add` of each in turn; sets $elapsed (ms).
pin_all() {
  local service=$1 start end cid n=0
  shift
  start=$(date +%s%N)
  for cid in "$@"; do
    n=$((n + 1))
    ipfs_origin pin remote add --service="$service" --name="bench-$n" "$cid" >/dev/null ||
      die "pin remote add --service=$service $cid failed"
  done
  end=$(date +%s%N)
  elapsed=$(((end - start) / 1000000))
  pinned+=("$@")
}

log "warm-up (untimed): 5 CIDs with each service"
mapfile -t warm < <(fresh 5)
pin_all gw "${warm[@]}"
mapfile -t warm < <(fresh 5)
pin_all cluster "${warm[@]}"

gw_ms=()
cluster_ms=()
for round in $(seq 1 "$ROUNDS"); do
  mapfile -t for_gw < <(fresh "$CIDS")
  mapfile -t for_cluster < <(fresh "$CIDS")
  if [ $((round % 2)) -eq 1 ]; then
    pin_all gw "${for_gw[@]}"; gw_ms+=("$elapsed")
    pin_all cluster "${for_cluster[@]}"; cluster_ms+=("$elapsed")
  else
    pin_all cluster "${for_cluster[@]}"; cluster_ms+=("$elapsed")
    pin_all gw "${for_gw[@]}"; gw_ms+=("$elapsed")
  fi
  log "round $round: gateway ${gw_ms[-1]} ms, Cluster ${cluster_ms[-1]} ms"
done

python3 - "$CIDS" "${gw_ms[*]}" "${cluster_ms[*]}" <<'PY'
import sys
from bench_report import emit, median, spread, text
n = int(sys.argv[1])
gw, cluster = ([int(v) / 1000 for v in arg.split()] for arg in sys.argv[2:4])
print(f"\nipfs pin remote add of {n} small CIDs, one after the other; wall time in s, median (min-max)")
for name, runs in (("gateway /psa", gw), ("Cluster pinsvc", cluster)):
    print(f"  {name:16s} {text(runs, 1):>20s}  {1000 * median(runs) / n:.0f} ms per CID")
ratio = median(gw) / median(cluster)
print(f"  gateway / Cluster: {ratio:.2f}")
emit("psa", {"cids": n, "seconds": {"gateway": spread(gw, 2), "cluster": spread(cluster, 2)},
             "gateway_over_cluster": round(ratio, 2)})
PY
