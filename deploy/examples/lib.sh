# Shared by the hosting-model examples (deploy/examples/*/run.sh): start processes in the
# background with their logs and PIDs in a state directory, wait until they are ready, and stop
# every one of them again. Sourced, not run.
#
# Binaries: $OPEN_CLI_BIN_DIR, else the newer of this checkout's target/release and
# target/debug builds, else PATH.
# Node packages: deploy/examples/delegation-broker/node_modules (`npm ci` there, or
# scripts/deps).

examples_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$examples_dir/../.." && pwd)
broker_dir="$examples_dir/delegation-broker"

die() { echo "error: $*" >&2; exit 1; }

# The path of binary $1.
bin() {
  if [ -n "${OPEN_CLI_BIN_DIR:-}" ]; then
    [ -x "$OPEN_CLI_BIN_DIR/$1" ] || die "$OPEN_CLI_BIN_DIR/$1 is missing"
    echo "$OPEN_CLI_BIN_DIR/$1"
    return
  fi
  local release="$repo_dir/target/release/$1" debug="$repo_dir/target/debug/$1"
  if [ -x "$release" ] && { [ ! -x "$debug" ] || [ "$release" -nt "$debug" ]; }; then
    echo "$release"
  elif [ -x "$debug" ]; then
    echo "$debug"
  else
    command -v "$1" || die "$1 not found: build it (cargo build --release) or set OPEN_CLI_BIN_DIR"
  fi
}

need_node() {
  command -v node >/dev/null || die "node is required (apt-get install nodejs npm)"
  [ -d "$broker_dir/node_modules/oidc-provider" ] ||
    die "the broker's packages are missing: (cd $broker_dir && npm ci)"
}

# A random secret (hex), made per run.
random() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# A free TCP port on 127.0.0.1 (for servers that must know their own URL before they start).
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# start NAME CMD…: run CMD in its own process group, output in $state/NAME.log, PID in
# $state/NAME.pid. Environment variables for CMD go in front, as `env K=V … CMD`.
start() {
  local name=$1; shift
  setsid "$@" >"$state/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/$name.pid"
}

# wait_until DESCRIPTION COMMAND…: poll COMMAND every 0.1 s for at most 30 s.
wait_until() {
  local what=$1; shift
  local deadline=$((SECONDS + 30))
  until "$@" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "error: timed out waiting for $what" >&2; return 1; }
    sleep 0.1
  done
}

# The rest of the first line of $state/NAME.log that starts with PREFIX, once it is there.
line_after() {
  local name=$1 prefix=$2
  wait_until "$name to print '$prefix'" grep -q "^$prefix" "$state/$name.log" ||
    { cat "$state/$name.log" >&2; return 1; }
  sed -n "s|^$prefix||p" "$state/$name.log" | head -n 1
}

http_ok() { "$(bin open-cli-toolbox)" probe --url "$1"; }

# start_runtime CONFIG [ARGS…]: open-cli-toolbox with its state in $state/runtime; prints its URL
# once /readyz answers.
start_runtime() {
  local config=$1; shift
  start runtime "$(bin open-cli-toolbox)" --config "$config" --state-dir "$state/runtime" \
    --instance-id example "$@"
  local json="$state/runtime/instances/example/runtime.json"
  wait_until "the runtime to write runtime.json" test -s "$json" || { cat "$state/runtime.log" >&2; return 1; }
  local url
  url=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).url)' "$json")
  wait_until "the runtime to be ready" http_ok "$url/readyz" || { cat "$state/runtime.log" >&2; return 1; }
  echo "$url"
}

# The demo upstream (delegation-broker/demo-api.mjs) on a port of its own; prints its URL.
# Env: ISSUER (whose tokens /whoami accepts), API_KEYS.
start_demo_api() {
  start demo-api env PORT=0 ISSUER="${ISSUER:-http://127.0.0.1:9}" AUDIENCE=urn:demo-api \
    API_KEYS="${API_KEYS:-{\}}" node "$broker_dir/demo-api.mjs"
  line_after demo-api "listening on "
}

# The OpenID provider and broker (delegation-broker/broker.mjs) on PORT; prints its issuer.
# Env: SCOPES, UPSTREAMS.
start_broker() {
  local port
  port=$(free_port)
  start broker env PORT="$port" SCOPES="${SCOPES:-}" UPSTREAMS="${UPSTREAMS:-{\}}" \
    node "$broker_dir/broker.mjs"
  line_after broker "listening on "
}

# Stop every process this example started (SIGTERM to each process group, then SIGKILL after
# 10 s), and forget them.
stop_all() {
  local f pid deadline
  for f in "$state"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$state"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

# Common entry: run.sh up|down [STATE_DIR]. `up` calls the example's `up` function; a failed
# start stops what was started.
main() {
  local cmd=${1:-}
  state=${2:-${OPEN_CLI_EXAMPLE_STATE:-$PWD/.open-cli-example}}
  case "$cmd" in
    up)
      mkdir -p "$state"
      state=$(cd "$state" && pwd)
      [ -z "$(ls "$state"/*.pid 2>/dev/null)" ] || die "already up in $state (run.sh down $state first)"
      if ! up; then stop_all; die "the example did not start; logs in $state"; fi
      ;;
    down)
      [ -d "$state" ] || die "nothing is running from $state"
      state=$(cd "$state" && pwd)
      stop_all
      echo "stopped; logs and state are left in $state"
      ;;
    *) echo "usage: $0 up|down [STATE_DIR]" >&2; exit 2 ;;
  esac
}
