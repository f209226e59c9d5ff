//! `open-cli-toolbox`: the open-cli runtime, built on Pingora.
//!
//! Request path (every phase lives in its own module and only delegates):
//!
//! ```text
//! accept (pingora) ─► gateway::request_filter ─► api::handle ─► route handler
//!                                                     │
//!                       snapshot (ArcSwap, built once) ┘   catalog::build at start-up
//! ```
//!
//! - [`server`]: start-up (config → catalog → listener), signal handling and draining;
//! - [`listen`]: the listening sockets, one per serving thread (`SO_REUSEPORT`);
//! - [`conn`]: the accept loop per serving thread: head, idle and body deadlines, the
//!   connection limit, pipelined requests;
//! - [`limit`]: the token bucket behind the introspection and refresh throttles;
//! - [`gateway`]: the Pingora `ProxyHttp` implementation, request IDs, access log;
//! - [`api`]: the `/v1` API, `/healthz`, `/readyz`, as plain functions;
//! - [`auth`]: bearer-token authentication and the scope envelope;
//! - [`snapshot`]: the immutable, pre-rendered catalog state and view selection;
//! - [`catalog`]: OpenAPI → Normalized Tool Catalog;
//! - [`fetch`]: documents from files and HTTP, with the on-disk HTTP cache;
//! - [`mcp`]: the MCP client (stdio, streamable HTTP, SSE) that lists an MCP source's tools;
//! - [`secrets`]: resolving secret references, failing closed;
//! - [`policy`]: the policy decision for one tool call, a pure function of facts;
//! - [`exec`]: tool execution (execute and pass-through): gathering the policy facts,
//!   credentials, upstream calls;
//! - [`audit`]: the NDJSON audit log, written through [`spool`];
//! - [`spool`]: the group-commit line writer shared by the audit log and the process log;
//! - [`refresh`]: rebuilding and swapping the catalog while serving;
//! - [`instance`]: state directories and `runtime.json`;
//! - [`wire`]: what a request head may say: framing, `Host`, identity and method-override headers.
//!
//! Design notes for the next engineer are in `docs/`.

pub mod api;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod conn;
pub mod exec;
pub mod fetch;
pub mod gateway;
pub mod hash;
pub mod instance;
pub mod limit;
pub mod listen;
pub mod mcp;
pub mod passthrough;
pub mod policy;
pub mod refresh;
pub use open_cli_config::secrets;
pub mod server;
pub mod snapshot;
pub mod spool;
pub mod state;
pub mod telemetry;
pub mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::{Command, Opt};

/// Exit codes of `open-cli-toolbox`.
pub mod exit {
    /// Served and shut down cleanly, or the config is valid.
    pub const OK: u8 = 0;
    /// The config or catalog is invalid, or the runtime could not start.
    pub const FAILED: u8 = 1;
    /// Command-line usage error.
    pub const USAGE: u8 = 2;
}

pub fn run() -> ExitCode {
    let opt = Opt::parse();
    let _log_guard = telemetry::init(opt.serve.log_format);
    // One crypto provider for every TLS user in the process (pingora and reqwest).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match &opt.command {
        Some(Command::Validate(v)) => {
            server::validate(&v.config, v.format).map(|ok| println!("{ok}"))
        }
        None => match &opt.serve.config {
            Some(config) => server::serve(&opt.serve, config),
            None => {
                eprintln!(
                    "error: --config FILE is required\nhint: the runtime serves exactly one config; try `open-cli-toolbox --config config/examples/quickstart.cli.json`"
                );
                return ExitCode::from(exit::USAGE);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}
