//! `open-cli`: the command-line client of an open-cli runtime.
//!
//! It never links the runtime: it speaks the `/v1` HTTP API with the wire types of
//! `open-cli-config`. Data goes to stdout, messages to stderr; exit codes are in
//! [`error::exit`].

pub mod args;
pub mod cache;
pub mod client;
pub mod commands;
pub mod delegation;
pub mod error;
pub mod jq;
pub mod local;
pub mod login;
pub mod output;
pub mod resolve;
pub mod token;

use std::process::ExitCode;

use clap::Parser;

use args::{
    AuthCommand, CatalogCommand, Cli, Command, ConfigCommand, RuntimeCommand, ToolCommand,
    WorkflowCommand,
};
use commands::exec::Reply;
use error::CliError;

pub fn run() -> ExitCode {
    commands::completions::complete_from_env();
    let cli = Cli::parse();
    let reply = match &cli.command {
        Command::External(words) => {
            commands::dynamic::run(&cli.global, std::env::args_os().collect(), words)
        }
        Command::Mcp(args) => mcp(&cli, args),
        Command::Search { words, service } => search(&cli, words, service.as_deref()),
        _ => dispatch(&cli).map(Reply::data),
    };
    // `--jq` over what the command prints (JSON: see `output::resolve`).
    let reply = reply.and_then(|mut r| {
        if let Some(program) = output::jq_program()
            && !r.stdout.trim().is_empty()
        {
            r.stdout = jq::filter(&program, &r.stdout)?;
        }
        Ok(r)
    });
    let printed = reply.and_then(|r| output::print(&r.stdout).map(|()| r));
    // An `--embedded` runtime lives for this invocation only.
    local::finish();
    match printed {
        Ok(r) => {
            if let Some(line) = &r.stderr {
                eprintln!("{line}");
            }
            ExitCode::from(r.exit)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit)
        }
    }
}

fn mcp(cli: &Cli, args: &args::McpArgs) -> Result<Reply, CliError> {
    let g = &cli.global;
    let config = resolve::client_config(g.config.as_deref())?;
    // The token is only resolved (and sent) when it is to be embedded.
    let (client, _) = commands::connect_with(g, config.as_ref(), args.with_token)?;
    commands::mcp::run(&client, config.as_ref(), args, output::resolve(g.format))
}

fn search(cli: &Cli, words: &[String], service: Option<&str>) -> Result<Reply, CliError> {
    let g = &cli.global;
    let config = resolve::client_config(g.config.as_deref())?;
    let (client, view) = commands::connect(g, config.as_ref())?;
    commands::explain::search(&client, &view, words, service, output::resolve(g.format))
}

fn new_source(
    name: String,
    kind: String,
    uri: Option<String>,
    mcp: &args::McpSourceArgs,
    alias: Option<String>,
) -> commands::edit::NewSource {
    commands::edit::NewSource {
        name,
        kind,
        uri,
        transport: mcp.transport.clone(),
        command: mcp.command.clone(),
        args: mcp.args.clone(),
        url: mcp.url.clone(),
        alias,
    }
}

/// `init` and the config-editing commands: they write the config, so it need not load
/// first (init makes it; an edit checks its result with the full loader).
fn edit(cli: &Cli) -> Result<String, CliError> {
    let g = &cli.global;
    match &cli.command {
        Command::Config(ConfigCommand::AddSource(a)) => {
            let path = commands::edit::target(g.config.as_deref(), a.global);
            commands::edit::add_source(
                &path,
                &new_source(
                    a.name.clone(),
                    a.kind.clone(),
                    a.uri.clone(),
                    &a.mcp,
                    a.alias.clone(),
                ),
            )
        }
        Command::Config(ConfigCommand::RemoveSource { name, global }) => {
            commands::edit::remove_source(
                &commands::edit::target(g.config.as_deref(), *global),
                name,
            )
        }
        Command::Config(ConfigCommand::AddSecret(a)) => {
            let path = commands::edit::target(g.config.as_deref(), a.global);
            commands::edit::add_secret(
                &path,
                &commands::edit::NewSecret {
                    name: a.name.clone(),
                    kind: a.kind.clone(),
                    env_value: a.env_value.clone(),
                    mode: a.mode.clone(),
                    token_url: a.token_url.clone(),
                    client_id_env: a.client_id_env.clone(),
                    client_secret_env: a.client_secret_env.clone(),
                    scopes: a.scopes.clone(),
                },
            )
        }
        Command::Init(a) => {
            let path = commands::edit::target(g.config.as_deref(), a.global);
            let mcp = (a.kind == "mcp").then(|| {
                new_source(
                    a.name.clone().unwrap_or_default(),
                    "mcp".into(),
                    None,
                    &a.mcp,
                    None,
                )
            });
            if a.kind != "mcp" && a.kind != "openapi" {
                return Err(CliError::usage(format!(
                    "--type must be openapi or mcp, found `{}`",
                    a.kind
                )));
            }
            commands::edit::init(&path, a.location.as_deref(), a.name.as_deref(), mcp)
        }
        _ => Err(CliError::new(
            error::exit::PROTOCOL,
            "only init and config edits are dispatched by `edit`",
        )),
    }
}

