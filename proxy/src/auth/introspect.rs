//! Profile `oauth2_introspection` (RFC 7662): opaque tokens checked at the provider.
//!
//! The runtime authenticates to the endpoint with `client_secret_basic` (default) or
//! `client_secret_post` ([`Client`]: its ID and secret are references resolved per call
//! through the runtime's one secret resolver, so a rotated `file` secret is picked up within
//! seconds and `exec` needs `policy.allowExecSecrets`, as for upstream credentials), and requires `active: true` and `aud` containing the audience;
//! `iss` (when an issuer is configured) and `exp` are checked when present.
//!
//! **Revocation**: an active answer is reused for at most `introspectionCacheSeconds`
//! (default 30 s; 0 = ask every time) and never past the token's `exp`, so a token revoked at
//! the provider is refused at most one cache period later. Negative answers are kept
//! [`NEGATIVE_TTL`]. Concurrent requests with the same token share one introspection call.
//! Tokens are cached under their SHA-256, never in the clear.
//!
//! **Unknown tokens are throttled**: a token without a positive answer on record (in the
//! cache, even a lapsed one) costs a provider call, so those calls share one token bucket per
//! runtime, [`UNKNOWN_RATE`] per second with bursts of [`UNKNOWN_BURST`]. Beyond it the
//! request is answered 503 `introspection_throttled` with `Retry-After`, not 401: the token
//! was not found bad, it was not checked. Known tokens are re-checked without limit, so a
//! flood of random tokens cannot lock out callers the provider already vouched for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use open_cli_config::model::SecretRef;

use super::{AuthError, Principal, principal};
use crate::credentials::secrets::SecretStore;
use crate::error::error_chain;
use crate::fetch::cache::now_secs;

pub const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Provider calls per second for tokens without a positive answer on record.
pub const UNKNOWN_RATE: f64 = 20.0;
/// Burst of such calls.
pub const UNKNOWN_BURST: u32 = 40;
const MAX_ENTRIES: usize = 10_000;

type Answer = Result<Arc<Principal>, AuthError>;

#[derive(Debug)]
struct Entry {
    answer: Answer,
    until: Instant,
}

/// How the runtime authenticates to the introspection endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: Option<SecretRef>,
    pub secret: Option<SecretRef>,
    /// `client_secret_post` rather than `client_secret_basic`.
    pub post: bool,
    /// `policy.allowExecSecrets`.
    pub allow_exec: bool,
    pub secrets: Arc<SecretStore>,
}

impl Client {
    /// The client ID and secret now; an error names the config key, never a value.
    pub async fn resolve(
        &self,
    ) -> Result<
        (
            Option<Arc<str>>,
            Option<open_cli_config::secrets::SecretValue>,
        ),
        String,
    > {
        let id = match &self.id {
            Some(r) => Some(
                self.secrets
                    .resolve(r, self.allow_exec)
                    .await
                    .map_err(|e| format!("runtime.server.auth.clientId: {e}"))?,
            ),
            None => None,
        };
        let secret = match &self.secret {
            Some(r) => Some(open_cli_config::secrets::SecretValue::new(
                &*self
                    .secrets
                    .resolve(r, self.allow_exec)
                    .await
                    .map_err(|e| format!("runtime.server.auth.clientSecret: {e}"))?,
            )),
            None => None,
        };
        Ok((id, secret))
    }
}

#[derive(Debug)]
pub struct Introspector {
    pub http: reqwest::Client,
    pub url: String,
    pub client: Client,
    pub audience: String,
    pub issuer: Option<String>,
    pub ttl: Duration,
    pub scope_claim: Option<String>,
    cache: std::sync::Mutex<HashMap<[u8; 32], Entry>>,
    inflight: std::sync::Mutex<HashMap<[u8; 32], Arc<OnceCell<Answer>>>>,
    /// Provider calls for unknown tokens.
    unknown: crate::limit::TokenBucket,
}

