#!/usr/bin/env bash
# Catalog scale benchmark (issue 3 targets):
#   - a real-world description with >1,000 operations (GitHub REST, npm @octokit/openapi,
#     fetched here, never committed) loads with tool count = GET/POST/PUT/PATCH/DELETE ops;
#   - catalog build time and peak RSS (`open-cli-toolbox validate`, GNU time);
#   - GET /v1/catalog/effective latency under concurrent load (wrk), plain and gzip,
#     with /healthz measured in the same run as the baseline.
# Usage: bench/catalog-scale.sh [seconds-per-run (default 5)] [connections (default 8)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-8}
pkg="@octokit/openapi@23.0.2"
work="$PWD/target/bench/catalog-scale"
mkdir -p "$work"

scripts/deps
need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
if ((${#need[@]})); then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi

spec="$work/package/generated/api.github.com.json"
if [ ! -f "$spec" ]; then
  (cd "$work" && npm pack --silent "$pkg" >/dev/null && tar xzf octokit-openapi-*.tgz)
fi
cargo build --release --locked -p open-cli-proxy >/dev/null 2>&1 || cargo build --release --locked -p open-cli-proxy
bin="$PWD/target/release/open-cli-toolbox"

cat > "$work/github.cli.json" <<JSON
{"cli": "1.0.0", "mode": {"default": "discover"},
 "sources": {"github": {"type": "openapi", "uri": "package/generated/api.github.com.json"}},
 "services": {"github": {"source": "github"}},
 "curation": {"toolSets": {"repos": {"allow": ["github:repos/*"]}}},
 "agents": {"profiles": {"repos": {"mode": "curated", "toolSet": "repos"}}}}
JSON

ops=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for i in d['paths'].values() for m in ('get','post','put','patch','delete') if m in i))" "$spec")
echo "spec: $pkg api.github.com.json, $(du -h "$spec" | cut -f1), $ops operations"

/usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin" validate --config "$work/github.cli.json" > "$work/validate.txt"
tools=$(grep -o 'service(s), [0-9]* tool' "$work/validate.txt" | grep -o '[0-9]*')
read -r wall rss_kb < "$work/time.txt"
echo "tools: $tools (operations: $ops)"
if [ "$tools" != "$ops" ]; then echo "FAIL: tool count $tools != operation count $ops" >&2; exit 1; fi
echo "build (validate, whole process): ${wall}s, peak RSS $((rss_kb / 1024)) MiB   [targets: < 1 s, < 150 MiB]"

state=$(mktemp -d)
"$bin" --config "$work/github.cli.json" --addr 127.0.0.1:0 --state-dir "$state" --instance-id bench --threads 2 2> "$work/runtime.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$state"' EXIT
for _ in $(seq 300); do [ -f "$state/instances/bench/runtime.json" ] && break; sleep 0.05; done
url=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$state/instances/bench/runtime.json")
echo "runtime start-up: $(grep -o 'startup_ms=[0-9]*' "$work/runtime.log" | cut -d= -f2) ms (load + build + render + gzip)"
plain=$(curl -s -o /dev/null -w '%{size_download}' "$url/v1/catalog/effective")
gz=$(curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{size_download}' "$url/v1/catalog/effective")
echo "effective body: $plain bytes plain, $gz bytes gzip"

run() { # label path [header]
  local out
  if [ -n "${3:-}" ]; then out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -H "$3" "$url$2"); else out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$url$2"); fi
  local rps p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  printf '%-34s %10s req/s   p50 %-9s p99 %s\n' "$1" "$rps" "$p50" "$p99"
  echo "$rps" > "$work/rps-$4"
}
echo "wrk -t1 -c$conns -d${secs}s, runtime --threads 2, all on one 2-core machine:"
run "GET /healthz (baseline)" /healthz "" base
run "GET /v1/catalog/effective (gzip)" /v1/catalog/effective "Accept-Encoding: gzip" gzip
run "GET /v1/catalog/effective (plain)" /v1/catalog/effective "" plain
run "GET ...effective?agentProfile=repos gz" "/v1/catalog/effective?agentProfile=repos" "Accept-Encoding: gzip" repos
python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
r = {k: float(open(f"{w}/rps-{k}").read()) for k in ("base", "gzip", "plain", "repos")}
print(f"ratio effective(gzip)/healthz: {r['gzip']/r['base']:.4f}   effective(plain)/healthz: {r['plain']/r['base']:.4f}")
PY
echo "runtime peak RSS after load: $(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status) MiB   [target: < 150 MiB]"
