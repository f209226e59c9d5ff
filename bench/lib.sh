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

# start_hello_upstream: the benchmarks' upstream, an nginx (one worker) on a free loopback port
# answering GET /hello with {"ok":true}; sets `up_port` once it answers (exits if it does not).
start_hello_upstream() {
  up_port=$(free_port)
  local d="$work/nginx" user_line=""
  mkdir -p "$d"
  if [ "$(id -u)" -eq 0 ]; then user_line="user $(id -un) $(id -gn);"; fi
  cat > "$d/nginx.conf" <<NGX
$user_line
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_http_common "$d")
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$up_port; default_type application/json; location = /hello { return 200 '{"ok":true}'; } }
}
NGX
  "$(command -v nginx || echo /usr/sbin/nginx)" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;' &
  pids+=($!)
  wait_http "http://127.0.0.1:$up_port/hello" || { cat "$d/error.log" >&2; echo "FAIL: the upstream nginx did not start" >&2; exit 1; }
}
