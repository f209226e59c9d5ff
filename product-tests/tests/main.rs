//! Black-box product tests: the real `open-cli-toolbox`, `open-cli` and demo upstream
//! binaries, on ephemeral loopback ports. Build the binaries first (`scripts/test` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Schemathesis against the runtime's own OpenAPI description: no 5xx, no answer off the description.
mod api_fuzz;
/// `runtime.server.audit`: `durability: always` loses no answered call to a crash;
/// `failClosed` refuses tool calls while the audit log cannot be written.
mod audit_durability;
/// Audit export to a real OTLP receiver through an outage and a restart.
mod audit_export;
/// Audit lines are a wire format: one line of each event type against a stored line.
mod audit_lines;
/// `GET /v1/audit/events` as a query: filters, orders, cursor pages across rotated files.
mod audit_query;
/// Runtime authentication (OIDC JWKS) against a real OpenID provider; scope filtering.
mod auth;
/// Bounded catalog builds: shared schema snapshots, nesting and size bounds, rebuild deadlines.
mod build_bounds;
/// The catalog served over HTTP, view selection, request IDs, JSON errors, config binding.
mod catalog;
/// The `open-cli` client against a running runtime.
mod cli;
/// Config and catalog validation messages (`validate` and start-up).
mod config;
/// What a SIGKILL does to the audit log: no torn line, only recent records lost.
mod crash;
/// Injected credentials are never shadowed by caller fields nor reflected to the caller.
mod cred_shadow;
/// Connection deadlines and limits: request head and body deadlines, idle keep-alive, max
/// connections.
mod deadlines;
/// Delegated sub-agent tokens (the example broker's RFC 8693 exchange: subset only, lineage
/// audited, expiry) and per-caller upstream identity (`tokenExchange`, `byPrincipal`).
mod delegation;
/// Deployment artefacts: the hardened systemd unit (`systemd-analyze verify` and `security`,
/// and its command line run for real).
mod deploy;
/// Service roots (RFC 8631) and API catalogs (RFC 9727).
mod discovery;
/// Document fetching as a trust boundary: origins, local directories, redirects, special files.
mod doc_trust;
/// Overlays, skill manifests and workflows.
mod enrich;
/// Tool execution and the pass-through: credentials, policy, retries, limits, audit.
mod execute;
/// The three hosting models of `deploy/examples/` (loopback, shared remote with auth, brokered
/// enterprise), each brought up and down by its own script and used with the CLI.
mod hosting;
/// Start-up, readiness, `runtime.json`, signals.
mod lifecycle;
/// Local runtimes the CLI starts itself: start on first use, reuse, stale `runtime.json`,
/// idle stop, `--embedded`; the lifecycle routes.
mod local_runtime;
/// `open-cli auth login`: browser (PKCE) and device logins against a real OpenID provider,
/// refresh, renewal on `authn_failed`, logout.
mod login;
/// Logs never carry a secret, at any level.
mod logs;
/// MCP sources over stdio, streamable HTTP and SSE against a real MCP server.
mod mcp;
/// `open-cli mcp`: the runtime's `/mcp` URL and agent host snippets for its auth mode.
mod mcp_cli;
/// The official MCP conformance suite against `/mcp` fronting a fixture MCP server.
mod mcp_conformance;
/// `/mcp`: the runtime as an MCP server, driven by the TypeScript and Python SDK clients.
mod mcp_server;
/// `GET /metrics`: promtool, a real Prometheus, the Grafana dashboard's queries.
mod metrics;
/// `GET /v1/openapi.json` matches what every route answers.
mod openapi;
/// A mock upstream generated from the demo document (Stoplight Prism): requests the
/// runtime sends satisfy the document's validation and security requirements.
mod prism;
/// Rate limits per principal, tool and service; per-service concurrency; the Redis store.
mod rate_limits;
/// Three replicas behind a real HAProxy (`deploy/haproxy/haproxy.cfg`): a SIGKILL and a rolling
/// restart under load lose no request; audit lines name their replica.
mod replicas;
/// Config scopes: managed, user, project, local; merge rules and attribution.
mod scopes;
/// Remote descriptions, external `$ref`s, the HTTP document cache, refresh and SIGHUP.
mod sources;
/// Issue 15 items 8-10: strict tokens, scopes for the audit log and refresh, strict execute.
mod strict;
/// TLS and mutual TLS on the listener: HTTP/2, reload under load, client certificates.
mod tls;
/// `open-cli <service> [<group>] <command>`: help, typed flags, dry-run, execution, exit codes.
mod tool_commands;
/// OpenTelemetry traces to a real OTLP receiver; W3C trace context in and out.
mod traces;
/// A binary upgrade (SIGUSR2, sockets handed to the new process) under load: no refused
/// connection.
mod upgrade;
/// Issue 15 items 4–6: one path rule on both channels, identity headers, framing, pipelining.
mod wire;
