#!/usr/bin/env bash
# Runtime-auth benchmark (issue 4): GET /v1/catalog/effective throughput with auth off and on
# (oidc_jwks, RS256 token from a real oidc-provider, warm key cache), same config, same load,
# one run. Target: auth on keeps >= 90% of auth-off throughput. Also reports the added
# latency and the added per-request cost.
# Usage: bench/auth.sh [seconds-per-run (default 5)] [connections (default 16)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-16}
scripts/deps
# shellcheck source=bench/lib.sh
source bench/lib.sh
need_tools wrk
cargo build --release --locked -p open-cli-proxy >/dev/null 2>&1 || cargo build --release --locked -p open-cli-proxy
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/open-cli-toolbox"

start_provider bundle:demo

cp config/examples/demo-api.openapi.yaml "$work/demo.openapi.yaml"
base='"cli": "1", "mode": {"default": "discover"}, "sources": {"demo": {"type": "openapi", "uri": "demo.openapi.yaml"}}, "services": {"demo": {"source": "demo"}}'
echo "{$base}" > "$work/off.cli.json"
echo "{$base, \"runtime\": {\"server\": {\"auth\": {\"validationProfile\": \"oidc_jwks\", \"issuer\": \"$issuer\", \"audience\": \"urn:open-cli:runtime\"}}}}" > "$work/on.cli.json"

start() { # name: start a runtime on that config
  "$bin" --config "$work/$1.cli.json" --addr 127.0.0.1:0 --state-dir "$work/state-$1" --instance-id "$1" --threads 2 > /dev/null 2> "$work/$1.log" &
  pids+=($!)
}
url_of() { # name -> url, once runtime.json exists
  for _ in $(seq 200); do [ -f "$work/state-$1/instances/$1/runtime.json" ] && break; sleep 0.05; done
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$work/state-$1/instances/$1/runtime.json"
}
start off
start on
off=$(url_of off)
on=$(url_of on)
token=$(provider_token bundle:demo)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$on/v1/catalog/effective")
[ "$code" = 200 ] || { echo "FAIL: the token was not accepted ($code)" >&2; cat "$work/on.log" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$on/v1/catalog/effective")" = 401 ] || { echo "FAIL: auth is not on" >&2; exit 1; }

run() { # label url [header...]
  local label=$1 url=$2; shift 2
  local args=()
  for h in "$@"; do args+=(-H "$h"); done
  wrk -t1 -c"$conns" -d"${secs}s" --latency "${args[@]}" "$url" > "$work/wrk.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/wrk.txt")
  printf '%-44s %10s req/s   p50 %-9s p99 %s\n' "$label" "$rps" "$p50" "$p99"
  echo "$rps" > "$work/rps-$label"
}
echo "wrk -t1 -c$conns -d${secs}s, runtimes --threads 2, provider and load on the same 2-core machine:"
# Interleaved, so drift of the shared machine hits both sides alike.
for round in 1 2; do
  run "off-$round" "$off/v1/catalog/effective" "Accept-Encoding: gzip"
  run "on-$round" "$on/v1/catalog/effective" "Accept-Encoding: gzip" "Authorization: Bearer $token"
done
python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
r = lambda k: float(open(f"{w}/rps-{k}").read())
off = (r("off-1") + r("off-2")) / 2
on = (r("on-1") + r("on-2")) / 2
print(f"auth on / auth off throughput: {on/off:.3f}   [target: >= 0.90]")
print(f"added cost per request at saturation: {(1/on - 1/off)*1e6:.1f} us of wall time (2 worker threads)")
PY
echo "key set fetches by the auth-on runtime during the run: $(grep -c "fetched the provider's key set" "$work/on.log")"
