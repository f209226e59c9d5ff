#!/usr/bin/env bash
# Catalog build of a `$ref` DAG document (issue 15 item 2): `S{i}.properties.p0..p3 → S{i+1}`,
# fan-out 4, depth 20 (4.7 KB). Inlined naively this is 4^20 copies of the last schema; the
# build shares repeated subschemas (`$defs`). Reports `validate` wall time and peak RSS.
# Usage: bench/dag-build.sh [depth (default 20)] [binary (default target/release/open-cli-toolbox)]
set -euo pipefail
cd "$(dirname "$0")/.."
depth=${1:-20}
bin=${2:-$PWD/target/release/open-cli-toolbox}
work="$PWD/target/bench/dag-build"
mkdir -p "$work"
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [ "$bin" = "$PWD/target/release/open-cli-toolbox" ]; then
  cargo build --release --locked -p open-cli-proxy >/dev/null 2>&1 || cargo build --release --locked -p open-cli-proxy
fi
python3 - "$depth" "$work/dag.openapi.json" <<'PY'
import json, sys
depth, out = int(sys.argv[1]), sys.argv[2]
s = {f"S{i}": {"type": "object", "properties": {f"p{k}": {"$ref": f"#/components/schemas/S{i+1}"} for k in range(4)}} for i in range(depth)}
s[f"S{depth}"] = {"type": "string"}
doc = {"openapi": "3.1.0", "info": {"title": "DAG", "version": "1"}, "servers": [{"url": "http://127.0.0.1:9/"}],
       "paths": {"/dag": {"post": {"operationId": "postDag", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}, "responses": {"200": {"description": "ok"}}}}},
       "components": {"schemas": s}}
json.dump(doc, open(out, "w"), separators=(",", ":"))
PY
cat > "$work/.cli.json" <<'JSON'
{"cli": "1.0.0", "mode": {"default": "discover"},
 "sources": {"dag": {"type": "openapi", "uri": "dag.openapi.json"}},
 "services": {"dag": {"source": "dag"}}}
JSON
echo "document: depth $depth, $(wc -c < "$work/dag.openapi.json") bytes"
OPEN_CLI_MANAGED_CONFIG=/nonexistent XDG_CONFIG_HOME="$work" \
  /usr/bin/time -f "validate: %e s wall, peak RSS %M KiB, exit %x" \
  "$bin" validate --config "$work/.cli.json" 2>&1 >/dev/null | tail -1