fn dispatch(cli: &Cli) -> Result<String, CliError> {
    let g = &cli.global;
    // Writing the config must not need it to load first (init makes it; an edit checks the
    // result itself).
    if matches!(
        &cli.command,
        Command::Init(_)
            | Command::Config(
                ConfigCommand::AddSource(_)
                    | ConfigCommand::RemoveSource { .. }
                    | ConfigCommand::AddSecret(_)
            )
    ) {
        return edit(cli);
    }
    let config = resolve::client_config(g.config.as_deref())?;
    let format = output::resolve(g.format);
    let remote = || commands::connect(g, config.as_ref());
    match &cli.command {
        Command::Config(ConfigCommand::Show) => commands::config::show(config.as_ref(), format),
        Command::Init(_)
        | Command::Config(
            ConfigCommand::AddSource(_)
            | ConfigCommand::RemoveSource { .. }
            | ConfigCommand::AddSecret(_),
        ) => edit(cli),
        Command::Runtime(RuntimeCommand::Info) => {
            let (client, _) = remote()?;
            commands::runtime::info(&client, format)
        }
        Command::Runtime(RuntimeCommand::Start { idle_stop_seconds }) => {
            commands::runtime::start(config.as_ref(), *idle_stop_seconds, format)
        }
        Command::Runtime(RuntimeCommand::Status) => {
            commands::runtime::local_status(config.as_ref(), format)
        }
        Command::Runtime(RuntimeCommand::Stop) => {
            commands::runtime::stop(g, config.as_ref(), format)
        }
        Command::Catalog(CatalogCommand::List(args)) => {
            let (client, view) = remote()?;
            commands::catalog::list(&client, &view, args, format)
        }
        Command::Tool(ToolCommand::Schema { reference }) => {
            let (client, view) = remote()?;
            commands::tool::schema(&client, &view, reference, format)
        }
        Command::Catalog(CatalogCommand::Refresh) => {
            let (client, _) = remote()?;
            commands::catalog::refresh(&client, format)
        }
        Command::Completions { shell } => commands::completions::registration(shell),
        Command::Status => {
            let (client, view) = remote()?;
            commands::status::status(&client, &view, config.as_ref(), format)
        }
        Command::Workflow(WorkflowCommand::Run { workflow_id }) => {
            let (client, view) = remote()?;
            let run = client
                .run_workflow(workflow_id, &view, g.approval)
                .map_err(|e| match e.code.as_deref() {
                    Some(open_cli_config::wire::codes::NOT_FOUND) => e.hint(
                        "list the workflows with `open-cli catalog list --format json` (catalog.workflows)",
                    ),
                    _ => e,
                })?;
            if let Some(text) = output::machine(format, &run)? {
                return Ok(text);
            }
            let steps: Vec<&str> = run["steps"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                .unwrap_or_default();
            Ok(format!(
                "workflow `{workflow_id}` may run: {} step(s): {}\n(checked only; nothing was executed)\n",
                steps.len(),
                steps.join(" → ")
            ))
        }
        Command::Explain { reference } => {
            let (client, view) = remote()?;
            commands::explain::explain(&client, &view, reference, format)
        }
        Command::Auth(AuthCommand::Logout) => {
            // The token source is read from the config; no token is fetched (a login's refresh
            // token is revoked at its provider).
            match token::source(config.as_ref())? {
                Some(token::Source::Client(c)) => c.forget(),
                Some(token::Source::Login(l)) => {
                    let target = resolve::target(
                        cli.global.runtime.as_deref(),
                        config.as_ref().map(|l| &l.config),
                    )?;
                    // The provider is asked to revoke the refresh token (with the
                    // client's TLS settings: `--ca-file`, client certificate).
                    let g = &cli.global;
                    let client = client::Client::new(
                        &target.url,
                        std::time::Duration::from_secs(g.timeout.max(1)),
                        None,
                        &client::Tls {
                            ca_file: g.ca_file.clone(),
                            client_cert: g.client_cert.clone(),
                            client_key: g.client_key.clone(),
                        },
                    )?;
                    l.forget(client.http(), target.url.trim_end_matches('/'))
                }
                Some(token::Source::Provided { from, .. }) => Ok(format!(
                    "nothing cached: the token comes from {from}, which this client does not manage\n"
                )),
                None => Ok("nothing cached: this client sends no runtime token\n".into()),
            }
        }
        Command::Auth(AuthCommand::Login {
            device,
            no_browser,
            scopes,
        }) => {
            if std::env::var(token::TOKEN_ENV).is_ok_and(|t| !t.trim().is_empty()) {
                return Err(CliError::usage(format!(
                    "{} is set: every command sends that token, so a login would not be used",
                    token::TOKEN_ENV
                ))
                .hint(format!("unset {} to log in", token::TOKEN_ENV)));
            }
            let (client, _) = commands::connect_with(&cli.global, config.as_ref(), false)?;
            match token::source(config.as_ref())? {
                Some(token::Source::Login(mut l)) => login::login(
                    &client,
                    {
                        l.scopes.extend(scopes.iter().cloned());
                        &l
                    },
                    login::Options {
                        device: *device,
                        no_browser: *no_browser,
                    },
                ),
                _ => Err(CliError::usage(
                    "this config gets its runtime token elsewhere (runtime.remote.oauth.mode is not browserLogin)",
                )
                .hint("set runtime.remote.oauth.mode to \"browserLogin\", or remove runtime.remote.oauth to log in to any runtime")),
            }
        }
        Command::Auth(AuthCommand::Delegate {
            scopes,
            ttl,
            actor,
            export,
        }) => {
            let (client, _) = commands::connect_with(&cli.global, config.as_ref(), true)?;
            commands::auth::delegate(
                &client,
                config.as_ref(),
                &commands::auth::DelegateArgs {
                    scopes,
                    ttl: *ttl,
                    actor: actor.as_deref(),
                    export: *export,
                },
                format,
            )
        }
        Command::Auth(AuthCommand::Status) => {
            let (client, view) = remote()?;
            commands::auth::status(&client, &view, config.as_ref(), format)
        }
        Command::Mcp(_) | Command::Search { .. } | Command::External(_) => Err(CliError::new(
            error::exit::PROTOCOL,
            "`mcp`, `search` and tool commands are dispatched by `run`",
        )),
    }
}
