//! Upstream credentials for one tool call (contract §4).
//!
//! A tool lists security alternatives (OR), each a set of schemes (AND). The first alternative
//! whose every scheme resolves wins; an explicitly declared anonymous alternative (`{}`) is
//! tried last. When none resolves the call is refused with every alternative's reason — the
//! upstream is never called without the credentials its API declares.
//!
//! Secret lookup per scheme: `secrets["<serviceId>.<scheme>"]`, then `secrets["<scheme>"]`.

use std::sync::Arc;

use base64::Engine;
use open_cli_config::Config;
use open_cli_config::model::{
    ClientAuthMethod, OAuthMode, OAuthSettings, Secret, SecretType, TokenStorage,
};
use open_cli_config::ntc::{AuthRequirement, Tool};

pub mod oauth;
pub mod secrets;
pub mod shadow;

use oauth::{Issued, TokenCache, TokenRequest};
use secrets::SecretStore;
use shadow::Shadow;

/// What to add to the upstream request. Its `Debug` shows names, never values.
#[derive(Default, Clone)]
pub struct Applied {
    /// Lower-case header names.
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    /// Scheme names joined with `+` (`anonymous` for a declared anonymous alternative;
    /// `None` when the tool declares no security).
    pub scheme: Option<String>,
    /// The OAuth token used, to invalidate it when the upstream answers 401.
    pub oauth: Vec<Issued>,
    /// `headers` plus one `Cookie` header for `cookies`, validated and marked sensitive, ready
    /// to insert into an upstream request (built once per resolution).
    pub wire: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Every secret used is `literal` or `env` (or none is used), so the result cannot change
    /// while the snapshot lives and may be reused for every call of the tool.
    pub fixed: bool,
    /// The secret values injected (the API key, the bearer token, the basic credentials
    /// encoded and not), for [`Applied::shadow`].
    pub secrets: Vec<String>,
    /// The injected names and secrets in the form the shadowing and reflection checks use
    /// (built once per resolution, like `wire`).
    pub shadow: Shadow,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        f.debug_struct("Applied")
            .field("headers", &names(&self.headers))
            .field("query", &names(&self.query))
            .field("cookies", &names(&self.cookies))
            .field("scheme", &self.scheme)
            .field("oauth", &self.oauth.len())
            .field("fixed", &self.fixed)
            .finish()
    }
}

impl Applied {
    fn set_header(&mut self, name: &str, value: String) -> Result<(), String> {
        let name = name.to_ascii_lowercase();
        match self.headers.iter().find(|(n, _)| *n == name) {
            Some((_, v)) if *v != value => Err(format!(
                "two schemes set header `{name}` to different values"
            )),
            Some(_) => Ok(()),
            None => {
                self.headers.push((name, value));
                Ok(())
            }
        }
    }
}

/// The caller a call's credentials are resolved for (from the authenticated principal): its
/// subject picks a `byPrincipal` secret's entry, its runtime token is what a `tokenExchange`
/// client exchanges at the broker. Its `Debug` never shows the token.
#[derive(Debug, Clone, Copy)]
pub struct OnBehalf<'a> {
    pub subject: &'a str,
    /// The token's issuer when it is not the runtime's primary issuer.
    pub issuer: Option<&'a str>,
    /// The runtime token (kept only when the config exchanges caller tokens).
    pub token: Option<&'a open_cli_config::secrets::SecretValue>,
    /// The token is a delegated one (it has a lineage).
    pub delegated: bool,
}

impl<'a> OnBehalf<'a> {
    /// The caller's name in per-caller secrets: its subject for tokens of the primary issuer,
    /// `<issuer>#<subject>` for the others (subjects are an issuer's namespace; an issuer URL
    /// has no fragment, so the form is unambiguous).
    pub fn principal(self) -> std::borrow::Cow<'a, str> {
        match self.issuer {
            None => self.subject.into(),
            Some(i) => format!("{i}#{}", self.subject).into(),
        }
    }
}

/// Why a tool's credentials could not be resolved (one reason per alternative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub reasons: Vec<String>,
}

impl Unresolved {
    pub fn message(&self, tool_id: &str) -> String {
        format!(
            "tool `{tool_id}` needs upstream credentials that cannot be resolved, so the request was not sent: {}",
            self.reasons.join("; ")
        )
    }
}

