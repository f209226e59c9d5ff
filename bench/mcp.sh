#!/usr/bin/env bash
# MCP benchmark (issue 19): what `/mcp` costs, against the runtime's own execute route and
# against calling an MCP server directly; same load generator (wrk), one run, 127.0.0.1 only.
#
#   (e) execute     wrk → runtime POST /v1/tools/execute {"toolId":"bench:hello"} (auth on,
#                   RS256 JWT, X-Api-Key injected, audit) → upstream (nginx GET /hello)
#   (m) /mcp        wrk → runtime POST /mcp tools/call `bench__hello`, stateless 2026-07-28
#                   request (MCP-Protocol-Version, Mcp-Method, Mcp-Name, _meta), same token,
#                   same tool, same upstream
#   (x) direct MCP  wrk → server-everything (streamable HTTP, a session opened once) tools/call
#                   echo
#   (y) MCP to MCP  wrk → runtime POST /mcp tools/call `everything__echo` → the same
#                   server-everything (the runtime's long-lived session)
#   (s) stdio       one caller at a time: runtime POST /v1/tools/execute of server-everything's
#                   echo over stdio (one supervised process), p50; against the same server's
#                   own answer time over stdio with no runtime (a Python client on its pipes,
#                   p50 of the same call): "added p50" = s − own
#   (l) tools/list  one caller at a time: POST /mcp tools/list on a runtime whose catalog has
#                   1,000 tools (generated OpenAPI document), auth on, p50
#
# Targets: m ≥ 0.8 × e; y ≥ 0.7 × x; stdio added p50 < 1 ms; tools/list of 1,000 tools p50 < 5 ms.
# A MISS is reported, never fatal; the exit status is non-zero only when something did not work.
#
# Usage: bench/mcp.sh [seconds-per-run (default 10)] [connections (default 50)]
# Env:   ROUNDS=N (default 3, interleaved, median shown), THREADS=N (runtime threads, default
#        nproc), CARGO_TARGET_DIR respected. PERF=<variant> (e, m, y, …): instead of the
#        figures, profile the runtime under that variant with perf and print its top symbols
#        (PERF_TOP=N lines).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
rounds=${ROUNDS:-3}
threads=${THREADS:-$(nproc)}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

scripts/deps
# shellcheck source=bench/lib.sh
source bench/lib.sh
need_tools wrk nginx
cargo build --release --locked -p open-cli-proxy >/dev/null 2>&1 || cargo build --release --locked -p open-cli-proxy
rt_bin="$target_dir/release/open-cli-toolbox"

failed=()
fail() { echo "FAIL: $*" >&2; failed+=("$*"); }

# Upstream: nginx answering GET /hello.
start_hello_upstream

# server-everything over streamable HTTP.
ev_port=$(free_port)
everything=product-tests/mcp/node_modules/.bin/mcp-server-everything
PORT=$ev_port node --require ./product-tests/mcp/loopback.cjs "$everything" streamableHttp > "$work/everything.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$ev_port") 2>/dev/null && break; sleep 0.05; done
ev_url="http://127.0.0.1:$ev_port/mcp"

# An OpenID provider for the runtime's tokens.
start_provider "bundle:bench bundle:everything bundle:stdio bundle:big"
token=$(provider_token "bundle:bench bundle:everything bundle:stdio bundle:big")

sed "s/UPSTREAM_PORT/$up_port/" bench/proxy.openapi.yaml > "$work/proxy.openapi.yaml"
python3 - "$work" "$up_port" <<'PY'
import json, sys
w, port = sys.argv[1], sys.argv[2]
paths = {f"/op{i}": {"get": {"operationId": f"op{i}", "summary": f"Operation {i}",
          "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}],
          "responses": {"200": {"description": "ok"}}}} for i in range(1000)}
json.dump({"openapi": "3.0.3", "info": {"title": "big", "version": "1"},
           "servers": [{"url": f"http://127.0.0.1:{port}"}], "paths": paths}, open(f"{w}/big.openapi.json", "w"))
