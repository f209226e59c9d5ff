//! OAuth 2.0 client-credentials tokens for upstream calls (contract §4.5), shared by every
//! request; and per-caller upstream tokens from an RFC 8693 token exchange ([`Exchange`],
//! `tokenExchange` secrets: the caller's runtime token is the `subject_token`, the upstream
//! token is cached under the caller's principal, in memory only, never the caller's token).
//!
//! - One slot per token identity (secret key, token URL, client ID, scopes, audience). A slot
//!   is an async mutex: concurrent requests that need a token wait for the one fetch in
//!   progress instead of each fetching (single flight).
//! - A token is reused until [`EARLY_RENEW`] before `expires_in`; without `expires_in` it is
//!   kept for [`DEFAULT_TTL`].
//! - With `tokenStorage: instance` (the default) tokens are also written to
//!   `<stateDir>/oauth/<sha256 of the identity>.json` with mode 0600 and read back after a
//!   restart; `memory` keeps them in the process only.
//! - [`TokenCache::invalidate`] drops a token an upstream refused (401) so the next call
//!   fetches a fresh one; it only drops that exact token, so a burst of 401s costs one fetch.
//! - The token URL comes from the secret, else the scheme's flow, else OpenID discovery
//!   (`<issuer>/.well-known/openid-configuration`, cached).
//!
//! Client secrets and tokens never appear in errors or logs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use open_cli_config::model::{ClientAuthMethod, TokenStorage};
use open_cli_config::secrets::SecretValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::error_chain;

pub const EARLY_RENEW: Duration = Duration::from_secs(30);
/// RFC 8693 §2.1: the grant type, and the token type of a subject and of what is asked for.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Past this many token slots (one per client identity, and per caller for exchanges), the
/// slots of expired tokens not in use are dropped before a new one is added.
const MAX_SLOTS: usize = 4096;
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything that identifies (and fetches) one token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub secret_key: String,
    /// Token endpoint, when known without discovery.
    pub token_url: Option<String>,
    /// Issuer or OpenID configuration URL to discover the token endpoint from.
    pub discovery: Option<String>,
    pub client_id: Arc<str>,
    pub client_secret: Option<SecretValue>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub auth_method: ClientAuthMethod,
    pub storage: TokenStorage,
    /// Set: an RFC 8693 token exchange for one caller instead of client credentials.
    pub exchange: Option<Exchange>,
}

/// The caller of a token exchange (`tokenExchange` secrets): its runtime token is the
/// `subject_token`; its tokens are cached under its principal.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub subject: SecretValue,
    pub principal: String,
}