impl Introspector {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: reqwest::Client,
        url: String,
        client: Client,
        audience: String,
        issuer: Option<String>,
        ttl: Duration,
        scope_claim: Option<String>,
    ) -> Self {
        Self {
            http,
            url,
            client,
            audience,
            issuer,
            ttl,
            scope_claim,
            cache: std::sync::Mutex::new(HashMap::new()),
            inflight: std::sync::Mutex::new(HashMap::new()),
            unknown: crate::limit::TokenBucket::new(UNKNOWN_RATE, UNKNOWN_BURST),
        }
    }

    /// `keep_token`: keep the token beside its principal (`Principal::token`).
    pub async fn authenticate(&self, token: &str, keep_token: bool) -> Answer {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cached(&key) {
            crate::metrics::auth_cache("introspection", "hit");
            return answer;
        }
        crate::metrics::auth_cache("introspection", "miss");
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(inflight.entry(key).or_default())
        };
        let answer = cell
            .get_or_init(|| self.introspect(token, keep_token))
            .await
            .clone();
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        answer
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|e| e.until > Instant::now())
            .map(|e| e.answer.clone())
    }

    /// Whether the provider vouched for this token before (a positive answer, maybe lapsed).
    fn known(&self, key: &[u8; 32]) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).is_some_and(|e| e.answer.is_ok())
    }

    async fn introspect(&self, token: &str, keep_token: bool) -> Answer {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !self.known(&key)
            && let Err(wait) = self.unknown.take()
        {
            // Not cached: the next request (after the wait) asks again.
            return Err(AuthError::Throttled(crate::limit::retry_after_secs(wait)));
        }
        let (answer, keep) = match self.call(token).await {
            Ok(claims) => match self.check(&claims) {
                Ok(mut p) => {
                    if keep_token {
                        Arc::make_mut(&mut p).token = Some(token.to_string().into());
                    }
                    let exp_left = super::numeric_date(&claims, "exp")
                        .ok()
                        .flatten()
                        .map(|exp| {
                            Duration::from_secs((exp.max(0.0) as u64).saturating_sub(now_secs()))
                        });
                    let keep = exp_left.map_or(self.ttl, |left| left.min(self.ttl));
                    (Ok(p), keep)
                }
                Err(e) => (Err(e), NEGATIVE_TTL),
            },
            // The provider could not answer: not cached, the next request asks again.
            Err(e) => return Err(e),
        };
        if !keep.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_ENTRIES {
                let now = Instant::now();
                cache.retain(|_, e| e.until > now);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                Entry {
                    answer: answer.clone(),
                    until: Instant::now() + keep,
                },
            );
        }
        answer
    }

    async fn call(&self, token: &str) -> Result<Value, AuthError> {
        crate::metrics::auth_cache("introspection", "fetch");
        let mut form: Vec<(&str, &str)> =
            vec![("token", token), ("token_type_hint", "access_token")];
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json");
        let (id, secret) = self.client.resolve().await.map_err(|e| {
            tracing::warn!(error = %e, "introspection client credentials unavailable");
            AuthError::Invalid("the token could not be checked (introspection unavailable)".into())
        })?;
        match (&id, &secret, self.client.post) {
            (Some(id), secret, true) => {
                form.push(("client_id", id));
                if let Some(s) = secret {
                    form.push(("client_secret", s.expose()));
                }
            }
            (Some(id), secret, false) => {
                req = req.basic_auth(id, secret.as_ref().map(|s| s.expose()));
            }
            (None, _, _) => {}
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %error_chain(&e), "introspection request failed");
                AuthError::Invalid(
                    "the token could not be checked (introspection unavailable)".into(),
                )
            })?;
        if !resp.status().is_success() {
            tracing::warn!(status = %resp.status(), "introspection endpoint refused the runtime");
            return Err(AuthError::Invalid(
                "the token could not be checked (introspection refused)".into(),
            ));
        }
        resp.json()
            .await
            .map_err(|_| AuthError::Invalid("the introspection answer is not JSON".into()))
    }

    fn check(&self, claims: &Value) -> Answer {
        if claims.get("active").and_then(Value::as_bool) != Some(true) {
            return Err(AuthError::Invalid(
                "the token is not active (expired or revoked)".into(),
            ));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(AuthError::Invalid(
                "the token is not for this audience".into(),
            ));
        }
        if let (Some(want), Some(iss)) = (&self.issuer, claims.get("iss").and_then(Value::as_str))
            && want.trim_end_matches('/') != iss.trim_end_matches('/')
        {
            return Err(AuthError::Invalid(
                "the token was issued by another issuer".into(),
            ));
        }
        // Same reading of `exp` as for JWTs: a number when present, never skipped.
        if super::numeric_date(claims, "exp")?.is_some_and(|exp| exp <= now_secs() as f64) {
            return Err(AuthError::Invalid("the token has expired".into()));
        }
        principal(claims, self.scope_claim.as_deref()).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::tests::{Endpoint, Request, http_client};
    use serde_json::json;

    fn literal(v: &str) -> SecretRef {
        SecretRef {
            kind: open_cli_config::model::SecretType::Literal,
            value: Some(v.into()),
            command: vec![],
        }
    }

    /// An RFC 7662 answer for a token of audience `api`, valid `exp_in` more seconds.
    fn active(exp_in: u64) -> (u16, Value) {
        let answer = json!({
            "active": true,
            "sub": "alice",
            "scope": "bundle:a tool:b:c",
            "aud": "api",
            "exp": now_secs() + exp_in,
        });
        (200, answer)
    }

    fn inactive() -> (u16, Value) {
        (200, json!({"active": false}))
    }

    /// An introspection endpoint at `/introspect` that checks the runtime's credentials and
    /// answers `answer(n, token)`.
    async fn provider(answer: fn(usize, &str) -> (u16, Value)) -> Endpoint {
        Endpoint::start(move |n, r: &Request| {
            let basic = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                "runtime:intro-s3cret",
            );
            if r.method != "POST"
                || r.path != "/introspect"
                || r.header("authorization") != Some(&format!("Basic {basic}"))
            {
                return (401, json!({"error": "invalid_client"}));
            }
            answer(n, &r.form("token").unwrap_or_default())
        })
        .await
    }

    fn introspector(endpoint: &Endpoint, ttl: Duration) -> Introspector {
        let client = Client {
            id: Some(literal("runtime")),
            secret: Some(literal("intro-s3cret")),
            post: false,
            allow_exec: false,
            secrets: Arc::default(),
        };
        Introspector::new(
            http_client(),
            endpoint.url("/introspect"),
            client,
            "api".into(),
            None,
            ttl,
            None,
        )
    }

    /// Authenticate `token` until the provider has been asked `hits` times in all (the
    /// condition waited for; fails after a generous deadline), and give the last answer.
    async fn until_asked(
        i: &Introspector,
        endpoint: &Endpoint,
        token: &str,
        hits: usize,
        deadline: Duration,
    ) -> Answer {
        let end = Instant::now() + deadline;
        loop {
            let answer = i.authenticate(token, false).await;
            if endpoint.hits() >= hits {
                return answer;
            }
            assert!(
                Instant::now() < end,
                "the provider was not asked again within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn an_active_answer_is_reused_within_the_ttl() {
        let endpoint = provider(|_, _| active(3600)).await;
        let i = introspector(&endpoint, Duration::from_secs(60));
        let p = i.authenticate("tok", false).await.unwrap();
        assert_eq!(p.subject, "alice");
        assert_eq!(p.scopes, ["bundle:a", "tool:b:c"]);
        let again = i.authenticate("tok", false).await.unwrap();
        assert!(Arc::ptr_eq(&p, &again));
        assert_eq!(endpoint.hits(), 1);
        // Another token is another question.
        i.authenticate("other", false).await.unwrap();
        assert_eq!(endpoint.hits(), 2);
    }

    #[tokio::test]
    async fn ttl_zero_asks_every_time() {
        let endpoint = provider(|_, _| active(3600)).await;
        let i = introspector(&endpoint, Duration::ZERO);
        for n in 1..=3 {
            i.authenticate("tok", false).await.unwrap();
            assert_eq!(endpoint.hits(), n);
        }
    }

    /// Revocation: once the cache period is over the provider is asked again, and a token it
    /// no longer vouches for is refused.
    #[tokio::test]
    async fn a_revoked_token_is_refused_once_the_ttl_is_over() {
        let endpoint = provider(|n, _| if n == 0 { active(3600) } else { inactive() }).await;
        let i = introspector(&endpoint, Duration::from_secs(1));
        i.authenticate("tok", false).await.unwrap();
        let e = until_asked(&i, &endpoint, "tok", 2, Duration::from_secs(15))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            AuthError::Invalid("the token is not active (expired or revoked)".into())
        );
    }

    #[tokio::test]
    async fn an_answer_is_never_reused_past_the_token_exp() {
        // The cache period is an hour, the token's `exp` two seconds away.
        let endpoint = provider(|_, _| active(2)).await;
        let i = introspector(&endpoint, Duration::from_secs(3600));
        i.authenticate("tok", false).await.unwrap();
        let key: [u8; 32] = Sha256::digest(b"tok").into();
        let until = i.cache.lock().unwrap()[&key].until;
        assert!(until <= Instant::now() + Duration::from_secs(2));
        until_asked(&i, &endpoint, "tok", 2, Duration::from_secs(15))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_negative_answer_is_kept_only_briefly() {
        let endpoint = provider(|_, _| inactive()).await;
        let i = introspector(&endpoint, Duration::from_secs(3600));
        i.authenticate("revoked", false).await.unwrap_err();
        // Kept: a replayed bad token does not reach the provider again at once.
        i.authenticate("revoked", false).await.unwrap_err();
        assert_eq!(endpoint.hits(), 1);
        let key: [u8; 32] = Sha256::digest(b"revoked").into();
        let until = i.cache.lock().unwrap()[&key].until;
        assert!(until <= Instant::now() + NEGATIVE_TTL);
        // ... for NEGATIVE_TTL, not the cache period of active answers.
        let deadline = NEGATIVE_TTL + Duration::from_secs(10);
        until_asked(&i, &endpoint, "revoked", 2, deadline)
            .await
            .unwrap_err();
    }

    #[tokio::test]
    async fn a_provider_failure_is_not_cached() {
        let endpoint = provider(|n, _| {
            if n == 0 {
                (500, json!({"error": "temporarily_unavailable"}))
            } else {
                active(3600)
            }
        })
        .await;
        let i = introspector(&endpoint, Duration::from_secs(60));
        let e = i.authenticate("tok", false).await.unwrap_err();
        assert_eq!(
            e,
            AuthError::Invalid("the token could not be checked (introspection refused)".into())
        );
        i.authenticate("tok", false).await.unwrap();
        assert_eq!(endpoint.hits(), 2);
    }

    #[tokio::test]
    async fn concurrent_authenticates_of_one_token_share_one_call() {
        // Nothing is cached (ttl 0): only the shared in-flight call can save requests.
        let endpoint = provider(|_, _| active(3600)).await;
        let i = introspector(&endpoint, Duration::ZERO);
        // Every call is polled (and joins the in-flight call) before the provider can answer.
        let answers =
            futures_util::future::join_all((0..8).map(|_| i.authenticate("tok", false))).await;
        assert_eq!(endpoint.hits(), 1);
        for a in answers {
            assert_eq!(a.unwrap().subject, "alice");
        }
        // The shared call is over: the next request asks again.
        i.authenticate("tok", false).await.unwrap();
        assert_eq!(endpoint.hits(), 2);
    }

    #[tokio::test]
    async fn tokens_are_cached_under_their_sha256() {
        let endpoint = provider(|_, token| {
            if token == "raw-token-s3cret" {
                active(3600)
            } else {
                inactive()
            }
        })
        .await;
        let i = introspector(&endpoint, Duration::from_secs(60));
        i.authenticate("raw-token-s3cret", false).await.unwrap();
        i.authenticate("bad-token-s3cret", false).await.unwrap_err();
        let keys: Vec<[u8; 32]> = i.cache.lock().unwrap().keys().copied().collect();
        assert_eq!(keys.len(), 2);
        for token in ["raw-token-s3cret", "bad-token-s3cret"] {
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            assert!(
                keys.contains(&key),
                "{token} is not cached under its SHA-256"
            );
        }
        let debug = format!("{i:?}");
        assert!(!debug.contains("token-s3cret"), "{debug}");
    }

    #[tokio::test]
    async fn the_client_secret_never_shows_in_debug_output() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client {
            id: Some(literal("runtime")),
            secret: Some(literal("intro-s3cret")),
            post: false,
            allow_exec: false,
            secrets: Arc::default(),
        };
        let (_, secret) = client.resolve().await.unwrap();
        assert_eq!(secret.as_ref().map(|s| s.expose()), Some("intro-s3cret"));
        let i = Introspector::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1/introspect".into(),
            client,
            "aud".into(),
            None,
            Duration::from_secs(60),
            None,
        );
        let debug = format!("{i:?} {secret:?}");
        assert!(!debug.contains("intro-s3cret"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }

    /// The client's secret follows the same rules as upstream credentials: a rotated file is
    /// read again (after the resolver's file TTL), and `exec` needs `allowExecSecrets`.
    #[tokio::test]
    async fn the_client_secret_has_the_rules_of_every_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "one\n").unwrap();
        let mut client = Client {
            id: Some(literal("runtime")),
            secret: Some(SecretRef {
                kind: open_cli_config::model::SecretType::File,
                value: Some(file.display().to_string()),
                command: vec![],
            }),
            post: true,
            allow_exec: false,
            secrets: Arc::default(),
        };
        let (_, s) = client.resolve().await.unwrap();
        assert_eq!(s.unwrap().expose(), "one");
        // A fresh resolver stands for one whose cached value has expired.
        std::fs::write(&file, "two\n").unwrap();
        client.secrets = Arc::default();
        let (_, s) = client.resolve().await.unwrap();
        assert_eq!(s.unwrap().expose(), "two");
        client.secret = Some(SecretRef {
            kind: open_cli_config::model::SecretType::Exec,
            value: None,
            command: vec!["/bin/echo".into(), "x".into()],
        });
        let e = client.resolve().await.unwrap_err();
        assert!(
            e.contains("runtime.server.auth.clientSecret") && e.contains("allowExecSecrets"),
            "{e}"
        );
        client.allow_exec = true;
        let (_, s) = client.resolve().await.unwrap();
        assert_eq!(s.unwrap().expose(), "x");
    }
}
