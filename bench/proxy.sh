#!/usr/bin/env bash
# Proxy benchmark (issue 5): what the runtime's pass-through and execute paths cost, against
# nginx and a bare Pingora, same upstream, same load generator, one run, 127.0.0.1 only.
#
#   (a) direct       wrk → upstream
#   (b) nginx        wrk → nginx proxy_pass (upstream keepalive 64) → upstream
#   (c) bare pingora wrk → bench/bare-pingora (Pingora, no filters, same server setup: one
#                    current-thread event loop per thread, same thread count and allocator
#                    as the runtime) → upstream
#   (d) pass-through wrk → runtime GET /proxy/bench/hello (RS256 JWT checked, operation
#                    matched, X-Api-Key injected from a literal secret, audit record) → upstream
#   (e) execute      wrk → runtime POST /v1/tools/execute {"toolId":"bench:hello"} → upstream
#   (g) always       (d) with `runtime.server.audit.durability: always` (each answer waits for
#                    its synced record): req/s, p99 and audit syncs per second (from the
#                    runtime's exit log), against (d)'s default `interval`
#   (f) baseline d   (d) served by another build of the runtime (BASELINE_BIN), interleaved
#                    with (d) in the same rounds: what a change costs, as d/f and CPU d/f
#   (h) nginx TLS    (b) terminating TLS (self-signed certificate made with openssl, TLS 1.3,
#                    ssl_session_cache, keep-alive): wrk → https → nginx → upstream
#   (i) TLS          (d) terminating TLS with the same certificate (`runtime.server.tls`)
#   (j) rate limits  (d) with `runtime.server.rateLimits` on and never reached (a per-principal
#                    and a per-tool bucket; one token, so every request takes both buckets:
#                    the contended case)
#   (k) j, Redis     (j) with the buckets in Redis (`store`), a local redis-server
#   (l) per caller   (d) with the API key from a `byPrincipal` secret (the token's principal's
#                    own key): credentials resolved per call for the caller instead of once
#                    per snapshot
#   Handshakes: (h) and (i) again with `Connection: close` (one TLS handshake per request),
#                    reported as new connections per second
#
# The upstream is an nginx (1 worker) answering GET /hello with {"ok":true} (11 bytes).
# Reports req/s, p50, p99 (wrk --latency) and the proxy's peak RSS (VmHWM after its run; for
# nginx the sum of master and workers), then the ratios against the targets:
#   d >= 0.9 x c,  d >= 0.5 x b,  e >= 0.35 x b,  i >= 0.8 x h,  j >= 0.97 x d (rate limiting
#   costs at most 3%),  runtime peak RSS < 64 MiB,
#   and "added p99 <= 1 ms over direct at half of peak load": a second pass for (a), (c) and
#   (d) with `oha -q` (rate-limited and evenly spaced; wrk cannot limit its rate, wrk2 is not
#   in Debian; oha is built from crates.io into $CARGO_TARGET_DIR/bench-tools on first use),
#   HALF_CONNS (default 16) connections, at half of (d)'s peak *as oha drives it* (a short
#   unlimited oha run first): oha spends several times wrk's CPU per request on the same two
#   cores, so half of wrk's peak would load the machine to about 90% with oha and measure
#   queueing, not the hop. The target is judged on each request's own latency; the p99 with
#   --latency-correction (counted from when each request was due) is printed beside it, and
#   (c) shows what a bare Pingora hop adds at the same rate. When (d) is not measured, (c)
#   stands in so the pass still runs.
# A MISS is reported, never fatal. The exit status is non-zero only when something did not
# work (a build, a start-up, a sanity check: each target is curled once before its run and
# must answer 200; (d)/(e) must also answer 401 without a token, and (d) must deliver the
# injected X-Api-Key to the upstream).
#
# Fairness: every proxy gets THREADS request threads (default: the number of CPUs): the
# runtime and bare Pingora `--threads THREADS`, nginx `worker_processes THREADS` (one
# single-threaded event loop per worker). Load generator (wrk -t1), proxy and upstream share
# the machine's cores (2 here); nothing is pinned, so read ratios rather than absolute numbers.
# keepalive_requests is raised on both nginx instances so that no side closes a keep-alive
# connection every 1000 requests (nginx's default) during a run. The runtime logs as it does
# in production (info: one access-log line per request, to a file); RUST_LOG is passed through.
#
# Usage: bench/proxy.sh [seconds-per-run (default 10)] [connections (default 50)]
#        (about 5 x ROUNDS runs of that length, plus the half-load pass)
# Env:   BENCH_ONLY=abcdeghijkl run a subset of the variants, e.g. BENCH_ONLY=abc (default: all
#                    but f, which needs BASELINE_BIN)
#        THREADS=N         proxy threads/workers (default: nproc)
#        WRK_THREADS=N     wrk threads (default 1)
#        HALF_CONNS=N      connections of the half-load latency pass (default 16)
#        ROUNDS=N          interleaved rounds of the full-speed runs (default 3; median reported)
#        PERF=<variants>   instead of the figures, profile each named variant's proxy with perf
#                          under load and print its top symbols (PERF_TOP=N lines), e.g.
#                          PERF=df with BASELINE_BIN to compare two builds
#        CARGO_TARGET_DIR  respected (binaries are taken from there)
#        BASELINE_BIN=P    also run (f): the pass-through of the open-cli-toolbox binary at P
#                          (e.g. a release build of an earlier commit; see the README)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
only=${BENCH_ONLY:-abcdeghijkl}
baseline_bin=${BASELINE_BIN:-}
if [ -n "$baseline_bin" ]; then
  [ -x "$baseline_bin" ] || { echo "error: BASELINE_BIN=$baseline_bin is not an executable" >&2; exit 2; }
  [[ $only == *f* ]] || only="${only}f"