impl TokenRequest {
    fn identity(&self) -> String {
        let mut h = Sha256::new();
        if let Some(x) = &self.exchange {
            h.update(b"exchange\0");
            h.update(x.principal.as_bytes());
            h.update([0]);
        }
        for part in [
            self.secret_key.as_str(),
            self.token_url.as_deref().unwrap_or(""),
            self.discovery.as_deref().unwrap_or(""),
            &self.client_id,
            &self.scopes.join(" "),
            self.audience.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Token {
    /// Persisted on purpose (the instance's token store, mode 0600).
    #[serde(with = "exposed")]
    access_token: SecretValue,
    /// Unix seconds.
    expires_at: u64,
}

impl Token {
    fn fresh(&self) -> bool {
        now() + EARLY_RENEW.as_secs() < self.expires_at
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

#[derive(Debug)]
pub struct TokenCache {
    http: reqwest::Client,
    slots: parking_lot::Mutex<HashMap<String, Slot>>,
    discovered: parking_lot::Mutex<HashMap<String, String>>,
    dir: Option<PathBuf>,
}

/// A token handed to a request, with what it takes to invalidate it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: SecretValue,
    identity: String,
}

impl TokenCache {
    pub fn new(http: reqwest::Client, state_dir: Option<PathBuf>) -> Self {
        Self {
            http,
            slots: parking_lot::Mutex::new(HashMap::new()),
            discovered: parking_lot::Mutex::new(HashMap::new()),
            dir: state_dir.map(|d| d.join("oauth")),
        }
    }

    fn slot(&self, identity: &str) -> Slot {
        let mut slots = self.slots.lock();
        if slots.len() >= MAX_SLOTS && !slots.contains_key(identity) {
            // Per-caller exchanges add a slot per principal: keep the map bounded. Slots of
            // expired tokens go first; if that is not enough, any slot not in use (locked, or
            // held by a request) goes down to half the bound, its token fetched again when
            // next needed. The scan then happens once per MAX_SLOTS / 2 new identities.
            let idle = |s: &Slot| Arc::strong_count(s) == 1 && s.try_lock().is_ok();
            slots.retain(|_, s| {
                !idle(s)
                    || s.try_lock()
                        .is_ok_and(|t| t.as_ref().is_some_and(Token::fresh))
            });
            if slots.len() >= MAX_SLOTS {
                let mut excess = slots.len() - MAX_SLOTS / 2;
                slots.retain(|_, s| {
                    if excess > 0 && idle(s) {
                        excess -= 1;
                        return false;
                    }
                    true
                });
            }
        }
        Arc::clone(slots.entry(identity.to_string()).or_default())
    }

    /// A valid token for `req`: cached, or fetched once for every concurrent caller.
    pub async fn token(&self, req: &TokenRequest) -> Result<Issued, String> {
        let identity = req.identity();
        let slot = self.slot(&identity);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref().filter(|t| t.fresh()) {
            return Ok(Issued {
                token: t.access_token.clone(),
                identity,
            });
        }
        if guard.is_none()
            && let Some(t) = self.load(req, &identity).filter(Token::fresh)
        {
            let token = t.access_token.clone();
            *guard = Some(t);
            return Ok(Issued { token, identity });
        }
        let t = self.fetch(req).await?;
        self.store(req, &identity, &t);
        let token = t.access_token.clone();
        *guard = Some(t);
        Ok(Issued { token, identity })
    }

    /// Forget a token an upstream refused (only if it is still the cached one).
    pub async fn invalidate(&self, issued: &Issued) {
        let slot = self.slot(&issued.identity);
        let mut guard = slot.lock().await;
        if guard
            .as_ref()
            .is_some_and(|t| t.access_token == issued.token)
        {
            *guard = None;
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_file(dir.join(format!("{}.json", issued.identity)));
            }
        }
    }

    fn load(&self, req: &TokenRequest, identity: &str) -> Option<Token> {
        if req.storage != TokenStorage::Instance {
            return None;
        }
        let path = self.dir.as_ref()?.join(format!("{identity}.json"));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    fn store(&self, req: &TokenRequest, identity: &str, t: &Token) {
        if req.storage != TokenStorage::Instance {
            return;
        }
        let Some(dir) = &self.dir else { return };
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            crate::instance::replace_private(
                &dir.join(format!("{identity}.json")),
                &dir.join(format!(".{identity}.{}.tmp", std::process::id())),
                &serde_json::to_vec(t).map_err(std::io::Error::other)?,
            )
        };
        if let Err(e) = write() {
            tracing::warn!(secret = %req.secret_key, error = %e, "cannot persist an upstream OAuth token; it stays in memory");
        }
    }

    async fn token_url(&self, req: &TokenRequest) -> Result<String, String> {
        if let Some(u) = &req.token_url {
            return Ok(u.clone());
        }
        let Some(base) = &req.discovery else {
            return Err(format!(
                "secret `{}`: no token URL (set `tokenURL` or `issuer`, or declare one in the API's security scheme)",
                req.secret_key
            ));
        };
        if let Some(u) = self.discovered.lock().get(base) {
            return Ok(u.clone());
        }
        let url = if base.contains("/.well-known/") {
            base.clone()
        } else {
            format!(
                "{}/.well-known/openid-configuration",
                base.trim_end_matches('/')
            )
        };
        let doc: serde_json::Value = self
            .http
            .get(&url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("OpenID discovery at {url} failed: {}", error_chain(&e)))?
            .json()
            .await
            .map_err(|e| format!("OpenID discovery at {url}: {}", error_chain(&e)))?;
        let token_url = doc
            .get("token_endpoint")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("OpenID configuration at {url} has no `token_endpoint`"))?
            .to_string();
        self.discovered
            .lock()
            .insert(base.clone(), token_url.clone());
        Ok(token_url)
    }

    async fn fetch(&self, req: &TokenRequest) -> Result<Token, String> {
        let url = self.token_url(req).await?;
        let mut form: Vec<(&str, &str)> = match &req.exchange {
            None => vec![("grant_type", "client_credentials")],
            Some(x) => vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", x.subject.expose()),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
            ],
        };
        let scope = req.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(a) = &req.audience {
            form.push(("audience", a));
        }
        let mut call = self.http.post(&url).timeout(FETCH_TIMEOUT);
        match req.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                call = call.basic_auth(
                    form_urlencode(&req.client_id),
                    req.client_secret
                        .as_ref()
                        .map(|s| form_urlencode(s.expose())),
                );
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", &req.client_id));
                if let Some(s) = &req.client_secret {
                    form.push(("client_secret", s.expose()));
                }
            }
        }
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let resp = call
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded)
            .send()
            .await
            .map_err(|e| format!("token request to {url} failed: {}", error_chain(&e)))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            let why = body
                .get("error_description")
                .or_else(|| body.get("error"))
                .and_then(|v| v.as_str())
                .unwrap_or("no error description");
            return Err(format!(
                "token endpoint {url} answered {status} for secret `{}`: {why}",
                req.secret_key
            ));
        }
        let access_token = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("token endpoint {url} returned no `access_token`"))?
            .to_string()
            .into();
        let ttl = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .unwrap_or(DEFAULT_TTL.as_secs());
        Ok(Token {
            access_token,
            expires_at: now() + ttl,
        })
    }
}

