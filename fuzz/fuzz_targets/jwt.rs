//! Bearer tokens before signature verification. The input is an `Authorization` header value
//! (`Bearer <JWT>`).
//!
//! - `auth::Authenticator` (profile `oidc_jwks`, built once): `remembered` and `authenticate`,
//!   which run the runtime's own checks: the `Bearer` header, visible-ASCII token text, the
//!   unverified `iss` that picks the provider, and for a trusted issuer
//!   `jsonwebtoken::decode_header` and the header checks (`alg`, `typ`, `crit`, `b64`) up to
//!   the key lookup. The key set URLs are `file:` URLs: the HTTP client refuses them at
//!   once, so nothing leaves the process (and no token ever verifies).
//! - The public helpers those steps use, on the token's own parts: `jsonwebtoken::decode_header`,
//!   `auth::shown`, `auth::numeric_date` (exp, nbf, iat) and `auth::principal` on the
//!   base64url-decoded claims (`bearer`, `token_text`, `unverified_issuer` and `check_times`
//!   are private).
#![no_main]

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use open_cli_config::model::{ClientAuthMethod, ServerAuth, TrustedIssuer, ValidationProfile};
use open_cli_proxy::auth::{self, Authenticator};
use serde_json::Value;

struct Env {
    rt: tokio::runtime::Runtime,
    auth: Authenticator,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let config = ServerAuth {
            validation_profile: ValidationProfile::OidcJwks,
            issuer: Some("https://issuer.example.test".into()),
            jwks_url: Some("file:///nonexistent/issuer/jwks.json".into()),
            audience: "open-cli".into(),
            introspection_url: None,
            authorization_url: None,
            token_url: None,
            browser_client_id: None,
            client_id: None,
            client_secret: None,
            leeway_seconds: 60,
            scope_claim: None,
            client_auth_method: ClientAuthMethod::ClientSecretBasic,
            introspection_cache_seconds: 0,
            additional_issuers: vec![TrustedIssuer {
                issuer: "https://other.example.test/".into(),
                jwks_url: Some("file:///nonexistent/other/jwks.json".into()),
            }],
            require_client_cert: false,
        };
        let secrets = Arc::new(open_cli_proxy::credentials::secrets::SecretStore::default());
        let auth = rt
            .block_on(Authenticator::from_config(Some(&config), &secrets, false))
            .expect("authenticator")
            .expect("auth is on");
        Env { rt, auth }
    })
}

fn claims_checks(claims: &Value) {
    for name in ["exp", "nbf", "iat"] {
        let _ = auth::numeric_date(claims, name);
    }
    let _ = auth::principal(claims, None);
    let _ = auth::principal(claims, Some("roles"));
    if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
        let _ = auth::shown(iss);
    }
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let _ = env.auth.remembered(Some(data), u64::MAX / 2);
    let _ = env.auth.remembered(Some(data), 0);
    match env.rt.block_on(env.auth.authenticate(Some(data))) {
        Ok(_) => panic!("an unverifiable token was accepted"),
        Err(e) => {
            let _ = (e.reason(), e.describe());
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let token = match text.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => text,
    };
    let _ = auth::shown(token);
    if let Ok(header) = jsonwebtoken::decode_header(token) {
        if let Some(typ) = &header.typ {
            let _ = auth::shown(typ);
        }
        if let Some(kid) = &header.kid {
            let _ = auth::shown(kid);
        }
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload)) = (parts.next(), parts.next()) else {
        return;
    };
    if let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
        && let Ok(claims) = serde_json::from_slice::<Value>(&bytes)
    {
        claims_checks(&claims);
    }
    // The raw payload as claims too (no base64 layer for the fuzzer to get through).
    if let Ok(claims) = serde_json::from_str::<Value>(payload) {
        claims_checks(&claims);
    }
});
