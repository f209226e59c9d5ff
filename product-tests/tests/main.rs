//! Black-box product tests: the real `open-cli-toolbox`, `open-cli` and demo upstream
//! binaries, on ephemeral loopback ports. Build the binaries first (`scripts/test` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Runtime authentication (OIDC JWKS) against a real OpenID provider; scope filtering.
mod auth;
/// The catalog served over HTTP, view selection, request IDs, JSON errors, config binding.
mod catalog;
/// The `open-cli` client against a running runtime.
mod cli;
/// Config and catalog validation messages (`validate` and start-up).
mod config;
/// Connection deadlines and limits: request head and body deadlines, idle keep-alive, max
/// connections.
mod deadlines;
/// Service roots (RFC 8631) and API catalogs (RFC 9727).
mod discovery;
/// Overlays, skill manifests and workflows.
mod enrich;
/// Tool execution and the pass-through: credentials, policy, retries, limits, audit.
mod execute;
/// Start-up, readiness, `runtime.json`, signals.
mod lifecycle;
/// MCP sources over stdio, streamable HTTP and SSE against a real MCP server.
mod mcp;
/// A mock upstream generated from the demo document (Stoplight Prism): requests the
/// runtime sends satisfy the document's validation and security requirements.
mod prism;
/// Config scopes: managed, user, project, local; merge rules and attribution.
mod scopes;
/// Remote descriptions, external `$ref`s, the HTTP document cache, refresh and SIGHUP.
mod sources;
/// `open-cli <service> [<group>] <command>`: help, typed flags, dry-run, execution, exit codes.
mod tool_commands;
