#!/usr/bin/env bash
# Idle keep-alive connections (issue 15, item 7): what an idle client connection costs the
# runtime, against nginx, and whether the memory comes back when the connections close.
#
# For each server: start it, make one request (warm-up) and read its RSS; open N connections
# (default 2,000), make one request on each and keep them all open, idle; read the RSS again;
# close them all, wait until the server has closed its side, read the RSS a third time.
# Reports the RSS per idle connection ((open - before) / N) and how much of it was returned
# after the close ((open - after) / (open - before)).
#
#   nginx    worker_processes THREADS, `return 200` for GET /hello (nginx's keep-alive
#            connections cost it about 0.5 KiB each: its reference point)
#   runtime  --threads THREADS, GET /readyz answered locally (no upstream involved)
#
# RSS is VmRSS from /proc (for nginx the sum of master and workers). The client is one
# Python process, on the same machine (127.0.0.1 only).
#
# Usage: bench/idle-connections.sh [connections (default 2000)]
# Env:   THREADS=N          server threads/workers (default: nproc)
#        PROFILE=debug      use target/debug/open-cli-toolbox (built with `cargo build`)
#                           instead of a release build
#        CARGO_TARGET_DIR   respected
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
threads=${THREADS:-$(nproc)}
profile=${PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "error: connections must be a positive number, got '$n'" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source bench/lib.sh
need_tools nginx
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$profile" = release ]; then
  cargo build --release --locked -p open-cli-proxy >/dev/null 2>&1 || cargo build --release --locked -p open-cli-proxy
fi
rt_bin="$target_dir/$profile/open-cli-toolbox"
[ -x "$rt_bin" ] || { echo "error: $rt_bin not found (build it first)" >&2; exit 1; }
# Each connection needs a descriptor in the client and one in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The client: N keep-alive connections, one request each, held open, then closed; the
# server's RSS (summed over the given pids and their children) at each step, as one line.
cat > "$work/idle.py" <<'PY'
import os, socket, sys, time
host, port, path, n, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def pids():
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out

def rss_kib():
    total = 0
    for p in pids():
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total

def server_conns():
    # Established connections whose local port is the server's (its side of each).
    hexport = f"{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(":" + hexport) and fields[3] == "01":
                        count += 1
        except OSError:
            pass
    return count

request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

def one(s):
    s.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("the server closed a connection before answering")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        body += s.recv(65536)
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise SystemExit(f"status {status.decode()} for GET {path}")

def settle():
    # RSS after the server went quiet: two equal readings 200 ms apart.
    last = rss_kib()
    for _ in range(50):
        time.sleep(0.2)
        now = rss_kib()
        if now == last:
            return now
        last = now
    return last

warm = socket.create_connection((host, port))
one(warm)
warm.close()
time.sleep(0.5)
before = settle()
conns = []
for _ in range(n):
    s = socket.create_connection((host, port))
    one(s)
    conns.append(s)
open_ = settle()
still = server_conns()
for s in conns:
    s.close()
deadline = time.time() + 30
while server_conns() > 0 and time.time() < deadline:
    time.sleep(0.1)
# Allocators return memory after a delay (the runtime: within about 2 s, see
# proxy/src/gateway/conn.rs `return_freed_memory`).
time.sleep(3.0)
after = settle()
# Then some traffic (200 requests over about 2 s, one connection each), as a live server
# sees: allocators often return freed memory on later allocation work.
for _ in range(200):
    s = socket.create_connection((host, port))
    one(s)
    s.close()
    time.sleep(0.01)
time.sleep(0.5)
later = settle()
grown = open_ - before
released = 100.0 * (open_ - after) / grown if grown > 0 else 100.0
released_later = 100.0 * (open_ - later) / grown if grown > 0 else 100.0
print(f"{before} {open_} {after} {grown / n:.2f} {released:.0f} {still} {later} {released_later:.0f}")
PY

results=()
measure() { # name url-host port path pid
  local line
  line=$(python3 "$work/idle.py" 127.0.0.1 "$2" "$3" "$n" "$4") || { echo "FAIL: $1: the client failed" >&2; exit 1; }
  read -r before open after per released held later released_later <<< "$line"
  results+=("$(printf '%-8s %10s %10s %10s %14s %9s%% %10s %9s%% %6s' "$1" "$before" "$open" "$after" "$per" "$released" "$later" "$released_later" "$held")")
}

# ---- nginx --------------------------------------------------------------------------------
user_line=""
if [ "$(id -u)" -eq 0 ]; then user_line="user $(id -un) $(id -gn);"; fi
ngx_port=$(free_port)
d="$work/nginx"
mkdir -p "$d"
cat > "$d/nginx.conf" <<EOF
$user_line
worker_processes $threads;
worker_rlimit_nofile $((n * 2 + 1024));
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $((n + 1024)); }
http {
$(nginx_http_common "$d")
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$ngx_port;
    default_type application/json;
    location = /hello { return 200 '{"ok":true}'; }
  }
}
EOF
"$nginx_bin" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;' 2>> "$d/error.log" &
ngx_pid=$!
pids+=("$ngx_pid")
wait_http "http://127.0.0.1:$ngx_port/hello" 15 || { cat "$d/error.log" >&2; echo "FAIL: nginx did not start" >&2; exit 1; }
measure nginx "$ngx_port" /hello "$ngx_pid"
kill "$ngx_pid"

# ---- runtime ------------------------------------------------------------------------------
# A catalog with one operation on an upstream that is never called (/readyz is answered
# locally).
sed "s/UPSTREAM_PORT/9/" bench/proxy.openapi.yaml > "$work/proxy.openapi.yaml"
cat > "$work/bench.cli.json" <<JSON
{"cli": "1", "mode": {"default": "discover"},
 "sources": {"bench": {"type": "openapi", "uri": "proxy.openapi.yaml"}},
 "services": {"bench": {"source": "bench", "alias": "bench"}}}
JSON
rt_port=$(free_port)
"$rt_bin" --config "$work/bench.cli.json" --addr "127.0.0.1:$rt_port" --state-dir "$work/state" --instance-id idle \
  --threads "$threads" --idle-timeout-seconds 300 --max-connections "$((n + 100))" > /dev/null 2> "$work/runtime.log" &
rt_pid=$!
pids+=("$rt_pid")
wait_http "http://127.0.0.1:$rt_port/readyz" 15 || { cat "$work/runtime.log" >&2; echo "FAIL: the runtime did not start" >&2; exit 1; }
measure runtime "$rt_port" /readyz "$rt_pid"

echo "idle keep-alive connections: $n, server threads/workers: $threads, runtime build: $profile"
printf '%-8s %10s %10s %10s %14s %10s %10s %10s %6s\n' server "before KiB" "open KiB" "after KiB" "KiB/idle conn" "returned" "+traffic" "returned" "held"
for r in "${results[@]}"; do echo "$r"; done
echo "(before: after one warm-up request; open: with all $n connections idle after one request"
echo " each; after: once the server closed them; returned: share of the growth given back;"
echo " +traffic: after 200 more requests over about 2 s; held: connections the server held"
echo " open at the 'open' reading)"
