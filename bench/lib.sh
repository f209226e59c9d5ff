# Shared by the bench scripts (sourced, not run): a work directory removed on exit, the
# processes started into `pids` stopped on exit (TERM, then KILL after 2.5 s), a free
# loopback port, and waiting for an HTTP answer.
work=$(mktemp -d)
chmod 755 "$work" # nginx workers may run as another user when we are root
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url [seconds, default 10]: until anything answers
  for _ in $(seq $((${2:-10} * 20))); do curl -sk -o /dev/null "$1" && return 0; sleep 0.05; done
  return 1
}
# The `http` block lines every bench nginx shares: no access log, temp files in its dir.
nginx_http_common() { # dir
  cat <<EOF
  access_log off;
  client_body_temp_path $1/client_body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
EOF
}

# need_tools CMD[=PACKAGE]…: install (apt) the Debian packages of the commands not on PATH (nor
# in /usr/sbin); PACKAGE defaults to CMD. Builtins and keywords do not count (`time` is
# /usr/bin/time).
need_tools() {
  local missing=() t cmd
  for t in "$@"; do
    cmd=${t%%=*}
    type -P "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing+=("${t#*=}")
  done
  ((${#missing[@]})) || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "$0: installing ${missing[*]} (apt)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# nginx_conf NAME WORKERS HTTP-LINES: write $work/nginx-NAME/nginx.conf, an nginx with WORKERS
# workers whose `http` block has the shared lines, keep-alive for a million requests per
# connection and HTTP-LINES (its `server` and `upstream` blocks).
nginx_conf() {
  local d="$work/nginx-$1" user_line=""
  mkdir -p "$d"
  if [ "$(id -u)" -eq 0 ]; then user_line="user $(id -un) $(id -gn);"; fi
  cat > "$d/nginx.conf" <<EOF
$user_line
worker_processes $2;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_http_common "$d")
  keepalive_requests 1000000;
  $3
}
EOF
}

# start_hello_upstream: the benchmarks' upstream, an nginx (one worker) on a free loopback port
# answering GET /hello with {"ok":true}; sets `up_port` once it answers (exits if it does not).
start_hello_upstream() {
  up_port=$(free_port)
  local d="$work/nginx-hello"
  nginx_conf hello 1 "server { listen 127.0.0.1:$up_port; default_type application/json; location = /hello { return 200 '{\"ok\":true}'; } }"
  "$(command -v nginx || echo /usr/sbin/nginx)" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;' &
  pids+=($!)
  wait_http "http://127.0.0.1:$up_port/hello" || { cat "$d/error.log" >&2; echo "FAIL: the upstream nginx did not start" >&2; exit 1; }
}

# start_provider SCOPES: the test OpenID provider (product-tests/oidc, `scripts/deps` installs
# it) on a free port, granting SCOPES to its clients for the runtime's audience; sets `issuer`
# once it answers (exits if it does not).
start_provider() {
  local port
  port=$(free_port)
  issuer="http://127.0.0.1:$port"
  (cd product-tests/oidc && exec env PORT=$port SCOPES="$1" AUDIENCE=urn:open-cli:runtime node server.mjs > "$work/oidc.log" 2>&1) &
  pids+=($!)
  wait_http "$issuer/.well-known/openid-configuration" 20 || { cat "$work/oidc.log" >&2; echo "FAIL: the OpenID provider did not start" >&2; exit 1; }
}

# provider_token SCOPES: prints a client-credentials token of agent-1 with SCOPES from the
# provider of start_provider (exits if there is none).
provider_token() {
  curl -s -u agent-1:agent-1-secret -d grant_type=client_credentials --data-urlencode "scope=$1" "$issuer/token" \
    | python3 -c "import json,sys; print(json.load(sys.stdin)['access_token'])" \
    || { cat "$work/oidc.log" >&2; echo "FAIL: no token from the OpenID provider" >&2; exit 1; }
}

# write_bench_config: the pass-through benchmarks' runtime config, $work/bench.cli.json: the
# one-operation description bench/proxy.openapi.yaml (GET /hello, an API key) pointed at
# `up_port`, the key `bench-key`, and runtime auth by the provider of start_provider.
write_bench_config() {
  sed "s/UPSTREAM_PORT/$up_port/" bench/proxy.openapi.yaml > "$work/proxy.openapi.yaml"
  cat > "$work/bench.cli.json" <<JSON
{"cli": "1", "mode": {"default": "discover"},
 "sources": {"bench": {"type": "openapi", "uri": "proxy.openapi.yaml"}},
 "services": {"bench": {"source": "bench", "alias": "bench"}},
 "secrets": {"bench.apiKey": {"type": "literal", "value": "bench-key"}},
 "runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "issuer": "$issuer", "audience": "urn:open-cli:runtime"}}}}
JSON
}
