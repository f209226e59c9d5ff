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

use clap::Parser;

use args::{AuthCommand, CatalogCommand, Cli, Command, ConfigCommand, RuntimeCommand, ToolCommand};
use commands::exec::Reply;
use error::CliError;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let reply = match &cli.command {
        Command::External(words) => {
            commands::dynamic::run(&cli.global, std::env::args_os().collect(), words)
        }
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
        Command::Auth(AuthCommand::Status) => {
            let (client, _) = remote()?;
            commands::auth::status(&client, format)
        }
        Command::External(_) => Err(CliError::new(
            error::exit::PROTOCOL,
            "tool commands are dispatched by commands::dynamic",
        )),
    }
}