/// Shared resolvers.
#[derive(Debug)]
pub struct Credentials {
    /// The one secret resolver, shared with the introspection client.
    pub secrets: Arc<SecretStore>,
    pub tokens: TokenCache,
}

impl Credentials {
    /// Secrets resolved per call; tokens fetched with `http` and, with a state directory,
    /// kept under `<state_dir>/oauth`.
    pub fn new(http: reqwest::Client, state_dir: Option<std::path::PathBuf>) -> Self {
        Self {
            secrets: Arc::default(),
            tokens: TokenCache::new(http, state_dir),
        }
    }

    /// [`Credentials::resolve`], remembered in `slot` (one per tool and snapshot) when the
    /// result is [`Applied::fixed`]: a literal API key is then resolved, validated and turned
    /// into header values once, not on every call. Failures are never remembered.
    pub async fn resolve_cached(
        &self,
        config: &Config,
        tool: &Tool,
        slot: &std::sync::OnceLock<std::sync::Arc<Applied>>,
        caller: Option<OnBehalf<'_>>,
    ) -> Result<std::sync::Arc<Applied>, Unresolved> {
        if let Some(a) = slot.get() {
            return Ok(std::sync::Arc::clone(a));
        }
        // Boxed: token and secret fetches hold large futures, kept out of the request's own.
        let applied = std::sync::Arc::new(Box::pin(self.resolve(config, tool, caller)).await?);
        if applied.fixed {
            let _ = slot.set(std::sync::Arc::clone(&applied));
        }
        Ok(applied)
    }

    /// The credentials of one call of `tool` by `caller` (the authenticated principal; `None`
    /// without runtime auth): `byPrincipal` secrets and `tokenExchange` clients resolve per
    /// caller, everything else is the same for every caller.
    pub async fn resolve(
        &self,
        config: &Config,
        tool: &Tool,
        caller: Option<OnBehalf<'_>>,
    ) -> Result<Applied, Unresolved> {
        let mut applied = self.resolve_values(config, tool, caller).await?;
        applied.wire = wire(&applied).map_err(|e| Unresolved { reasons: vec![e] })?;
        applied.shadow = shadow(&applied);
        Ok(applied)
    }

    async fn resolve_values(
        &self,
        config: &Config,
        tool: &Tool,
        caller: Option<OnBehalf<'_>>,
    ) -> Result<Applied, Unresolved> {
        let single;
        let alternatives: Vec<&[AuthRequirement]> = if !tool.auth_alternatives.is_empty() {
            let mut alts: Vec<&[AuthRequirement]> = tool
                .auth_alternatives
                .iter()
                .map(|a| a.requirements.as_slice())
                .collect();
            // Anonymous last: credentials first when they are configured.
            alts.sort_by_key(|a| a.is_empty());
            alts
        } else if !tool.auth.is_empty() {
            single = [tool.auth.as_slice()];
            single.to_vec()
        } else {
            return Ok(Applied {
                fixed: true,
                ..Applied::default()
            });
        };
        // When an alternative tried resolves per caller, what wins depends on the caller (one
        // caller's missing entry must not fix another alternative for everyone).
        let mut per_caller = false;
        let mut reasons = Vec::new();
        for alt in alternatives {
            if alt.is_empty() {
                return Ok(Applied {
                    scheme: Some("anonymous".into()),
                    fixed: !per_caller,
                    ..Applied::default()
                });
            }
            per_caller |= alt.iter().any(|r| {
                secret_key(config, &tool.service_id, &r.name)
                    .ok()
                    .and_then(|k| config.secrets.get(&k))
                    .is_some_and(is_per_caller)
            });
            let label = alt
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join("+");
            match self.alternative(config, tool, alt, caller).await {
                Ok(mut applied) => {
                    applied.scheme = Some(label);
                    applied.fixed &= !per_caller;
                    return Ok(applied);
                }
                Err(e) => reasons.push(format!("{label}: {e}")),
            }
        }
        Err(Unresolved { reasons })
    }