fi
threads=${THREADS:-$(nproc)}
wrk_threads=${WRK_THREADS:-1}
half_conns=${HALF_CONNS:-16}
rounds=${ROUNDS:-3}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
want() { [[ $only == *"$1"* ]]; }
[[ $only =~ ^[a-l]+$ ]] || { echo "error: BENCH_ONLY must be letters from abcdefghijkl, got '$only'" >&2; exit 2; }
if [[ $only == *f* ]] && [ -z "$baseline_bin" ]; then echo "error: (f) needs BASELINE_BIN" >&2; exit 2; fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "error: ROUNDS must be a positive number, got '$rounds'" >&2; exit 2; }

scripts/deps
# shellcheck source=bench/lib.sh
source bench/lib.sh
need_tools wrk nginx
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
oha_version=1.16.0
oha_bin=$(command -v oha || true)
if [ -z "$oha_bin" ] || [ "$("$oha_bin" --version 2>/dev/null)" != "oha $oha_version" ]; then
  oha_bin="$target_dir/bench-tools/bin/oha"
  if [ "$("$oha_bin" --version 2>/dev/null)" != "oha $oha_version" ]; then
    echo "bench/proxy.sh: building oha $oha_version (crates.io, once)" >&2
    cargo install oha --version "$oha_version" --locked --root "$target_dir/bench-tools" >/dev/null 2>&1 \
      || cargo install oha --version "$oha_version" --locked --root "$target_dir/bench-tools"
  fi
fi

