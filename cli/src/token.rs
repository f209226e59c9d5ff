//! The CLI's runtime token (`runtime.remote.oauth`).
//!
//! - `providedToken`: `tokenRef` is `env:NAME` or `file:PATH` (relative to the config file);
//!   an unset variable or a missing file is an error, never an anonymous request.
//! - `oauthClient`: client credentials at `client.tokenURL` (HTTP basic client
//!   authentication; `scope` from `scopes`; `audience` and RFC 8707 `resource` from `audience`,
//!   else from the runtime's advertised audience). The token is cached under the state
//!   directory (`$XDG_STATE_HOME/open-cli/tokens/`, mode 0600) until 30 s before it expires,
//!   and fetched again once when the runtime answers `authn_failed`.
//! - `browserLogin`: the token `open-cli auth login` got for a person ([`crate::login`]),
//!   refreshed with its refresh token before it expires and once on `authn_failed`. Without
//!   any `runtime.remote.oauth`, a login made with `auth login` for the runtime is used when
//!   there is one.
//! - `OPEN_CLI_TOKEN`, when set and not empty, is the token, whatever the config says: a
//!   sub-agent is handed its delegated token that way (`open-cli auth delegate --export`).
//! - With `delegation.enabled`, the token found here is the parent of what is sent
//!   ([`crate::delegation`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use open_cli_config::LoadedConfig;
use open_cli_config::model::{RemoteOAuth, RemoteOAuthMode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CliError, exit};

/// The environment variable that, when set, is the runtime token (over any config).
pub const TOKEN_ENV: &str = "OPEN_CLI_TOKEN";

/// Reuse a cached token until this long before it expires.
const EXPIRY_MARGIN: u64 = 30;

#[derive(Debug, Clone)]
pub enum Source {
    Provided { token: String, from: String },
    Client(ClientCredentials),
    Login(crate::login::Login),
}

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub cache: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cached {
    access_token: String,
    expires_at: u64,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn config_error(msg: impl Into<String>) -> CliError {
    CliError::usage(msg).hint("fix `runtime.remote.oauth` in the client config")
}

/// The token source a client config asks for, if any.
pub fn source(loaded: Option<&LoadedConfig>) -> Result<Option<Source>, CliError> {
    // A token handed to this process (a sub-agent's delegated token, `auth delegate`) wins.
    if let Some(token) = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(Source::Provided {
            token: token.trim().to_string(),
            from: format!("env:{TOKEN_ENV}"),
        }));
    }
    let Some(loaded) = loaded else {
        return Ok(Some(Source::Login(crate::login::Login::implicit())));
    };
    let Some(oauth) = loaded
        .config
        .runtime
        .as_ref()
        .and_then(|r| r.remote.as_ref())
        .and_then(|r| r.oauth.as_ref())
    else {
        return Ok(Some(Source::Login(crate::login::Login::implicit())));
    };
    match oauth.mode {
        RemoteOAuthMode::ProvidedToken => provided(oauth, &loaded.base_dir).map(Some),
        RemoteOAuthMode::OAuthClient => client(oauth, loaded).map(Some),
        RemoteOAuthMode::BrowserLogin => {
            Ok(Some(Source::Login(crate::login::Login::configured(oauth))))
        }
    }
}

impl Source {
    /// In `auth status` terms: `providedToken`, `oauthClient`, `browserLogin` or `none` (no
    /// login made for `base`), and where the token comes from.
    pub fn describe(&self, base: &str) -> (&'static str, Option<String>) {
        match self {
            Source::Provided { from, .. } => ("providedToken", Some(from.clone())),
            Source::Client(c) => ("oauthClient", Some(c.token_url.clone())),
            Source::Login(l) => match l.load(base) {
                Some(s) => ("browserLogin", Some(s.token_url)),
                None if l.configured => ("browserLogin", None),
                None => ("none", None),
            },
        }
    }
}

fn provided(oauth: &RemoteOAuth, base: &Path) -> Result<Source, CliError> {
    let r = oauth
        .token_ref
        .as_deref()
        .ok_or_else(|| config_error("runtime.remote.oauth.tokenRef is required"))?;
    let token = if let Some(name) = r.strip_prefix("env:") {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                config_error(format!(
                    "environment variable `{name}` (runtime.remote.oauth.tokenRef) is not set"
                ))
            })?
    } else if let Some(path) = r.strip_prefix("file:") {
        let p = base.join(path);
        open_cli_config::files::read_regular_text(&p, open_cli_config::files::MAX_SECRET_BYTES)
            .map_err(|e| {
                config_error(format!(
                    "cannot read the token file {} (runtime.remote.oauth.tokenRef): {e}",
                    p.display()
                ))
            })?
    } else {
        return Err(config_error(format!(
            "tokenRef `{r}` must be `env:NAME` or `file:PATH`"
        )));
    };
    Ok(Source::Provided {
        token: token.trim().to_string(),
        from: r.to_string(),
    })
}

