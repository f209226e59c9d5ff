//! `open-cli runtime info`, and `runtime start|stop|status` for a config's local runtime
//! ([`crate::local`]).

use std::time::{Duration, Instant};

use open_cli_config::LoadedConfig;
use open_cli_config::wire::RuntimeInfo;
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::error::exit;
use crate::local::LocalRuntime;

use crate::args::Format;
use crate::client::Client;
use crate::error::CliError;
use crate::output;

pub fn info(client: &Client, format: Format) -> Result<String, CliError> {
    let info = client.info()?;
    if let Some(text) = output::machine(format, &info)? {
        return Ok(text);
    }
    Ok(output::pairs(&rows(&info)))
}

fn rows(info: &RuntimeInfo) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("url", info.url.clone()),
        ("instance", info.instance_id.clone()),
        (
            "version",
            format!(
                "{} (contract {})",
                info.version.as_deref().unwrap_or("unknown"),
                info.contract_version
            ),
        ),
        ("capabilities", info.capabilities.join(", ")),
        (
            "auth",
            if info.auth.required {
                format!(
                    "required ({})",
                    info.auth.token_validation_profiles.join(", ")
                )
            } else {
                "not required".into()
            },
        ),
    ];
    if let Some(c) = &info.catalog {
        rows.push((
            "catalog",
            format!(
                "{} tools in {} services; views: {}",
                c.tools,
                c.services,
                c.views.join(", ")
            ),
        ));
        rows.push(("generated", c.generated_at.clone()));
    }
    if let Some(p) = &info.config_path {
        rows.push(("config", p.clone()));
    }
    rows
}

fn local_for(config: Option<&LoadedConfig>) -> Result<LocalRuntime, CliError> {
    let loaded = config.ok_or_else(|| {
        CliError::usage("a local runtime is started for a config file; there is none here")
            .hint("pass --config FILE or run in a directory with .cli.json")
    })?;
    LocalRuntime::for_config(loaded)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalStatus {
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    /// Started by this command (`runtime start`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    started: bool,
    instance_id: String,
    config: String,
    runtime_json: String,
    log: String,
}

impl LocalStatus {
    fn new(local: &LocalRuntime, running: Option<&crate::local::Running>, started: bool) -> Self {
        Self {
            running: running.is_some(),
            url: running.map(|r| r.url.clone()),
            pid: running.map(|r| r.pid),
            started,
            instance_id: local.instance_id.clone(),
            config: local.config.display().to_string(),
            runtime_json: local.runtime_json().display().to_string(),
            log: local.log().display().to_string(),
        }
    }

    fn render(&self, format: Format) -> Result<String, CliError> {
        if let Some(text) = output::machine(format, self)? {
            return Ok(text);
        }
        let state = match (self.running, self.started) {
            (true, true) => "started",
            (true, false) => "running",
            (false, _) => "not running",
        };
        let mut rows = vec![("state", state.to_string())];
        if let (Some(url), Some(pid)) = (&self.url, self.pid) {
            rows.push(("url", url.clone()));
            rows.push(("pid", pid.to_string()));
        }
        rows.extend([
            ("instance", self.instance_id.clone()),
            ("config", self.config.clone()),
            ("log", self.log.clone()),
        ]);
        Ok(output::pairs(&rows))
    }
}

/// `open-cli runtime start`: this config's local runtime, started unless it runs.
pub fn start(
    config: Option<&LoadedConfig>,
    idle_stop_seconds: u64,
    format: Format,
) -> Result<String, CliError> {
    let local = local_for(config)?;
    let idle = (idle_stop_seconds > 0).then(|| Duration::from_secs(idle_stop_seconds));
    let (running, started) = local.ensure(idle)?;
    LocalStatus::new(&local, Some(&running), started).render(format)
}

/// `open-cli runtime status`.
pub fn local_status(config: Option<&LoadedConfig>, format: Format) -> Result<String, CliError> {
    let local = local_for(config)?;
    let running = local.running();
    LocalStatus::new(&local, running.as_ref(), false).render(format)
}

/// `open-cli runtime stop`: `POST /v1/runtime/stop` to this config's local runtime, then wait
/// for its process to end.
pub fn stop(
    g: &GlobalArgs,
    config: Option<&LoadedConfig>,
    format: Format,
) -> Result<String, CliError> {
    let local = local_for(config)?;
    let Some(running) = local.running() else {
        return LocalStatus::new(&local, None, false).render(format);
    };
    let client = crate::client::Client::new(
        &running.url,
        Duration::from_secs(g.timeout.max(1)),
        None,
        &crate::client::Tls::default(),
    )?
    .with_auth(crate::token::source(config)?);
    client.stop()?;
    let end = Instant::now() + Duration::from_secs(g.timeout.max(1));
    while crate::local::alive(running.pid) {
        if Instant::now() > end {
            return Err(CliError::new(
                exit::UNREACHABLE,
                format!("the local runtime (pid {}) did not exit", running.pid),
            )
            .hint(format!("see its log: {}", local.log().display())));
        }
        // Waiting for another process to exit: no handle to wait on (not our child).
        std::thread::sleep(Duration::from_millis(20));
    }
    LocalStatus::new(&local, None, false).render(format)
}
