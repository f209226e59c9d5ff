//! A person's runtime token: `open-cli auth login` (`runtime.remote.oauth.mode:
//! browserLogin`).
//!
//! - **Discovery**: `/v1/runtime/info` says whether the runtime offers browser login, and
//!   `/v1/auth/browser-config` names the provider's authorization and token endpoints, the
//!   public client ID and the audience (both asked without a token).
//! - **Browser** (default): OAuth 2 authorization code with PKCE (S256) and `state` (RFC
//!   7636, RFC 8252). A listener on `127.0.0.1` (`browserLogin.callbackPort`, else an
//!   ephemeral port) receives the redirect at `/callback`; the browser is opened with `$BROWSER`,
//!   `xdg-open` or `open`, or, with `--no-browser`, the address is only printed. A redirect
//!   with another `state` is answered 400 and ignored (it is not ours); the wait ends after
//!   [`BROWSER_WAIT`].
//! - **Device** (`--device`, RFC 8628) for a host without a browser: the user code and the
//!   verification address are printed, and the token endpoint is polled at the interval the
//!   provider asks (5 s by default, 5 s more on `slow_down`) until the person has approved,
//!   refused, or the code expired. The device endpoint is `deviceAuthorizationURL` of the
//!   browser config, else the issuer's metadata (`device_authorization_endpoint`).
//! - Scopes asked: `openid offline_access` and `runtime.remote.oauth.scopes`; with
//!   `offline_access`, `prompt=consent` (OpenID Connect Core 11: offline access needs consent).
//!   The audience is sent as the RFC 8707 `resource`.
//! - **The session** (access token, refresh token, expiry, endpoints) is kept 0600 under the
//!   state directory, one file per runtime URL and configured audience. Before each command
//!   a token expiring within 30 s is refreshed with the refresh token (rotation kept), and
//!   once more when the runtime answers `authn_failed`; without a usable refresh token the
//!   command fails with "run `open-cli auth login`", never falling back to an anonymous call.
//! - A new token is checked with the runtime (`/v1/runtime/info` with it) before it is kept.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use open_cli_config::model::RemoteOAuth;
use open_cli_config::wire::BrowserConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::client::Client;
use crate::error::{CliError, exit};
use crate::token::{self, TokenError};

/// How long `auth login` waits for the browser to come back.
pub const BROWSER_WAIT: Duration = Duration::from_secs(300);
/// Refresh a token this long before it expires.
const EXPIRY_MARGIN: u64 = 30;

/// Where a person's login for a runtime is kept, and what it asks for.
#[derive(Debug, Clone)]
pub struct Login {
    pub scopes: Vec<String>,
    /// `runtime.remote.oauth.audience`; else the runtime's.
    pub audience: Option<String>,
    pub callback_port: Option<u16>,
    /// `browserLogin` is configured: a command without a login fails. Otherwise (no
    /// `runtime.remote.oauth`) a login is used when there is one, and requests are anonymous
    /// when there is none.
    pub configured: bool,
}

/// A login: what the provider granted, and where to refresh it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub runtime: String,
    pub access_token: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(rename = "tokenURL")]
    pub token_url: String,
    pub client_id: String,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The provider's RFC 7009 revocation endpoint (from its metadata at login), where
    /// `auth logout` revokes the refresh token.
    #[serde(
        rename = "revocationURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub revocation_url: Option<String>,
}

impl Session {
    /// Still good for at least 30 s.
    pub fn usable(&self) -> bool {
        self.expires_at > token::now() + EXPIRY_MARGIN
    }
}

impl Login {
    pub fn configured(oauth: &RemoteOAuth) -> Self {
        Self {
            scopes: oauth.scopes.clone(),
            audience: oauth.audience.clone(),
            callback_port: oauth.browser_login.as_ref().and_then(|b| b.callback_port),
            configured: true,
        }
    }

    pub fn implicit() -> Self {
        Self {
            scopes: Vec::new(),
            audience: None,
            callback_port: None,
            configured: false,
        }
    }

    /// The session file of a runtime (and the configured audience).
    pub fn path(&self, base: &str) -> PathBuf {
        let key = format!("{base}\n{}", self.audience.as_deref().unwrap_or_default());
        let name = hex::encode(Sha256::digest(key.as_bytes()));
        token::state_dir()
            .join("tokens")
            .join(format!("login-{name}.json"))
    }

    pub fn load(&self, base: &str) -> Option<Session> {
        serde_json::from_slice(&std::fs::read(self.path(base)).ok()?).ok()
    }

    fn store(&self, s: &Session) -> Result<(), CliError> {
        let path = self.path(&s.runtime);
        let body = serde_json::to_vec(s).unwrap_or_default();
        token::write_private(&path, &body).map_err(|e| {
            CliError::usage(format!("cannot keep the login at {}", path.display()))
                .cause(e.to_string())
        })
    }