pkgs=()
if want c; then pkgs+=(-p open-cli-bench-bare-pingora); fi
if want d || want e || want f || want g || want i || want j || want k; then pkgs+=(-p open-cli-proxy); fi
if ((${#pkgs[@]})); then
  cargo build --release --locked "${pkgs[@]}" >/dev/null 2>&1 || cargo build --release --locked "${pkgs[@]}"
fi
bare_bin="$target_dir/release/open-cli-bench-bare-pingora"
rt_bin="$target_dir/release/open-cli-toolbox"

failed=()
fail() { echo "FAIL: $*" >&2; failed+=("$*"); }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- nginx: upstream and proxy, each with its own prefix dir, pid and error log ----------
start_nginx() { # name -> master pid in $work/pid-<name>
  local d="$work/nginx-$1"
  "$nginx_bin" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;' 2>> "$d/error.log" &
  pids+=($!)
  echo $! > "$work/pid-$1"
}
nginx_hwm_kib() { # master pid -> "sum worker-max" of VmHWM in KiB
  local master=$1 sum max w h
  sum=$(hwm_kib "$master"); max=0
  for w in $(ps -o pid= --ppid "$master"); do
    h=$(hwm_kib "$w"); sum=$((sum + h))
    if ((h > max)); then max=$h; fi
  done
  echo "$sum $max"
}

up_port=$(free_port)
nginx_conf upstream 1 "server {
    listen 127.0.0.1:$up_port;
    default_type application/json;
    location = /hello { return 200 '{\"ok\":true}'; }
    location = /key { return 200 '{\"key\":\"\$http_x_api_key\"}'; }
  }"
start_nginx upstream
upstream="http://127.0.0.1:$up_port"
wait_http "$upstream/hello" || { cat "$work/nginx-upstream/error.log" >&2; echo "FAIL: the upstream nginx did not start" >&2; exit 1; }

declare -A url=() hdr=() proc=()
url[a]="$upstream/hello"

if want b; then
  ngx_port=$(free_port)
  nginx_conf proxy "$threads" "upstream u { server 127.0.0.1:$up_port; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$ngx_port;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
  start_nginx proxy
  url[b]="http://127.0.0.1:$ngx_port/hello"
  proc[b]=$(cat "$work/pid-proxy")
  wait_http "${url[b]}" || { cat "$work/nginx-proxy/error.log" >&2; fail "(b) nginx proxy did not start"; }
fi

# One self-signed certificate for both TLS terminators (h) and (i).
if want h || want i; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null \
    || { echo "FAIL: openssl could not make the benchmark certificate" >&2; exit 1; }
fi
if want h; then
  tls_port=$(free_port)
  nginx_conf proxy-tls "$threads" "upstream u { server 127.0.0.1:$up_port; keepalive 64; keepalive_requests 1000000; }
  ssl_session_cache shared:SSL:10m;
  ssl_session_timeout 10m;
  server {
    listen 127.0.0.1:$tls_port ssl;
    ssl_certificate $work/tls.crt;
    ssl_certificate_key $work/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
  start_nginx proxy-tls
  url[h]="https://127.0.0.1:$tls_port/hello"
  proc[h]=$(cat "$work/pid-proxy-tls")
  wait_http "${url[h]}" || { cat "$work/nginx-proxy-tls/error.log" >&2; fail "(h) nginx TLS proxy did not start"; }
fi

if want c; then
  "$bare_bin" --listen 127.0.0.1:0 --upstream "127.0.0.1:$up_port" --threads "$threads" > "$work/bare.out" 2> "$work/bare.log" &
  pids+=($!)
  proc[c]=$!
  for _ in $(seq 200); do grep -q "listening on" "$work/bare.out" 2>/dev/null && break; sleep 0.05; done
  bare=$(sed -n 's/^listening on //p' "$work/bare.out")
  if [ -n "$bare" ]; then url[c]="$bare/hello"; else cat "$work/bare.log" >&2; fail "(c) bare pingora did not start"; fi
fi

token=""
if want k; then
  redis_port=$(free_port)
  product-tests/redis/bin/redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no > "$work/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break; sleep 0.05; done
fi
if want d || want e || want f || want g || want i || want j || want k; then
  start_provider bundle:bench
  write_bench_config
  python3 - "$work" "${redis_port:-0}" <<'PY'
import json, sys
w, redis_port = sys.argv[1], sys.argv[2]
base = json.load(open(f"{w}/bench.cli.json"))
def variant(name, **server):
    c = json.loads(json.dumps(base))
    c["runtime"]["server"].update(server)
    json.dump(c, open(f"{w}/bench-{name}.cli.json", "w"))
variant("always", audit={"durability": "always"})
variant("tls", tls={"certFile": f"{w}/tls.crt", "keyFile": f"{w}/tls.key"})
# Never reached: far above what two cores can serve.
limits = {"perPrincipal": {"requestsPerSecond": 10000000}, "tools": {"bench:hello": {"requestsPerSecond": 10000000}}}
variant("limits", rateLimits=limits)
variant("redis", rateLimits=dict(limits, store=f"redis://127.0.0.1:{redis_port}/0"))
c = json.loads(json.dumps(base))
c["secrets"]["bench.apiKey"] = {"type": "byPrincipal",
    "principals": {"agent-1": {"type": "literal", "value": "bench-key"}}}
json.dump(c, open(f"{w}/bench-percaller.cli.json", "w"))
PY
  token=$(provider_token bundle:bench)
  # One runtime per variant, so each peak RSS is its own run's.
  for v in d e f g i j k l; do
    want $v || continue
    bin=$rt_bin
    [ $v = f ] && bin=$baseline_bin
    cfg="$work/bench.cli.json"
    [ $v = g ] && cfg="$work/bench-always.cli.json"
    [ $v = i ] && cfg="$work/bench-tls.cli.json"
    [ $v = j ] && cfg="$work/bench-limits.cli.json"
    [ $v = k ] && cfg="$work/bench-redis.cli.json"
    [ $v = l ] && cfg="$work/bench-percaller.cli.json"
    "$bin" --config "$cfg" --addr 127.0.0.1:0 --state-dir "$work/state-$v" --instance-id "$v" --threads "$threads" > /dev/null 2> "$work/runtime-$v.log" &
    pids+=($!)
    proc[$v]=$!
  done
  for v in d e f g i j k l; do
    want $v || continue
    rj="$work/state-$v/instances/$v/runtime.json"
    for _ in $(seq 300); do [ -f "$rj" ] && break; kill -0 "${proc[$v]}" 2>/dev/null || break; sleep 0.05; done
    if [ -f "$rj" ]; then
      rt=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$rj")
      if [ $v = e ]; then url[e]="$rt/v1/tools/execute"; else url[$v]="$rt/proxy/bench/hello"; fi
      hdr[$v]="Authorization: Bearer $token"
    else
      cat "$work/runtime-$v.log" >&2; fail "($v) the runtime did not start"
    fi
  done
fi
cat > "$work/execute.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"toolId":"bench:hello"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# ---- sanity: each target answers once before it is measured -----------------------------
code() { curl -sk -o "$work/body" -w '%{http_code}' "$@" || true; }
sane() { # variant -> 0 when it may be measured
  local v=$1 c
  [ -n "${url[$v]:-}" ] || return 1
  case $v in
    a|b|c|h)
      c=$(code "${url[$v]}")
      [ "$c" = 200 ] || { fail "($v) ${url[$v]} answered $c, not 200"; return 1; } ;;
    d|f|g|i|j|k|l)
      c=$(code -H "${hdr[$v]}" "${url[$v]}")
      if [ "$c" != 200 ]; then
        fail "($v) pass-through not available (status $c): GET ${url[$v]} -> $(head -c 300 "$work/body")"; return 1
      fi
      grep -q '"ok"' "$work/body" || { fail "($v) pass-through answered 200 without the upstream body: $(head -c 300 "$work/body")"; return 1; }
      c=$(code "${url[$v]}")
      [ "$c" = 401 ] || { fail "($v) pass-through without a token answered $c, not 401"; return 1; }
      c=$(code -H "${hdr[$v]}" "${url[$v]%/hello}/key")
      grep -q '"key":"bench-key"' "$work/body" || { fail "($v) the upstream did not get X-Api-Key: bench-key (status $c: $(head -c 300 "$work/body"))"; return 1; } ;;
    e)
      local body='{"toolId":"bench:hello"}'
      c=$(code -H "${hdr[e]}" -H 'Content-Type: application/json' -d "$body" "${url[e]}")
      if [ "$c" != 200 ]; then
        fail "execute not available (status $c): POST ${url[e]} -> $(head -c 300 "$work/body")"; return 1
      fi
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d.get('statusCode')==200 and d.get('body')=={'ok':True} else 1)" "$work/body" \
        || { fail "(e) execute answered 200 but not {statusCode:200, body:{ok:true}}: $(head -c 300 "$work/body")"; return 1; }
      c=$(code -H 'Content-Type: application/json' -d "$body" "${url[e]}")
      [ "$c" = 401 ] || { fail "(e) execute without a token answered $c, not 401"; return 1; } ;;
  esac
}

