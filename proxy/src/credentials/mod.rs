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
    ) -> Result<std::sync::Arc<Applied>, Unresolved> {
        if let Some(a) = slot.get() {
            return Ok(std::sync::Arc::clone(a));
        }
        // Boxed: token and secret fetches hold large futures, kept out of the request's own.
        let applied = std::sync::Arc::new(Box::pin(self.resolve(config, tool)).await?);
        if applied.fixed {
            let _ = slot.set(std::sync::Arc::clone(&applied));
        }
        Ok(applied)
    }

    pub async fn resolve(&self, config: &Config, tool: &Tool) -> Result<Applied, Unresolved> {
        let mut applied = self.resolve_values(config, tool).await?;
        applied.wire = wire(&applied).map_err(|e| Unresolved { reasons: vec![e] })?;
        applied.shadow = shadow(&applied);
        Ok(applied)
    }

    async fn resolve_values(&self, config: &Config, tool: &Tool) -> Result<Applied, Unresolved> {
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
        let mut reasons = Vec::new();
        for alt in alternatives {
            if alt.is_empty() {
                return Ok(Applied {
                    scheme: Some("anonymous".into()),
                    fixed: true,
                    ..Applied::default()
                });
            }
            let label = alt
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join("+");
            match self.alternative(config, tool, alt).await {
                Ok(mut applied) => {
                    applied.scheme = Some(label);
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
    ) -> Result<Applied, String> {
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
                    let value = self.secrets.value(config, &key).await?.to_string();
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
                    let value = self.secrets.value(config, &key).await?;
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
                    let issued = self.oauth(config, &key, req).await?;
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
                    Some(Secret::Ref(_)) => self.secrets.value(config, &key).await.map(|_| ()),
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

    /// Hand-made credentials completed as a resolution completes them (wire form, shadow).
    pub(crate) fn complete(mut a: Applied) -> Applied {
        a.wire = wire(&a).unwrap();
        a.shadow = shadow(&a);
        a
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
