//! Runtime (inbound) authentication: who is calling, with which scopes (contract §3).
//!
//! Profile `oidc_jwks`: the bearer token is a JWT signed by the configured issuer. Checks, in
//! order: a well-formed `Bearer` header; a header whose `alg` is asymmetric (`none` and HMAC
//! are refused before any key lookup); `typ` `at+jwt` or `JWT` when present; no `crit` and no
//! `b64` header parameter (RFC 7515 §4.1.11: we implement no extension, so any critical one is
//! refused); a key for the token's `kid` whose own algorithm matches (see [`jwks`]); the
//! signature; `iss` exactly the issuer; `aud` containing the audience; `exp` required; `exp`,
//! `nbf` and `iat` JSON numbers when present (RFC 7519 NumericDate, fractions allowed);
//! `nbf`/`iat` within the leeway.
//! Messages name the failed check and never carry key material or the token; text the token
//! chose (`iss`, `kid`, `typ`) appears only through [`shown`]: bounded, printable ASCII.
//!
//! Authentication happens before any other work for the request (see `crate::gateway::api::handle`).

pub mod introspect;
pub mod jwks;

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use open_cli_config::model::{ServerAuth, ValidationProfile};
use serde_json::Value;

/// Who is asking: `None` when runtime auth is off or the route is public and no token came.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub principal: Option<Arc<Principal>>,
    /// The verified client certificate's subject (or SAN), on a TLS listener with client
    /// certificates (`runtime.server.tls.clientAuth`); recorded as `clientCert` in audit.
    pub client_cert: Option<Arc<str>>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `sub`, else `client_id`.
    pub subject: String,
    pub scopes: Vec<String>,
    /// Delegation lineage for audit: the `act`, `delegated_by` and `delegation_id` claims as
    /// `actor`, `delegatedBy`, `delegationId`.
    pub lineage: Option<Value>,
    /// The runtime token itself, for one use only: a `tokenExchange` secret exchanges it at
    /// the broker for the caller's upstream token (`crate::credentials`). Kept only when the
    /// config has such a secret and the token comes from the primary issuer (a broker
    /// exchanges tokens of its own issuer); never sent to an upstream, never logged (its
    /// `Debug` is redacted).
    pub token: Option<open_cli_config::secrets::SecretValue>,
    /// The issuer of the token when it is one of `additionalIssuers`; `None` for the primary
    /// issuer (and for introspection). Subjects are an issuer's namespace: a per-caller
    /// secret names other issuers' callers `<issuer>#<sub>`.
    pub issuer: Option<Arc<str>>,
}

impl Principal {
    /// This caller, as upstream credentials are resolved for it.
    pub fn on_behalf(&self) -> crate::credentials::OnBehalf<'_> {
        crate::credentials::OnBehalf {
            subject: &self.subject,
            issuer: self.issuer.as_deref(),
            token: self.token.as_ref(),
            delegated: self.lineage.is_some(),
        }
    }
}

/// Why a request is not authenticated. The text goes into `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid(String),
    /// The token is unknown and the provider may not be asked now (see
    /// [`introspect::Introspector`]): answered 503 `introspection_throttled` with
    /// `Retry-After` (seconds).
    Throttled(u64),
}

impl AuthError {
    /// The failure's label in the metrics, from a fixed list: `missing`, `malformed` (not a
    /// `Bearer` header of visible ASCII), `expired`, `inactive` (introspection says so),
    /// `provider_unavailable` (introspection could not be asked), `throttled`, and
    /// `invalid` for every other check (signature, issuer, audience, claims, key).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Throttled(_) => "throttled",
            Self::Invalid(why) => {
                if why.contains("has expired") {
                    "expired"
                } else if why.contains("not active") {
                    "inactive"
                } else if why.contains("could not be checked") {
                    "provider_unavailable"
                } else if why.contains("Bearer <token>") || why.contains("visible ASCII") {
                    "malformed"
                } else {
                    "invalid"
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Missing => "a bearer token is required".into(),
            Self::Invalid(why) => why.clone(),
            Self::Throttled(secs) => format!(
                "too many unknown tokens to check: token introspection is throttled; retry in {secs} s"
            ),
        }
    }
}