    /// `auth logout`: revoke the login's refresh token at the provider (RFC 7009, when it
    /// named a revocation endpoint), then forget this runtime's login (only this file). A
    /// revocation that fails is reported; the login is forgotten all the same.
    pub fn forget(&self, http: &reqwest::blocking::Client, base: &str) -> Result<String, CliError> {
        let path = self.path(base);
        let revoked = self.load(base).and_then(|s| revoke(http, &s));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(format!(
                "logged out of {base}; forgot {}{}\n",
                path.display(),
                revoked.unwrap_or_default()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(format!("not logged in to {base}; nothing to forget\n"))
            }
            Err(e) => {
                Err(CliError::usage(format!("cannot remove {}", path.display()))
                    .cause(e.to_string()))
            }
        }
    }

    /// The token to send: the session's, refreshed when it expires soon (or `fresh`).
    /// `None`: not logged in and not required.
    pub fn bearer(
        &self,
        http: &reqwest::blocking::Client,
        base: &str,
        fresh: bool,
    ) -> Result<Option<String>, CliError> {
        let Some(session) = self.load(base) else {
            if !self.configured {
                return Ok(None);
            }
            return Err(not_logged_in(base, "not logged in"));
        };
        if !fresh && session.usable() {
            return Ok(Some(session.access_token));
        }
        let Some(refresh) = session.refresh_token.clone() else {
            return Err(not_logged_in(
                base,
                "the login has expired and the provider gave no refresh token",
            ));
        };
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh.clone()),
            ("client_id", session.client_id.clone()),
            ("resource", session.audience.clone()),
        ];
        let granted =
            token::token_request(http, &session.token_url, &form, None).map_err(|e| match e {
                TokenError::OAuth { ref error, .. } if error == "invalid_grant" => {
                    not_logged_in(base, "the provider no longer accepts the login")
                }
                e => e
                    .into_error(format!("cannot refresh the login at {}", session.token_url))
                    .hint("is the identity provider reachable? `open-cli auth login` starts over"),
            })?;
        let renewed = Session {
            access_token: granted.access_token,
            expires_at: token::now() + granted.expires_in.unwrap_or(300),
            refresh_token: granted.refresh_token.or(Some(refresh)),
            ..session
        };
        self.store(&renewed)?;
        Ok(Some(renewed.access_token))
    }
}

fn not_logged_in(base: &str, why: &str) -> CliError {
    CliError::new(
        exit::REQUEST_FAILED,
        format!("{why} to the runtime at {base}"),
    )
    .hint("log in with `open-cli auth login` (or `open-cli auth login --device` without a browser)")
}

/// How `auth login` runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub device: bool,
    pub no_browser: bool,
}

/// `open-cli auth login`.
pub fn login(client: &Client, login: &Login, opts: Options) -> Result<String, CliError> {
    let base = client.base().to_string();
    let bc = discover(client)?;
    let audience = login
        .audience
        .clone()
        .unwrap_or_else(|| bc.audience.clone());
    let mut scopes = vec!["openid".to_string(), "offline_access".to_string()];
    scopes.extend(login.scopes.iter().cloned());
    let scope = scopes.join(" ");
    let granted = if opts.device {
        device(client, &bc, &scope, &audience)?
    } else {
        browser(client, login, &bc, &scope, &audience, opts.no_browser)?
    };
    // Ask the runtime who this token is before keeping it.
    let info = client.info_as(&granted.access_token).map_err(|e| {
        CliError::new(
            exit::REQUEST_FAILED,
            format!("the runtime at {base} refuses the token the provider issued"),
        )
        .cause(e.message)
        .hint("the provider's audience or issuer may not match `runtime.server.auth`")
    })?;
    let session = Session {
        runtime: base.clone(),
        access_token: granted.access_token,
        expires_at: token::now() + granted.expires_in.unwrap_or(300),
        refresh_token: granted.refresh_token,
        token_url: bc.token_url.clone(),
        client_id: bc.client_id.clone(),
        audience,
        principal: info.auth.principal.clone(),
        revocation_url: revocation_endpoint(client, &bc),
    };
    login.store(&session)?;
    Ok(format!(
        "logged in to {base} as {}; the token is valid for {}{}\n",
        session.principal.as_deref().unwrap_or("(no principal)"),
        crate::cache::human(Duration::from_secs(
            session.expires_at.saturating_sub(token::now())
        )),
        if session.refresh_token.is_some() {
            " and is refreshed when it expires"
        } else {
            " (no refresh token: log in again then)"
        }
    ))
}