PY
node_bin=$(command -v node)
cat > "$work/bench.cli.json" <<JSON
{"cli": "1", "mode": {"default": "discover"},
 "sources": {"bench": {"type": "openapi", "uri": "proxy.openapi.yaml"},
             "everything": {"type": "mcp", "transport": {"type": "streamable-http", "url": "$ev_url"}},
             "stdio": {"type": "mcp", "transport": {"type": "stdio", "command": "$node_bin", "args": ["$PWD/$everything", "stdio"]}}},
 "services": {"bench": {"source": "bench", "alias": "bench"}, "everything": {"source": "everything", "alias": "everything"},
              "stdio": {"source": "stdio", "alias": "stdio"}},
 "secrets": {"bench.apiKey": {"type": "literal", "value": "bench-key"}},
 "runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "issuer": "$issuer", "audience": "urn:open-cli:runtime"}}}}
JSON
cat > "$work/big.cli.json" <<JSON
{"cli": "1", "mode": {"default": "discover"},
 "sources": {"big": {"type": "openapi", "uri": "big.openapi.json"}},
 "services": {"big": {"source": "big", "alias": "big"}},
 "runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "issuer": "$issuer", "audience": "urn:open-cli:runtime"}}}}
JSON
declare -A rt_pid=()
start_runtime() { # name config -> url in $rt_url
  "$rt_bin" --config "$2" --addr 127.0.0.1:0 --state-dir "$work/state-$1" --instance-id "$1" --threads "$threads" > /dev/null 2> "$work/runtime-$1.log" &
  pids+=($!)
  rt_pid[$1]=$!
  local rj="$work/state-$1/instances/$1/runtime.json"
  for _ in $(seq 600); do [ -f "$rj" ] && break; sleep 0.05; done
  [ -f "$rj" ] || { cat "$work/runtime-$1.log" >&2; echo "FAIL: runtime $1 did not start" >&2; exit 1; }
  rt_url=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$rj")
}
start_runtime main "$work/bench.cli.json"; rt=$rt_url
start_runtime big "$work/big.cli.json"; big=$rt_url

# A session on server-everything for (x).
sid=$(curl -s -D - -o /dev/null -X POST "$ev_url" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
  | awk 'tolower($1)=="mcp-session-id:" {print $2}' | tr -d '\r')
curl -s -o /dev/null -X POST "$ev_url" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -H "mcp-session-id: $sid" -H 'mcp-protocol-version: 2025-06-18' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'

lua() { # file method url-less body [extra headers as lua lines]
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
$3
LUA
}
meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
stateless() { # tool
  printf 'wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["MCP-Protocol-Version"] = "2026-07-28"\nwrk.headers["Mcp-Method"] = "tools/call"\nwrk.headers["Mcp-Name"] = "%s"' "$token" "$1"
}
lua "$work/e.lua" '{"toolId":"bench:hello"}' "wrk.headers[\"Authorization\"] = \"Bearer $token\""
lua "$work/m.lua" "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"bench__hello\",\"arguments\":{},$meta}}" "$(stateless bench__hello)"
lua "$work/x.lua" '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}' \
  "wrk.headers[\"mcp-session-id\"] = \"$sid\"
wrk.headers[\"mcp-protocol-version\"] = \"2025-06-18\""
lua "$work/y.lua" "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"everything__echo\",\"arguments\":{\"message\":\"hi\"},$meta}}" "$(stateless everything__echo)"
lua "$work/s.lua" '{"toolId":"stdio:echo","body":"eyJtZXNzYWdlIjoiaGkifQ=="}' "wrk.headers[\"Authorization\"] = \"Bearer $token\""
lua "$work/l.lua" "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{$meta}}" \
  "$(printf 'wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["MCP-Protocol-Version"] = "2026-07-28"\nwrk.headers["Mcp-Method"] = "tools/list"' "$token")"
declare -A url=([e]="$rt/v1/tools/execute" [m]="$rt/mcp" [x]="$ev_url" [y]="$rt/mcp" [s]="$rt/v1/tools/execute" [l]="$big/mcp")

# Sanity: each target answers what it should once.
check() { # variant needle
  local body
  body=$(wrk_body "$1")
  [[ $body == *"$2"* ]] || fail "($1) answered without \`$2\`: ${body:0:300}"
}
wrk_body() { # variant: one request made from its lua file's method, headers and body
  python3 - "$work/$1.lua" "${url[$1]}" <<'PY'
import re, sys, urllib.request
lua, url = open(sys.argv[1]).read(), sys.argv[2]
body = re.search(r"wrk.body = '(.*)'", lua).group(1).encode()
headers = dict(re.findall(r'wrk.headers\["([^"]+)"\] = "([^"]*)"', lua))
try:
    print(urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers)).read().decode())
except Exception as e:
    print(f"error: {e} {getattr(e, 'read', lambda: b'')().decode()}")
PY
}
check e '"ok":true'
check m '\"ok\":true'
check x 'Echo: hi'
check y 'Echo: hi'
check s 'Echo: hi'
check l 'big__op999'

run() { # variant conns secs out
  wrk -t1 -c"$2" -d"$3"s --latency -s "$work/$1.lua" "${url[$1]}" > "$4"
}
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p50() { awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

if [ -n "${PERF:-}" ]; then
  # Where the runtime's time goes under one variant: perf (call graphs) on the runtime
  # serving it, the top symbols printed; no figures.
  pid=${rt_pid[main]}
  [ "$PERF" = l ] && pid=${rt_pid[big]}
  run "$PERF" "$conns" 1 /dev/null
  # shellcheck disable=SC2086 # PERF_RECORD is a list of perf options
  perf record -q ${PERF_RECORD:--F 1999 -g} -p "$pid" -o "$work/perf.data" -- sleep "$secs" 2>/dev/null &
  perf_pid=$!
  run "$PERF" "$conns" "$secs" "$work/perf-wrk.txt"
  wait "$perf_pid" || true
  echo "($PERF) $(rps "$work/perf-wrk.txt") req/s under perf; top symbols (self time):"
  perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -"${PERF_TOP:-60}" || true
  # PERF_SYMBOL=<name>: who calls it (with PERF_RECORD="--call-graph dwarf -F 499").
  if [ -n "${PERF_SYMBOL:-}" ]; then
    perf report -i "$work/perf.data" --no-children --stdio -S "$PERF_SYMBOL" -G 2>/dev/null | grep -v '^$' | head -"${PERF_TOP:-60}" || true
  fi
  exit 0
fi
echo "wrk -t1 -c$conns -d${secs}s --latency, $rounds interleaved rounds (median); runtime: $threads threads; $(nproc) shared cores"
for v in e m x y; do run "$v" "$conns" 1 /dev/null; done
declare -A r=()
for round in $(seq "$rounds"); do
  for v in e m x y; do
    run "$v" "$conns" "$secs" "$work/$v-$round.txt"
    r[$v]="${r[$v]:-} $(rps "$work/$v-$round.txt")"
  done
done
declare -A med=()
for v in e m x y; do
  med[$v]=$(tr ' ' '\n' <<<"${r[$v]}" | grep . | median)
  printf '  (%s) %-14s %10s req/s   p50 %s ms\n' "$v" "$(case $v in e) echo execute;; m) echo /mcp;; x) echo 'direct MCP';; y) echo 'MCP to MCP';; esac)" "${med[$v]}" "$(p50 "$work/$v-$rounds.txt")"
done

# One caller at a time: stdio added latency and tools/list of 1,000 tools.
run s 1 "$secs" "$work/s.txt"
run l 1 "$secs" "$work/l.txt"
own=$(python3 - "$PWD/$everything" <<'PY'
import json, subprocess, sys, time
p = subprocess.Popen(["node", sys.argv[1], "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
def send(m): p.stdin.write((json.dumps(m) + "\n").encode()); p.stdin.flush()
def answer(i):
    while True:
        m = json.loads(p.stdout.readline())
        if m.get("id") == i: return m
send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}})
answer(0)
send({"jsonrpc": "2.0", "method": "notifications/initialized"})
times = []
for i in range(1, 2001):
    t = time.perf_counter()
    send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}})
    answer(i)
    times.append(time.perf_counter() - t)
