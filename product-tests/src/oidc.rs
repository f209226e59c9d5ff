//! OAuth counterparts (node, installed by `scripts/deps` under `product-tests/oidc`): a real
//! OpenID provider ([`Oidc`]), a bearer-token gate in front of an upstream ([`BearerGate`]),
//! and keys and token decoding for tests that craft or inspect tokens.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::process::{
    Port, Proc, START_DEADLINE, http, repo_root, spawn_listening, spawn_on_free_port,
};

/// A real OpenID provider (npm `oidc-provider`, `product-tests/oidc/server.mjs`).
#[derive(Debug)]
pub struct Oidc {
    pub proc: Proc,
    pub issuer: String,
}

pub const AUDIENCE: &str = "urn:open-cli:runtime";

impl Oidc {
    /// Start with the scopes the agent client may be granted and extra env (`AT_TTL`, `AT_ALG`).
    pub fn start(scopes: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(Port::Free, scopes, env)
    }

    /// Stop this provider and start another on the same issuer URL (e.g. with new keys).
    pub fn restart(self, scopes: &str, env: &[(&str, &str)]) -> Self {
        let port = self.issuer.rsplit(':').next().and_then(|p| p.parse().ok());
        drop(self);
        Self::start_on(port.map_or(Port::Free, Port::Fixed), scopes, env)
    }

