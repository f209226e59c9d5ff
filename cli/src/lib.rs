//! `open-cli`: the command-line client of an open-cli runtime.
//!
//! It never links the runtime: it speaks the `/v1` HTTP API with the wire types of
//! `open-cli-config`. Data goes to stdout, messages to stderr; exit codes are in
//! [`error::exit`].

pub mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod output;
pub mod resolve;
pub mod token;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use args::{AuthCommand, CatalogCommand, Cli, Command, ConfigCommand, RuntimeCommand, ToolCommand};
use client::{Client, ViewSelector};
use error::CliError;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(&cli).and_then(|text| output::print(&text)) {
        Ok(()) => ExitCode::from(error::exit::OK),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit)
        }
    }
}

fn dispatch(cli: &Cli) -> Result<String, CliError> {
    let g = &cli.global;
    let config = resolve::client_config(g.config.as_deref())?;
    let format = output::resolve(g.format);
    let remote = || -> Result<(Client, ViewSelector), CliError> {
        let target = resolve::target(g.runtime.as_deref(), config.as_ref().map(|l| &l.config))?;
        let client = Client::new(
            &target.url,
            Duration::from_secs(g.timeout.max(1)),
            target.request_config_path,
        )?
        .with_auth(token::source(config.as_ref())?);
        let view = ViewSelector {
            mode: g.mode.clone(),
            agent_profile: g.agent_profile.clone(),
        };
        Ok((client, view))
    };
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
        Command::Auth(AuthCommand::Status) => {
            let (client, _) = remote()?;
            commands::auth::status(&client, format)
        }
    }
}
