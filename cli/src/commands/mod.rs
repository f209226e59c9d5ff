//! One module per command group; each returns the text to print.

pub mod auth;
pub mod catalog;
pub mod completions;
pub mod config;
pub mod dynamic;
pub mod edit;
pub mod exec;
pub mod explain;
pub mod flags;
pub mod leaf;
pub mod mcp;
pub mod runtime;
pub mod status;
pub mod tool;

use std::time::Duration;

use open_cli_config::LoadedConfig;

use crate::args::GlobalArgs;
use crate::client::{Client, ViewSelector};
use crate::error::CliError;
use crate::{resolve, token};

/// The runtime client and view selection from the global flags and the client config.
pub(crate) fn connect(
    g: &GlobalArgs,
    config: Option<&LoadedConfig>,
) -> Result<(Client, ViewSelector), CliError> {
    connect_with(g, config, true)
}

/// [`connect`]; without `send_token` the client sends no runtime token and the config's token
/// source is not resolved (no variable read, no token fetched).
pub(crate) fn connect_with(
    g: &GlobalArgs,
    config: Option<&LoadedConfig>,
    send_token: bool,
) -> Result<(Client, ViewSelector), CliError> {
    let target = match crate::local::wanted(g.runtime.as_deref(), g.local, g.embedded, config) {
        None => resolve::target(g.runtime.as_deref(), config.map(|l| &l.config))?,
        Some(topology) => {
            let loaded = config.ok_or_else(|| {
                CliError::usage("a local runtime needs a config file")
                    .hint("pass --config FILE or run in a directory with .cli.json (or use --runtime URL)")
            })?;
            let local = crate::local::LocalRuntime::for_config(loaded)?;
            let running = match topology {
                crate::local::Topology::Embedded => local.start_embedded()?,
                crate::local::Topology::Local => local.ensure(Some(crate::local::DEFAULT_IDLE))?.0,
            };
            resolve::Target {
                url: running.url,
                request_config_path: None,
            }
        }
    };
    let tls = crate::client::Tls {
        ca_file: g.ca_file.clone(),
        client_cert: g.client_cert.clone(),
        client_key: g.client_key.clone(),
    };
    let client = Client::new(
        &target.url,
        Duration::from_secs(g.timeout.max(1)),
        target.request_config_path,
        &tls,
    )?
    .offline(g.offline)
    .verbose(g.verbose)
    .with_auth(if send_token {
        token::source(config)?
    } else {
        None
    })
    .with_delegation(
        config
            .filter(|_| send_token)
            .and_then(|l| l.config.runtime.as_ref())
            .and_then(|r| r.remote.as_ref())
            .and_then(|r| r.oauth.as_ref()),
    );
    let view = ViewSelector {
        mode: g.mode.clone(),
        agent_profile: g.agent_profile.clone(),
    };
    Ok((client, view))
}
