#!/usr/bin/env bash
# CLI benchmark (issue 20): what a developer waits for at the terminal, against the GitHub REST
# description (npm @octokit/openapi, 1,223 tools, fetched here, never committed) served by a
# local runtime (no auth, loopback).
#
#   help        open-cli github --help
#   complete    one <TAB>: COMPLETE=bash open-cli -- open-cli github rep
#   dry-run     open-cli github repos get octocat hello-world --dry-run
#
# Each cold (no catalog cache: the whole view is downloaded and decoded) and warm (the cached
# view revalidated: one request answered 304), as whole-process wall time (p50, min, max of N
# runs) and peak RSS (GNU time), one run after another.
# Targets: warm p50 < 50 ms and < 30 MiB; cold p50 within 3x warm.
# restish (for `--help` on the same description) is reported only if a `restish` binary is
# on PATH: it is a Go module, and its dependencies come from the Go module proxy, which is
# not among the registries this machine reaches (crates.io, PyPI, Debian, npm); Debian's Go
# toolchain alone cannot build it.
# A MISS is reported, never fatal.
#
# Usage: bench/cli.sh [runs per figure (default 15)]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
pkg="@octokit/openapi@23.0.2"
spec_dir="$PWD/target/bench/catalog-scale" # shared with bench/catalog-scale.sh
mkdir -p "$spec_dir"

scripts/deps
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
spec="$spec_dir/package/generated/api.github.com.json"
if [ ! -f "$spec" ]; then
  (cd "$spec_dir" && npm pack --silent "$pkg" >/dev/null && tar xzf octokit-openapi-*.tgz)
fi
cargo build --release --locked -p open-cli-proxy -p open-cli >/dev/null 2>&1 || cargo build --release --locked -p open-cli-proxy -p open-cli
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
rt_bin="$target_dir/release/open-cli-toolbox"
cli_bin="$target_dir/release/open-cli"

# shellcheck source=bench/lib.sh
source bench/lib.sh
# Local documents must sit under the config's directory (docs/security.md).
cp "$spec" "$work/github.json"
cat > "$work/github.cli.json" <<JSON
{"cli": "1.0.0", "mode": {"default": "discover"},
 "sources": {"github": {"type": "openapi", "uri": "github.json"}},
 "services": {"github": {"source": "github"}}}
JSON
"$rt_bin" --config "$work/github.cli.json" --addr 127.0.0.1:0 --state-dir "$work/state" --instance-id bench > /dev/null 2> "$work/runtime.log" &
pids+=($!)
rj="$work/state/instances/bench/runtime.json"
for _ in $(seq 1200); do [ -f "$rj" ] && break; sleep 0.05; done
[ -f "$rj" ] || { cat "$work/runtime.log" >&2; echo "FAIL: the runtime did not start" >&2; exit 1; }
url=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$rj")
wait_http "$url/readyz" 60

python3 - "$cli_bin" "$url" "$work" "$runs" <<'PY'
import os, shutil, statistics, subprocess, sys, time
cli, url, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cache = os.path.join(work, "cache")
base_env = dict(os.environ, OPEN_CLI_RUNTIME_URL=url, OPEN_CLI_CACHE_DIR=cache, NO_COLOR="1")
cases = {
    "help": ([cli, "github", "--help"], {}),
    "complete": ([cli, "--", "open-cli", "github", "rep"],
                 {"COMPLETE": "bash", "_CLAP_COMPLETE_INDEX": "2", "_CLAP_COMPLETE_COMP_TYPE": "9",
                  "_CLAP_COMPLETE_SPACE": "true", "_CLAP_IFS": "\v"}),
    "dry-run": ([cli, "github", "repos", "get", "octocat", "hello-world", "--dry-run", "--format", "json"], {}),
}
def once(argv, env):
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, env=env, capture_output=True)
    wall = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} exited {p.returncode}: {p.stderr.decode()[-500:]}")
    rss = int(p.stderr.decode().strip().splitlines()[-1]) / 1024
    return wall, rss, p.stdout
def measure(argv, extra, cold):
    walls, rsss = [], []
    env = dict(base_env, **extra)
    if not cold:
        once(argv, env)  # fill the cache
    for _ in range(runs):
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        w, r, out = once(argv, env)
        walls.append(w); rsss.append(r)
    return walls, rsss, out
print(f"open-cli against {url} (GitHub REST, 1,223 tools); {runs} runs per figure, {os.cpu_count()} cores")
print(f"{'':10} {'':5} {'p50 ms':>8} {'min':>7} {'max':>7} {'peak RSS MiB':>13}")
misses = []
for name, (argv, extra) in cases.items():
    p50 = {}
    for cold in (True, False):
        walls, rsss, out = measure(argv, extra, cold)
        kind = "cold" if cold else "warm"
        p50[kind] = statistics.median(walls)
        print(f"{name:10} {kind:5} {p50[kind]:8.1f} {min(walls):7.1f} {max(walls):7.1f} {max(rsss):13.1f}")
        if not cold:
            if p50[kind] >= 50: misses.append(f"{name} warm p50 {p50[kind]:.1f} ms >= 50 ms")
            if max(rsss) >= 30: misses.append(f"{name} warm peak RSS {max(rsss):.1f} MiB >= 30 MiB")
    ratio = p50["cold"] / p50["warm"]
    print(f"{'':10} cold/warm = {ratio:.2f}")
    if ratio > 3: misses.append(f"{name} cold/warm {ratio:.2f} > 3")
    if name == "complete" and b"repos" not in out:
        sys.exit(f"FAIL: the completion did not offer `repos`: {out[:300]!r}")
restish = shutil.which("restish")
if restish:
    print(f"restish on PATH ({restish}): not configured for this description here; compare by hand")
else:
    print("restish: not measured (its Go module dependencies come from proxy.golang.org, which this machine cannot reach)")
print("targets: warm p50 < 50 ms, warm peak RSS < 30 MiB, cold p50 <= 3x warm:",
      "ok" if not misses else "MISS: " + "; ".join(misses))
PY
