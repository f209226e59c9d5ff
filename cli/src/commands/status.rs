//! `open-cli status`: the contract's report of where this client stands — the runtime (reached
//! or not), the config in use, the sources behind the view, the token posture, approval and
//! the config scope files. It answers even when the runtime cannot be reached (that is then
//! what it reports), so it is the first command to run when something does not work.

use std::collections::BTreeMap;

use open_cli_config::LoadedConfig;
use open_cli_config::scopes::ScopePaths;
use serde::Serialize;

use crate::args::Format;
use crate::client::{Client, ViewSelector};
use crate::error::CliError;
use crate::output;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    runtime: Runtime,
    config: ConfigInfo,
    sources: Sources,
    auth: Auth,
    approval: Approval,
    scope_paths: BTreeMap<&'static str, Option<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Runtime {
    available: bool,
    url: String,
    mode: Option<String>,
    version: Option<String>,
    /// Why it is not available.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigInfo {
    active_path: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Sources {
    total_active: usize,
    by_type: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Auth {
    /// Where this client's runtime token comes from: `none`, `providedToken`, `oauthClient`.
    mode: &'static str,
    required: Option<bool>,
    audience: Option<String>,
    scopes: Vec<String>,
    browser_login_configured: Option<bool>,
    /// The principal the runtime sees for this client's token.
    principal: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Approval {
    has_approval_gated_tools: Option<bool>,
    /// `required_for_some` (pass `--approval` for those tools), `not_required`, or `unknown`
    /// (the runtime was not reached).
    status: &'static str,
}

pub fn status(
    client: &Client,
    view: &ViewSelector,
    config: Option<&LoadedConfig>,
    format: Format,
) -> Result<String, CliError> {
    let info = client.info();
    let effective = info.as_ref().ok().and_then(|_| client.effective(view).ok());
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(e) = &effective {
        for s in &e.catalog.sources {
            *by_type.entry(s.kind.clone()).or_default() += 1;
        }
    }
    let gated = effective
        .as_ref()
        .map(|e| e.view.tools.iter().any(|t| t.safety.requires_approval));
    let scopes = config
        .and_then(|l| l.config.runtime.as_ref())
        .and_then(|r| r.remote.as_ref())
        .and_then(|r| r.oauth.as_ref())
        .map(|o| o.scopes.clone())
        .unwrap_or_default();
    let paths = config.map(|l| ScopePaths::for_project(&l.path));
    let shown = |p: &std::path::Path| Some(p.display().to_string());
    let report = Report {
        runtime: Runtime {
            available: info.is_ok(),
            url: client.base().to_string(),
            mode: info.as_ref().ok().map(|i| i.runtime_mode.clone()),
            version: info.as_ref().ok().and_then(|i| i.version.clone()),
            error: info.as_ref().err().map(|e| e.message.clone()),
        },
        config: ConfigInfo {
            active_path: config.map(|l| l.path.display().to_string()),
        },
        sources: Sources {
            total_active: by_type.values().sum(),
            by_type,
        },
        auth: Auth {
            mode: client
                .auth()
                .map_or("none", |a| a.describe(client.base()).0),
            required: info.as_ref().ok().map(|i| i.auth.required),
            audience: info.as_ref().ok().and_then(|i| i.auth.audience.clone()),
            scopes,
            browser_login_configured: info.as_ref().ok().map(|i| i.auth.browser_login.configured),
            principal: info.as_ref().ok().and_then(|i| i.auth.principal.clone()),
        },
        approval: Approval {
            has_approval_gated_tools: gated,
            status: match gated {
                Some(true) => "required_for_some",
                Some(false) => "not_required",
                None => "unknown",
            },
        },
        scope_paths: BTreeMap::from([
            ("managed", paths.as_ref().and_then(|p| shown(&p.managed))),
            (
                "user",
                paths
                    .as_ref()
                    .and_then(|p| p.user.as_deref().and_then(shown)),
            ),
            ("project", paths.as_ref().and_then(|p| shown(&p.project))),
            ("local", paths.as_ref().and_then(|p| shown(&p.local))),
        ]),
    };
    if let Some(text) = output::machine(format, &report)? {
        return Ok(text);
    }
    let r = &report;
    let runtime = if r.runtime.available {
        format!(
            "{} (available, {} {})",
            r.runtime.url,
            r.runtime.mode.as_deref().unwrap_or("-"),
            r.runtime.version.as_deref().unwrap_or("")
        )
    } else {
        format!(
            "{} (NOT available: {})",
            r.runtime.url,
            r.runtime.error.as_deref().unwrap_or("unknown")
        )
    };
    let sources = if r.sources.by_type.is_empty() {
        "-".to_string()
    } else {
        r.sources
            .by_type
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let auth = format!(
        "token: {}; runtime requires one: {}; principal: {}",
        r.auth.mode,
        match r.auth.required {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        },
        r.auth.principal.as_deref().unwrap_or("(anonymous)")
    );
    Ok(output::pairs(&[
        ("runtime", runtime),
        (
            "config",
            r.config
                .active_path
                .clone()
                .unwrap_or_else(|| "(none)".into()),
        ),
        ("sources", sources),
        ("auth", auth),
        ("approval", r.approval.status.replace('_', " ")),
    ]))
}
