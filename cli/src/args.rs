//! Command-line arguments (clap only; no logic).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// open-cli: list and run the tools an open-cli runtime serves.
///
/// The runtime is found by --runtime, then OPEN_CLI_RUNTIME_URL, then `runtime.remote.url`
/// in the config (--config, else ./.cli.json).
#[derive(Debug, Parser)]
#[command(name = "open-cli", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "Tool commands: open-cli <service> [<group>] <command> [path args] \
[--flags] [--body JSON|@file|-] [--dry-run] [--approval]; `open-cli <service> --help` lists \
them (from the runtime's catalog).

Exit codes: 0 ok, 1 the runtime refused or failed the request, 2 usage or config error, \
3 runtime unreachable, 4 unexpected response from the runtime, 5 the upstream API answered \
with an HTTP status >= 400 (its answer is still printed).";

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Runtime base URL, e.g. http://127.0.0.1:8765.
    #[arg(long, global = true, env = "OPEN_CLI_RUNTIME_URL", value_name = "URL")]
    pub runtime: Option<String>,
    /// Client config file (default: ./.cli.json when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Catalog view mode: discover or curated.
    #[arg(long, global = true, value_name = "MODE")]
    pub mode: Option<String>,
    /// Agent profile whose view to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub agent_profile: Option<String>,
    /// Seconds to wait for the runtime's answer. The default outlasts the runtime's own
    /// default total upstream timeout (120 s), so a slow tool call is answered, not abandoned.
    #[arg(long, global = true, default_value_t = 130, value_name = "SECONDS")]
    pub timeout: u64,
    /// Also trust these CA certificates (PEM) for an https:// runtime (one with a private CA).
    #[arg(long, global = true, env = "OPEN_CLI_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a runtime that asks for one (mutual TLS); needs
    /// --client-key.
    #[arg(
        long,
        global = true,
        env = "OPEN_CLI_CLIENT_CERT",
        value_name = "PEM",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(
        long,
        global = true,
        env = "OPEN_CLI_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// Filter the JSON output with a jq program (jaq, built in); one compact JSON value per
    /// line. Implies `--format json` unless a format is given.
    #[arg(long, global = true, value_name = "EXPR")]
    pub jq: Option<String>,
    /// Print each request to the runtime on stderr: method, URL, status, time taken and
    /// request ID.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    /// Use the locally cached catalog without asking the runtime (commands that only read
    /// the catalog: help, `catalog list`, `explain`, `search`, `--dry-run`); says how old it is.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Approve a tool that requires approval (tool commands).
    #[arg(long, global = true, hide = true)]
    pub approval: bool,
    /// Use this config's local runtime, starting it if it is not running (as
    /// `runtime.mode: "local"`).
    #[arg(long, global = true, conflicts_with = "embedded")]
    pub local: bool,
    /// Start a runtime for this command only, and stop it after.
    #[arg(long, global = true)]
    pub embedded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Pretty,
    Table,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to the runtime itself.
    #[command(subcommand)]
    Runtime(RuntimeCommand),
    /// Browse the tool catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Inspect one tool.
    #[command(subcommand)]
    Tool(ToolCommand),
    /// The client configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Runtime authentication.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Explain one tool: request, arguments, body, guidance, safety, auth and approval
    /// (`explain <tool-id>` or `explain <service> [<group>] <command>`).
    Explain {
        #[arg(required = true, num_args = 1..=3, value_name = "REF")]
        reference: Vec<String>,
    },
    /// Workflows of the catalog.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Find tools of the view by words in their ID, command, summary, description and
    /// guidance, best match first.
    Search {
        #[arg(required = true, value_name = "WORDS")]
        words: Vec<String>,
        /// Only tools of this service (ID or alias).
        #[arg(long, value_name = "SERVICE")]
        service: Option<String>,
    },
    /// Where this client stands: the runtime (reached or not), the config, sources, token
    /// posture, approval and config scope files.
    Status,
    /// Start a config from an OpenAPI description (URL or file) or an MCP server: writes
    /// `.cli.json` (never over an existing one) and says what it found.
    Init(InitArgs),
    /// Print the script that makes a shell complete `open-cli` commands, including the tool
    /// commands of the runtime's catalog (bash: `source <(open-cli completions bash)`; zsh:
    /// `source <(open-cli completions zsh)`; fish: `open-cli completions fish | source`).
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        #[arg(value_name = "SHELL")]
        shell: String,
    },
    /// Print the runtime's MCP endpoint and ready-to-paste agent host configuration.
    Mcp(McpArgs),
    /// A tool command: `<service> [<group>] <command> …`, resolved against the runtime's
    /// catalog (see `commands::dynamic`).
    #[command(external_subcommand)]
    External(Vec<String>),
}

