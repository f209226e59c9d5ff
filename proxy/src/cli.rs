//! Command line of `open-cli-toolbox`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// The open-cli runtime: serves a governed tool catalog built from API descriptions.
#[derive(Debug, Parser)]
#[command(
    name = "open-cli-toolbox",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Opt {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config file and build its catalog; print every problem and exit 1 if any.
    Validate(ValidateArgs),
    /// Exit 0 if a running runtime answers `GET <url>` with 200 within 2 s, else 1: a
    /// container health check for images without curl.
    Probe {
        /// `http://` URL on this host.
        #[arg(long, default_value = "http://127.0.0.1:8765/healthz")]
        url: String,
    },
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The project `.cli.json` to check (merged with the managed, user and local scopes).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// `text`: summary, scope files, effective config and key origins; `json`: the same as one
    /// JSON document.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ValidateFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The `.cli.json` this runtime is bound to (required to serve).
    #[arg(long, value_name = "FILE", env = "OPEN_CLI_TOOLBOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address; port 0 picks a free port (see `url` in runtime.json).
    #[arg(long, default_value = "127.0.0.1:8765", value_name = "HOST:PORT")]
    pub addr: String,
    /// State root; the instance keeps runtime.json and audit.log under `instances/<id>`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Instance ID; defaults to `<config dir>-<hash of the config path>`.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// Audit log file (NDJSON); defaults to `<state-dir>/instances/<id>/audit.log`.
    #[arg(long, value_name = "FILE")]
    pub audit_path: Option<PathBuf>,
    /// Serving threads, each one event loop with its own listening socket on the address
    /// (like nginx workers with `reuseport`); defaults to the number of CPUs. 1 to 1024.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub threads: Option<usize>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before exit.
    /// The process exits as soon as they are done.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub shutdown_grace_seconds: u64,
    /// A request head must be complete within this time (from the connection's accept for
    /// its first request, from the first byte for later ones); else 408 and close. 1 to 3600;
    /// default 10 (`runtime.server.limits.headerTimeoutSeconds`).
    #[arg(long, value_name = "SECONDS", value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=3600))]
    pub header_timeout_seconds: Option<u64>,
    /// A keep-alive connection with no request in progress is closed after this time.
    /// 1 to 3600; default 60 (`runtime.server.limits.idleTimeoutSeconds`).
    #[arg(long, value_name = "SECONDS", value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=3600))]
    pub idle_timeout_seconds: Option<u64>,
    /// A request body may take this long plus one second per `--body-min-rate` bytes
    /// received; else 408 (the upstream connection is dropped). 1 to 3600; default 10
    /// (`runtime.server.limits.bodyTimeoutSeconds`).
    #[arg(long, value_name = "SECONDS", value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=3600))]
    pub body_timeout_seconds: Option<u64>,
    /// The minimum request body rate, in bytes per second (see `--body-timeout-seconds`);
    /// default 1024 (`runtime.server.limits.bodyMinRate`).
    #[arg(long, value_name = "BYTES", value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub body_min_rate: Option<u64>,
    /// Most open client connections; beyond it new connections wait in the listen backlog.
    /// Defaults to 10,000, or fewer when the open-file limit cannot hold two per connection
    /// (`runtime.server.limits.maxConnections`).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections: Option<usize>,
    /// Most bytes of a request head (request line and header fields); beyond: 431. 1024 to
    /// 1048575; default 65536 (`runtime.server.limits.maxHeaderBytes`).
    #[arg(long, value_name = "BYTES", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1_048_575))]
    pub max_header_bytes: Option<usize>,
    /// Most header fields per request; beyond: 431. 8 to 10000; default 100
    /// (`runtime.server.limits.maxHeaders`).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8..=10_000))]
    pub max_headers: Option<usize>,
    /// Most bytes of the request line; beyond: 414. 64 to 1048575; default 16384
    /// (`runtime.server.limits.maxRequestLineBytes`).
    #[arg(long, value_name = "BYTES", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(64..=1_048_575))]
    pub max_request_line_bytes: Option<usize>,
    /// Serve TLS with this certificate chain (PEM); needs `--tls-key-file`. Overrides
    /// `runtime.server.tls.certFile`. Re-read on SIGHUP and when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert-file`.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Verify client certificates against this CA bundle (PEM); `--tls-client-auth` says
    /// whether one is required (default: required).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// `none`, `optional` (a certificate sent must chain to the CA) or `required` (callers
    /// without one are refused in the handshake).
    #[arg(long, value_name = "MODE", value_parser = ["none", "optional", "required"])]
    pub tls_client_auth: Option<String>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A local runtime, started by `open-cli` for one user: the listen address must be
    /// loopback, and `POST /v1/runtime/stop` is allowed (elsewhere it needs the
    /// `runtime:stop` scope).
    #[arg(long)]
    pub local: bool,
    /// Shut down (as on SIGTERM) after this many seconds without a request while no session
    /// holds a lease (`POST /v1/runtime/heartbeat`). 1 to 604800.
    #[arg(long, value_name = "SECONDS", value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=604_800))]
    pub idle_stop_seconds: Option<u64>,
}