/// RFC 6749 §2.3.1: client ID and secret are form-urlencoded before Basic encoding.
fn form_urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serde for a [`SecretValue`] that is persisted on purpose: the value as a string.
mod exposed {
    use open_cli_config::secrets::SecretValue;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &SecretValue, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
        String::deserialize(d).map(SecretValue::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::tests::{Endpoint, Request, http_client};
    use serde_json::{Value, json};

    const CLIENT_SECRET: &str = "cl-s3cret";

    fn request(endpoint: &Endpoint) -> TokenRequest {
        TokenRequest {
            secret_key: "svc.oauth".into(),
            token_url: Some(endpoint.url("/token")),
            discovery: None,
            client_id: "client".into(),
            client_secret: Some(SecretValue::new(CLIENT_SECRET)),
            scopes: vec!["read".into()],
            audience: None,
            auth_method: ClientAuthMethod::ClientSecretBasic,
            storage: TokenStorage::Memory,
            exchange: None,
        }
    }

    /// Whether `r` is a client-credentials grant for `client`/`cl-s3cret` at `/token`.
    fn granted(r: &Request) -> bool {
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("client:{CLIENT_SECRET}"),
        );
        r.method == "POST"
            && r.path == "/token"
            && r.form("grant_type").as_deref() == Some("client_credentials")
            && r.header("authorization") == Some(&format!("Basic {basic}"))
    }

    /// A token endpoint handing out `t1`, `t2`, … valid `expires_in(n)` seconds (none: omitted).
    async fn token_endpoint(expires_in: fn(usize) -> Option<u64>) -> Endpoint {
        Endpoint::start(move |n, r| {
            if !granted(r) {
                return (400, json!({"error": "invalid_request"}));
            }
            let mut body = json!({"access_token": format!("t{}", n + 1), "token_type": "Bearer"});
            if let Some(s) = expires_in(n) {
                body["expires_in"] = Value::from(s);
            }
            (200, body)
        })
        .await
    }

    /// The slot map stays bounded however many identities come: expired and idle slots go.
    #[test]
    fn the_slots_stay_bounded() {
        let cache = TokenCache::new(http_client(), None);
        let held = cache.slot("in-use");
        for i in 0..(MAX_SLOTS * 2 + 10) {
            cache.slot(&format!("caller-{i}"));
            assert!(cache.slots.lock().len() <= MAX_SLOTS, "at {i}");
        }
        assert!(
            cache.slots.lock().contains_key("in-use"),
            "a slot in use stays"
        );
        drop(held);
    }

