#!/usr/bin/env bash
# Hosting model 1, loopback: one person's runtime on their own machine. The runtime listens on
# 127.0.0.1 only and asks for no token (nothing off the machine can reach it); the upstream API
# key is the runtime's secret, injected per call, never seen by the CLI or the agent.
#
#   deploy/examples/loopback/run.sh up [STATE_DIR]     start the demo API and the runtime
#   deploy/examples/loopback/run.sh down [STATE_DIR]   stop both
#
# The demo API's `whoami` needs a per-caller upstream token from a broker (see ../brokered), so
# it is denied here. STATE_DIR (default ./.open-cli-example) gets the config, logs, PIDs, the runtime's state and
# `env` (OPEN_CLI_RUNTIME_URL) for the CLI.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

up() {
  need_node
  local key api url
  key="demo-$(random)"
  api=$(API_KEYS="{\"$key\": \"me\"}" start_demo_api) || return 1
  cat >"$state/.cli.json" <<JSON
{
  "cli": "1.0.0",
  "mode": {"default": "discover"},
  "sources": {"demo": {"type": "openapi", "uri": "$api/openapi.json"}},
  "services": {"demo": {"source": "demo", "alias": "demo"}},
  "secrets": {"demo.apiKey": {"type": "env", "value": "DEMO_API_KEY"}},
  "policy": {"deny": ["demo:whoami"]},
  "runtime": {"mode": "remote", "server": {"documents": {"allowedOrigins": ["$api"]}}}
}
JSON
  url=$(DEMO_API_KEY=$key start_runtime "$state/.cli.json" --addr "127.0.0.1:${RUNTIME_PORT:-0}") || return 1
  echo "export OPEN_CLI_RUNTIME_URL=$url" >"$state/env"
  cat <<TEXT
loopback example up
  runtime   $url (127.0.0.1 only, no token)
  demo API  $api (its key is the runtime's secret DEMO_API_KEY)
try
  OPEN_CLI_RUNTIME_URL=$url open-cli catalog list
  OPEN_CLI_RUNTIME_URL=$url open-cli demo --help
stop
  $0 down $state
TEXT
}

main "$@"