    async fn alternative(
        &self,
        config: &Config,
        tool: &Tool,
        requirements: &[AuthRequirement],
        caller: Option<OnBehalf<'_>>,
    ) -> Result<Applied, String> {
        let principal = caller.map(|p| p.principal());
        let who = principal.as_deref();
        let mut out = Applied {
            fixed: true,
            ..Applied::default()
        };
        for req in requirements {
            let key = secret_key(config, &tool.service_id, &req.name)?;
            out.fixed &= matches!(
                config.secrets.get(&key),
                Some(Secret::Ref(r)) if matches!(r.kind, SecretType::Literal | SecretType::Env)
            );
            match req.kind.as_str() {
                "apiKey" => {
                    let value = self.secrets.value(config, &key, who).await?.to_string();
                    out.secrets.push(value.clone());
                    let name = req
                        .param_name
                        .as_deref()
                        .ok_or_else(|| format!("scheme `{}` has no parameter name", req.name))?;
                    match req.location.as_deref() {
                        Some("header") => out.set_header(name, value)?,
                        Some("query") => out.query.push((name.to_string(), value)),
                        Some("cookie") => out.cookies.push((name.to_string(), value)),
                        other => {
                            return Err(format!(
                                "apiKey location `{}` is not supported",
                                other.unwrap_or("(none)")
                            ));
                        }
                    }
                }
                "http" => {
                    let value = self.secrets.value(config, &key, who).await?;
                    match req
                        .scheme
                        .as_deref()
                        .map(str::to_ascii_lowercase)
                        .as_deref()
                    {
                        Some("basic") => {
                            if !value.contains(':') {
                                return Err(format!(
                                    "secret `{key}` must hold `user:password` for HTTP basic auth"
                                ));
                            }
                            let b64 = base64::engine::general_purpose::STANDARD.encode(&*value);
                            out.secrets.push(value.to_string());
                            out.secrets.push(b64.clone());
                            out.set_header("authorization", format!("Basic {b64}"))?;
                        }
                        Some("bearer") => {
                            out.secrets.push(value.to_string());
                            out.set_header("authorization", format!("Bearer {value}"))?
                        }
                        other => {
                            return Err(format!(
                                "HTTP auth scheme `{}` is not supported (basic and bearer are)",
                                other.unwrap_or("(none)")
                            ));
                        }
                    }
                }
                "oauth2" | "openIdConnect" => {
                    let issued = self.oauth(config, &key, req, caller).await?;
                    out.secrets.push(issued.token.expose().to_string());
                    out.set_header("authorization", format!("Bearer {}", issued.token.expose()))?;
                    out.oauth.push(issued);
                }
                other => return Err(format!("security scheme type `{other}` is not supported")),
            }
        }
        Ok(out)
    }

    async fn oauth(
        &self,
        config: &Config,
        key: &str,
        req: &AuthRequirement,
        caller: Option<OnBehalf<'_>>,
    ) -> Result<Issued, String> {
        let Some(Secret::OAuth2(secret)) = config.secrets.get(key) else {
            return Err(format!(
                "secret `{key}` must be an oauth2 client (`\"type\": \"oauth2\"`) for scheme `{}`",
                req.name
            ));
        };
        let s = &secret.settings;
        if s.mode == OAuthMode::AuthorizationCode {
            return Err(format!(
                "secret `{key}` uses the interactive `authorizationCode` flow, which a server runtime cannot complete; use `clientCredentials`"
            ));
        }
        let mut request = self
            .client_token_request(
                s,
                config.policy.allow_exec_secrets,
                key.to_string(),
                &format!("secret `{key}`"),
            )
            .await?;
        if s.mode == OAuthMode::TokenExchange {
            return self.exchange(request, key, caller).await;
        }
        // The operation's scheme fills in what the secret leaves open.
        let flow_url = req
            .oauth_flows
            .iter()
            .find(|f| f.mode == "clientCredentials")
            .and_then(|f| f.token_url.clone());
        request.token_url = request.token_url.or(flow_url);
        request.discovery = request
            .discovery
            .or_else(|| req.open_id_connect_url.clone());
        for sc in &req.scopes {
            if !request.scopes.contains(sc) {
                request.scopes.push(sc.clone());
            }
        }
        self.tokens.token(&request).await
    }

