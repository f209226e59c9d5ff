//! The reference delegation broker (`deploy/examples/delegation-broker/broker.mjs`: an
//! `oidc-provider` with an RFC 8693 token-exchange grant) and its demo upstream
//! (`demo-api.mjs`), as the deployment example ships them. The test holds the broker's
//! signing key, so it can mint parent tokens for any subject and scopes.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::oidc::AUDIENCE;
use crate::process::{Port, Proc, START_DEADLINE, repo_root, spawn_listening, spawn_on_free_port};

/// Where the example lives (its `node_modules` installed by `scripts/deps`).
pub fn broker_dir() -> PathBuf {
    repo_root().join("deploy/examples/delegation-broker")
}

fn node(script: &str) -> Command {
    let dir = broker_dir();
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "the broker's packages are missing: run scripts/deps"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script)).current_dir(dir);
    cmd
}

/// The broker: a real OpenID provider that also exchanges tokens.
#[derive(Debug)]
pub struct Broker {
    pub proc: Proc,
    pub issuer: String,
    key: jsonwebtoken::EncodingKey,
    _keys: crate::runtime::Fixture,
}

impl Broker {
    /// Start with the scopes its own grants may issue and the upstream audiences (JSON
    /// `{"<audience>": ["<scope>", …]}`) it exchanges caller tokens for.
    pub fn start(scopes: &str, upstreams: &Value) -> Self {
        let keys = crate::runtime::Fixture::new();
        let (jwks, key) = crate::oidc::rsa_signing_key(keys.path(), "k1");
        let upstreams = upstreams.to_string();
        let (proc, port) = spawn_on_free_port(
            "delegation-broker",
            Port::Free,
            START_DEADLINE,
            |port| {
                let mut cmd = node("broker.mjs");
                cmd.env("PORT", port.to_string())
                    .env("SCOPES", scopes)
                    .env("RUNTIME_AUDIENCE", AUDIENCE)
                    .env("UPSTREAMS", &upstreams)
                    .env("JWKS_FILE", &jwks);
                cmd
            },
            |proc, port| proc.stdout_after("listening on ").map(|_| port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            proc,
            issuer: format!("http://127.0.0.1:{port}"),
            key,
            _keys: keys,
        }
    }

    /// A runtime token the provider could have issued: `sub`, `scope`, valid `ttl` seconds.
    pub fn token(&self, sub: &str, scope: &str, ttl: u64) -> String {
        let now = now();
        let claims = serde_json::json!({"iss": self.issuer, "aud": AUDIENCE, "sub": sub,
            "scope": scope, "iat": now, "exp": now + ttl, "client_id": "cli"});
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("k1".into());
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, &claims, &self.key).expect("sign")
    }

    /// `runtime.server.auth` trusting the broker, with its browser login (`cli` client),
    /// which `open-cli auth delegate` learns the token endpoint and client from.
    pub fn auth(&self) -> Value {
        serde_json::json!({"validationProfile": "oidc_jwks", "issuer": self.issuer,
            "audience": AUDIENCE, "jwksURL": format!("{}/jwks", self.issuer),
            "authorizationURL": format!("{}/auth", self.issuer),
            "tokenURL": format!("{}/token", self.issuer), "browserClientId": "cli"})
    }

    /// The broker's log of token exchanges (one JSON object per exchange asked for).
    pub fn exchanges(&self) -> Vec<Value> {
        self.proc
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "token_exchange")
            .collect()
    }
}

/// The demo upstream: `GET /whoami` answers the claims of the upstream token it verified
/// (only tokens of the broker for `urn:demo-api`), `GET /keyed/whoami` the owner of an
/// `X-Api-Key`; `GET /openapi.json` describes both.
#[derive(Debug)]
pub struct DemoApi {
    pub proc: Proc,
    pub url: String,
}

impl DemoApi {
    /// `api_keys`: `{"<key>": "<owner>"}`.
    pub fn start(broker: &Broker, api_keys: &Value) -> Self {
        let keys = api_keys.to_string();
        let (proc, url) = spawn_listening("the demo API", |port| {
            let mut cmd = node("demo-api.mjs");
            cmd.env("PORT", port.to_string())
                .env("ISSUER", &broker.issuer)
                .env("AUDIENCE", "urn:demo-api")
                .env("API_KEYS", &keys);
            cmd
        });
        Self { proc, url }
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