/// The provider's revocation endpoint, from its metadata (`<issuer>/.well-known/...`); `None`
/// when the runtime names no issuer or the provider has none.
fn revocation_endpoint(client: &Client, bc: &BrowserConfig) -> Option<String> {
    let issuer = bc.issuer.as_deref()?;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let meta: serde_json::Value = client
        .http()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .ok()?;
    meta.get("revocation_endpoint")?
        .as_str()
        .map(str::to_string)
}

/// Revoke `session`'s refresh token (RFC 7009; a public client names itself); what to add to
/// the logout's report.
fn revoke(http: &reqwest::blocking::Client, session: &Session) -> Option<String> {
    let token = session.refresh_token.as_deref()?;
    let Some(url) = session.revocation_url.as_deref() else {
        return Some(
            "; the provider names no revocation endpoint, so its refresh token stays valid until it expires"
                .into(),
        );
    };
    let form = [
        ("token", token.to_string()),
        ("token_type_hint", "refresh_token".to_string()),
        ("client_id", session.client_id.clone()),
    ];
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let answer = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .timeout(Duration::from_secs(10))
        .body(body)
        .send();
    Some(match answer {
        Ok(r) if r.status().is_success() => format!("; revoked its refresh token at {url}"),
        Ok(r) => format!(
            "; the provider at {url} refused to revoke its refresh token (HTTP {})",
            r.status().as_u16()
        ),
        Err(e) => format!(
            "; could not revoke its refresh token at {url}: {}",
            crate::error::chain(&e).join(": ")
        ),
    })
}

/// The runtime's browser-login settings.
pub(crate) fn discover(client: &Client) -> Result<BrowserConfig, CliError> {
    let info = client.info_anonymous()?;
    if !info.auth.browser_login.configured {
        return Err(CliError::usage(format!(
            "the runtime at {} does not offer browser login",
            client.base()
        ))
        .hint("its `runtime.server.auth` needs authorizationURL, tokenURL and browserClientId; or use `providedToken` / `oauthClient` in runtime.remote.oauth"));
    }
    client.get_anonymous(&info.auth.browser_login.config_endpoint)
}

fn random(n: usize) -> Result<String, CliError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| {
        CliError::new(exit::PROTOCOL, "no randomness for the login").cause(e.to_string())
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

fn browser(
    client: &Client,
    login: &Login,
    bc: &BrowserConfig,
    scope: &str,
    audience: &str,
    no_browser: bool,
) -> Result<token::Granted, CliError> {
    let listener =
        TcpListener::bind(("127.0.0.1", login.callback_port.unwrap_or(0))).map_err(|e| {
            CliError::usage(format!(
                "cannot listen for the login's redirect on 127.0.0.1:{}",
                login.callback_port.unwrap_or(0)
            ))
            .cause(e.to_string())
            .hint("free the port, or change runtime.remote.oauth.browserLogin.callbackPort")
        })?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let verifier = random(48)?;
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&verifier));
    let state = random(24)?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &bc.client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", scope)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", audience)
        .append_pair("prompt", "consent")
        .finish();
    let sep = if bc.authorization_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{sep}{query}", bc.authorization_url);
    eprintln!(
        "open-cli: to log in to {}, open this address in a browser:\n\n  {url}\n",
        client.base()
    );
    if !no_browser && !open_browser(&url) {
        eprintln!("open-cli: no browser could be started; open the address above yourself");
    }
    eprintln!(
        "open-cli: waiting up to {} s for the browser to return to {redirect}",
        BROWSER_WAIT.as_secs()
    );
    let code = wait_for_code(listener, state, BROWSER_WAIT)?;
    let form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", bc.client_id.clone()),
        ("code_verifier", verifier),
        ("resource", audience.to_string()),
    ];
    token::token_request(client.http(), &bc.token_url, &form, None).map_err(|e| {
        e.into_error(format!(
            "the token endpoint {} refused the code",
            bc.token_url
        ))
    })
}

/// Start the user's browser on `url`: `$BROWSER`, else the platform's opener.
fn open_browser(url: &str) -> bool {
    let candidates: Vec<String> = match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => vec![b],
        _ if cfg!(target_os = "macos") => vec!["open".into()],
        _ => vec!["xdg-open".into()],
    };
    candidates.iter().any(|c| {
        std::process::Command::new(c)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    })
}

/// What one request to the redirect listener brought.
enum Callback {
    Code(String),
    Refused(String),
    /// Not our redirect (another path, another `state`): answered and ignored.
    Other,
}

fn wait_for_code(listener: TcpListener, state: String, wait: Duration) -> Result<String, CliError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            match answer_callback(stream, &state) {
                Callback::Other => continue,
                done => {
                    let _ = tx.send(done);
                    return;
                }
            }
        }
    });
    match rx.recv_timeout(wait) {
        Ok(Callback::Code(code)) => Ok(code),
        Ok(Callback::Refused(why)) => Err(CliError::new(
            exit::REQUEST_FAILED,
            "the identity provider did not grant the login",
        )
        .cause(why)),
        Ok(Callback::Other) | Err(_) => Err(CliError::new(
            exit::REQUEST_FAILED,
            format!(
                "no login came back from the browser within {} s",
                wait.as_secs()
            ),
        )
        .hint("run `open-cli auth login` again; on a host without a browser use `--device`")),
    }
}

