#!/usr/bin/env bash
# The audit query over a large log (issue 17, item 3): one million lines in rotated files
# (five gzip, four plain) and the live file, spread over ten days; the runtime (release build)
# answers `GET /v1/audit/events` on it. Reports, per query, the median and max time to the
# first page over REPEAT calls (curl's time_total, loopback) and the query's extra memory:
# the runtime's peak RSS during the queries minus its RSS before them (the peak is reset
# through /proc/<pid>/clear_refs first).
# Target: the `since`/`toolId` first page in < 200 ms and < 32 MiB extra memory.
#
# Usage: bench/audit-query.sh [lines=1000000] [repeat=5]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
repeat=${2:-5}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --locked --release -p open-cli-proxy
. bench/lib.sh

python3 - "$work" "$lines" <<'PY'
import gzip, json, sys, datetime
work, n = sys.argv[1], int(sys.argv[2])
files = 10
per = n // files
start = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)
span = datetime.timedelta(days=10)
def ts(i):
    t = start + span * i / n
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
def line(i):
    tool = "github:rare" if i % 1000 == 0 else f"github:op{i % 97}"
    return json.dumps({
        "timestamp": ts(i), "eventType": "tool_execution", "toolId": tool,
        "serviceId": "github", "targetBaseUrl": "https://api.github.com", "method": "GET",
        "path": "/repos/{owner}/{repo}/issues", "upstreamPath": "/repos/acme/widgets/issues",
        "principal": f"user{i % 50}@example.com", "decision": "allowed",
        "reasonCode": "allowed", "authScheme": "bearer", "responseSize": 5120 + i % 700,
        "statusCode": 200, "latencyMs": 20 + i % 50, "requestId": f"req-{i:08d}",
        "channel": "execute" if i % 3 else "passthrough"}, separators=(",", ":")) + "\n"
for f in range(files):
    lo, hi = f * per, (n if f == files - 1 else (f + 1) * per)
    text = "".join(line(i) for i in range(lo, hi)).encode()
    if f == files - 1:
        name = f"{work}/audit.log"
    else:
        closed = start + span * hi / n
        name = f"{work}/audit.log.{closed.strftime('%Y%m%dT%H%M%SZ')}-000"
    if f < 5:
        with gzip.open(name + ".gz", "wb", compresslevel=1) as g:
            g.write(text)
    else:
        with open(name, "wb") as o:
            o.write(text)
print(f"{n} lines: 5 gzip files, 4 plain rotated files, the live file")
PY
du -sh "$work" | awk '{print "on disk: " $1}'

port=$(free_port)
"$target_dir/release/open-cli-toolbox" --config config/examples/quickstart.cli.json \
  --addr "127.0.0.1:$port" --state-dir "$work/state" --instance-id bench \
  --audit-path "$work/audit.log" >"$work/runtime.log" 2>&1 &
rt=$!
pids+=("$rt")
wait_http "http://127.0.0.1:$port/readyz" 30 || { cat "$work/runtime.log"; exit 1; }

rss_kib() { awk "/^$1:/ {print \$2}" "/proc/$rt/status"; }
query() { # label query
  local label=$1 q=$2 times=() peak base
  base=$(rss_kib VmRSS)
  echo 5 >"/proc/$rt/clear_refs"
  for _ in $(seq "$repeat"); do
    times+=("$(curl -sS -o "$work/out.json" -w '%{time_total}' "http://127.0.0.1:$port/v1/audit/events?$q")")
  done
  peak=$(rss_kib VmHWM)
  python3 - "$label" "$q" "$work/out.json" "$base" "$peak" "${times[@]}" <<'PY'
import json, statistics, sys
label, q, out, base, peak, *times = sys.argv[1:]
times = sorted(float(t) * 1000 for t in times)
page = json.load(open(out))
n = len(page["events"]) if isinstance(page, dict) else len(page)
extra = max(0, int(peak) - int(base)) / 1024
print(f"{label:<34} {statistics.median(times):7.1f} ms median {times[-1]:7.1f} ms max  {n:4d} events  +{extra:5.1f} MiB   ?{q}")
PY
}
echo "query                              time to the first page      page  extra memory"
query "since (last day) + toolId" "since=2026-11-29T00:00:00Z&toolId=github:op5&limit=100"
query "since (first day) + toolId" "since=2026-11-21T00:00:00Z&toolId=github:op5&limit=100"
query "since + rare toolId (1 in 1000)" "since=2026-11-21T00:00:00Z&toolId=github:rare&limit=100"
query "newest first, toolId" "order=newest&toolId=github:op5&limit=100"
query "newest first, rare toolId" "order=newest&toolId=github:rare&limit=100"
query "newest 1000, no filter" "order=newest&limit=1000"
query "one requestId (whole log scanned)" "requestId=req-00000042"
