//! Delegated runtime tokens: this client's runtime token exchanged at the broker (RFC 8693)
//! for a child with a subset of its scopes, a shorter life and an actor.
//!
//! - `open-cli auth delegate` asks for one to hand to a sub-agent
//!   (`crate::commands::auth::delegate`).
//! - With `runtime.remote.oauth.delegation.enabled`, every command sends a child with
//!   `delegation.scopes` instead of the primary token (the contract's delegation), kept 0600
//!   under the state directory until 30 s before it expires and exchanged again after that, or
//!   when the runtime refuses it.
//!
//! Where the exchange goes: `delegation.tokenExchangeURL`, else the token endpoint of the
//! runtime's browser login (`/v1/auth/browser-config`), else the `oauthClient`'s token URL. As
//! whom: `delegation.clientId` (a public client), else the `oauthClient`'s credentials (HTTP
//! basic) when the endpoint is that client's own token endpoint (its secret never goes
//! elsewhere), else the browser login's public client. The actor (`actor_id`) is named by the
//! caller, else `$OPEN_CLI_AGENT_SESSION_ID`, else `$COPILOT_SESSION_ID`.

use std::path::PathBuf;

use open_cli_config::model::RemoteOAuth;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::error::{CliError, exit};
use crate::token::{self, Source};

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// What to ask the broker for.
#[derive(Debug)]
pub struct Request<'a> {
    pub scopes: &'a [String],
    /// Seconds; `None`: the broker's default.
    pub ttl: Option<u64>,
    pub actor: Option<String>,
}

/// A child token (RFC 8693 §2.2.1, plus the broker's `delegation_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Child {
    pub access_token: String,
    pub issued_token_type: Option<String>,
    pub expires_in: Option<u64>,
    /// Seconds since the epoch.
    pub expires_at: Option<u64>,
    pub scope: Option<String>,
    pub delegation_id: Option<String>,
    pub token_exchange_url: String,
}

/// The actor of a child asked for without one: the agent session this process runs in.
pub fn actor_from_env() -> Option<String> {
    ["OPEN_CLI_AGENT_SESSION_ID", "COPILOT_SESSION_ID"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .filter(|a| !a.trim().is_empty())
}

/// Exchange `parent` for a child per `oauth` (`runtime.remote.oauth`, when the config has one).
pub fn exchange(
    client: &Client,
    oauth: Option<&RemoteOAuth>,
    parent: &str,
    req: &Request<'_>,
) -> Result<Child, CliError> {
    let delegation = oauth.and_then(|o| o.delegation.as_ref());
    let confidential = match client.auth() {
        Some(Source::Client(c)) => Some(c),
        _ => None,
    };
    // The browser-login metadata, when something is left to learn from it.
    let needs_metadata = delegation
        .and_then(|d| d.token_exchange_url.as_ref())
        .is_none()
        || delegation.and_then(|d| d.client_id.as_ref()).is_none()
        || oauth.and_then(|o| o.audience.as_ref()).is_none();
    let bc = needs_metadata
        .then(|| crate::login::discover(client))
        .transpose()
        .ok()
        .flatten();
    let url = delegation
        .and_then(|d| d.token_exchange_url.clone())
        .or_else(|| bc.as_ref().map(|b| b.token_url.clone()))
        .or_else(|| confidential.map(|c| c.token_url.clone()))
        .ok_or_else(|| {
            CliError::usage("no token-exchange endpoint is known for this runtime")
                .hint("set runtime.remote.oauth.delegation.tokenExchangeURL to the broker's token endpoint")
        })?;
    let audience = oauth
        .and_then(|o| o.audience.clone())
        .or_else(|| bc.as_ref().map(|b| b.audience.clone()))
        .or_else(|| client.info_anonymous().ok().and_then(|i| i.auth.audience))
        .ok_or_else(|| {
            CliError::usage("the runtime's audience is not known")
                .hint("set runtime.remote.oauth.audience")
        })?;
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", TOKEN_EXCHANGE.into()),
        ("subject_token", parent.to_string()),
        ("subject_token_type", ACCESS_TOKEN.into()),
        ("requested_token_type", ACCESS_TOKEN.into()),
        ("audience", audience),
        ("scope", req.scopes.join(" ")),
    ];
    if let Some(ttl) = req.ttl {
        form.push(("expires_in", ttl.to_string()));
    }
    if let Some(a) = &req.actor {
        form.push(("actor_id", a.clone()));
    }
    // A confidential client's secret goes to its own token endpoint only.
    let own = confidential.filter(|c| c.token_url == url);
    let basic = match (own, delegation.and_then(|d| d.client_id.clone())) {
        (_, Some(id)) => {
            form.push(("client_id", id));
            None
        }
        (Some(c), None) => Some((c.client_id.as_str(), c.client_secret.as_str())),
        (None, None) => {
            let id = bc.as_ref().map(|b| b.client_id.clone()).ok_or_else(|| {
                CliError::usage("no client is known to ask the broker with")
                    .hint("set runtime.remote.oauth.delegation.clientId")
            })?;
            form.push(("client_id", id));
            None
        }
    };
    let answer: serde_json::Value =
        token::oauth_post(client.http(), &url, &form, basic).map_err(|e| {
            e.into_error(format!(
                "the broker at {url} did not delegate scopes `{}`",
                req.scopes.join(" ")
            ))
        })?;
    let text = |k: &str| answer.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let access_token = text("access_token").ok_or_else(|| {
        CliError::new(
            exit::PROTOCOL,
            format!("the broker at {url} answered without an access_token"),
        )
    })?;
    let expires_in = answer.get("expires_in").and_then(|v| v.as_u64());
    Ok(Child {
        access_token,
        issued_token_type: text("issued_token_type"),
        expires_in,
        expires_at: expires_in.map(|s| token::now() + s),
        scope: text("scope"),
        delegation_id: text("delegation_id"),
        token_exchange_url: url,
    })
}

