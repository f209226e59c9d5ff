//! The key set of an OpenID provider, cached in memory.
//!
//! - Keys come from `jwksURL`, or from the issuer's discovery document when only `issuer` is
//!   configured (`<issuer>/.well-known/openid-configuration` → `jwks_uri`).
//! - The set is fresh for the response's `Cache-Control: max-age`, bounded to
//!   [`MIN_TTL`]..[`MAX_TTL`] ([`DEFAULT_TTL`] without one). An expired set is still used while
//!   one background task fetches the next, so no request waits on the provider after the first.
//! - A token with an unknown `kid` triggers one refetch, at most once per
//!   [`UNKNOWN_KID_INTERVAL`] and shared by concurrent requests: key rotation at the provider
//!   works without a restart, and a flood of bogus `kid`s cannot hammer the provider.
//! - Each key's algorithm is fixed by the key (`alg`, else its type and curve), never by a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::error_chain;

pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);

/// One usable verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The algorithms this key may verify.
    pub algs: Vec<Algorithm>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish()
    }
}

#[derive(Debug)]
struct KeySet {
    keys: Vec<Key>,
    expires: Instant,
}

#[derive(Debug)]
pub struct Jwks {
    http: reqwest::Client,
    jwks_url: Option<String>,
    issuer: String,
    current: ArcSwapOption<KeySet>,
    /// Incremented on every key set fetched: verified-token caches keyed by it forget tokens
    /// whose key may be gone.
    generation: std::sync::atomic::AtomicU64,
    /// Serialises fetches; holds when the last fetch for an unknown `kid` happened.
    fetch_lock: tokio::sync::Mutex<Option<Instant>>,
}

/// The algorithms a JWK may verify: its `alg` alone when it names one, else the family of its
/// key type. HMAC (`oct`) keys and unsupported curves give none.
pub fn algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    if let Some(a) = jwk.common.key_algorithm {
        let alg = match a {
            KeyAlgorithm::RS256 => Some(RS256),
            KeyAlgorithm::RS384 => Some(RS384),
            KeyAlgorithm::RS512 => Some(RS512),
            KeyAlgorithm::PS256 => Some(PS256),
            KeyAlgorithm::PS384 => Some(PS384),
            KeyAlgorithm::PS512 => Some(PS512),
            KeyAlgorithm::ES256 => Some(ES256),
            KeyAlgorithm::ES384 => Some(ES384),
            KeyAlgorithm::EdDSA => Some(EdDSA),
            _ => None,
        };
        return alg
            .into_iter()
            .filter(|a| family(jwk).contains(a))
            .collect();
    }
    family(jwk)
}

fn family(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![EdDSA],
        _ => vec![],
    }
}

impl Jwks {
    pub fn new(http: reqwest::Client, issuer: &str, jwks_url: Option<&str>) -> Self {
        Self {
            http,
            jwks_url: jwks_url.map(str::to_string),
            issuer: issuer.trim_end_matches('/').to_string(),
            current: ArcSwapOption::empty(),
            generation: std::sync::atomic::AtomicU64::new(0),
            fetch_lock: tokio::sync::Mutex::new(None),
        }
    }