/// Most characters of token-chosen text [`shown`] keeps.
pub const SHOWN_MAX: usize = 64;

/// Token-chosen text (an `iss`, a `kid`, a `typ`) as it may appear in a message or a
/// `WWW-Authenticate` header: printable ASCII only, with every other byte, `"`, `\`, `` ` ``
/// and `%` percent-encoded (so NUL, CR/LF and bidirectional overrides are never reflected),
/// and at most [`SHOWN_MAX`] characters (then `...`).
pub fn shown(text: &str) -> String {
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b'"')
        .add(b'\\')
        .add(b'`')
        .add(b'%');
    let mut out = String::new();
    for piece in percent_encoding::utf8_percent_encode(text, ESCAPED) {
        if out.len() + piece.len() > SHOWN_MAX {
            // A piece is a run of kept (ASCII) characters or one `%XX` escape, never cut.
            if !piece.starts_with('%') {
                out.push_str(piece.get(..SHOWN_MAX - out.len()).unwrap_or_default());
            }
            out.push_str("...");
            return out;
        }
        out.push_str(piece);
    }
    out
}

#[derive(Debug)]
pub struct Authenticator {
    audience: String,
    profile: Profile,
    /// Tokens already verified: SHA-256 of the token → (principal, `exp`, key-set generation).
    /// A hit skips the signature check; it lapses at `exp` or when the key set is re-fetched.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Verified>>,
    /// Distinguishes authenticators (a config reload makes a new one) for [`Front`].
    id: u64,
    /// `requireClientCert`: a request without a verified client certificate is refused.
    require_client_cert: bool,
    /// Keep a verified token beside its principal (`Principal::token`): the config exchanges
    /// caller tokens (`Config::exchanges_caller_tokens`).
    keep_tokens: bool,
}

/// Each serving thread's own first-level cache of verified tokens, in front of the shared
/// one: no lock, no SHA-256, and a thread-private copy of the principal, so neither the map
/// nor the principal's reference count is shared between cores. Entries are found by
/// [`Front::key`] and confirmed by comparing the whole token; they lapse exactly like shared
/// entries ([`Verified::fresh`]).
struct Front {
    owner: u64,
    /// Keyed by [`Front::key`], already a hash: the map does not hash it again.
    map: std::collections::HashMap<u64, (Box<str>, Verified), crate::hash::PreHashed>,
}

/// Most tokens one thread remembers; the map is cleared when full.
const FRONT_MAX: usize = 1024;

thread_local! {
    static FRONT: std::cell::RefCell<Option<Front>> = const { std::cell::RefCell::new(None) };
}