    /// The caller's upstream identity (`tokenExchange`): its runtime token is exchanged at the
    /// broker (RFC 8693) for an upstream token, cached per principal (per token for a
    /// delegated one, so a child never uses its parent's upstream token or the reverse), in
    /// memory only. The broker's address comes from the secret alone (`tokenURL` or
    /// `issuer`), never from the API description: whoever serves the description must not
    /// receive callers' tokens. Only tokens of the primary issuer are exchanged.
    async fn exchange(
        &self,
        mut request: TokenRequest,
        key: &str,
        caller: Option<OnBehalf<'_>>,
    ) -> Result<Issued, String> {
        let Some(caller) = caller else {
            return Err(format!(
                "secret `{key}` exchanges the caller's runtime token for an upstream token, and this call has no authenticated caller"
            ));
        };
        if let Some(issuer) = caller.issuer {
            return Err(format!(
                "secret `{key}` exchanges tokens of the runtime's issuer only; this caller's token comes from `{issuer}`"
            ));
        }
        let Some(subject) = caller.token else {
            return Err(format!(
                "secret `{key}`: the caller's runtime token is not at hand for the exchange"
            ));
        };
        let mut principal = caller.principal().into_owned();
        if caller.delegated {
            use sha2::Digest;
            let h = sha2::Sha256::digest(subject.expose().as_bytes());
            principal = format!("{principal}#delegated:{}", hex::encode(&h[..16]));
        }
        request.exchange = Some(oauth::Exchange {
            subject: subject.clone(),
            principal,
        });
        request.storage = TokenStorage::Memory;
        // The secret's scopes only: the broker decides what an upstream token may carry.
        self.tokens.token(&request).await
    }

    /// The client-credentials token request of an OAuth client (`oauth2` secrets and MCP
    /// transport `oauth`): client ID and secret resolved, the rest from `settings`. `what`
    /// names the client in errors; `secret_key` identifies its tokens in the cache.
    pub async fn client_token_request(
        &self,
        settings: &OAuthSettings,
        allow_exec: bool,
        secret_key: String,
        what: &str,
    ) -> Result<TokenRequest, String> {
        let client_id = match &settings.client_id {
            Some(r) => self
                .secrets
                .resolve(r, allow_exec)
                .await
                .map_err(|e| format!("{what}.clientId: {e}"))?,
            None => return Err(format!("{what} has no `clientId`")),
        };
        let client_secret = match &settings.client_secret {
            Some(r) => Some(open_cli_config::secrets::SecretValue::new(
                self.secrets
                    .resolve(r, allow_exec)
                    .await
                    .map_err(|e| format!("{what}.clientSecret: {e}"))?,
            )),
            None => None,
        };
        Ok(TokenRequest {
            secret_key,
            token_url: settings.token_url.clone(),
            discovery: settings.issuer.clone(),
            client_id,
            client_secret,
            scopes: settings.scopes.clone(),
            audience: settings.audience.clone(),
            auth_method: settings
                .client_auth_method
                .unwrap_or(ClientAuthMethod::ClientSecretBasic),
            storage: settings.token_storage.unwrap_or(TokenStorage::Instance),
            exchange: None,
        })
    }

    /// Every secret the catalog's tools would use that cannot be resolved now (for the
    /// start-up warning). OAuth clients are checked for their ID and secret only.
    pub async fn unresolvable(&self, config: &Config, tools: &[Tool]) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut problems = Vec::new();
        for tool in tools {
            let reqs = tool
                .auth_alternatives
                .iter()
                .flat_map(|a| a.requirements.iter())
                .chain(tool.auth.iter());
            for req in reqs {
                let key = match secret_key(config, &tool.service_id, &req.name) {
                    Ok(k) => k,
                    Err(e) => {
                        if seen.insert(format!("{}/{}", tool.service_id, req.name)) {
                            problems.push(format!("service `{}`: {e}", tool.service_id));
                        }
                        continue;
                    }
                };
                if !seen.insert(key.clone()) {
                    continue;
                }
                let check = match config.secrets.get(&key) {
                    Some(Secret::Ref(_)) => {
                        self.secrets.value(config, &key, None).await.map(|_| ())
                    }
                    Some(Secret::ByPrincipal(b)) => {
                        // Every entry that cannot be resolved, each reported.
                        let allow = config.policy.allow_exec_secrets;
                        for (who, part) in b
                            .principals
                            .iter()
                            .map(|(w, p)| (w.as_str(), p))
                            .chain(b.default.as_ref().map(|d| ("(default)", d)))
                        {
                            if let Err(e) = self.secrets.resolve(part, allow).await {
                                problems.push(format!("secret `{key}` (principal `{who}`): {e}"));
                            }
                        }
                        Ok(())
                    }
                    Some(Secret::OAuth2(o)) => {
                        let allow = config.policy.allow_exec_secrets;
                        let mut r = Ok(());
                        for part in [&o.settings.client_id, &o.settings.client_secret]
                            .into_iter()
                            .flatten()
                        {
                            if let Err(e) = self.secrets.resolve(part, allow).await {
                                r = Err(format!("secret `{key}`: {e}"));
                            }
                        }
                        r
                    }
                    None => Ok(()),
                };
                if let Err(e) = check {
                    problems.push(e);
                }
            }
        }
        problems
    }
}