    /// A token exchange sends the caller's token as the subject (RFC 8693), authenticated as
    /// the runtime's client; each principal gets and keeps its own upstream token.
    #[tokio::test]
    async fn exchanged_tokens_are_per_principal() {
        let endpoint = Endpoint::start(|n, r| {
            let subject = r.form("subject_token").unwrap_or_default();
            let ok = r.form("grant_type").as_deref() == Some(TOKEN_EXCHANGE)
                && r.form("subject_token_type").as_deref() == Some(ACCESS_TOKEN_TYPE)
                && r.form("requested_token_type").as_deref() == Some(ACCESS_TOKEN_TYPE)
                && r.form("audience").as_deref() == Some("urn:up")
                && r.form("scope").as_deref() == Some("read")
                && r.header("authorization")
                    .is_some_and(|a| a.starts_with("Basic "));
            if !ok {
                return (400, json!({"error": "invalid_request"}));
            }
            (
                200,
                json!({"access_token": format!("up-{subject}-{n}"), "expires_in": 600}),
            )
        })
        .await;
        let cache = TokenCache::new(http_client(), None);
        let for_caller = |who: &str| TokenRequest {
            audience: Some("urn:up".into()),
            exchange: Some(Exchange {
                subject: SecretValue::new(format!("rt-{who}")),
                principal: who.into(),
            }),
            ..request(&endpoint)
        };
        let alice = cache.token(&for_caller("alice")).await.unwrap();
        let bob = cache.token(&for_caller("bob")).await.unwrap();
        let again = cache.token(&for_caller("alice")).await.unwrap();
        assert_eq!(alice.token.expose(), "up-rt-alice-0");
        assert_eq!(bob.token.expose(), "up-rt-bob-1");
        assert_eq!(again.token, alice.token, "kept per principal");
        assert_eq!(endpoint.hits(), 2);
        // Dropped on an upstream 401: the next call exchanges again.
        cache.invalidate(&alice).await;
        let fresh = cache.token(&for_caller("alice")).await.unwrap();
        assert_eq!(fresh.token.expose(), "up-rt-alice-2");
        assert_eq!(
            cache.token(&for_caller("bob")).await.unwrap().token,
            bob.token
        );
    }

    #[tokio::test]
    async fn a_token_is_fetched_once_and_reused() {
        let endpoint = token_endpoint(|_| Some(3600)).await;
        let cache = TokenCache::new(http_client(), None);
        let req = request(&endpoint);
        let first = cache.token(&req).await.unwrap();
        let second = cache.token(&req).await.unwrap();
        assert_eq!(first.token.expose(), "t1");
        assert_eq!(second.token.expose(), "t1");
        assert_eq!(endpoint.hits(), 1);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let endpoint = token_endpoint(|_| Some(3600)).await;
        let cache = TokenCache::new(http_client(), None);
        let req = request(&endpoint);
        // Every call is polled (and reaches the slot) before the endpoint can answer any.
        let issued = futures_util::future::join_all((0..8).map(|_| cache.token(&req))).await;
        assert_eq!(endpoint.hits(), 1);
        for i in issued {
            assert_eq!(i.unwrap().token.expose(), "t1");
        }
    }

    #[tokio::test]
    async fn a_token_within_the_renewal_margin_is_renewed() {
        // `t1` expires within EARLY_RENEW; `t2` has no `expires_in` (kept DEFAULT_TTL).
        assert!(DEFAULT_TTL > EARLY_RENEW);
        let endpoint = token_endpoint(|n| (n == 0).then_some(EARLY_RENEW.as_secs() / 2)).await;
        let cache = TokenCache::new(http_client(), None);
        let req = request(&endpoint);
        assert_eq!(cache.token(&req).await.unwrap().token.expose(), "t1");
        assert_eq!(cache.token(&req).await.unwrap().token.expose(), "t2");
        assert_eq!(cache.token(&req).await.unwrap().token.expose(), "t2");
        assert_eq!(endpoint.hits(), 2);
    }

    #[tokio::test]
    async fn an_invalidated_token_is_replaced_once() {
        let endpoint = token_endpoint(|_| Some(3600)).await;
        let cache = TokenCache::new(http_client(), None);
        let req = request(&endpoint);
        let t1 = cache.token(&req).await.unwrap();
        // The upstream answered 401 with t1.
        cache.invalidate(&t1).await;
        let t2 = cache.token(&req).await.unwrap();
        assert_eq!(t2.token.expose(), "t2");
        assert_eq!(endpoint.hits(), 2);
        // A late 401 for t1 (a burst) does not drop its replacement.
        cache.invalidate(&t1).await;
        assert_eq!(cache.token(&req).await.unwrap().token.expose(), "t2");
        assert_eq!(endpoint.hits(), 2);
        cache.invalidate(&t2).await;
        assert_eq!(cache.token(&req).await.unwrap().token.expose(), "t3");
        assert_eq!(endpoint.hits(), 3);
    }

    #[tokio::test]
    async fn tokens_are_kept_per_identity() {
        let endpoint = token_endpoint(|_| Some(3600)).await;
        let cache = TokenCache::new(http_client(), None);
        let read = request(&endpoint);
        let write = TokenRequest {
            scopes: vec!["write".into()],
            ..request(&endpoint)
        };
        let other = TokenRequest {
            secret_key: "other.oauth".into(),
            ..request(&endpoint)
        };
        assert_eq!(cache.token(&read).await.unwrap().token.expose(), "t1");
        assert_eq!(cache.token(&write).await.unwrap().token.expose(), "t2");
        assert_eq!(cache.token(&other).await.unwrap().token.expose(), "t3");
        assert_eq!(cache.token(&read).await.unwrap().token.expose(), "t1");
        assert_eq!(endpoint.hits(), 3);
    }