static NEXT_AUTHENTICATOR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Front {
    /// A token's last 16 bytes (signature characters: bits only the issuer's key decides)
    /// and its length, mixed by one multiplication. Not keyed, deliberately: only tokens
    /// whose signature verified are ever inserted, so no outsider can fill the map with
    /// colliding keys, and a lookup always compares the whole token. (A keyed SipHash of
    /// the same bytes cost more than the rest of the lookup.)
    fn key(b: &[u8]) -> u64 {
        let word = |end: usize| -> u64 {
            end.checked_sub(8)
                .and_then(|start| b.get(start..end))
                .map_or(0, |w| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(w);
                    u64::from_le_bytes(a)
                })
        };
        let n = b.len();
        (word(n) ^ word(n.saturating_sub(8)).rotate_left(29) ^ n as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The thread-private principal of `token`, when this thread verified it (or saw it
    /// verified) and it is still fresh.
    fn get(
        owner: u64,
        token: &[u8],
        providers: &[(String, Arc<jwks::Jwks>)],
        now: u64,
    ) -> Option<Arc<Principal>> {
        FRONT.with_borrow(|f| {
            let f = f.as_ref().filter(|f| f.owner == owner)?;
            let (t, v) = f.map.get(&Front::key(token))?;
            (t.as_bytes() == token && v.fresh(providers, now)).then(|| Arc::clone(&v.principal))
        })
    }

    fn put(owner: u64, token: &str, v: &Verified) {
        FRONT.with_borrow_mut(|f| {
            let f = match f {
                Some(f) if f.owner == owner => f,
                _ => f.insert(Front {
                    owner,
                    map: Default::default(),
                }),
            };
            if f.map.len() >= FRONT_MAX {
                f.map.clear();
            }
            let key = Front::key(token.as_bytes());
            f.map.insert(
                key,
                (
                    token.into(),
                    Verified {
                        principal: Arc::new((*v.principal).clone()),
                        exp: v.exp,
                        provider: v.provider,
                        generation: v.generation,
                    },
                ),
            );
        })
    }
}

/// A remembered verification: the principal, the token's `exp`, and the provider (index
/// into `providers`) with its key-set generation at the time (a rotation invalidates it).
#[derive(Debug)]
struct Verified {
    principal: Arc<Principal>,
    exp: u64,
    provider: usize,
    generation: u64,
}

impl Verified {
    /// Not expired, and its provider's key set not refetched since.
    fn fresh(&self, providers: &[(String, Arc<jwks::Jwks>)], now: u64) -> bool {
        self.exp > now
            && providers
                .get(self.provider)
                .is_some_and(|(_, j)| j.generation() == self.generation)
    }
}

/// Most verified tokens remembered; the map is pruned, then cleared, when full.
const MAX_VERIFIED: usize = 10_000;

#[derive(Debug)]
enum Profile {
    Jwks {
        /// `(issuer, key set)`; the token's `iss` picks one.
        providers: Vec<(String, Arc<jwks::Jwks>)>,
        leeway: u64,
        scope_claim: Option<String>,
    },
    Introspection(Box<introspect::Introspector>),
}

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Authenticator {
    /// The authenticator for `runtime.server.auth`; `None` when auth is off.
    ///
    /// Secrets the profile needs (the introspection client's) resolve through `secrets`, the
    /// runtime's one resolver, under `allow_exec` (`policy.allowExecSecrets`); they are
    /// resolved once here so that a missing one stops start-up, and again per call.
    pub async fn from_config(
        auth: Option<&ServerAuth>,
        secrets: &Arc<crate::credentials::secrets::SecretStore>,
        allow_exec: bool,
        keep_tokens: bool,
    ) -> Result<Option<Self>, String> {
        let Some(a) = auth else { return Ok(None) };
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let profile = match a.validation_profile {
            ValidationProfile::OidcJwks => {
                let issuer = a
                    .issuer
                    .clone()
                    .ok_or("runtime.server.auth.issuer is required")?;
                let mut providers = vec![(
                    issuer.clone(),
                    Arc::new(jwks::Jwks::new(
                        http.clone(),
                        &issuer,
                        a.jwks_url.as_deref(),
                    )),
                )];
                for t in &a.additional_issuers {
                    providers.push((
                        t.issuer.clone(),
                        Arc::new(jwks::Jwks::new(
                            http.clone(),
                            &t.issuer,
                            t.jwks_url.as_deref(),
                        )),
                    ));
                }
                Profile::Jwks {
                    providers,
                    leeway: a.leeway_seconds,
                    scope_claim: a.scope_claim.clone(),
                }
            }
            ValidationProfile::OAuth2Introspection => {
                let client = introspect::Client {
                    id: a.client_id.clone(),
                    secret: a.client_secret.clone(),
                    post: a.client_auth_method
                        == open_cli_config::model::ClientAuthMethod::ClientSecretPost,
                    allow_exec,
                    secrets: Arc::clone(secrets),
                };
                client.resolve().await?;
                Profile::Introspection(Box::new(introspect::Introspector::new(
                    http,
                    a.introspection_url
                        .clone()
                        .ok_or("runtime.server.auth.introspectionURL is required")?,
                    client,
                    a.audience.clone(),
                    a.issuer.clone(),
                    std::time::Duration::from_secs(a.introspection_cache_seconds),
                    a.scope_claim.clone(),
                )))
            }
        };
        Ok(Some(Self {
            audience: a.audience.clone(),
            profile,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            id: NEXT_AUTHENTICATOR.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            require_client_cert: a.require_client_cert,
            keep_tokens,
        }))
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// `runtime.server.auth.requireClientCert`.
    pub fn requires_client_cert(&self) -> bool {
        self.require_client_cert
    }

    /// The principal of a token this thread verified (or saw verified) and that is still
    /// fresh: the synchronous first step of authentication, no lock and no hashing of the
    /// whole token. `None` sends the caller to [`Authenticator::authenticate`].
    ///
    /// The header's bytes are compared as they are: a remembered token passed the text
    /// checks of [`Authenticator::authenticate`] when it was verified, so equal bytes need
    /// none (checking a JWT's few hundred bytes again showed in the profile:
    /// `docs/execution.md`, Performance).
    /// `now` is the wall-clock second of the request's arrival.
    pub fn remembered(&self, authorization: Option<&[u8]>, now: u64) -> Option<Arc<Principal>> {
        let token = bearer(authorization).ok()?;
        match &self.profile {
            Profile::Jwks { providers, .. } => Front::get(self.id, token, providers, now),
            Profile::Introspection(_) => None,
        }
    }

    /// Authenticate an `Authorization` header value that [`Authenticator::remembered`] did
    /// not answer.
    ///
    /// A token verified before (on any thread) is recognised by its SHA-256 alone (one hash
    /// and one map lookup, no JSON or signature work) until its `exp`, unless its provider's
    /// key set was refetched since.
    ///
    /// Everything here (the shared cache, signature checks, key-set fetches, introspection
    /// calls) runs in a separately allocated future, so the futures of every request that
    /// awaits this one stay small (the verification path holds HTTP client futures of a few
    /// KiB).
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Arc<Principal>, AuthError> {
        let token = token_text(bearer(authorization)?)?;
        Box::pin(self.verify(token)).await
    }

    /// [`Authenticator::authenticate`] once the header is parsed.
    async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        match &self.profile {
            Profile::Jwks {
                providers,
                leeway,
                scope_claim,
            } => {
                use sha2::Digest;
                let now = crate::fetch::cache::now_secs();
                let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
                {
                    let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(v) = cache.get(&key)
                        && v.fresh(providers, now)
                    {
                        Front::put(self.id, token, v);
                        crate::metrics::auth_cache("token", "hit");
                        return Ok(Arc::clone(&v.principal));
                    }
                }
                crate::metrics::auth_cache("token", "miss");
                let claimed = unverified_issuer(token)?;
                let (provider, (issuer, jwks)) = providers
                    .iter()
                    .enumerate()
                    .find(|(_, (i, _))| i.trim_end_matches('/') == claimed.trim_end_matches('/'))
                    .ok_or_else(|| {
                        AuthError::Invalid(format!(
                            "the token was issued by `{}`, which is not a trusted issuer",
                            shown(&claimed)
                        ))
                    })?;
                let generation = jwks.generation();
                let (mut principal, exp) = self
                    .validate_jwt(token, issuer, *leeway, scope_claim.as_deref(), jwks)
                    .await?;
                if provider > 0 {
                    principal.issuer = Some(issuer.as_str().into());
                } else if self.keep_tokens {
                    principal.token = Some(token.to_string().into());
                }
                let principal = Arc::new(principal);
                let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_VERIFIED {
                    cache.retain(|_, v| v.fresh(providers, now));
                    if cache.len() >= MAX_VERIFIED {
                        cache.clear();
                    }
                }
                // Remember under the generation current when validation started: a key set
                // fetched meanwhile (rotation) invalidates the entry.
                let v = Verified {
                    principal: Arc::clone(&principal),
                    exp,
                    provider,
                    generation,
                };
                Front::put(self.id, token, &v);
                cache.insert(key, v);
                Ok(principal)
            }
            Profile::Introspection(i) => i.authenticate(token, self.keep_tokens).await,
        }
    }

    async fn validate_jwt(
        &self,
        token: &str,
        issuer: &str,
        leeway: u64,
        scope_claim: Option<&str>,
        jwks: &Arc<jwks::Jwks>,
    ) -> Result<(Principal, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::Invalid("the token is not a JWT with a supported algorithm".into())
        })?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        if let Some(typ) = &header.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(t.as_str(), "at+jwt" | "application/at+jwt" | "jwt") {
                return Err(AuthError::Invalid(format!(
                    "token type `{}` is not an access token",
                    shown(typ)
                )));
            }
        }
        // RFC 7515 §4.1.11: a `crit` extension we do not implement (we implement none) must
        // be refused; `b64` (RFC 7797, unencoded payload) changes what the signature covers.
        if header.crit.is_some() {
            return Err(AuthError::Invalid(
                "the token names critical header extensions (crit), which are not supported".into(),
            ));
        }
        if header.extras.inner().contains_key("b64") {
            return Err(AuthError::Invalid(
                "the token's `b64` header parameter (unencoded payload) is not supported".into(),
            ));
        }
        let key = jwks
            .key(header.kid.as_deref(), header.alg)
            .await
            .map_err(AuthError::Invalid)?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[issuer]);
        v.set_audience(&[&self.audience]);
        // Time claims are read by `check_times` alone (one reading for exp, nbf and iat).
        v.set_required_spec_claims(&["iss", "aud"]);
        v.validate_exp = false;
        v.validate_nbf = false;
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            AuthError::Invalid(
                match e.kind() {
                    K::InvalidSignature => "the signature does not verify",
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet (nbf)",
                    K::InvalidIssuer => "the token was issued by another issuer",
                    K::InvalidAudience => "the token is not for this audience",
                    K::MissingRequiredClaim(_) => {
                        "the token lacks a required claim (exp, iss or aud)"
                    }
                    K::InvalidAlgorithm => "the algorithm does not match the key",
                    _ => "the token is not valid",
                }
                .into(),
            )
        })?;
        let exp = check_times(&data.claims, crate::fetch::cache::now_secs(), leeway)?;
        Ok((principal(&data.claims, scope_claim)?, exp))
    }
}