    fn start_on(port: Port, scopes: &str, env: &[(&str, &str)]) -> Self {
        let script = repo_root().join("product-tests/oidc/server.mjs");
        assert!(
            repo_root()
                .join("product-tests/oidc/node_modules/oidc-provider")
                .exists(),
            "oidc-provider is missing: run scripts/deps"
        );
        // The issuer URL is built from the port, so the port is chosen here, not by the server.
        let (proc, port) = spawn_on_free_port(
            "oidc-provider",
            port,
            START_DEADLINE,
            |port| {
                let mut cmd = Command::new("node");
                cmd.arg(&script)
                    .env("PORT", port.to_string())
                    .env("SCOPES", scopes)
                    .env("AUDIENCE", AUDIENCE)
                    .envs(env.iter().copied());
                cmd
            },
            |proc, port| proc.stdout_after("listening on ").map(|_| port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            proc,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A client-credentials access token for `scope` (and `resource`, which sets `aud`).
    pub fn token(&self, scope: &str, resource: Option<&str>) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope);
        if let Some(r) = resource {
            form.append_pair("resource", r);
        }
        let resp = http()
            .post(format!("{}/token", self.issuer))
            .basic_auth("agent-1", Some("agent-1-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .expect("token request");
        let status = resp.status();
        let body: Value = resp.json().expect("token json");
        assert!(status.is_success(), "token request failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// How many introspection requests the provider has received.
    pub fn introspections(&self) -> u64 {
        http()
            .get(format!("{}/test/introspections", self.issuer))
            .send()
            .and_then(|r| r.json::<Value>())
            .expect("introspection count")["count"]
            .as_u64()
            .expect("count")
    }
}

/// A bearer-token gate (`product-tests/oidc/bearer-gate.mjs`) in front of `target`: it admits
/// only JWTs of `oidc` for [`AUDIENCE`], can be told to refuse a token from now on, and lists
/// every token it was shown.
#[derive(Debug)]
pub struct BearerGate {
    pub proc: Proc,
    /// The gate's own base URL (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl BearerGate {
    pub fn start(oidc: &Oidc, target: &str) -> Self {
        let script = repo_root().join("product-tests/oidc/bearer-gate.mjs");
        // scheme://host:port of the target URL
        let origin = target.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        let (proc, url) = spawn_listening("the bearer gate", |port| {
            let mut cmd = Command::new("node");
            cmd.arg(&script)
                .env("PORT", port.to_string())
                .env("ISSUER", &oidc.issuer)
                .env("AUDIENCE", AUDIENCE)
                .env("TARGET", &origin);
            cmd
        });
        Self { proc, url }
    }

    /// Every token presented so far, in order.
    pub fn tokens(&self) -> Vec<String> {
        http()
            .get(format!("{}/_gate/tokens", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("gate token list")
    }

    /// Refuse `token` from now on (as an upstream that revoked it).
    pub fn reject(&self, token: &str) {
        let resp = http()
            .post(format!("{}/_gate/reject", self.url))
            .json(&serde_json::json!({ "token": token }))
            .send()
            .expect("gate reject");
        assert!(resp.status().is_success());
    }
}

/// Write a private JWKS with one RSA key `kid` (for `JWKS_FILE`); returns its path.
pub fn rsa_jwks(dir: &Path, kid: &str) -> PathBuf {
    let file = dir.join(format!("{kid}.jwks.json"));
    let script = format!(
        r#"const c=require("crypto");const k=c.generateKeyPairSync("rsa",{{modulusLength:2048}}).privateKey.export({{format:"jwk"}});require("fs").writeFileSync(process.argv[1],JSON.stringify({{keys:[{{...k,kid:"{kid}",use:"sig",alg:"RS256"}}]}}))"#
    );
    let status = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&file)
        .status()
        .expect("node");
    assert!(status.success(), "key generation failed");
    file
}

/// [`rsa_jwks`] plus the key to sign with: tests that craft their own tokens (any header,
/// any claims) start the provider with the JWKS file, so the runtime trusts their signatures.
pub fn rsa_signing_key(dir: &Path, kid: &str) -> (PathBuf, jsonwebtoken::EncodingKey) {
    let file = dir.join(format!("{kid}.jwks.json"));
    let der = dir.join(format!("{kid}.pkcs1.der"));
    let script = format!(
        r#"const c=require("crypto");const p=c.generateKeyPairSync("rsa",{{modulusLength:2048}}).privateKey;const fs=require("fs");fs.writeFileSync(process.argv[1],JSON.stringify({{keys:[{{...p.export({{format:"jwk"}}),kid:"{kid}",use:"sig",alg:"RS256"}}]}}));fs.writeFileSync(process.argv[2],p.export({{type:"pkcs1",format:"der"}}))"#
    );
    let status = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&file)
        .arg(&der)
        .status()
        .expect("node");
    assert!(status.success(), "key generation failed");
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&std::fs::read(&der).expect("key file"));
    (file, key)
}

/// A real OpenID provider whose signing key the test holds ([`rsa_signing_key`]): tokens for
/// any subject and scopes, verified by the runtime against the provider's JWKS.
#[derive(Debug)]
pub struct KeyedIssuer {
    pub oidc: Oidc,
    key: jsonwebtoken::EncodingKey,
    _keys: crate::runtime::Fixture,
}

impl KeyedIssuer {
    pub fn start() -> Self {
        let keys = crate::runtime::Fixture::new();
        let (jwks, key) = rsa_signing_key(keys.path(), "k1");
        let oidc = Oidc::start(
            "bundle:demo",
            &[("JWKS_FILE", jwks.to_str().expect("utf-8 path"))],
        );
        Self {
            oidc,
            key,
            _keys: keys,
        }
    }

    /// An RS256 access token for `sub` with `scope`, valid for an hour.
    pub fn token(&self, sub: &str, scope: &str) -> String {
        self.token_with(sub, scope, serde_json::json!({}))
    }

    /// [`KeyedIssuer::token`] with more claims (e.g. a delegation's `act`).
    pub fn token_with(&self, sub: &str, scope: &str, extra: Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut claims = serde_json::json!({"iss": self.oidc.issuer, "aud": AUDIENCE, "sub": sub,
            "scope": scope, "iat": now, "exp": now + 3600});
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("k1".into());
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, &claims, &self.key).expect("sign")
    }

    /// `runtime.server.auth` trusting this provider.
    pub fn auth(&self) -> Value {
        serde_json::json!({"validationProfile": "oidc_jwks", "issuer": self.oidc.issuer,
            "audience": AUDIENCE, "jwksURL": format!("{}/jwks", self.oidc.issuer)})
    }
}

/// The claims of a JWT, decoded without verification (to inspect a token an upstream got).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload part");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("a JWT payload is base64url");
    serde_json::from_slice(&json).expect("a JWT payload is JSON")
}

/// The person at the browser: follows the provider's built-in (dev) login and consent pages
/// with an HTTP client and a cookie jar, as a browser would.
#[derive(Debug, Default)]
pub struct Person {
    cookies: std::collections::BTreeMap<String, String>,
}

impl Person {
    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("http client")
    }

    fn send(&mut self, req: reqwest::blocking::RequestBuilder) -> reqwest::blocking::Response {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = req
            .header("cookie", jar.join("; "))
            .send()
            .expect("provider request");
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap_or_default();
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.insert(k.trim().to_string(), v.to_string());
            }
        }
        resp
    }

    /// Where a redirect points, resolved against the address that answered it.
    fn location(resp: &reqwest::blocking::Response) -> String {
        assert!(
            resp.status().is_redirection(),
            "expected a redirect, got {}",
            resp.status()
        );
        let to = resp.headers()["location"].to_str().unwrap();
        resp.url().join(to).unwrap().to_string()
    }

    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::blocking::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = Self::client()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req)
    }

    fn get(&mut self, url: &str) -> reqwest::blocking::Response {
        self.send(Self::client().get(url))
    }

    /// From an interaction page: log in as `login` (any password), consent; where the
    /// provider resumes.
    fn login_and_consent(&mut self, interaction: &str, login: &str) -> String {
        let form = [("prompt", "login"), ("login", login), ("password", "x")];
        let resume = Self::location(&self.post(interaction, &form));
        let consent = Self::location(&self.get(&resume));
        Self::location(&self.post(&consent, &[("prompt", "consent")]))
    }

    /// Authorization code flow: open `authorization_url`, log in, consent; the redirect back
    /// to the client (its `redirect_uri?code=…&state=…`), not followed.
    pub fn authorize(&mut self, authorization_url: &str, login: &str) -> String {
        let interaction = Self::location(&self.get(authorization_url));
        let resume = self.login_and_consent(&interaction, login);
        Self::location(&self.get(&resume))
    }

    /// Device flow: open the verification address with `user_code`, confirm, log in, consent.
    pub fn approve_device(&mut self, verification_uri: &str, user_code: &str, login: &str) {
        let xsrf = |html: &str| {
            let at = html.find("name=\"xsrf\" value=\"").expect("xsrf field") + 19;
            html[at..].split('"').next().unwrap().to_string()
        };
        let sep = if verification_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let page = self
            .get(&format!("{verification_uri}{sep}user_code={user_code}"))
            .text()
            .unwrap();
        let page = self
            .post(
                verification_uri,
                &[("xsrf", &xsrf(&page)), ("user_code", user_code)],
            )
            .text()
            .unwrap();
        assert!(
            page.contains("deviceConfirmForm"),
            "no confirmation page: {page}"
        );
        let token = xsrf(&page);
        let form = [
            ("xsrf", token.as_str()),
            ("user_code", user_code),
            ("confirm", "yes"),
        ];
        let interaction = Self::location(&self.post(verification_uri, &form));
        let done = self.login_and_consent(&interaction, login);
        let page = self.get(&done).text().unwrap();
        assert!(
            page.contains("Sign-in Success"),
            "device login not confirmed: {page}"
        );
    }
}
