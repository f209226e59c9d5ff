#!/usr/bin/env bash
# Instructions per proxied request, under callgrind: what `bench/proxy.sh`'s throughput ratios
# cannot resolve on a shared 2-core machine (its rounds swing by 20%), counted exactly.
#
#   bench/callgrind.sh [BASELINE_BIN]
#
# Each proxy runs under `valgrind --tool=callgrind` with one serving thread and is sent N1,
# then (in a fresh run) N2 keep-alive GETs on one connection; (Ir(N2) - Ir(N1)) / (N2 - N1) is
# its cost per request, start-up and shutdown cancelled out:
#   (c) bare Pingora   bench/bare-pingora → upstream
#   (d) pass-through   the runtime's /proxy/bench/hello (RS256 JWT, operation match, API key
#                      injected, audit record, request log line) → upstream
#   (f) baseline d     (d) served by BASELINE_BIN (another build of open-cli-toolbox)
# Prints each, d/c (instructions of the pass-through over the bare hop) and d/f.
# Env: N1 (default 2000), N2 (default 6000); CG_KEEP=DIR keeps the callgrind files there (for
# `callgrind_annotate --inclusive=yes DIR/cg.d.6000`: where the instructions go).
#
# The upstream is the nginx of bench/proxy.sh (GET /hello → {"ok":true}); the token comes
# from the test OpenID provider (product-tests/oidc). Needs valgrind (apt), nginx, node.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline_bin=${1:-}
n1=${N1:-2000}
n2=${N2:-6000}
[ -z "$baseline_bin" ] || [ -x "$baseline_bin" ] || { echo "error: $baseline_bin is not an executable" >&2; exit 2; }
((n2 > n1)) || { echo "error: N2 must be larger than N1" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source bench/lib.sh
need_tools valgrind nginx
[ -d product-tests/oidc/node_modules/oidc-provider ] || scripts/deps
cargo build --release --locked -p open-cli-proxy -p open-cli-bench-bare-pingora >/dev/null 2>&1 \
  || cargo build --release --locked -p open-cli-proxy -p open-cli-bench-bare-pingora
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
rt_bin="$target_dir/release/open-cli-toolbox"
bare_bin="$target_dir/release/open-cli-bench-bare-pingora"


# ---- the upstream and the provider ---------------------------------------------------------
start_hello_upstream

start_provider bundle:bench
token=$(provider_token bundle:bench)
write_bench_config

# ---- one measurement: a proxy under callgrind, sent N requests ------------------------------
# send URL N [HEADER]: N GETs on one keep-alive connection; fails unless every answer is 200.
send() {
  python3 - "$@" <<'PY'
import http.client, sys, urllib.parse
url, n = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
headers = dict([sys.argv[3].split(": ", 1)]) if len(sys.argv) > 3 else {}
c = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
for i in range(n):
    c.request("GET", url.path, headers=headers)
    r = c.getresponse()
    body = r.read()
    if r.status != 200 or b'"ok"' not in body:
        sys.exit(f"request {i}: {r.status} {body[:200]!r}")
PY
}

# measure KIND BIN N -> total instructions (Ir) of the proxy process for N requests
measure() {
  local kind=$1 bin=$2 n=$3 url pid
  local out="$work/cg.$kind.$n"
  rm -rf "$work/state-$kind"
  case $kind in
    c)
      valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --listen 127.0.0.1:0 \
        --upstream "127.0.0.1:$up_port" --threads 1 > "$work/$kind.out" 2> "$work/$kind.log" &
      pid=$!
      for _ in $(seq 600); do grep -q "listening on" "$work/$kind.out" 2>/dev/null && break; sleep 0.1; done
      url="$(sed -n 's/^listening on //p' "$work/$kind.out")/hello"
      [ "$url" != /hello ] || { cat "$work/$kind.log" >&2; echo "FAIL: ($kind) did not start" >&2; exit 1; }
      send "$url" 1 # connect and warm up outside the counted difference (same in both runs)
      send "$url" "$n" ;;
    *)
      valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --config "$work/bench.cli.json" \
        --addr 127.0.0.1:0 --state-dir "$work/state-$kind" --instance-id "$kind" --threads 1 \
        > /dev/null 2> "$work/$kind.log" &
      pid=$!
      local rj="$work/state-$kind/instances/$kind/runtime.json"
      for _ in $(seq 1200); do [ -f "$rj" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      [ -f "$rj" ] || { cat "$work/$kind.log" >&2; echo "FAIL: ($kind) did not start" >&2; exit 1; }
      url="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$rj")/proxy/bench/hello"
      send "$url" 1 "Authorization: Bearer $token"
      send "$url" "$n" "Authorization: Bearer $token" ;;
  esac
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  if [ -n "${CG_KEEP:-}" ]; then mkdir -p "$CG_KEEP" && cp "$out"* "$CG_KEEP/"; fi
  # The totals of every thread's part.
  cat "$out"* | awk '/^summary:/ {s += $2} END {print s}'
}

per_request() { # kind bin
  local a b
  a=$(measure "$1" "$2" "$n1") && b=$(measure "$1" "$2" "$n2") || exit 1
  ((a > 0 && b > a)) || { echo "FAIL: ($1) no instruction counts ($a, $b)" >&2; exit 1; }
  echo $(((b - a) / (n2 - n1)))
}

declare -A ir=()
ir[c]=$(per_request c "$bare_bin") || exit 1
echo "(c) bare Pingora   ${ir[c]} instructions per request"
ir[d]=$(per_request d "$rt_bin") || exit 1
echo "(d) pass-through   ${ir[d]} instructions per request"
if [ -n "$baseline_bin" ]; then
  ir[f]=$(per_request f "$baseline_bin") || exit 1
  echo "(f) baseline d     ${ir[f]} instructions per request"
fi
python3 - "${ir[c]}" "${ir[d]}" "${ir[f]:-}" <<'PY'
import sys
c, d = int(sys.argv[1]), int(sys.argv[2])
print(f"d/c {d / c:.3f}  (the pass-through's instructions over the bare hop's; {d - c} more per request)")
if sys.argv[3]:
    f = int(sys.argv[3])
    print(f"d/f {d / f:.4f}  ({d - f:+d} per request against the baseline build)")
PY