/// A time claim (`exp`, `nbf`, `iat`): `None` when absent, else an RFC 7519 NumericDate (a JSON
/// number, fractions allowed); any other type is refused, never skipped.
pub fn numeric_date(claims: &Value, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| {
                AuthError::Invalid(format!("the token's `{name}` claim is not a NumericDate"))
            }),
        Some(_) => Err(AuthError::Invalid(format!(
            "the token's `{name}` claim is not a NumericDate (a number of seconds)"
        ))),
    }
}

/// The time claims of a verified JWT, with the same reading for all three: `exp` required
/// and not past, `nbf` not beyond `now + leeway`, `iat` not in the future beyond the leeway
/// (jsonwebtoken's own checks are off: it rounds fractions and ignores `iat`). Returns
/// `exp` in whole seconds (rounded down), for the verified-token caches.
fn check_times(claims: &Value, now: u64, leeway: u64) -> Result<u64, AuthError> {
    let (now, leeway) = (now as f64, leeway as f64);
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| {
        AuthError::Invalid("the token lacks a required claim (exp, iss or aud)".into())
    })?;
    if exp <= now - leeway {
        return Err(AuthError::Invalid("the token has expired".into()));
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now + leeway) {
        return Err(AuthError::Invalid(
            "the token is not valid yet (nbf)".into(),
        ));
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now + leeway) {
        return Err(AuthError::Invalid(
            "the token was issued in the future (iat)".into(),
        ));
    }
    Ok(exp.max(0.0).floor() as u64)
}