# ---- full-speed runs ---------------------------------------------------------------------
label() { case $1 in a) echo "(a) direct";; b) echo "(b) nginx";; c) echo "(c) bare pingora";; d) echo "(d) pass-through";; e) echo "(e) execute";; f) echo "(f) baseline d";; g) echo "(g) d, always";; h) echo "(h) nginx TLS";; i) echo "(i) d over TLS";; j) echo "(j) d, limits";; k) echo "(k) j, Redis";; l) echo "(l) d, per caller";; esac; }
cpu_ticks() { # variant -> user+system clock ticks of the proxy (all threads; nginx: master+workers)
  local v=$1 p sum=0
  case $v in
    a) echo 0; return ;;
    b|h) for p in "${proc[$v]}" $(ps -o pid= --ppid "${proc[$v]}"); do
         sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
       done; echo "$sum" ;;
    *) awk '{print $14 + $15}' "/proc/${proc[$v]}/stat" 2>/dev/null || echo 0 ;;
  esac
}
wrk_run() { # variant duration out (a round's out also gets the proxy's CPU ticks in out.cpu)
  local v=$1 args=(-t"$wrk_threads" -c"$conns" -d"$2" --latency) t0
  [ -n "${hdr[$v]:-}" ] && args+=(-H "${hdr[$v]}")
  [ "$v" = e ] && args+=(-s "$work/execute.lua")
  t0=$(cpu_ticks "$v")
  wrk "${args[@]}" "${url[$v]}" > "$3"
  [ "$3" = /dev/null ] || echo $(($(cpu_ticks "$v") - t0)) > "$3.cpu"
}
if [ -n "${PERF:-}" ]; then
  # Where a variant's proxy spends its CPU: perf on its process while wrk loads it, the top
  # symbols (self time) of each variant named in PERF (e.g. PERF=df: this build and the
  # baseline's); no figures.
  for v in $(echo "$PERF" | grep -o .); do
    want "$v" || continue
    sane "$v" || continue
    wrk_run "$v" 1s /dev/null
    perf record -q -F 1999 -p "${proc[$v]}" -o "$work/perf-$v.data" -- sleep "$secs" 2>/dev/null &
    perf_pid=$!
    wrk_run "$v" "${secs}s" "$work/perf-wrk-$v.txt"
    wait "$perf_pid" || true
    echo "($v) $(awk '/Requests\/sec/ {print $2}' "$work/perf-wrk-$v.txt") req/s under perf; top symbols:"
    perf report -i "$work/perf-$v.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -"${PERF_TOP:-40}" || true
  done
  exit 0
