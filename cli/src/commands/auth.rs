//! `open-cli auth status`.

use serde::Serialize;

use crate::args::Format;
use crate::client::Client;
use crate::error::CliError;
use crate::output;
use crate::token::Source;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    runtime: String,
    auth_required: bool,
    token_validation_profiles: Vec<String>,
    audience: Option<String>,
    /// `none`, `providedToken`, `oauthClient` or `browserLogin`.
    token_source: &'static str,
    token_from: Option<String>,
    /// A person's login (`open-cli auth login`) for this runtime, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<LoginState>,
    /// The principal the runtime sees for this client's token.
    principal: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginState {
    principal: Option<String>,
    /// Seconds since the epoch.
    expires_at: u64,
    refreshable: bool,
    #[serde(rename = "tokenURL")]
    token_url: String,
}

pub fn status(client: &Client, format: Format) -> Result<String, CliError> {
    let info = client.info()?;
    let session = match client.auth() {
        Some(Source::Login(l)) => l.load(client.base()),
        _ => None,
    };
    let (token_source, token_from) = client
        .auth()
        .map_or(("none", None), |a| a.describe(client.base()));
    let login = session.map(|s| LoginState {
        principal: s.principal,
        expires_at: s.expires_at,
        refreshable: s.refresh_token.is_some(),
        token_url: s.token_url,
    });
    let s = Status {
        runtime: client.base().to_string(),
        auth_required: info.auth.required,
        token_validation_profiles: info.auth.token_validation_profiles.clone(),
        audience: info.auth.audience.clone(),
        token_source,
        token_from,
        login,
        principal: info.auth.principal.clone(),
    };
    if let Some(text) = output::machine(format, &s)? {
        return Ok(text);
    }
    let mut rows = vec![
        ("runtime", s.runtime.clone()),
        (
            "auth",
            if s.auth_required {
                format!("required ({})", s.token_validation_profiles.join(", "))
            } else {
                "not required".into()
            },
        ),
        ("audience", s.audience.clone().unwrap_or_else(|| "-".into())),
        (
            "token",
            match &s.token_from {
                Some(f) => format!("{} ({f})", s.token_source),
                None => s.token_source.into(),
            },
        ),
        (
            "principal",
            s.principal.clone().unwrap_or_else(|| "(anonymous)".into()),
        ),
    ];
    if let Some(l) = &s.login {
        let left = l.expires_at.saturating_sub(crate::token::now());
        rows.push((
            "login",
            format!(
                "{}, token valid for {}{}",
                l.principal.as_deref().unwrap_or("(no principal)"),
                crate::cache::human(std::time::Duration::from_secs(left)),
                if l.refreshable { ", refreshable" } else { "" }
            ),
        ));
    }
    Ok(output::pairs(&rows))
}