/// `open-cli mcp`: the runtime's MCP endpoint and client configuration for agent hosts.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Which agent host's snippet to print.
    #[arg(long, value_enum, default_value_t = McpHost::All)]
    pub host: McpHost,
    /// The server's name in the snippets.
    #[arg(long, default_value = "open-cli", value_name = "NAME")]
    pub name: String,
    /// Embed the runtime token this client would send instead of a placeholder. The output
    /// is then a secret.
    #[arg(long)]
    pub with_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum McpHost {
    /// The `mcpServers` JSON of Claude Desktop, Cursor, Windsurf and similar hosts.
    Generic,
    /// VS Code's `.vscode/mcp.json`.
    Vscode,
    /// The `claude mcp add` command line of Claude Code.
    ClaudeCode,
    /// Every host above.
    All,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check that a workflow may run for you: every step's tool exists, is within your
    /// token's scopes and passes policy (nothing is executed; `--approval` counts as given).
    Run {
        #[arg(value_name = "WORKFLOW_ID")]
        workflow_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in as a person (browser login: authorization code with PKCE, or the device grant);
    /// the token is kept for this runtime and refreshed when it expires.
    Login {
        /// Log in on another device: print a code and an address instead of using a browser
        /// here (RFC 8628).
        #[arg(long)]
        device: bool,
        /// Only print the login address; do not start a browser.
        #[arg(long)]
        no_browser: bool,
        /// Ask for these scopes too, beyond `runtime.remote.oauth.scopes` (e.g. `bundle:github`;
        /// comma-separated or repeated).
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Whether the runtime requires a token, where this client gets one, and who it is.
    Status,
    /// Get a short-lived child token for a sub-agent: this client's runtime token is exchanged
    /// at the broker (RFC 8693) for a subset of its scopes. The child's calls are audited with
    /// the lineage (actor, delegatedBy, delegationId). A sub-agent uses it as
    /// `OPEN_CLI_TOKEN`.
    Delegate {
        /// The scopes to delegate: a subset of this token's (comma-separated or repeated);
        /// default `runtime.remote.oauth.delegation.scopes`.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// The child's lifetime: `300`, `90s`, `5m`, `1h`. The broker may shorten it; it never
        /// outlives the token it comes from.
        #[arg(long, default_value = "5m", value_parser = parse_ttl)]
        ttl: u64,
        /// The sub-agent, recorded as the child token's actor (`act.sub`); default
        /// `$OPEN_CLI_AGENT_SESSION_ID`, else `$COPILOT_SESSION_ID`, else the broker's choice.
        #[arg(long)]
        actor: Option<String>,
        /// Print `export OPEN_CLI_TOKEN='…'` for a shell:
        /// `eval "$(open-cli auth delegate --scope … --export)"`.
        #[arg(long)]
        export: bool,
    },
    /// Forget the runtime token this client keeps for this runtime (a login, or an
    /// `oauthClient` token); the next command logs in or fetches again. Nothing else is
    /// touched.
    Logout,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged config (managed, user, project, local scopes; secrets redacted) and
    /// which file set each key.
    Show,
    /// Add a source (and a service of the same name) to the config file; nothing is written
    /// unless the result loads.
    AddSource(AddSourceArgs),
    /// Remove a source and the services that use it.
    RemoveSource {
        name: String,
        /// Edit the user scope file instead of the project's.
        #[arg(long)]
        global: bool,
    },
    /// Add a secret (an environment variable, or OAuth 2 client credentials).
    AddSecret(AddSecretArgs),
}

#[derive(Debug, Args)]
pub struct AddSourceArgs {
    pub name: String,
    /// openapi, mcp, apiCatalog or serviceRoot.
    #[arg(long = "type", default_value = "openapi", value_name = "TYPE")]
    pub kind: String,
    /// The description's URL or file (openapi, apiCatalog, serviceRoot).
    #[arg(long)]
    pub uri: Option<String>,
    #[command(flatten)]
    pub mcp: McpSourceArgs,
    /// The service's command name.
    #[arg(long)]
    pub alias: Option<String>,
    /// Edit the user scope file instead of the project's.
    #[arg(long)]
    pub global: bool,
}

/// Where an MCP source's server is (`init --type mcp`, `config add-source --type mcp`).
#[derive(Debug, Clone, Args)]
pub struct McpSourceArgs {
    /// MCP: stdio, streamable-http or sse (default: from --command or --url).
    #[arg(long)]
    pub transport: Option<String>,
    /// MCP stdio: the server's command.
    #[arg(long)]
    pub command: Option<String>,
    /// MCP stdio: its arguments (comma-separated or repeated; may start with `-`).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// MCP streamable-http or sse: the server's URL.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddSecretArgs {
    /// The secret's key (`<service>.<securityScheme>` for a scheme's credential).
    pub name: String,
    /// env or oauth2.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// env: the environment variable that holds the value.
    #[arg(long)]
    pub env_value: Option<String>,
    /// oauth2: the flow (default clientCredentials).
    #[arg(long)]
    pub mode: Option<String>,
    /// oauth2: the token endpoint.
    #[arg(long)]
    pub token_url: Option<String>,
    /// oauth2: the environment variable of the client ID.
    #[arg(long)]
    pub client_id_env: Option<String>,
    /// oauth2: the environment variable of the client secret.
    #[arg(long)]
    pub client_secret_env: Option<String>,
    /// oauth2: scopes (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Edit the user scope file instead of the project's.
    #[arg(long)]
    pub global: bool,
}

/// `open-cli init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The OpenAPI description: a URL or a file.
    pub location: Option<String>,
    /// openapi (default) or mcp.
    #[arg(long = "type", default_value = "openapi", value_name = "TYPE")]
    pub kind: String,
    #[command(flatten)]
    pub mcp: McpSourceArgs,
    /// The service name (default: derived from the description's title or location).
    #[arg(long)]
    pub name: Option<String>,
    /// Write the user scope file instead of `./.cli.json`.
    #[arg(long)]
    pub global: bool,
}

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Show what the runtime is, what it can do and what it serves.
    Info,
    /// Start this config's local runtime (loopback, an ephemeral port), or say where it runs.
    Start {
        /// Stop it after this many seconds without a request; 0: never.
        #[arg(long, value_name = "SECONDS", default_value_t = crate::local::DEFAULT_IDLE.as_secs())]
        idle_stop_seconds: u64,
    },
    /// Stop this config's local runtime (`POST /v1/runtime/stop`; it drains first).
    Stop,
    /// Whether this config's local runtime runs: its URL, PID and files.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List the tools of the selected view.
    List(CatalogListArgs),
    /// Rebuild the runtime's catalog now (every source revalidated) and show how each source
    /// was obtained.
    Refresh,
}