/// The `iss` a JWT claims, read before verification only to pick the provider whose keys
/// then verify the token (and whose issuer the verified `iss` must equal).
fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    use base64::Engine;
    let not_jwt = || AuthError::Invalid("the token is not a JWT with a supported algorithm".into());
    let payload = token.split('.').nth(1).ok_or_else(not_jwt)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| not_jwt())?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| not_jwt())?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            AuthError::Invalid("the token lacks a required claim (exp, iss or aud)".into())
        })
}

/// The token of an `Authorization: Bearer <token>` header value (surrounding blanks
/// trimmed), as bytes: see [`Authenticator::remembered`].
fn bearer(authorization: Option<&[u8]>) -> Result<&[u8], AuthError> {
    let h = authorization.ok_or(AuthError::Missing)?;
    let malformed =
        || AuthError::Invalid("the Authorization header must be `Bearer <token>`".into());
    let at = h.iter().position(|&c| c == b' ').ok_or_else(malformed)?;
    let (scheme, token) = (&h[..at], h[at + 1..].trim_ascii());
    if !scheme.eq_ignore_ascii_case(b"bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

/// A bearer token as text. RFC 6750 tokens are visible ASCII (`b64token`); anything else
/// is refused before it is hashed, parsed or remembered.
fn token_text(token: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(token)
        .ok()
        .filter(|t| t.bytes().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            AuthError::Invalid("the bearer token must be visible ASCII characters".into())
        })
}

/// The scope tokens of a `scope` string: separated by U+0020 only (RFC 6749 §3.3). A token
/// with any character outside `scope-token` (`%x21 / %x23-5B / %x5D-7E`: other whitespace such
/// as NBSP, tab or newline, controls, non-ASCII, `"`, `\`) is ignored: it grants nothing.
fn scope_tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(' ').filter(|t| is_scope_token(t))
}

