#!/usr/bin/env bash
# Hosting model 2, shared remote with auth: one runtime for a team. Every caller presents a
# runtime token of the team's OpenID provider (`oidc_jwks`: signature, issuer, audience,
# expiry); its scopes decide which tools it sees and runs. The upstream key is the team's,
# held by the runtime alone. Callers here are agents with client credentials (`oauthClient`);
# people log in with `open-cli auth login` against the same provider.
#
#   deploy/examples/shared/run.sh up [STATE_DIR]     start provider, demo API and runtime
#   deploy/examples/shared/run.sh down [STATE_DIR]   stop them
#
# LISTEN (default 127.0.0.1:0) is the runtime's address; on a real host it is the address the
# team reaches, with TLS on the listener (`runtime.server.tls`, docs/security.md "The edge").
# STATE_DIR gets the runtime's config, the agents' client config (`client.cli.json`), logs,
# PIDs and `env` (the agent's client secret) for the CLI.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

up() {
  need_node
  local key agent_secret issuer api url
  key="team-$(random)"
  agent_secret=$(random)
  issuer=$(SCOPES="bundle:demo" AGENT_CLIENT_SECRET=$agent_secret start_broker) || return 1
  api=$(API_KEYS="{\"$key\": \"team\"}" start_demo_api) || return 1
  cat >"$state/.cli.json" <<JSON
{
  "cli": "1.0.0",
  "mode": {"default": "discover"},
  "sources": {"demo": {"type": "openapi", "uri": "$api/openapi.json"}},
  "services": {"demo": {"source": "demo", "alias": "demo"}},
  "secrets": {"demo.apiKey": {"type": "env", "value": "TEAM_DEMO_KEY"}},
  "policy": {"deny": ["demo:whoami"]},
  "runtime": {"mode": "remote", "server": {
    "auth": {"validationProfile": "oidc_jwks", "issuer": "$issuer",
             "audience": "urn:open-cli:runtime", "jwksURL": "$issuer/jwks",
             "authorizationURL": "$issuer/auth", "tokenURL": "$issuer/token",
             "browserClientId": "cli"},
    "documents": {"allowedOrigins": ["$api"]}}}
}
JSON
  url=$(TEAM_DEMO_KEY=$key start_runtime "$state/.cli.json" --addr "${LISTEN:-127.0.0.1:0}") || return 1
  # What an agent of the team configures: where the runtime is, and its client credentials.
  cat >"$state/client.cli.json" <<JSON
{
  "cli": "1.0.0",
  "mode": {"default": "discover"},
  "runtime": {"mode": "remote", "remote": {"url": "$url", "oauth": {
    "mode": "oauthClient", "audience": "urn:open-cli:runtime", "scopes": ["bundle:demo"],
    "client": {"tokenURL": "$issuer/token",
               "clientId": {"type": "literal", "value": "agent-1"},
               "clientSecret": {"type": "env", "value": "AGENT_CLIENT_SECRET"}}}}}
}
JSON
  {
    echo "export OPEN_CLI_RUNTIME_URL=$url"
    echo "export AGENT_CLIENT_SECRET=$agent_secret"
  } >"$state/env"
  chmod 600 "$state/env"
  cat <<TEXT
shared example up
  runtime   $url (a token of $issuer is required)
  provider  $issuer (agent-1 client credentials; people: open-cli auth login)
  demo API  $api (its key is the runtime's secret TEAM_DEMO_KEY)
try
  . $state/env
  open-cli --config $state/client.cli.json catalog list
  open-cli --config $state/client.cli.json demo keyed keyed-whoami
stop
  $0 down $state
TEXT
}

main "$@"