#[derive(Debug, Args)]
pub struct CatalogListArgs {
    /// Only tools of this service (ID or alias).
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Only tools of this group.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Only tools with this safety property.
    #[arg(long, value_enum)]
    pub safety: Option<SafetyFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SafetyFilter {
    ReadOnly,
    Destructive,
    RequiresApproval,
    Idempotent,
}

#[derive(Debug, Subcommand)]
pub enum ToolCommand {
    /// Print a tool's full catalog entry: `tool schema <tool-id>` or
    /// `tool schema <service> [<group>] <command>`.
    Schema {
        #[arg(required = true, num_args = 1..=3, value_name = "REF")]
        reference: Vec<String>,
    },
}

/// A lifetime: seconds, or a number with `s`, `m` or `h`.
fn parse_ttl(s: &str) -> Result<u64, String> {
    let (n, unit) = match s.trim().char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s.trim()[..i], c),
        _ => (s.trim(), 's'),
    };
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        other => return Err(format!("unknown unit `{other}`; use s, m or h (e.g. 5m)")),
    };
    match n.parse::<u64>() {
        Ok(v) if v > 0 => v
            .checked_mul(factor)
            .ok_or_else(|| format!("`{s}` is too long")),
        _ => Err(format!("`{s}` is not a lifetime like 300, 90s, 5m or 1h")),
    }
}
