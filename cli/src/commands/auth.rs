//! `open-cli auth status`.

use std::collections::{BTreeMap, BTreeSet};

use open_cli_config::LoadedConfig;
use open_cli_config::wire::EffectiveCatalog;
use serde::Serialize;

use crate::args::Format;
use crate::client::{Client, ViewSelector};
use crate::error::CliError;
use crate::output;
use crate::token::Source;

/// The contract's posture report (`posture`, `runtime`, `config`, `services`) and this
/// client's token: where it comes from, the login, who the runtime takes it for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    /// `runtimeSession` (the runtime answers and accepts this client), `configOnly` (no
    /// session with the runtime, but a config) or `unknown`.
    posture: &'static str,
    runtime: RuntimePosture,
    config: ConfigPosture,
    /// Per service of the view: the upstream auth its tools need, and whether the local
    /// config defines a secret for it (`null`: not known here, the runtime holds the secrets).
    services: Vec<ServiceAuth>,
    auth_required: Option<bool>,
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
struct RuntimePosture {
    available: bool,
    url: String,
    mode: Option<String>,
    version: Option<String>,
    /// `authenticated`, `anonymous` (no token needed), `refused` or `unreachable`.
    posture: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigPosture {
    active_path: Option<String>,
    /// `loaded` or `absent`.
    posture: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceAuth {
    name: String,
    /// The security schemes its tools use (`apiKey`, `http/bearer`, …), or `none`.
    auth_type: String,
    configured: Option<bool>,
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

pub fn status(
    client: &Client,
    view: &ViewSelector,
    config: Option<&LoadedConfig>,
    format: Format,
) -> Result<String, CliError> {
    // Whether the runtime answers at all (no token needed), then what it makes of ours.
    let public = client.info_anonymous();
    let with_token = public.as_ref().ok().map(|_| client.info());
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
    let ok = public.as_ref().ok();
    let accepted = with_token.as_ref().and_then(|r| r.as_ref().ok());
    let principal = accepted.and_then(|i| i.auth.principal.clone());
    let runtime_posture = match (&public, accepted) {
        (Err(e), _) if e.exit == crate::error::exit::UNREACHABLE => "unreachable",
        (Err(_), _) => "refused",
        (Ok(_), Some(_)) if principal.is_some() => "authenticated",
        (Ok(i), Some(_)) if !i.auth.required => "anonymous",
        (Ok(_), _) => "refused",
    };
    let error = match (&public, &with_token) {
        (Err(e), _) | (Ok(_), Some(Err(e))) => Some(e.message.clone()),
        _ => None,
    };
    let services = accepted
        .and_then(|_| client.effective(view).ok())
        .map(|e| services(&e, config))
        .unwrap_or_default();
    let session_ok = matches!(runtime_posture, "authenticated" | "anonymous");
    let s = Status {
        posture: if session_ok {
            "runtimeSession"
        } else if config.is_some() {
            "configOnly"
        } else {
            "unknown"
        },
        runtime: RuntimePosture {
            available: ok.is_some(),
            url: client.base().to_string(),
            mode: ok.map(|i| i.runtime_mode.clone()),
            version: ok.and_then(|i| i.version.clone()),
            posture: runtime_posture,
            error,
        },
        config: ConfigPosture {
            active_path: config.map(|l| l.path.display().to_string()),
            posture: if config.is_some() { "loaded" } else { "absent" },
        },
        services,
        auth_required: ok.map(|i| i.auth.required),
        token_validation_profiles: ok
            .map(|i| i.auth.token_validation_profiles.clone())
            .unwrap_or_default(),
        audience: ok.and_then(|i| i.auth.audience.clone()),
        token_source,
        token_from,
        login,
        principal,
    };
    if let Some(text) = output::machine(format, &s)? {
        return Ok(text);
    }
    let mut rows = vec![
        ("posture", s.posture.to_string()),
        (
            "runtime",
            format!("{} ({})", s.runtime.url, s.runtime.posture),
        ),
        (
            "auth",
            match s.auth_required {
                Some(true) => format!("required ({})", s.token_validation_profiles.join(", ")),
                Some(false) => "not required".into(),
                None => "unknown".into(),
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
    for svc in &s.services {
        rows.push((
            "service",
            format!(
                "{}: {}{}",
                svc.name,
                svc.auth_type,
                match svc.configured {
                    Some(true) => ", secret configured",
                    Some(false) => ", no secret in this config",
                    None => "",
                }
            ),
        ));
    }
    Ok(output::pairs(&rows))
}

/// Each service of the view: the schemes its tools need; whether the local config defines a
/// secret for each (`secrets.<service>.<scheme>` or `secrets.<scheme>`, the runtime's rule),
/// known only when the config has secrets at all.
fn services(e: &EffectiveCatalog, config: Option<&LoadedConfig>) -> Vec<ServiceAuth> {
    let mut by_service: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    for t in &e.view.tools {
        let entry = by_service.entry(t.service_id.as_str()).or_default();
        for a in &t.auth {
            let kind = match &a.scheme {
                Some(scheme) if a.kind == "http" => format!("http/{scheme}"),
                _ => a.kind.clone(),
            };
            entry.insert((kind, a.name.clone()));
        }
    }
    let secrets = config.map(|l| &l.config.secrets).filter(|s| !s.is_empty());
    by_service
        .into_iter()
        .map(|(name, reqs)| {
            let kinds: BTreeSet<&str> = reqs.iter().map(|(k, _)| k.as_str()).collect();
            ServiceAuth {
                name: name.to_string(),
                auth_type: if kinds.is_empty() {
                    "none".into()
                } else {
                    kinds.into_iter().collect::<Vec<_>>().join(", ")
                },
                configured: if reqs.is_empty() {
                    Some(true)
                } else {
                    secrets.map(|secrets| {
                        reqs.iter().any(|(_, scheme)| {
                            secrets.contains_key(&format!("{name}.{scheme}"))
                                || secrets.contains_key(scheme)
                        })
                    })
                },
            }
        })
        .collect()
}

/// What `auth delegate` asks for.
#[derive(Debug)]
pub struct DelegateArgs<'a> {
    pub scopes: &'a [String],
    pub ttl: u64,
    pub actor: Option<&'a str>,
    pub export: bool,
}

/// `open-cli auth delegate`: exchange this client's runtime token at the broker (RFC 8693)
/// for a child token with a subset of its scopes, for the runtime's audience
/// ([`crate::delegation`] says where and as whom). The scopes are `--scope`, else
/// `delegation.scopes`; the actor `--actor`, else the agent session of the environment.
pub fn delegate(
    client: &Client,
    config: Option<&LoadedConfig>,
    args: &DelegateArgs<'_>,
    format: Format,
) -> Result<String, CliError> {
    let parent = client.primary_token()?.ok_or_else(|| {
        CliError::usage("there is no runtime token to delegate from")
            .hint("log in with `open-cli auth login`, or set runtime.remote.oauth")
    })?;
    let oauth = config
        .and_then(|l| l.config.runtime.as_ref())
        .and_then(|r| r.remote.as_ref())
        .and_then(|r| r.oauth.as_ref());
    let delegation = oauth.and_then(|o| o.delegation.as_ref());
    let scopes = match (args.scopes, delegation.map(|d| d.scopes.as_slice())) {
        (s, _) if !s.is_empty() => s,
        (_, Some(s)) if !s.is_empty() => s,
        _ => {
            return Err(CliError::usage("no scopes to delegate")
                .hint("pass --scope S,… (a subset of this token's scopes), or set runtime.remote.oauth.delegation.scopes"));
        }
    };
    let d = crate::delegation::exchange(
        client,
        oauth,
        &parent,
        &crate::delegation::Request {
            scopes,
            ttl: Some(args.ttl),
            actor: args
                .actor
                .map(str::to_string)
                .or_else(crate::delegation::actor_from_env),
        },
    )?;
    if args.export {
        // A JWT or an opaque token: printable ASCII without quotes; refused otherwise.
        if !d
            .access_token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\'')
        {
            return Err(CliError::new(
                crate::error::exit::PROTOCOL,
                "the broker's token cannot be written as a shell word",
            ));
        }
        return Ok(format!("export OPEN_CLI_TOKEN='{}'\n", d.access_token));
    }
    if let Some(text) = output::machine(format, &d)? {
        return Ok(text);
    }
    let mut rows = vec![
        ("scope", d.scope.clone().unwrap_or_else(|| "-".into())),
        (
            "expires",
            d.expires_in.map_or("-".into(), |s| {
                crate::cache::human(std::time::Duration::from_secs(s))
            }),
        ),
    ];
    if let Some(id) = &d.delegation_id {
        rows.push(("delegation", id.clone()));
    }
    rows.push(("token", d.access_token.clone()));
    Ok(output::pairs(&rows))
}
