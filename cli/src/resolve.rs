//! Finding the runtime: `--runtime`, then `OPEN_CLI_RUNTIME_URL` (both via clap), then
//! `runtime.remote.url` from the config (`--config`, else `./.cli.json` when present).

use std::path::{Path, PathBuf};

use open_cli_config::{Config, LoadedConfig, load_file};

use crate::error::CliError;

#[derive(Debug)]
pub struct Target {
    pub url: String,
    /// The `config` value to send, from `runtime.remote.requestConfigPath`. The client's own
    /// path is not sent: it names a file on this machine, not on the runtime host.
    pub request_config_path: Option<String>,
}

/// Load the client config (merged with its scopes), if any.
pub fn client_config(explicit: Option<&Path>) -> Result<Option<LoadedConfig>, CliError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from(".cli.json");
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    match load_file(&path) {
        Ok(loaded) => Ok(Some(loaded)),
        Err(e) => Err(CliError::usage("the client config is not usable").cause(e.to_string())),
    }
}

pub fn target(flag_or_env: Option<&str>, config: Option<&Config>) -> Result<Target, CliError> {
    let remote = config
        .and_then(|c| c.runtime.as_ref())
        .and_then(|r| r.remote.as_ref());
    let url = flag_or_env
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .or_else(|| remote.and_then(|r| r.url.clone()))
        .ok_or_else(|| {
            CliError::usage("no runtime to talk to").hint(
                "pass --runtime http://127.0.0.1:8765, set OPEN_CLI_RUNTIME_URL, or set runtime.remote.url in .cli.json",
            )
        })?;
    check_url(&url)?;
    Ok(Target {
        url,
        request_config_path: remote.and_then(|r| r.request_config_path.clone()),
    })
}

fn check_url(url: &str) -> Result<(), CliError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(CliError::usage(format!("`{url}` is not a runtime URL"))
            .hint("use an absolute http:// or https:// URL such as http://127.0.0.1:8765")),
    }
}
