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
    /// `none`, `providedToken` or `oauthClient`.
    token_source: &'static str,
    token_from: Option<String>,
    /// The principal the runtime sees for this client's token.
    principal: Option<String>,
}

pub fn status(client: &Client, format: Format) -> Result<String, CliError> {
    let info = client.info()?;
    let (token_source, token_from) = match client.auth() {
        None => ("none", None),
        Some(Source::Provided { from, .. }) => ("providedToken", Some(from.clone())),
        Some(Source::Client(c)) => ("oauthClient", Some(c.token_url.clone())),
    };
    let s = Status {
        runtime: client.base().to_string(),
        auth_required: info.auth.required,
        token_validation_profiles: info.auth.token_validation_profiles.clone(),
        audience: info.auth.audience.clone(),
        token_source,
        token_from,
        principal: info.auth.principal.clone(),
    };
    if let Some(text) = output::machine(format, &s)? {
        return Ok(text);
    }
    Ok(output::pairs(&[
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
    ]))
}