fi
echo "wrk -t$wrk_threads -c$conns -d${secs}s --latency, $rounds interleaved rounds (median shown); proxies: $threads threads/workers; upstream: nginx, 1 worker; all on $(nproc) shared cores, unpinned"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk "BEGIN{exit !($load >= 0.5)}"; then
  echo "WARNING: load average $load before the runs: other work shares the cores, the figures are skewed"
fi
printf '%-18s %12s %10s %10s   %s\n' variant req/s p50 p99 "proxy peak RSS (VmHWM)"
measured=()
for v in a b c d e f g h i j k l; do
  want $v || continue
  sane $v || continue
  wrk_run $v 1s /dev/null # warm-up: connections, upstream pool, key set
  measured+=("$v")
done
# Rounds interleave the variants (a b c d e, a b c d e, …): a change in the machine's speed
# during the run (other VMs on the host, a background job) then hits every variant alike
# instead of skewing one ratio. Each variant reports its median round; each ratio is the
# median of its per-round ratios.
for r in $(seq "$rounds"); do
  for v in "${measured[@]}"; do
    wrk_run $v "${secs}s" "$work/wrk-$v-$r.txt"
  done
done
for v in "${measured[@]}"; do
  python3 - "$work" "$v" "$rounds" <<'PY'
import re, shutil, sys
w, v, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = []
for r in range(1, n + 1):
    t = open(f"{w}/wrk-{v}-{r}.txt").read()
    runs.append((float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)), r))
