#!/usr/bin/env bash
# Replicas benchmark (issue 21): the pass-through (GET /proxy/bench/hello, a literal API key
# injected, audit on) through HAProxy (deploy/haproxy/haproxy.cfg, as shipped) to 1, 2 and 3
# runtimes, against one runtime alone, in the same run:
#   (r) one runtime, no load balancer   wrk → runtime → upstream
#   (1) HAProxy → 1 runtime   (2) HAProxy → 2 runtimes   (3) HAProxy → 3 runtimes
# Each runtime gets THREADS serving threads (default 1); HAProxy runs its default threads.
# The upstream is an nginx (1 worker) answering {"ok":true}. Reports req/s, p50, p99 (wrk
# --latency, ROUNDS interleaved rounds, median), the ratios 2/1, 3/1 and 1/r, and the p99 the
# load balancer adds (1 minus r). On this 2-core machine every process shares the same cores,
# so the absolute numbers are capped; the ratios say what the hop costs and whether replicas
# add throughput when cores are free (see the printed note).
# Usage: bench/replicas.sh [seconds-per-run (default 10)] [connections (default 50)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
rounds=${ROUNDS:-3}
threads=${THREADS:-1}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

scripts/deps
# shellcheck source=bench/lib.sh
source bench/lib.sh
need_tools wrk nginx haproxy
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
cargo build --release --locked -p open-cli-proxy >/dev/null 2>&1 || cargo build --release --locked -p open-cli-proxy
rt_bin="$target_dir/release/open-cli-toolbox"


# The upstream.
start_hello_upstream

# Three runtimes on one config (no runtime auth: the hop, not token checks, is measured).
sed "s/UPSTREAM_PORT/$up_port/" bench/proxy.openapi.yaml > "$work/bench.openapi.yaml"
cat > "$work/bench.cli.json" <<JSON
{"cli": "1.0.0", "mode": {"default": "discover"},
 "sources": {"bench": {"type": "openapi", "uri": "bench.openapi.yaml"}},
 "services": {"bench": {"source": "bench", "alias": "bench"}},
 "secrets": {"bench.apiKey": {"type": "literal", "value": "k"}}}
JSON
declare -a rt_port=()
for i in 1 2 3; do
  rt_port[i]=$(free_port)
  RUST_LOG=warn "$rt_bin" --config "$work/bench.cli.json" --addr "127.0.0.1:${rt_port[i]}" \
    --instance-id "r$i" --threads "$threads" --state-dir "$work/state-r$i" 2> "$work/r$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  wait_http "http://127.0.0.1:${rt_port[i]}/readyz" 30 || { cat "$work/r$i.log" >&2; echo "FAIL: runtime r$i did not start" >&2; exit 1; }
done

# HAProxy with 1, 2 or 3 of them: the shipped config, the unused servers pointed at the first.
start_lb() { # n -> url
  local n=$1 port; port=$(free_port)
  local r2="127.0.0.1:${rt_port[1]}" r3="127.0.0.1:${rt_port[1]}"
  if ((n >= 2)); then r2="127.0.0.1:${rt_port[2]}"; fi
  if ((n >= 3)); then r3="127.0.0.1:${rt_port[3]}"; fi
  OC_LISTEN="127.0.0.1:$port" OC_HAPROXY_STATS="$work/lb$n.sock" OC_REPLICA1="127.0.0.1:${rt_port[1]}" \
    OC_REPLICA2="$r2" OC_REPLICA3="$r3" "$haproxy_bin" -db -f deploy/haproxy/haproxy.cfg > "$work/lb$n.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/readyz" 10 || { cat "$work/lb$n.log" >&2; echo "FAIL: haproxy ($n) did not start" >&2; exit 1; }
  echo "http://127.0.0.1:$port"
}
declare -A url=()
url[r]="http://127.0.0.1:${rt_port[1]}"
for n in 1 2 3; do url[$n]=$(start_lb "$n"); done
for v in r 1 2 3; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$v]}/proxy/bench/hello")
  [ "$code" = 200 ] || { echo "FAIL: ($v) answered $code" >&2; exit 1; }
done

run() { # variant round
  wrk -t1 -c"$conns" -d"${secs}s" --latency "${url[$1]}/proxy/bench/hello" > "$work/wrk-$1-$2.txt"
}
for round in $(seq "$rounds"); do
  for v in r 1 2 3; do run "$v" "$round"; done
done

python3 - "$work" "$rounds" "$conns" "$secs" "$threads" <<'PY'
import re, statistics, sys
work, rounds, conns, secs, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = dict((p, ms(v, u)) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", t))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return rps, lat["50"], lat["99"], int(errs.group(1)) if errs else 0
names = {"r": "(r) one runtime, direct", "1": "(1) haproxy, 1 runtime", "2": "(2) haproxy, 2 runtimes", "3": "(3) haproxy, 3 runtimes"}
res = {}
print(f"wrk -t1 -c{conns} -d{secs}s --latency, {rounds} interleaved rounds (median); runtimes: {threads} serving thread(s) each; all on the machine's shared cores")
print(f"{'variant':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  non-2xx")
for v in "r123":
    runs = [parse(f"{work}/wrk-{v}-{i}.txt") for i in range(1, rounds + 1)]
    rps = statistics.median(r[0] for r in runs)
    p50 = statistics.median(r[1] for r in runs)
    p99 = statistics.median(r[2] for r in runs)
    bad = sum(r[3] for r in runs)
    res[v] = (rps, p50, p99)
    print(f"{names[v]:28} {rps:9.0f} {p50:8.2f} {p99:8.2f}  {bad}")
r, one, two, three = res["r"], res["1"], res["2"], res["3"]
print(f"1/r   {one[0]/r[0]:.3f}   (what the load balancer hop leaves of one runtime's throughput)")
print(f"2/1   {two[0]/one[0]:.3f}   3/1   {three[0]/one[0]:.3f}   (replicas added)")
print(f"added p99 of the load balancer hop: {one[2]-r[2]:+.2f} ms (p50 {one[1]-r[1]:+.2f} ms)")
print("note: wrk, HAProxy, the runtimes and the upstream share the same cores here, so replicas "
      "cannot add throughput beyond what the cores give one; with a core per replica (and for the "
      "balancer), throughput scales with replicas up to the upstream's capacity, each replica "
      "costing what (1) costs.")
PY
