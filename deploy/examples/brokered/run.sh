#!/usr/bin/env bash
# Hosting model 3, brokered enterprise: the runtime trusts the enterprise's OpenID provider,
# which is also a token broker (../delegation-broker, RFC 8693 token exchange):
# - each caller reaches the upstream as itself: the runtime exchanges the caller's runtime token
#   at the broker for the caller's own upstream token (`oauth2` secret, `mode: tokenExchange`),
#   and an API that only takes keys gets each caller's own key (`byPrincipal` secret);
# - an agent hands a sub-agent a narrower, short-lived child token (`open-cli auth delegate`);
#   the runtime audits every call of the child with its lineage (actor, delegatedBy,
#   delegationId).
#
#   deploy/examples/brokered/run.sh up [STATE_DIR]     start broker, demo API and runtime
#   deploy/examples/brokered/run.sh down [STATE_DIR]   stop them
#
# STATE_DIR gets the runtime's config, the agent's client config (`client.cli.json`), logs,
# PIDs, the runtime's state (its audit log under runtime/instances/example/) and `env` for the
# CLI.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

up() {
  need_node
  local key agent_secret runtime_secret issuer api url
  key="agent-1-$(random)"
  agent_secret=$(random)
  runtime_secret=$(random)
  issuer=$(SCOPES="bundle:demo tool:demo:whoami tool:demo:keyedWhoami" \
    UPSTREAMS='{"urn:demo-api": ["read"]}' \
    AGENT_CLIENT_SECRET=$agent_secret RUNTIME_CLIENT_SECRET=$runtime_secret start_broker) || return 1
  api=$(ISSUER=$issuer API_KEYS="{\"$key\": \"agent-1\"}" start_demo_api) || return 1
  cat >"$state/.cli.json" <<JSON
{
  "cli": "1.0.0",
  "mode": {"default": "discover"},
  "sources": {"demo": {"type": "openapi", "uri": "$api/openapi.json"}},
  "services": {"demo": {"source": "demo", "alias": "demo"}},
  "secrets": {
    "demo.broker": {"type": "oauth2", "mode": "tokenExchange", "tokenURL": "$issuer/token",
                    "audience": "urn:demo-api", "scopes": ["read"],
                    "clientId": {"type": "literal", "value": "runtime"},
                    "clientSecret": {"type": "env", "value": "BROKER_CLIENT_SECRET"}},
    "demo.apiKey": {"type": "byPrincipal",
                    "principals": {"agent-1": {"type": "env", "value": "AGENT_1_DEMO_KEY"}}}
  },
  "runtime": {"mode": "remote", "server": {
    "auth": {"validationProfile": "oidc_jwks", "issuer": "$issuer",
             "audience": "urn:open-cli:runtime", "jwksURL": "$issuer/jwks",
             "authorizationURL": "$issuer/auth", "tokenURL": "$issuer/token",
             "browserClientId": "cli"},
    "documents": {"allowedOrigins": ["$api"]}}}
}
JSON
  url=$(BROKER_CLIENT_SECRET=$runtime_secret AGENT_1_DEMO_KEY=$key \
    start_runtime "$state/.cli.json" --addr "${LISTEN:-127.0.0.1:0}") || return 1
  # The agent's config: its client credentials, and where it asks for children.
  cat >"$state/client.cli.json" <<JSON
{
  "cli": "1.0.0",
  "mode": {"default": "discover"},
  "runtime": {"mode": "remote", "remote": {"url": "$url", "oauth": {
    "mode": "oauthClient", "audience": "urn:open-cli:runtime",
    "scopes": ["bundle:demo", "tool:demo:whoami", "tool:demo:keyedWhoami"],
    "client": {"tokenURL": "$issuer/token",
               "clientId": {"type": "literal", "value": "agent-1"},
               "clientSecret": {"type": "env", "value": "AGENT_CLIENT_SECRET"}},
    "delegation": {"enabled": false, "tokenExchangeURL": "$issuer/token", "clientId": "cli"}}}}
}
JSON
  {
    echo "export OPEN_CLI_RUNTIME_URL=$url"
    echo "export AGENT_CLIENT_SECRET=$agent_secret"
  } >"$state/env"
  chmod 600 "$state/env"
  cat <<TEXT
brokered example up
  runtime   $url (tokens of $issuer; per-caller upstream identity)
  broker    $issuer (agent-1 client credentials; token exchange for delegation and upstreams)
  demo API  $api (whoami takes the broker's upstream tokens; keyed/whoami each caller's key)
try
  . $state/env
  open-cli --config $state/client.cli.json demo whoami whoami           # the upstream sees agent-1
  eval "\$(open-cli --config $state/client.cli.json auth delegate \\
      --scope bundle:demo,tool:demo:keyedWhoami --ttl 5m --export)"     # a child for a sub-agent
  open-cli demo keyed keyed-whoami                                       # as the sub-agent
  open-cli demo whoami whoami                                            # no such command: not delegated
stop
  $0 down $state
TEXT
}

main "$@"
