//! `open-cli`: the command-line client of an open-cli runtime.
//!
//! It never links the runtime: it speaks the `/v1` HTTP API with the wire types of
//! `open-cli-config`. Data goes to stdout, messages to stderr; exit codes are in
//! [`error::exit`].

pub mod args;
pub mod cache;
pub mod client;
pub mod commands;
pub mod error;
pub mod output;
pub mod resolve;
pub mod token;

use std::process::ExitCode;

use clap::Parser;

use args::{AuthCommand, CatalogCommand, Cli, Command, ConfigCommand, RuntimeCommand, ToolCommand};
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
    let printed = reply.and_then(|r| output::print(&r.stdout).map(|()| r));
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

fn dispatch(cli: &Cli) -> Result<String, CliError> {
    let g = &cli.global;
    let config = resolve::client_config(g.config.as_deref())?;
    let format = output::resolve(g.format);
    let remote = || commands::connect(g, config.as_ref());
    match &cli.command {
        Command::Config(ConfigCommand::Show) => commands::config::show(config.as_ref(), format),
        Command::Runtime(RuntimeCommand::Info) => {
            let (client, _) = remote()?;
            commands::runtime::info(&client, format)
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
        Command::Explain { reference } => {
            let (client, view) = remote()?;
            commands::explain::explain(&client, &view, reference, format)
        }
        Command::Auth(AuthCommand::Status) => {
            let (client, _) = remote()?;
            commands::auth::status(&client, format)
        }
        Command::Mcp(_) | Command::Search { .. } | Command::External(_) => Err(CliError::new(
            error::exit::PROTOCOL,
            "`mcp`, `search` and tool commands are dispatched by `run`",
        )),
    }
}