fn client(oauth: &RemoteOAuth, loaded: &LoadedConfig) -> Result<Source, CliError> {
    let c = oauth
        .client
        .as_ref()
        .ok_or_else(|| config_error("runtime.remote.oauth.client is required"))?;
    let resolve = |r, key: &str| {
        open_cli_config::secrets::resolve(r, loaded.config.policy.allow_exec_secrets)
            .map_err(|e| config_error(format!("runtime.remote.oauth.client.{key}: {e}")))
    };
    let client_id = resolve(&c.client_id, "clientId")?;
    let client_secret = resolve(&c.client_secret, "clientSecret")?;
    let key = format!(
        "{}\n{}\n{}\n{:?}",
        c.token_url,
        client_id,
        oauth.scopes.join(" "),
        oauth.audience
    );
    let name = hex::encode(Sha256::digest(key.as_bytes()));
    Ok(Source::Client(ClientCredentials {
        token_url: c.token_url.clone(),
        client_id,
        client_secret,
        scopes: oauth.scopes.clone(),
        audience: oauth.audience.clone(),
        cache: state_dir().join("tokens").join(format!("{name}.json")),
    }))
}

pub(crate) fn state_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("OPEN_CLI_STATE_DIR")
        .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("open-cli")))
        .or_else(|| env("HOME").map(|h| h.join(".local/state/open-cli")))
        .unwrap_or_else(|| PathBuf::from(".open-cli-state"))
}

impl ClientCredentials {
    /// `auth logout`: remove this source's cached token (its file is this token URL, client,
    /// scopes and audience's alone).
    pub fn forget(&self) -> Result<String, CliError> {
        match std::fs::remove_file(&self.cache) {
            Ok(()) => Ok(format!(
                "forgot the cached token of client `{}` at {}\n",
                self.client_id, self.token_url
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok("nothing cached for this client and token URL\n".into())
            }
            Err(e) => Err(
                CliError::usage(format!("cannot remove {}", self.cache.display()))
                    .cause(e.to_string()),
            ),
        }
    }

    /// A cached, still-valid token.
    pub fn cached(&self) -> Option<(String, u64)> {
        let c: Cached = serde_json::from_slice(&std::fs::read(&self.cache).ok()?).ok()?;
        (c.expires_at > now() + EXPIRY_MARGIN).then_some((c.access_token, c.expires_at))
    }

    /// Fetch a new token; `audience` is used when the config names none.
    pub fn fetch(
        &self,
        http: &reqwest::blocking::Client,
        audience: Option<&str>,
    ) -> Result<String, CliError> {
        let audience = self.audience.as_deref().or(audience);
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if !self.scopes.is_empty() {
            form.push(("scope", self.scopes.join(" ")));
        }
        if let Some(a) = audience {
            form.push(("audience", a.to_string()));
            form.push(("resource", a.to_string()));
        }
        let granted = token_request(
            http,
            &self.token_url,
            &form,
            Some((&self.client_id, &self.client_secret)),
        )
        .map_err(|e| {
            e.into_error(format!(
                "cannot get a runtime token from {}",
                self.token_url
            ))
            .hint("check runtime.remote.oauth.client (token URL, client ID and secret)")
        })?;
        let expires_at = now() + granted.expires_in.unwrap_or(300);
        self.store(&granted.access_token, expires_at);
        Ok(granted.access_token)
    }

    fn store(&self, token: &str, expires_at: u64) {
        let body = serde_json::to_vec(&Cached {
            access_token: token.to_string(),
            expires_at,
        })
        .unwrap_or_default();
        let _ = write_private(&self.cache, &body);
    }
}

/// Write `body` to `path` atomically, readable by this user only (0600; directory 0700).
pub(crate) fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(body))?;
    std::fs::rename(&tmp, path)
}

/// A token endpoint's success answer (RFC 6749 5.1).
#[derive(Debug, Deserialize)]
pub(crate) struct Granted {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Why a token request failed: the endpoint's OAuth error (RFC 6749 5.2), or no usable answer.
#[derive(Debug)]
pub(crate) enum TokenError {
    OAuth {
        status: u16,
        error: String,
        description: String,
    },
    Failed(String),
}

impl TokenError {
    pub fn into_error(self, message: String) -> CliError {
        let why = match self {
            TokenError::OAuth {
                status,
                error,
                description,
            } => format!("HTTP {status}: {error} {description}")
                .trim()
                .to_string(),
            TokenError::Failed(why) => why,
        };
        CliError::new(exit::REQUEST_FAILED, message).cause(why)
    }
}

/// POST a form to an OAuth endpoint (token, device authorization), with HTTP basic client
/// authentication when `basic` is given; the JSON answer of a 2xx, else the OAuth error.
pub(crate) fn oauth_post<T: serde::de::DeserializeOwned>(
    http: &reqwest::blocking::Client,
    url: &str,
    form: &[(&str, String)],
    basic: Option<(&str, &str)>,
) -> Result<T, TokenError> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let mut req = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .timeout(Duration::from_secs(30))
        .body(body);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req
        .send()
        .map_err(|e| TokenError::Failed(crate::error::chain(&e).join(": ")))?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .map_err(|e| TokenError::Failed(format!("HTTP {status}: not JSON: {e}")))?;
    if !status.is_success() {
        let field = |k: &str| v.get(k).and_then(|e| e.as_str()).unwrap_or_default();
        return Err(TokenError::OAuth {
            status: status.as_u16(),
            error: match field("error") {
                "" => "error".into(),
                e => e.to_string(),
            },
            description: field("error_description").to_string(),
        });
    }
    serde_json::from_value(v)
        .map_err(|e| TokenError::Failed(format!("HTTP {status}: unexpected answer: {e}")))
}

/// [`oauth_post`] to a token endpoint.
pub(crate) fn token_request(
    http: &reqwest::blocking::Client,
    url: &str,
    form: &[(&str, String)],
    basic: Option<(&str, &str)>,
) -> Result<Granted, TokenError> {
    oauth_post(http, url, form, basic)
}