/// The upstream header form of `a`'s headers and cookies. Values are secrets: an invalid one
/// is reported by header name only, and every value is marked sensitive (HTTP/2 upstreams
/// then never add it to their HPACK index).
fn wire(a: &Applied) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    let value = |name: &str, v: &str| {
        let mut v = http::HeaderValue::from_str(v).map_err(|_| {
            format!("the credential for header `{name}` is not a valid header value")
        })?;
        v.set_sensitive(true);
        Ok::<_, String>(v)
    };
    let mut out = Vec::with_capacity(a.headers.len() + 1);
    for (name, v) in &a.headers {
        let n = http::HeaderName::try_from(name.as_str())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        out.push((n, value(name, v)?));
    }
    if !a.cookies.is_empty() {
        let cookie: Vec<String> = a.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push((http::header::COOKIE, value("cookie", &cookie.join("; "))?));
    }
    Ok(out)
}

/// The shadowing and reflection checks' view of `a`: every injected name (header, query
/// parameter, cookie) and every secret value.
fn shadow(a: &Applied) -> Shadow {
    let names = a.headers.iter().chain(&a.query).chain(&a.cookies);
    Shadow::new(
        names.map(|(n, _)| n.as_str()),
        a.secrets.iter().map(String::as_str),
    )
}

/// Whether `s` resolves per caller (`byPrincipal`, `tokenExchange`).
fn is_per_caller(s: &Secret) -> bool {
    match s {
        Secret::ByPrincipal(_) => true,
        Secret::OAuth2(o) => o.settings.mode == OAuthMode::TokenExchange,
        Secret::Ref(_) => false,
    }
}