    /// Changes whenever a key set is fetched.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The key for a token's `kid` and `alg`.
    pub async fn key(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm) -> Result<Key, String> {
        let set = match self.current.load_full() {
            Some(s) => {
                crate::metrics::auth_cache("jwks", "hit");
                if s.expires <= Instant::now() {
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        if let Err(e) = me.refresh(false).await {
                            tracing::warn!(issuer = %me.issuer, error = %e, "background JWKS refresh failed; keeping the previous keys");
                        }
                    });
                }
                s
            }
            None => {
                crate::metrics::auth_cache("jwks", "miss");
                self.refresh(false).await?;
                self.current.load_full().ok_or("no key set")?
            }
        };
        if let Some(k) = pick(&set.keys, kid, alg)? {
            return Ok(k);
        }
        // Unknown kid: maybe the provider rotated its keys.
        if self.refresh(true).await? {
            let set = self.current.load_full().ok_or("no key set")?;
            if let Some(k) = pick(&set.keys, kid, alg)? {
                return Ok(k);
            }
        }
        Err(format!(
            "no key with kid `{}` at the issuer",
            kid.map_or_else(|| "(none)".into(), super::shown)
        ))
    }

    /// Fetch the key set. For an unknown `kid`, at most once per [`UNKNOWN_KID_INTERVAL`];
    /// returns whether a fetch happened.
    async fn refresh(&self, for_unknown_kid: bool) -> Result<bool, String> {
        let started = Instant::now();
        let mut last = self.fetch_lock.lock().await;
        if for_unknown_kid {
            if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_INTERVAL) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        } else if let Some(s) = self.current.load_full()
            && s.expires > started
        {
            // Another caller refreshed while we waited.
            return Ok(true);
        }
        let (keys, ttl) = self.fetch().await?;
        self.current.store(Some(Arc::new(KeySet {
            keys,
            expires: Instant::now() + ttl,
        })));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(true)
    }

    async fn fetch(&self) -> Result<(Vec<Key>, Duration), String> {
        crate::metrics::auth_cache("jwks", "fetch");
        let url = match &self.jwks_url {
            Some(u) => u.clone(),
            None => self.discover().await?,
        };
        let resp = self
            .http
            .get(&url)
            .header("accept", "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|e| format!("cannot fetch the key set {url}: {}", error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(format!(
                "cannot fetch the key set {url}: HTTP {}",
                resp.status()
            ));
        }
        let ttl = max_age(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
        );
        let set: JwkSet = resp
            .json()
            .await
            .map_err(|e| format!("the key set at {url} is not a JWK set: {e}"))?;
        let keys: Vec<Key> = set
            .keys
            .iter()
            .filter(|k| {
                k.common
                    .public_key_use
                    .as_ref()
                    .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature)
            })
            .filter_map(|jwk| {
                let algs = algorithms(jwk);
                let key = DecodingKey::from_jwk(jwk).ok()?;
                (!algs.is_empty()).then(|| Key {
                    kid: jwk.common.key_id.clone(),
                    algs,
                    key,
                })
            })
            .collect();
        tracing::info!(url = %url, keys = keys.len(), ttl_s = ttl.as_secs(), "fetched the provider's key set");
        Ok((keys, ttl))
    }

    async fn discover(&self) -> Result<String, String> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let doc: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch {url}: {}", error_chain(&e)))?
            .json()
            .await
            .map_err(|e| format!("{url} is not a discovery document: {e}"))?;
        doc.get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{url} has no `jwks_uri`"))
    }
}

/// The key for `kid`/`alg`: `Ok(None)` when the kid is unknown; an error when the key exists
/// but may not verify `alg` (an algorithm/key mismatch is never retried).
fn pick(keys: &[Key], kid: Option<&str>, alg: Algorithm) -> Result<Option<Key>, String> {
    let candidate = match kid {
        Some(k) => keys.iter().find(|key| key.kid.as_deref() == Some(k)),
        None if keys.len() == 1 => keys.first(),
        None => return Err("the token has no `kid` and the issuer publishes several keys".into()),
    };
    match candidate {
        Some(k) if k.algs.contains(&alg) => Ok(Some(k.clone())),
        Some(_) => Err(format!("algorithm {alg:?} does not match the key")),
        None => Ok(None),
    }
}

fn max_age(cache_control: Option<&str>) -> Duration {
    cache_control
        .and_then(|cc| {
            cc.split(',').find_map(|d| {
                d.trim()
                    .strip_prefix("max-age=")
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TTL)
        .clamp(MIN_TTL, MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_algorithms_come_from_the_key() {
        let rsa: Jwk = serde_json::from_value(
            serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS256"}),
        )
        .unwrap();
        assert_eq!(algorithms(&rsa), vec![Algorithm::RS256]);
        let rsa_any: Jwk =
            serde_json::from_value(serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}))
                .unwrap();
        assert_eq!(algorithms(&rsa_any).len(), 6);
        let lying: Jwk = serde_json::from_value(
            serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "HS256"}),
        )
        .unwrap();
        assert!(
            algorithms(&lying).is_empty(),
            "an RSA key never verifies HMAC"
        );
        let oct: Jwk =
            serde_json::from_value(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"})).unwrap();
        assert!(
            algorithms(&oct).is_empty(),
            "symmetric keys are never accepted"
        );
        let ec: Jwk = serde_json::from_value(
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        )
        .unwrap();
        assert_eq!(algorithms(&ec), vec![Algorithm::ES256]);
    }

    #[test]
    fn cache_lifetimes_are_bounded() {
        assert_eq!(
            max_age(Some("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(max_age(Some("max-age=1")), MIN_TTL);
        assert_eq!(max_age(Some("max-age=999999999")), MAX_TTL);
        assert_eq!(max_age(None), DEFAULT_TTL);
    }
}
