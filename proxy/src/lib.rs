//! `open-cli-toolbox`: the open-cli runtime, built on Pingora.
//!
//! Request path (every phase lives in its own module and only delegates):
//!
//! ```text
//! accept (gateway::conn) ─► gateway::request_filter ─► gateway::api::handle ─► route handler
//!                                   │                         │
//!                                   └► gateway::passthrough   └► execute::handler
//!                        snapshot (ArcSwap, built once) ◄── refresh ◄── catalog::build
//! ```
//!
//! The modules stand on floors, and a module imports only from floors below its own
//! (`scripts/module-cycles` fails CI on a cycle between top-level modules; `docs/design-notes.md`
//! has the rule and its reasons).
//!
//! **Process**: start-up, serving threads, signals.
//! - [`server`]: start-up (config → catalog → listener), signal handling and draining;
//!   the listening sockets, one per serving thread;
//! - [`cli`]: the command line;
//! - [`telemetry`]: the process log.
//!
//! **Gateway**: the only code that knows Pingora, HTTP statuses and header names.
//! - [`gateway`]: the Pingora `ProxyHttp` service, the accept loop and its deadlines, the
//!   `/v1` API, the pass-through's admission and header rewrite, what a request head may say,
//!   TLS and mutual TLS on the listener (`gateway::edge_tls`).
//!
//! **Use cases**: one request's or one rebuild's work.
//! - [`execute`]: tool execution (execute and pass-through): gathering the policy facts,
//!   credentials, the upstream call, the audit record;
//! - [`mcp`]: the runtime as an MCP server (`/mcp`): the effective view as MCP tools, and
//!   `tools/call` through the execution path (the gateway's `gateway::mcp` is its HTTP side);
//! - [`refresh`]: rebuilding and swapping the catalog while serving;
//! - [`export`]: shipping the audit log to an OTLP log receiver, from a persisted position;
//! - [`state`]: the process-wide state every request reads.
//!
//! **Domain**: decisions and read models, no I/O of their own.
//! - [`snapshot`]: the immutable, pre-rendered catalog state, its tool index and view selection;
//! - [`policy`]: the policy decision for one tool call, a pure function of facts; the scope
//!   envelope; deny patterns;
//! - [`auth`]: bearer-token authentication (JWKS, introspection): who is calling;
//! - [`catalog`]: OpenAPI and MCP sources → Normalized Tool Catalog;
//! - [`audit`]: the audit events and the NDJSON audit log, written through [`spool`].
//!
//! **Infrastructure**: the outside world.
//! - [`credentials`]: upstream credentials: secrets, OAuth tokens, shadowing and redaction;
//! - [`upstream`]: HTTP and MCP clients of the tools' servers, DNS;
//! - [`fetch`]: documents from files and HTTP, with the on-disk HTTP cache;
//! - [`secrets`]: resolving secret references, failing closed (from `open-cli-config`);
//! - [`spool`]: the group-commit line writer shared by the audit log and the process log;
//! - [`instance`]: state directories and `runtime.json`;
//! - [`limit`]: the token bucket behind the introspection and refresh throttles;
//! - [`ratelimit`]: a tool call's budgets: rate limits (in memory or Redis) and per-service
//!   concurrency;
//! - [`metrics`]: the Prometheus series every floor records into;
//! - [`accesslog`]: where the gateway's request log lines go;
//! - [`trace`]: whether spans are exported; W3C trace context in and out;
//! - [`error`]: the `/v1` error and error wording;
//! - [`clock`], [`hash`], [`slug`]: wall-clock time, hashers, identifier slugs.
//!
//! Design notes for the next engineer are in `docs/`.

pub mod accesslog;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod credentials;
pub mod error;
pub mod execute;
pub mod export;
pub mod fetch;
pub mod gateway;
pub mod hash;
pub mod instance;
pub mod limit;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod ratelimit;
pub mod refresh;
pub use open_cli_config::secrets;
pub mod server;
pub mod slug;
pub mod snapshot;
pub mod spool;
pub mod state;
pub mod telemetry;
pub mod trace;
pub mod upstream;

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
    // One crypto provider for every TLS user in the process (pingora and reqwest, the trace
    // exporter's client included: installed before the logging is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _log_guard = telemetry::init(opt.serve.log_format);
    let result = match &opt.command {
        Some(Command::Validate(v)) => {
            server::validate(&v.config, v.format).map(|ok| println!("{ok}"))
        }
        Some(Command::Probe { url }) => server::probe(url),
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
