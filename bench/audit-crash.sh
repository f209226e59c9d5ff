#!/usr/bin/env bash
# How much audit does a crash lose? (issue 15, item 11)
#
# Starts the demo upstream and the runtime on config/examples/quickstart.cli.json, drives
# pass-through calls (`GET /proxy/demo/items`, each with its own X-Request-ID) from CONNS
# keep-alive connections, kills the runtime with SIGKILL mid-load, and compares the calls the
# clients saw answered with the records in the audit log. Reports, per run:
#   answered  calls answered with 200 before the kill;
#   lost      answered calls with no audit record;
#   window    kill time minus the answer time of the earliest lost call (ms): how much
#             answered traffic a crash can lose.
# A lost call never has an answer newer than the kill, so `window` is an upper bound measured
# from the client's side (it includes the time the answer spent on the loopback).
#
# Usage: bench/audit-crash.sh [runs=3] [seconds-before-kill=3] [connections=16]
# Env:   PROFILE=debug|release (default debug; binaries from $CARGO_TARGET_DIR or target/)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-3}
conns=${3:-16}
profile=${PROFILE:-debug}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
if [ "$profile" = release ]; then
  cargo build --locked --release -p open-cli-proxy -p open-cli-testapi
else
  cargo build --locked -p open-cli-proxy -p open-cli-testapi
fi
bin="$target_dir/$profile"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url deadline-seconds
  local end=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < end)) || { echo "error: $1 did not answer within $2 s" >&2; exit 1; }
    sleep 0.05
  done
}

up_port=8780 # the quickstart config names this upstream address
"$bin/open-cli-testapi" --addr 127.0.0.1:$up_port >"$work/upstream.log" 2>&1 &
up=$!
disown "$up"
pids+=("$up")
wait_http "http://127.0.0.1:$up_port/items" 20
export DEMO_API_KEY=demo-key DEMO_BASIC_CREDENTIALS=demo:secret

for run in $(seq "$runs"); do
  port=$(free_port)
  audit="$work/audit-$run.log"
  "$bin/open-cli-toolbox" --config config/examples/quickstart.cli.json --addr "127.0.0.1:$port" \
    --state-dir "$work/state" --instance-id "crash-$run" --audit-path "$audit" \
    >"$work/runtime-$run.log" 2>&1 &
  rt=$!
  disown "$rt" # its SIGKILL is the point: no job report
  pids+=("$rt")
  wait_http "http://127.0.0.1:$port/readyz" 30
  python3 - "$port" "$rt" "$secs" "$conns" "$audit" "$run" <<'PY'
import http.client, json, os, signal, sys, threading, time
port, pid, secs, conns, audit, run = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
answered = {}  # request id -> monotonic answer time
lock = threading.Lock()
stop = threading.Event()
def client(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    i = 0
    while not stop.is_set():
        rid = f"crash-{run}-{n}-{i}"
        i += 1
        try:
            c.request("GET", "/proxy/demo/items", headers={"X-Request-ID": rid})
            r = c.getresponse()
            r.read()
            t = time.monotonic()
        except Exception:
            return
        if r.status == 200:
            with lock:
                answered[rid] = t
threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(conns)]
for t in threads:
    t.start()
time.sleep(secs)  # the load phase's length, not synchronisation
killed = time.monotonic()
os.kill(pid, signal.SIGKILL)
stop.set()
for t in threads:
    t.join(10)
with lock:
    seen = {k: v for k, v in answered.items() if v <= killed}
recorded = set()
with open(audit, encoding="utf-8") as f:
    for line in f:
        try:
            recorded.add(json.loads(line).get("requestId"))
        except ValueError:
            print(f"run {run}: torn audit line: {line[:80]!r}")
lost = {k: v for k, v in seen.items() if k not in recorded}
window = (killed - min(lost.values())) * 1000 if lost else 0.0
rate = len(seen) / secs
print(f"run {run}: answered {len(seen)} ({rate:.0f}/s), recorded {len(recorded)}, lost {len(lost)}, window {window:.1f} ms")
PY
done