/// `runtime.remote.oauth.delegation.enabled`: the child every command sends instead of
/// `parent`, from the state directory while it is good for 30 s more (and was made from this
/// parent for these scopes and this actor), else exchanged now. `fresh`: the runtime refused
/// the last one; exchange again.
pub fn automatic(
    client: &Client,
    oauth: &RemoteOAuth,
    parent: &str,
    fresh: bool,
) -> Result<String, CliError> {
    let scopes = oauth
        .delegation
        .as_ref()
        .map(|d| d.scopes.as_slice())
        .unwrap_or_default();
    if scopes.is_empty() {
        return Err(CliError::usage(
            "runtime.remote.oauth.delegation is enabled but names no scopes",
        )
        .hint("set runtime.remote.oauth.delegation.scopes to the subset every command runs with"));
    }
    let actor = actor_from_env();
    let path = cache_path(client.base(), parent, scopes, actor.as_deref());
    if !fresh
        && let Some(c) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Child>(&b).ok())
            .filter(|c| c.expires_at.is_some_and(|e| e > token::now() + 30))
    {
        return Ok(c.access_token);
    }
    let child = exchange(
        client,
        Some(oauth),
        parent,
        &Request {
            scopes,
            ttl: None,
            actor,
        },
    )?;
    if let Ok(body) = serde_json::to_vec(&child) {
        // A cache: a failed write costs an exchange next time, nothing else.
        let _ = token::write_private(&path, &body);
    }
    Ok(child.access_token)
}

/// One file per runtime, parent token, scopes and actor (only their digest in the name).
fn cache_path(base: &str, parent: &str, scopes: &[String], actor: Option<&str>) -> PathBuf {
    let key = format!(
        "{base}\n{parent}\n{}\n{}",
        scopes.join(" "),
        actor.unwrap_or_default()
    );
    let name = hex::encode(Sha256::digest(key.as_bytes()));
    token::state_dir()
        .join("tokens")
        .join(format!("delegated-{name}.json"))
}