runs.sort()
median = runs[len(runs) // 2][1]
shutil.copy(f"{w}/wrk-{v}-{median}.txt", f"{w}/wrk-{v}.txt")
open(f"{w}/rounds-{v}", "w").write(" ".join(f"{x:.0f}" for x, _ in sorted(runs, key=lambda p: p[1])))
PY
  rss=""
  case $v in
    a) read -r s m < <(nginx_hwm_kib "$(cat "$work/pid-upstream")"); rss="(upstream nginx: $((s / 1024)) MiB)" ;;
    b|h) read -r s m < <(nginx_hwm_kib "${proc[$v]}"); echo "$s" > "$work/rss-$v"
       rss="$((s / 1024)) MiB master+workers (largest worker $((m / 1024)) MiB)" ;;
    *) s=$(hwm_kib "${proc[$v]}"); echo "$s" > "$work/rss-$v"; rss="$((s / 1024)) MiB" ;;
  esac
  python3 - "$work/wrk-$v.txt" "$(label $v)" "$rss" "$(cat "$work/rounds-$v")" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)
p = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", t, re.M))
print(f"{sys.argv[2]:<18} {float(rps):12.0f} {p['50']:>10} {p['99']:>10}   {sys.argv[3]}   rounds: {sys.argv[4]}")
for bad in re.findall(r"^\s*(Non-2xx or 3xx responses: \d+|Socket errors: .*)$", t, re.M):
    print(f"{'':18} WARNING: {bad}")
PY
done

# ---- CPU per request: the proxy's own cost, independent of how fast the machine ran ------
echo
echo "proxy CPU per request (user+system of every proxy thread/worker, all rounds; the load generator and upstream excluded)"
python3 - "$work" "$rounds" "$(getconf CLK_TCK)" "${measured[@]}" <<'PY'
import re, sys
w, n, tck, vs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
us = {}
for v in vs:
    if v == "a":
        continue
    ticks = reqs = 0
    for r in range(1, n + 1):
        ticks += int(open(f"{w}/wrk-{v}-{r}.txt.cpu").read())
        reqs += int(re.search(r"(\d+) requests in", open(f"{w}/wrk-{v}-{r}.txt").read()).group(1))
    us[v] = ticks / tck * 1e6 / reqs
    print(f"  {v}: {us[v]:6.2f} us")
open(f"{w}/cpu-us", "w").write(" ".join(f"{v}={x}" for v, x in us.items()))
PY