fn is_scope_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// Principal from `sub`, else `client_id`; scopes from the `scope` string and the `scp`
/// array (or the configured claim instead).
pub fn principal(claims: &Value, scope_claim: Option<&str>) -> Result<Principal, AuthError> {
    let subject = ["sub", "client_id"]
        .iter()
        .find_map(|k| {
            claims
                .get(*k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| AuthError::Invalid("the token names no subject (sub or client_id)".into()))?
        .to_string();
    let mut scopes: Vec<String> = Vec::new();
    let mut take = |v: Option<&Value>| match v {
        Some(Value::String(s)) => scopes.extend(scope_tokens(s).map(str::to_string)),
        Some(Value::Array(a)) => scopes.extend(
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| is_scope_token(s))
                .map(str::to_string),
        ),
        _ => {}
    };
    match scope_claim {
        Some(c) => take(claims.get(c)),
        None => {
            take(claims.get("scope"));
            take(claims.get("scp"));
        }
    }
    scopes.sort();
    scopes.dedup();
    // The contract's audit names: `actor` (the `act` claim, RFC 8693 4.1), `delegatedBy`,
    // `delegationId`.
    let lineage: serde_json::Map<String, Value> = [
        ("act", "actor"),
        ("delegated_by", "delegatedBy"),
        ("delegation_id", "delegationId"),
    ]
    .iter()
    .filter_map(|(claim, key)| claims.get(*claim).map(|v| (key.to_string(), v.clone())))
    .collect();
    Ok(Principal {
        subject,
        scopes,
        lineage: (!lineage.is_empty()).then_some(Value::Object(lineage)),
        token: None,
        issuer: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The metrics' reason of the refusals the checks word (the texts are theirs).
    #[test]
    fn refusals_have_bounded_metric_reasons() {
        let invalid = |m: &str| AuthError::Invalid(m.into()).reason();
        assert_eq!(AuthError::Missing.reason(), "missing");
        assert_eq!(AuthError::Throttled(3).reason(), "throttled");
        assert_eq!(invalid("the token has expired"), "expired");
        assert_eq!(
            invalid("the token is not active (expired or revoked)"),
            "inactive"
        );
        assert_eq!(
            invalid("the token could not be checked (introspection unavailable)"),
            "provider_unavailable"
        );
        assert_eq!(
            bearer(Some(b"Basic abc")).unwrap_err().reason(),
            "malformed"
        );
        assert_eq!(token_text(b"a\tb").unwrap_err().reason(), "malformed");
        assert_eq!(
            invalid("the token was issued by `x`, which is not a trusted issuer"),
            "invalid"
        );
        for e in [
            AuthError::Missing,
            AuthError::Throttled(1),
            AuthError::Invalid("the token has expired".into()),
            AuthError::Invalid("the token is not active (expired or revoked)".into()),
            AuthError::Invalid("the token could not be checked (introspection refused)".into()),
            AuthError::Invalid("the bearer token must be visible ASCII characters".into()),
            AuthError::Invalid("bad signature".into()),
        ] {
            assert!(
                crate::metrics::AUTHN_REASONS.contains(&e.reason()),
                "{e:?}: `{}` is not exported from the start",
                e.reason()
            );
        }
    }

    #[test]
    fn principals_and_scopes_from_claims() {
        let p = principal(&json!({"client_id": "agent-1", "scope": "bundle:a tool:b:c", "scp": ["bundle:a", "profile:x"]}), None).unwrap();
        assert_eq!(p.subject, "agent-1");
        assert_eq!(p.scopes, ["bundle:a", "profile:x", "tool:b:c"]);
        let p = principal(&json!({"sub": "alice", "client_id": "cli", "perms": ["bundle:z"], "act": {"sub": "bot"}}), Some("perms")).unwrap();
        assert_eq!(
            (p.subject.as_str(), p.scopes.as_slice()),
            ("alice", &["bundle:z".to_string()][..])
        );
        assert_eq!(p.lineage, Some(json!({"actor": {"sub": "bot"}})));
        assert!(principal(&json!({"scope": "x"}), None).is_err());
    }

    #[test]
    fn the_thread_cache_confirms_the_whole_token_and_honours_freshness() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let jwks = Arc::new(jwks::Jwks::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            None,
        ));
        let providers = vec![("http://127.0.0.1:9".to_string(), jwks)];
        let tail = "s".repeat(40);
        let (a, b) = (format!("aaaa.{tail}"), format!("bbbb.{tail}"));
        let v = Verified {
            principal: Arc::new(Principal {
                subject: "alice".into(),
                scopes: vec![],
                lineage: None,
                token: None,
                issuer: None,
            }),
            exp: 1_000,
            provider: 0,
            generation: providers[0].1.generation(),
        };
        Front::put(7, &a, &v);
        let got = Front::get(7, a.as_bytes(), &providers, 999).unwrap();
        assert_eq!(got.subject, "alice");
        assert!(!Arc::ptr_eq(&got, &v.principal), "a thread-private copy");
        // Same length and tail (same slot), different token: a miss, never alice.
        assert!(Front::get(7, b.as_bytes(), &providers, 999).is_none());
        // Expired; another authenticator (after a reload).
        assert!(Front::get(7, a.as_bytes(), &providers, 1_000).is_none());
        assert!(Front::get(8, a.as_bytes(), &providers, 999).is_none());
        // Tokens shorter than the hashed tail still work; signatures that differ anywhere
        // in the tail give different keys.
        Front::put(7, "t.s", &v);
        assert!(Front::get(7, b"t.s", &providers, 999).is_some());
        for i in 0..16 {
            let mut other = tail.clone().into_bytes();
            other[tail.len() - 1 - i] = b't';
            let other = String::from_utf8(other).unwrap();
            assert_ne!(
                Front::key(tail.as_bytes()),
                Front::key(other.as_bytes()),
                "byte {i} from the end"
            );
        }
    }

    #[test]
    fn token_chosen_text_is_escaped_and_bounded() {
        assert_eq!(shown("https://idp.example"), "https://idp.example");
        assert_eq!(shown("a\0b\r\nc\"d\\e`%"), "a%00b%0D%0Ac%22d%5Ce%60%25");
        assert_eq!(shown("\u{202e}x"), "%E2%80%AEx");
        let long = shown(&"k".repeat(300));
        assert_eq!(long, format!("{}...", "k".repeat(SHOWN_MAX)));
        // An escape is never cut in half.
        let s = shown(&format!("{}\u{0}", "k".repeat(SHOWN_MAX - 1)));
        assert_eq!(s, format!("{}...", "k".repeat(SHOWN_MAX - 1)));
        assert!(shown(&"\u{202e}".repeat(100)).len() <= SHOWN_MAX + 3);
    }

    #[test]
    fn scopes_are_split_on_the_space_character_only() {
        let p = principal(
            &json!({"sub": "a", "scope": "bundle:demo\u{a0}bundle:rec  tool:x\ttool:y profile:ok", "scp": ["bundle:z", "bundle:a b", "bundle:c\n"]}),
            None,
        )
        .unwrap();
        assert_eq!(p.scopes, ["bundle:z", "profile:ok"]);
    }

    #[test]
    fn time_claims_are_numeric_dates_read_one_way() {
        let now = 1_000_000;
        assert_eq!(check_times(&json!({"exp": now + 60}), now, 0), Ok(now + 60));
        assert_eq!(
            check_times(
                &json!({"exp": (now + 60) as f64 + 0.5, "iat": now as f64 - 0.5}),
                now,
                0
            ),
            Ok(now + 60)
        );
        let why = |c: Value| match check_times(&c, now, 30) {
            Err(AuthError::Invalid(m)) => m,
            other => panic!("{c}: {other:?}"),
        };
        let exp = now + 600;
        assert!(why(json!({"exp": exp, "iat": "0"})).contains("`iat` claim is not a NumericDate"));
        assert!(why(json!({"exp": exp, "nbf": null})).contains("`nbf`"));
        assert!(why(json!({"exp": exp.to_string()})).contains("`exp`"));
        assert!(why(json!({})).contains("lacks a required claim"));
        assert!(why(json!({"exp": exp, "iat": (now + 31) as f64 + 0.25})).contains("future (iat)"));
        assert!(why(json!({"exp": exp, "nbf": now + 31})).contains("not valid yet"));
        assert!(why(json!({"exp": now - 31})).contains("expired"));
        assert!(check_times(&json!({"exp": exp, "iat": now + 30}), now, 30).is_ok());
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(Some(b"Bearer abc")), Ok(&b"abc"[..]));
        assert_eq!(bearer(Some(b"bearer  abc ")), Ok(&b"abc"[..]));
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert!(bearer(Some(b"Basic abc")).is_err());
        assert!(bearer(Some(b"Bearer ")).is_err());
        assert!(bearer(Some(b"Bearer")).is_err());
        assert_eq!(token_text(b"eyJ.a-b_c.d~+/="), Ok("eyJ.a-b_c.d~+/="));
        for bad in [&b"caf\xc3\xa9"[..], b"a\tb", b"a b", b"\xff"] {
            assert!(
                matches!(token_text(bad), Err(AuthError::Invalid(m)) if m.contains("visible ASCII")),
                "{bad:?}"
            );
        }
    }
}