p.kill()
times.sort()
print(f"{times[len(times)//2]*1000:.3f}")
PY
)
s50=$(p50 "$work/s.txt")
l50=$(p50 "$work/l.txt")
printf '  (s) stdio echo via execute, 1 caller: p50 %s ms; the server over its own pipes: p50 %s ms\n' "$s50" "$own"
printf '  (l) tools/list, 1,000 tools, 1 caller: p50 %s ms (%s req/s)\n' "$l50" "$(rps "$work/l.txt")"

verdict() { if python3 -c "import sys; sys.exit(0 if $1 else 1)"; then echo ok; else echo MISS; fi; }
m_e=$(python3 -c "print(f'{${med[m]}/${med[e]}:.3f}')")
y_x=$(python3 -c "print(f'{${med[y]}/${med[x]}:.3f}')")
added=$(python3 -c "print(f'{$s50-$own:.3f}')")
echo "targets:"
echo "  /mcp vs execute      m/e = $m_e   (>= 0.8)  $(verdict "$m_e >= 0.8")"
echo "  MCP to MCP vs direct y/x = $y_x   (>= 0.7)  $(verdict "$y_x >= 0.7")"
echo "  stdio added p50      $added ms   (< 1 ms, includes the runtime's HTTP, JWT check and audit)  $(verdict "$added < 1")"
echo "  tools/list 1,000 p50 $l50 ms   (< 5 ms)  $(verdict "$l50 < 5")"
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
