# shellcheck shell=bash
# Installs what the local stack needs and is missing. Sourced after common.sh.

DEBIAN_PACKAGES=(postgresql redis-server clickhouse-server clickhouse-client prometheus python3 python3-venv python3-yaml curl chromium)

# ensure_debian_packages [PACKAGE...]: the stack's packages when none are named.
ensure_debian_packages() {
  local missing=() pkg
  [ $# -gt 0 ] || set -- "${DEBIAN_PACKAGES[@]}"
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages' own services from starting: the stack runs its own.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$TOOLS_CACHE/apt.log" 2>&1 ||
    { tail -n 20 "$TOOLS_CACHE/apt.log" >&2; die "apt-get install failed (log: $TOOLS_CACHE/apt.log)"; }
}

# Builds a Go program at a pinned version into its per-version cache folder,
# with the Go toolchain named (`local` for the machine's own; another version
# is fetched by the go command from the module proxy).
# A small wrapper module pins the version with `go get`: it needs no listing of
# the module's versions, which `go install MODULE@VERSION` asks the proxy for.
build_go_tool() {
  local label=$1 bin_dir=$2 version=$3 toolchain=$4
  shift 4
  local packages=("$@") pkg name all_present=1
  for pkg in "${packages[@]}"; do
    name=${pkg##*/}
    [ -x "$bin_dir/$name" ] || all_present=0
  done
  [ "$all_present" -eq 1 ] && return 0
  command -v go >/dev/null || die "the Go toolchain is required to build $label (go not found on PATH)"
  local work="$TOOLS_CACHE/build/$label-$version" build_log="$TOOLS_CACHE/build/$label-$version.log"
  rm -rf "$work"
  mkdir -p "$work" "$bin_dir"
  log "building $label $version with Go toolchain $toolchain (several minutes the first time; log: $build_log)"
  (
    set -e
    cd "$work"
    export CGO_ENABLED=0 GOFLAGS=-modcacherw GOTOOLCHAIN=$toolchain
    go mod init "storage-gateway-tools/$label"
    for pkg in "${packages[@]}"; do go get "$pkg@$version"; done
    go build -trimpath -o "$bin_dir/" "${packages[@]}"
  ) >"$build_log" 2>&1 &
  local builder=$!
  local started=$SECONDS
  while kill -0 "$builder" 2>/dev/null; do
    sleep 15
    kill -0 "$builder" 2>/dev/null &&
      log "  still building $label, $((SECONDS - started))s so far: $(tail -n 1 "$build_log" | cut -c1-90)"
  done
  wait "$builder" || { tail -n 20 "$build_log" >&2; die "building $label $version failed (log: $build_log)"; }
  log "built $label into $bin_dir"
}

ensure_go_tools() {
  export PATH="$PATH:/usr/local/go/bin"
  build_go_tool kubo "$KUBO_BIN_DIR" "$KUBO_VERSION" "$KUBO_GO_TOOLCHAIN" github.com/ipfs/kubo/cmd/ipfs
  build_go_tool ipfs-cluster "$CLUSTER_BIN_DIR" "$CLUSTER_VERSION" local \
    github.com/ipfs-cluster/ipfs-cluster/cmd/ipfs-cluster-service \
    github.com/ipfs-cluster/ipfs-cluster/cmd/ipfs-cluster-ctl
}

# envoyproxy/ratelimit and the load generator that drives it and the gateway
# alike (bench/ratelimit-load, built against the same module versions: the
# limiter's gRPC types come from its own go.mod). The generator's binary is
# cached per hash of its source.
ensure_ratelimit_bench_tools() {
  export PATH="$PATH:/usr/local/go/bin"
  build_go_tool envoy-ratelimit "$ENVOY_RATELIMIT_BIN_DIR" "$ENVOY_RATELIMIT_VERSION" local \
    github.com/envoyproxy/ratelimit/src/service_cmd
  local source="$REPO_ROOT/bench/ratelimit-load/main.go" digest
  digest=$(sha256sum "$source" | cut -c1-12)
  RATELIMIT_LOAD_BIN="$TOOLS_CACHE/bin/ratelimit-load-$digest/ratelimit-load"
  [ -x "$RATELIMIT_LOAD_BIN" ] && return 0
  local work="$TOOLS_CACHE/build/ratelimit-load-$digest" build_log="$TOOLS_CACHE/build/ratelimit-load-$digest.log"
  rm -rf "$work"
  mkdir -p "$work" "$(dirname "$RATELIMIT_LOAD_BIN")"
  cp "$source" "$work/"
  log "building the rate-limit load generator (log: $build_log)"
  (
    set -e
    cd "$work"
    local go=(env CGO_ENABLED=0 GOFLAGS=-modcacherw GOTOOLCHAIN=local go)
    "${go[@]}" mod init storage-gateway-bench/ratelimit-load
    # The limiter's own client pins the gRPC and go-control-plane versions.
    "${go[@]}" get "github.com/envoyproxy/ratelimit/src/client_cmd@$ENVOY_RATELIMIT_VERSION"
    "${go[@]}" build -trimpath -o "$RATELIMIT_LOAD_BIN" .
  ) >"$build_log" 2>&1 || { tail -n 20 "$build_log" >&2; die "building the load generator failed (log: $build_log)"; }
}

# schemathesis, pinned, in a virtual environment of its own (the tests run
# its `st` from there).
ensure_schemathesis() {
  [ -x "$SCHEMATHESIS_DIR/bin/st" ] && return 0
  log "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_DIR"
  rm -rf "$SCHEMATHESIS_DIR"
  python3 -m venv "$SCHEMATHESIS_DIR" ||
    die "python3 -m venv failed (Debian needs python3-venv)"
  "$SCHEMATHESIS_DIR/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" \
    >"$TOOLS_CACHE/schemathesis.log" 2>&1 ||
    { tail -n 20 "$TOOLS_CACHE/schemathesis.log" >&2; die "installing schemathesis failed"; }
}

# The Node clients the tests drive (tus-js-client, playwright-core), at the
# versions tests/browser/package-lock.json pins; reinstalled when it changes.
ensure_browser_clients() {
  local dir="$REPO_ROOT/tests/browser" stamp
  stamp="$dir/node_modules/.installed-$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  command -v npm >/dev/null || ensure_debian_packages nodejs npm
  log "installing the tests' Node clients (npm ci in tests/browser)"
  (cd "$dir" && npm ci --no-audit --no-fund >"$TOOLS_CACHE/npm.log" 2>&1) ||
    { tail -n 20 "$TOOLS_CACHE/npm.log" >&2; die "npm ci failed in tests/browser"; }
  touch "$stamp"
}

# The community compliance suite for Pinning Service API implementations.
# Its install scripts are skipped: the one of its `kubo` dependency downloads
# a Kubo binary, which the suite's checks never start. It reads the API
# specification from GitHub and writes its reports into its own folder;
# both places become settable (PSA_SPEC_LOCATION: the copy kept next to it;
# PSA_REPORT_DIR), so it runs offline and leaves the package untouched.
ensure_psa_compliance() {
  local dir="$REPO_ROOT/tests/psa-compliance" stamp constants
  stamp="$dir/node_modules/.installed-$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  command -v npm >/dev/null || ensure_debian_packages nodejs npm
  log "installing the Pinning Service compliance suite (npm ci in tests/psa-compliance)"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund >"$TOOLS_CACHE/npm-psa.log" 2>&1) ||
    { tail -n 20 "$TOOLS_CACHE/npm-psa.log" >&2; die "npm ci failed in tests/psa-compliance"; }
  constants="$dir/node_modules/@ipfs-shipyard/pinning-service-compliance/dist/src/utils/constants.js"
  # The backquote opens a JavaScript template string: written as it is.
  # shellcheck disable=SC2016
  sed -i \
    -e 's|^const specLocation = `|const specLocation = process.env.PSA_SPEC_LOCATION ?? `|' \
    -e "s|^const docsDir = resolve(|const docsDir = process.env.PSA_REPORT_DIR ?? resolve(|" \
    "$constants"
  if ! grep -q 'PSA_SPEC_LOCATION' "$constants" || ! grep -q 'PSA_REPORT_DIR' "$constants"; then
    die "the compliance suite's constants.js changed shape; update ensure_psa_compliance"
  fi
  touch "$stamp"
}

# cargo-deny, pinned, built from the crate registry into its own folder
# (a few minutes, once per machine).
ensure_cargo_deny() {
  [ -x "$CARGO_DENY" ] && return 0
  local root=${CARGO_DENY%/bin/cargo-deny} build_log="$TOOLS_CACHE/build/cargo-deny-$CARGO_DENY_VERSION.log"
  mkdir -p "$TOOLS_CACHE/build"
  log "building cargo-deny $CARGO_DENY_VERSION (a few minutes the first time; log: $build_log)"
  cargo install --locked --quiet --root "$root" cargo-deny --version "$CARGO_DENY_VERSION" >"$build_log" 2>&1 ||
    { tail -n 20 "$build_log" >&2; die "building cargo-deny failed (log: $build_log)"; }
}

ensure_installed() {
  mkdir -p "$TOOLS_CACHE"
  ensure_debian_packages
  ensure_go_tools
  ensure_schemathesis
  ensure_browser_clients
  ensure_psa_compliance
}