# ---- TLS handshakes: one new connection (and handshake) per request ----------------------
hs=()
for v in h i; do [[ " ${measured[*]} " == *" $v "* ]] && hs+=("$v"); done
if ((${#hs[@]})); then
  echo
  echo "new TLS connections per second (wrk -c$conns -d${secs}s with Connection: close: a full handshake per request, no session resumption by wrk)"
  for v in "${hs[@]}"; do
    args=(-t"$wrk_threads" -c"$conns" -d"${secs}s" -H "Connection: close")
    [ -n "${hdr[$v]:-}" ] && args+=(-H "${hdr[$v]}")
    wrk "${args[@]}" "${url[$v]}" > "$work/hs-$v.txt"
    python3 - "$work/hs-$v.txt" "$(label $v)" "$work/hs-$v" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
open(sys.argv[3], "w").write(str(rps))
print(f"  {sys.argv[2]:<18} {rps:8.0f} handshakes/s")
for bad in re.findall(r"^\s*(Non-2xx or 3xx responses: \d+|Socket errors: .*)$", t, re.M):
    print(f"  {'':18} WARNING: {bad}")
PY
  done
fi

# ---- half of peak load, rate-limited (oha -q: total rate, evenly spaced) -----------------
ref=""
if [ -f "$work/wrk-d.txt" ]; then ref=d; elif [ -f "$work/wrk-c.txt" ]; then ref=c; fi
if [ -n "$ref" ] && [ -f "$work/wrk-a.txt" ]; then
  args=(-z "$(((secs + 1) / 2))s" -c "$half_conns" --no-tui --output-format json)
  [ -n "${hdr[$ref]:-}" ] && args+=(-H "${hdr[$ref]}")
  "$oha_bin" "${args[@]}" "${url[$ref]}" > "$work/oha-peak.json"
  wrk_peak=$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$ref.txt")
  oha_peak=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['summary']['requestsPerSec']))" "$work/oha-peak.json")
  rate=$((oha_peak / 2))
  echo
  echo "half of $(label $ref)'s peak: $rate req/s (its peak with oha -c $half_conns: $oha_peak req/s; with wrk -c $conns: ${wrk_peak%.*}); oha -z ${secs}s -c $half_conns -q $rate"
  [ $ref = c ] && echo "  (d) was not measured; (c) stands in so the pass runs"
  printf '%-18s %12s %10s %10s   %s\n' variant req/s p50 p99 "p99 with latency correction"
  half=(a)
  [ -n "${url[c]:-}" ] && [ $ref != c ] && half+=(c)
  half+=("$ref")
  for v in "${half[@]}"; do
    for lc in plain corrected; do
      args=(-z "${secs}s" -c "$half_conns" -q "$rate" --no-tui --output-format json)
      [ $lc = corrected ] && args+=(--latency-correction)
      [ -n "${hdr[$v]:-}" ] && args+=(-H "${hdr[$v]}")
      "$oha_bin" "${args[@]}" "${url[$v]}" > "$work/oha-$v-$lc.json"
    done
    python3 - "$work" "$v" "$(label $v)" "$rate" <<'PY'
import json, sys
w, v, label, rate = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
d = {lc: json.load(open(f"{w}/oha-{v}-{lc}.json")) for lc in ("plain", "corrected")}
s, p = d["plain"]["summary"], d["plain"]["latencyPercentiles"]
rps = s["requestsPerSec"]
if rps < 0.9 * rate:
    print(f"{'':18} WARNING: oha held {rps:.0f} of {rate:.0f} req/s")
pc = d["corrected"]["latencyPercentiles"]["p99"] * 1000
print(f"{label:<18} {rps:12.0f} {p['p50'] * 1000:8.3f}ms {p['p99'] * 1000:8.3f}ms   {pc:.3f}ms")
open(f"{w}/half-p99-{v}", "w").write(f"{p['p99'] * 1000} {pc}")
for lc, x in d.items():
    codes = x.get("statusCodeDistribution", {})
    # Requests still in flight when -z ends are reported as aborted: not failures.
    errors = {k: n for k, n in x.get("errorDistribution", {}).items() if "aborted due to deadline" not in k}
    if set(codes) - {"200"} or errors:
        print(f"{'':18} WARNING ({lc}): statuses {codes} errors {errors}")
PY
  done
fi

# ---- audit syncs of (g): its runtime logs its count on exit ------------------------------
if [ -n "${proc[g]:-}" ] && [ -f "$work/wrk-g.txt" ]; then
  kill -TERM "${proc[g]}" 2>/dev/null || true
  wait "${proc[g]}" 2>/dev/null || true
  n=$(sed -n 's/.*audit_syncs=\([0-9]*\).*/\1/p' "$work/runtime-g.log" | tail -1)
  # Its lines came from the warm-up second and its measured rounds.
  [ -n "$n" ] && python3 -c "import sys; print(int(sys.argv[1]) / (int(sys.argv[2]) * int(sys.argv[3]) + 1))" "$n" "$rounds" "$secs" > "$work/syncs-g"
fi

# ---- ratios and targets ------------------------------------------------------------------
echo
python3 - "$work" "$ref" <<'PY'
import os, re, sys
w, ref = sys.argv[1], sys.argv[2]
def rps(v):
    f = f"{w}/wrk-{v}.txt"
    return float(re.search(r"Requests/sec:\s+([\d.]+)", open(f).read()).group(1)) if os.path.exists(f) else None
def half_p99(v, corrected=False):
    f = f"{w}/half-p99-{v}"
    if not os.path.exists(f): return None
    return float(open(f).read().split()[1 if corrected else 0])
r = {v: rps(v) for v in "abcdefghijkl"}
def rounds(v):
    f = f"{w}/rounds-{v}"
    return [float(x) for x in open(f).read().split()] if os.path.exists(f) else None
def ratio(name, x, y, target):
    if r[x] is None or r[y] is None:
        print(f"{name:<8} n/a (not measured)          [target: >= {target}]" if target else f"{name:<8} n/a")
        return
    # The median of the per-round ratios: both variants of a round ran back to back, so a
    # round's ratio is the least affected by the machine's speed changing between rounds.
    per = sorted(a / b for a, b in zip(rounds(x), rounds(y)))
    q = per[len(per) // 2]
    shown = " ".join(f"{p:.2f}" for p in (a / b for a, b in zip(rounds(x), rounds(y))))
    if target is None:
        print(f"{name:<8} {q:6.3f}   (rounds: {shown})")
    else:
        print(f"{name:<8} {q:6.3f}   [target: >= {target}]  {'PASS' if q >= target else 'MISS'}   (rounds: {shown})")
ratio("d/c", "d", "c", 0.9)
ratio("d/b", "d", "b", 0.5)
ratio("e/b", "e", "b", 0.35)
ratio("d/a", "d", "a", None)
ratio("c/b", "c", "b", None)
if r["f"] is not None:
    ratio("d/f", "d", "f", None)
if r["h"] is not None or r["i"] is not None:
    ratio("i/h", "i", "h", 0.8)
    ratio("i/d", "i", "d", None)
    hs = {v: float(open(f"{w}/hs-{v}").read()) for v in "hi" if os.path.exists(f"{w}/hs-{v}")}
    if len(hs) == 2:
        print(f"handshakes i/h {hs['i'] / hs['h']:6.3f}   ({hs['i']:.0f} against {hs['h']:.0f} new TLS connections per second)")
if r["j"] is not None:
    ratio("j/d", "j", "d", 0.97)
if r["k"] is not None:
    ratio("k/d", "k", "d", None)
if r["l"] is not None:
    ratio("l/d", "l", "d", None)
if r["g"] is not None:
    ratio("g/d", "g", "d", 0.5)
    f = f"{w}/syncs-g"
    if os.path.exists(f):
        print(f"audit syncs with always: {float(open(f).read()):.0f}/s during (g)'s runs (group commit: one sync per batch of answers)")
cpu = dict(kv.split("=") for kv in open(f"{w}/cpu-us").read().split()) if os.path.exists(f"{w}/cpu-us") else {}
if "c" in cpu and "d" in cpu:
    q = float(cpu["c"]) / float(cpu["d"])
    print(f"CPU c/d  {q:6.3f}   (bare Pingora's CPU per request over the pass-through's: d/c without the machine's speed changes; same 0.9 bar)")
for v, what in (("j", "rate limits"), ("k", "rate limits in Redis")):
    if "d" in cpu and v in cpu:
        q = float(cpu[v]) / float(cpu["d"])
        print(f"CPU {v}/d  {q:6.3f}   ({what}: CPU per proxied request over (d)'s; 1.03 = 3% more)")
if "d" in cpu and "f" in cpu:
    q = float(cpu["d"]) / float(cpu["f"])
    print(f"CPU d/f  {q:6.3f}   (this build's CPU per proxied request over the baseline build's; 1.02 = 2% more)")
for v, what in (("d", "pass-through runtime"), ("e", "execute runtime")):
    f = f"{w}/rss-{v}"
    if os.path.exists(f):
        mib = int(open(f).read()) / 1024
        print(f"peak RSS {what}: {mib:.1f} MiB   [target: < 64 MiB]  {'PASS' if mib < 64 else 'MISS'}")
    else:
        print(f"peak RSS {what}: n/a (not measured)   [target: < 64 MiB]")
pa, pr = half_p99("a"), half_p99(ref) if ref else None
if pa is not None and pr is not None:
    added = pr - pa
    corrected = half_p99(ref, True) - half_p99("a", True)
    if ref == "d":
        print(f"added p99 over direct at half load: {added:.3f} ms   [target: <= 1 ms]  {'PASS' if added <= 1 else 'MISS'}   (with latency correction: {corrected:.3f} ms)")
        pc = half_p99("c")
        if pc is not None:
            print(f"  for reference, a bare Pingora hop at the same rate adds {pc - pa:.3f} ms (corrected {half_p99('c', True) - half_p99('a', True):.3f} ms); the pass-through adds {pr - pc:+.3f} ms to it")
    else:
        print(f"added p99 over direct at half load: n/a for (d); bare pingora stand-in: {added:.3f} ms   [target for (d): <= 1 ms]")
else:
    print("added p99 over direct at half load: n/a (not measured)   [target: <= 1 ms]")
PY

if ((${#failed[@]})); then
  echo
  echo "did not work (${#failed[@]}):" >&2
  for f in "${failed[@]}"; do echo "  FAIL: $f" >&2; done
  exit 1
fi