/// `<service>.<scheme>`, then `<scheme>`.
fn secret_key(config: &Config, service: &str, scheme: &str) -> Result<String, String> {
    let specific = format!("{service}.{scheme}");
    if config.secrets.contains_key(&specific) {
        return Ok(specific);
    }
    if config.secrets.contains_key(scheme) {
        return Ok(scheme.to_string());
    }
    Err(format!(
        "missing secret: define `secrets.{specific}` or `secrets.{scheme}`"
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use serde_json::{Value, json};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Hand-made credentials completed as a resolution completes them (wire form, shadow).
    pub(crate) fn complete(mut a: Applied) -> Applied {
        a.wire = wire(&a).unwrap();
        a.shadow = shadow(&a);
        a
    }

    /// An HTTP client for loopback test endpoints (the rustls provider installed, no proxy).
    pub(crate) fn http_client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// One request as a test [`Endpoint`] received it.
    pub(crate) struct Request {
        pub method: String,
        pub path: String,
        /// The request line and headers, as sent.
        pub head: String,
        pub body: String,
    }

    impl Request {
        /// A header's value (names compared case-insensitively).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        }

        /// A field of the form-urlencoded body.
        pub fn form(&self, name: &str) -> Option<String> {
            form_urlencoded::parse(self.body.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        }
    }

    type Answerer = dyn Fn(usize, &Request) -> (u16, Value) + Send + Sync;

    /// A real HTTP/1.1 endpoint on 127.0.0.1 (a token or introspection endpoint in tests):
    /// every request is answered `answer(n, &request)` (`n` counts from 0) with a JSON body
    /// and `connection: close`, and counted.
    pub(crate) struct Endpoint {
        base: String,
        hits: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Endpoint {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Endpoint {
        pub(crate) async fn start(
            answer: impl Fn(usize, &Request) -> (u16, Value) + Send + Sync + 'static,
        ) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicUsize::new(0));
            let answer: Arc<Answerer> = Arc::new(answer);
            let counter = Arc::clone(&hits);
            let task = tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let (answer, counter) = (Arc::clone(&answer), Arc::clone(&counter));
                    tokio::spawn(async move {
                        let _ = Self::serve(conn, &*answer, &counter).await;
                    });
                }
            });
            Self { base, hits, task }
        }

        async fn serve(
            mut conn: tokio::net::TcpStream,
            answer: &Answerer,
            hits: &AtomicUsize,
        ) -> std::io::Result<()> {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut request = Request {
                method: head.split(' ').next().unwrap_or("").to_string(),
                path: head.split(' ').nth(1).unwrap_or("").to_string(),
                head,
                body: String::new(),
            };
            let length: usize = request
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + length {
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            request.body = String::from_utf8_lossy(&buf[end..]).into_owned();
            let n = hits.fetch_add(1, Ordering::SeqCst);
            let (status, body) = answer(n, &request);
            let body = body.to_string();
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Status");
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(response.as_bytes()).await?;
            conn.shutdown().await
        }

        /// `http://127.0.0.1:<port><path>`.
        pub(crate) fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        /// Requests received so far.
        pub(crate) fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    /// A config with only these `secrets`.
    fn config(secrets: Value) -> Config {
        let doc = json!({
            "cli": "1.0.0",
            "mode": {"default": "discover"},
            "runtime": {"mode": "remote"},
            "secrets": secrets,
        });
        open_cli_config::load::parse_str(&doc.to_string(), std::path::Path::new("test.cli.json"))
            .unwrap()
    }

    fn literal(v: &str) -> Value {
        json!({"type": "literal", "value": v})
    }

    /// An `apiKey` scheme named `name`, sent in header `x-<name>`.
    fn key(name: &str) -> Value {
        json!({"name": name, "type": "apiKey", "in": "header", "paramName": format!("x-{name}")})
    }

    /// A tool of `service` with these security alternatives (each a list of schemes).
    fn tool(service: &str, alternatives: &[Vec<Value>]) -> Tool {
        let alternatives: Vec<Value> = alternatives
            .iter()
            .map(|a| json!({"requirements": a}))
            .collect();
        serde_json::from_value(json!({
            "id": format!("{service}:op"),
            "serviceId": service,
            "method": "GET",
            "path": "/op",
            "group": "g",
            "command": "op",
            "safety": {"destructive": false, "readOnly": true, "requiresApproval": false},
            "authAlternatives": alternatives,
        }))
        .unwrap()
    }

    fn headers(a: &Applied) -> Vec<(&str, &str)> {
        a.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// A per-caller secret is never remembered for everyone: not when it resolves, and not
    /// when another alternative wins because it did not resolve for one caller.
    #[tokio::test]
    async fn per_caller_credentials_are_never_fixed() {
        let creds = Credentials::new(http_client(), None);
        let config = config(json!({
            "a": {"type": "byPrincipal", "principals": {"alice": literal("alice-key")}},
            "b": literal("shared-key")
        }));
        let t = tool("svc", &[vec![key("a")], vec![key("b")], vec![]]);
        let slot = std::sync::OnceLock::new();
        let caller = |subject, issuer| OnBehalf {
            subject,
            issuer,
            token: None,
            delegated: false,
        };
        // carol has no entry: the shared key wins, for her only.
        let carol = creds
            .resolve_cached(&config, &t, &slot, Some(caller("carol", None)))
            .await
            .unwrap();
        assert_eq!(headers(&carol), [("x-b", "shared-key")]);
        assert!(!carol.fixed && slot.get().is_none());
        let alice = creds
            .resolve_cached(&config, &t, &slot, Some(caller("alice", None)))
            .await
            .unwrap();
        assert_eq!(headers(&alice), [("x-a", "alice-key")]);
        assert!(slot.get().is_none());
        // Another issuer's `alice` is not this alice.
        let other = creds
            .resolve_cached(
                &config,
                &t,
                &slot,
                Some(caller("alice", Some("https://other.example"))),
            )
            .await
            .unwrap();
        assert_eq!(headers(&other), [("x-b", "shared-key")]);
        // No caller (auth off): the anonymous alternative, not remembered either.
        let none = creds
            .resolve_cached(&config, &t, &slot, None)
            .await
            .unwrap();
        assert_eq!(headers(&none), [("x-b", "shared-key")]);
        assert!(slot.get().is_none());
    }

    #[tokio::test]
    async fn the_first_complete_alternative_wins() {
        let creds = Credentials::new(http_client(), None);
        let config = config(json!({"a": literal("va"), "b": literal("vb")}));
        let a = creds
            .resolve(
                &config,
                &tool("svc", &[vec![key("a")], vec![key("b")]]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.scheme.as_deref(), Some("a"));
        assert_eq!(headers(&a), [("x-a", "va")]);
        // Declaration order decides, not the names.
        let b = creds
            .resolve(
                &config,
                &tool("svc", &[vec![key("b")], vec![key("a")]]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(b.scheme.as_deref(), Some("b"));
        assert_eq!(headers(&b), [("x-b", "vb")]);
        // Every scheme of the winning alternative is applied (AND).
        let both = creds
            .resolve(
                &config,
                &tool("svc", &[vec![key("a"), key("b")], vec![key("b")]]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(both.scheme.as_deref(), Some("a+b"));
        assert_eq!(headers(&both), [("x-a", "va"), ("x-b", "vb")]);
    }

    #[tokio::test]
    async fn an_incomplete_alternative_falls_through_to_the_next() {
        let creds = Credentials::new(http_client(), None);
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone").display().to_string();
        let config = config(json!({
            "a": literal("va"),
            "b": literal("vb"),
            "unreadable": {"type": "file", "value": gone},
        }));
        // `missing` has no secret: the first alternative is incomplete even though `a` resolves,
        // and none of its credentials leak into the request.
        let a = creds
            .resolve(
                &config,
                &tool("svc", &[vec![key("a"), key("missing")], vec![key("b")]]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.scheme.as_deref(), Some("b"));
        assert_eq!(headers(&a), [("x-b", "vb")]);
        assert_eq!(a.secrets, ["vb"]);
        // A secret that is defined but cannot be read counts as unresolved too.
        let a = creds
            .resolve(
                &config,
                &tool("svc", &[vec![key("unreadable"), key("a")], vec![key("b")]]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.scheme.as_deref(), Some("b"));
        assert_eq!(headers(&a), [("x-b", "vb")]);
    }

    #[tokio::test]
    async fn the_anonymous_alternative_is_tried_last() {
        let creds = Credentials::new(http_client(), None);
        let config = config(json!({"a": literal("va")}));
        // Declared first, tried last: configured credentials are sent.
        let a = creds
            .resolve(&config, &tool("svc", &[vec![], vec![key("a")]]), None)
            .await
            .unwrap();
        assert_eq!(a.scheme.as_deref(), Some("a"));
        assert_eq!(headers(&a), [("x-a", "va")]);
        let a = creds
            .resolve(
                &config,
                &tool("svc", &[vec![], vec![key("missing")], vec![key("a")]]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.scheme.as_deref(), Some("a"));
        // Nothing else resolves: the declared anonymous alternative is used, with nothing added.
        let anon = creds
            .resolve(&config, &tool("svc", &[vec![], vec![key("missing")]]), None)
            .await
            .unwrap();
        assert_eq!(anon.scheme.as_deref(), Some("anonymous"));
        assert!(anon.headers.is_empty() && anon.query.is_empty() && anon.cookies.is_empty());
        assert!(anon.wire.is_empty() && anon.fixed);
    }

    #[tokio::test]
    async fn when_no_alternative_resolves_every_reason_is_given() {
        let creds = Credentials::new(http_client(), None);
        let config = config(json!({"a": literal("va")}));
        let t = tool("svc", &[vec![key("a"), key("m1")], vec![key("m2")]]);
        let e = creds.resolve(&config, &t, None).await.unwrap_err();
        assert_eq!(
            e.reasons,
            [
                "a+m1: missing secret: define `secrets.svc.m1` or `secrets.m1`",
                "m2: missing secret: define `secrets.svc.m2` or `secrets.m2`",
            ]
        );
        let message = e.message(&t.id);
        assert!(
            message.contains("`svc:op`")
                && message.contains("not sent")
                && message.contains(&e.reasons[0])
                && message.contains(&e.reasons[1]),
            "{message}"
        );
        // Without a declared anonymous alternative there is no falling back to no credentials.
        let e = creds
            .resolve(&config, &tool("svc", &[vec![key("m1")]]), None)
            .await
            .unwrap_err();
        assert_eq!(e.reasons.len(), 1, "{e:?}");
        // The single-set form (`auth`, no alternatives) is required the same way.
        let mut single = tool("svc", &[]);
        single.auth = vec![serde_json::from_value(key("m1")).unwrap()];
        let e = creds.resolve(&config, &single, None).await.unwrap_err();
        assert_eq!(
            e.reasons,
            ["m1: missing secret: define `secrets.svc.m1` or `secrets.m1`"]
        );
        // A tool that declares no security gets nothing, and no scheme.
        let none = creds
            .resolve(&config, &tool("svc", &[]), None)
            .await
            .unwrap();
        assert_eq!(none.scheme, None);
        assert!(none.headers.is_empty());
    }

    #[tokio::test]
    async fn the_service_qualified_secret_beats_the_plain_one() {
        let creds = Credentials::new(http_client(), None);
        let both = config(json!({"svc.a": literal("specific"), "a": literal("plain")}));
        let t = tool("svc", &[vec![key("a")]]);
        let a = creds.resolve(&both, &t, None).await.unwrap();
        assert_eq!(headers(&a), [("x-a", "specific")]);
        // Another service falls back to the plain key.
        let a = creds
            .resolve(&both, &tool("other", &[vec![key("a")]]), None)
            .await
            .unwrap();
        assert_eq!(headers(&a), [("x-a", "plain")]);
        let plain = config(json!({"a": literal("plain")}));
        let a = creds.resolve(&plain, &t, None).await.unwrap();
        assert_eq!(headers(&a), [("x-a", "plain")]);
        assert_eq!(secret_key(&both, "svc", "a").unwrap(), "svc.a");
        assert_eq!(secret_key(&plain, "svc", "a").unwrap(), "a");
    }

    #[tokio::test]
    async fn only_fixed_resolutions_are_remembered() {
        let creds = Credentials::new(http_client(), None);
        let t = tool("svc", &[vec![key("a")]]);
        // A literal cannot change while the snapshot lives: resolved once, then reused.
        let slot = std::sync::OnceLock::new();
        let literal_config = config(json!({"a": literal("va")}));
        let first = creds
            .resolve_cached(&literal_config, &t, &slot, None)
            .await
            .unwrap();
        assert!(first.fixed);
        assert!(slot.get().is_some_and(|s| Arc::ptr_eq(s, &first)));
        let again = creds
            .resolve_cached(&config(json!({"a": literal("changed")})), &t, &slot, None)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // A file may be rotated: resolved on every call, never remembered.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, "from-file\n").unwrap();
        let file_config =
            config(json!({"a": {"type": "file", "value": file.display().to_string()}}));
        let slot = std::sync::OnceLock::new();
        let a = creds
            .resolve_cached(&file_config, &t, &slot, None)
            .await
            .unwrap();
        assert_eq!(headers(&a), [("x-a", "from-file")]);
        assert!(!a.fixed && slot.get().is_none());
        // A failure is never remembered: once the secret exists, the same slot resolves.
        let slot = std::sync::OnceLock::new();
        let e = creds
            .resolve_cached(&config(json!({})), &t, &slot, None)
            .await
            .unwrap_err();
        assert_eq!(e.reasons.len(), 1);
        assert!(slot.get().is_none());
        let a = creds
            .resolve_cached(&literal_config, &t, &slot, None)
            .await
            .unwrap();
        assert_eq!(headers(&a), [("x-a", "va")]);
    }

    #[test]
    fn wire_headers_are_sensitive_and_errors_never_show_values() {
        let a = Applied {
            headers: vec![("x-api-key".into(), "k1".into())],
            cookies: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            ..Applied::default()
        };
        let w = wire(&a).unwrap();
        assert_eq!(w.len(), 2);
        assert!(w.iter().all(|(_, v)| v.is_sensitive()));
        assert_eq!(w[1].1.to_str().unwrap(), "a=1; b=2");
        let bad = Applied {
            headers: vec![("x-api-key".into(), "line\nbreak-s3cret".into())],
            ..Applied::default()
        };
        let e = wire(&bad).unwrap_err();
        assert!(e.contains("x-api-key") && !e.contains("s3cret"), "{e}");
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("k1") && shown.contains("x-api-key"),
            "{shown}"
        );
    }
}