    #[tokio::test]
    async fn an_instance_token_is_read_back_after_a_restart() {
        use std::os::unix::fs::PermissionsExt;
        let endpoint = token_endpoint(|_| Some(3600)).await;
        let state = tempfile::tempdir().unwrap();
        let req = TokenRequest {
            storage: TokenStorage::Instance,
            ..request(&endpoint)
        };
        let before = TokenCache::new(http_client(), Some(state.path().to_path_buf()));
        assert_eq!(before.token(&req).await.unwrap().token.expose(), "t1");
        let file = state
            .path()
            .join("oauth")
            .join(format!("{}.json", req.identity()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let after = TokenCache::new(http_client(), Some(state.path().to_path_buf()));
        let t1 = after.token(&req).await.unwrap();
        assert_eq!(t1.token.expose(), "t1");
        assert_eq!(endpoint.hits(), 1);
        // A refused token is forgotten on disk too.
        after.invalidate(&t1).await;
        assert!(!file.exists());
        let again = TokenCache::new(http_client(), Some(state.path().to_path_buf()));
        assert_eq!(again.token(&req).await.unwrap().token.expose(), "t2");
        // `memory` tokens are neither read back nor written.
        let memory = request(&endpoint);
        let dir = Some(state.path().to_path_buf());
        let first = TokenCache::new(http_client(), dir.clone());
        assert_eq!(first.token(&memory).await.unwrap().token.expose(), "t3");
        let restarted = TokenCache::new(http_client(), dir);
        assert_eq!(restarted.token(&memory).await.unwrap().token.expose(), "t4");
        assert_eq!(endpoint.hits(), 4);
    }

    #[tokio::test]
    async fn a_failing_endpoint_is_named_and_the_client_secret_is_not() {
        let endpoint = Endpoint::start(|n, _| match n {
            0 => (500, json!({"error": "server_error"})),
            1 => (200, json!({"token_type": "Bearer"})),
            _ => (200, json!({"access_token": "t3", "expires_in": 3600})),
        })
        .await;
        let url = endpoint.url("/token");
        let cache = TokenCache::new(http_client(), None);
        let basic = TokenRequest {
            client_secret: Some(SecretValue::new("cl-s3cret/+=")),
            ..request(&endpoint)
        };
        let post = TokenRequest {
            auth_method: ClientAuthMethod::ClientSecretPost,
            ..basic.clone()
        };
        let hidden =
            |e: &str| !e.contains("s3cret") && !e.contains("s3cret%2F") && !e.contains("Y2xpZW50O");
        let e = cache.token(&basic).await.unwrap_err();
        assert!(
            e.contains(&url) && e.contains("500") && e.contains("svc.oauth") && hidden(&e),
            "{e}"
        );
        // Failures are not cached: the next call asks again.
        let e = cache.token(&post).await.unwrap_err();
        assert!(
            e.contains(&url) && e.contains("no `access_token`") && hidden(&e),
            "{e}"
        );
        assert_eq!(cache.token(&basic).await.unwrap().token.expose(), "t3");
        assert_eq!(endpoint.hits(), 3);
        // An endpoint that cannot be reached is named too.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("http://{}/token", closed.local_addr().unwrap());
        drop(closed);
        let e = cache
            .token(&TokenRequest {
                token_url: Some(gone.clone()),
                ..post
            })
            .await
            .unwrap_err();
        assert!(e.contains(&gone) && hidden(&e), "{e}");
    }

    #[test]
    fn tokens_never_show_in_debug_output_but_persist_as_they_are() {
        let t = Token {
            access_token: SecretValue::new("tok-s3cret"),
            expires_at: 1,
        };
        assert!(!format!("{t:?}").contains("tok-s3cret"));
        let issued = Issued {
            token: t.access_token.clone(),
            identity: "x".into(),
        };
        assert!(!format!("{issued:?}").contains("tok-s3cret"));
        // The instance's token store keeps the value (mode 0600, see `store`).
        let stored = serde_json::to_string(&t).unwrap();
        assert_eq!(stored, r#"{"accessToken":"tok-s3cret","expiresAt":1}"#);
        let back: Token = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.access_token.expose(), "tok-s3cret");
    }
}