fn answer_callback(mut stream: TcpStream, state: &str) -> Callback {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return Callback::Other;
    }
    // Drain the headers (bounded), so the browser sees a clean answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut header = String::new();
    while Instant::now() < deadline && header.len() < 16 * 1024 {
        let before = header.len();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header[before..].trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        reply(&mut stream, 404, "Not the login callback.");
        return Callback::Other;
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("state").as_deref() != Some(state) {
        reply(
            &mut stream,
            400,
            "This login answer is not for the waiting open-cli (its state differs); ignored.",
        );
        return Callback::Other;
    }
    if let Some(error) = get("error") {
        let why = format!("{error} {}", get("error_description").unwrap_or_default());
        reply(&mut stream, 200, &format!("Login refused: {why}"));
        return Callback::Refused(why.trim().to_string());
    }
    match get("code") {
        Some(code) if !code.is_empty() => {
            reply(
                &mut stream,
                200,
                "Logged in. You can close this page and go back to the terminal.",
            );
            Callback::Code(code)
        }
        _ => {
            reply(&mut stream, 400, "The answer carries no code.");
            Callback::Other
        }
    }
}

fn reply(stream: &mut TcpStream, status: u16, text: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let body = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>open-cli</title><p>{}</p>\n",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// RFC 8628 3.2: the device authorization answer.
#[derive(Debug, Deserialize)]
struct DeviceGrant {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

fn device(
    client: &Client,
    bc: &BrowserConfig,
    scope: &str,
    audience: &str,
) -> Result<token::Granted, CliError> {
    let endpoint = match &bc.device_authorization_url {
        Some(u) => u.clone(),
        None => device_endpoint(client, bc)?,
    };
    let form = vec![
        ("client_id", bc.client_id.clone()),
        ("scope", scope.to_string()),
        ("resource", audience.to_string()),
    ];
    let grant: DeviceGrant = token::oauth_post(client.http(), &endpoint, &form, None)
        .map_err(|e| e.into_error(format!("the device authorization at {endpoint} failed")))?;
    eprintln!(
        "open-cli: to log in to {}, open\n\n  {}\n\nand enter the code\n\n  {}\n",
        client.base(),
        grant.verification_uri,
        grant.user_code
    );
    if let Some(c) = &grant.verification_uri_complete {
        eprintln!("open-cli: (or open {c}, which carries the code)");
    }
    let deadline = Instant::now() + Duration::from_secs(grant.expires_in);
    let mut interval = Duration::from_secs(grant.interval.unwrap_or(5).max(1));
    let form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:device_code".to_string(),
        ),
        ("device_code", grant.device_code.clone()),
        ("client_id", bc.client_id.clone()),
    ];
    loop {
        // The provider's polling interval (RFC 8628 3.5), not a guess at when it is done.
        std::thread::sleep(interval);
        if Instant::now() > deadline {
            return Err(CliError::new(
                exit::REQUEST_FAILED,
                "the device code expired before the login was approved",
            )
            .hint("run `open-cli auth login --device` again"));
        }
        match token::token_request(client.http(), &bc.token_url, &form, None) {
            Ok(granted) => return Ok(granted),
            Err(TokenError::OAuth { error, .. }) if error == "authorization_pending" => {}
            Err(TokenError::OAuth { error, .. }) if error == "slow_down" => {
                interval += Duration::from_secs(5);
            }
            Err(e) => {
                return Err(e.into_error(format!(
                    "the device login was not granted ({})",
                    bc.token_url
                )));
            }
        }
    }
}

/// The issuer's `device_authorization_endpoint` (OpenID or RFC 8414 metadata).
fn device_endpoint(client: &Client, bc: &BrowserConfig) -> Result<String, CliError> {
    let no_endpoint = || {
        CliError::usage(format!(
            "the runtime at {} names no device authorization endpoint",
            client.base()
        ))
        .hint("set `deviceAuthorizationURL` in the runtime's runtime.server.auth, or log in with a browser")
    };
    let issuer = bc.issuer.as_deref().ok_or_else(no_endpoint)?;
    let issuer = issuer.trim_end_matches('/');
    [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ]
    .iter()
    .find_map(|w| {
        client
            .probe_json(&format!("{issuer}{w}"))?
            .get("device_authorization_endpoint")?
            .as_str()
            .map(str::to_string)
    })
    .ok_or_else(no_endpoint)
}
