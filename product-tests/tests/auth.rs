use std::time::Duration;

use open_cli_product_tests::{
    AUDIENCE, Fixture, Oidc, Runtime, TestApi, http, jwt_claims, wait_for,
};
use serde_json::{Value, json};

const SCOPES: &str = "bundle:demo tool:demo:getItem tool:demo:deleteItem profile:reader tools:read";

/// The demo API behind a runtime that requires tokens from `oidc`.
fn secured(api: &TestApi, oidc: &Oidc, extra_auth: Value) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let mut auth =
        json!({"validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": AUDIENCE});
    auth.as_object_mut()
        .unwrap()
        .extend(extra_auth.as_object().unwrap().clone());
    let mut cfg =
        open_cli_product_tests::demo_config(json!({"runtime": {"server": {"auth": auth}}}));
    cfg["policy"] = json!({"deny": ["demo:delete*"]});
    let path = fx.write_json(".cli.json", &cfg);
    let rt = Runtime::start(&path);
    (fx, rt)
}

fn get(rt: &Runtime, path: &str, token: Option<&str>) -> reqwest::blocking::Response {
    let mut req = http().get(format!("{}{path}", rt.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

fn tool_ids(body: &Value) -> Vec<String> {
    body["view"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_401(resp: reqwest::blocking::Response, why: &str) {
    assert_eq!(resp.status(), 401, "{why}");
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"open-cli\""),
        "{challenge}"
    );
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], "authn_failed", "{why}");
    assert!(body["error"]["requestId"].is_string());
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(why), "`{why}` not in `{msg}` / {challenge}");
}

#[test]
fn a_client_credentials_token_sees_exactly_its_scopes() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = secured(&api, &oidc, json!({}));

    let bundle = oidc.token("bundle:demo", None);
    let body: Value = get(&rt, "/v1/catalog/effective", Some(&bundle))
        .json()
        .unwrap();
    open_cli_product_tests::assert_valid_effective(&body);
    let ids = tool_ids(&body);
    assert_eq!(
        ids.len(),
        16,
        "every demo tool but the denied deleteItem: {ids:?}"
    );
    assert!(
        !ids.contains(&"demo:deleteItem".to_string()),
        "policy.deny subtracts"
    );

    // tool: scopes narrow to single tools; a denied tool stays denied.
    let narrow = oidc.token("tool:demo:getItem tool:demo:deleteItem", None);
    let body: Value = get(&rt, "/v1/catalog/effective", Some(&narrow))
        .json()
        .unwrap();
    assert_eq!(tool_ids(&body), ["demo:getItem"]);
    assert_eq!(
        body["catalog"]["tools"].as_array().unwrap().len(),
        1,
        "the catalog is filtered too"
    );
    assert!(
        body["catalog"]["effectiveViews"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["tools"].as_array().unwrap().len() <= 1)
    );

    // explicit ∩ union: bundle + tool scope → only that tool.
    let both = oidc.token("bundle:demo tool:demo:getItem", None);
    assert_eq!(
        tool_ids(
            &get(&rt, "/v1/catalog/effective", Some(&both))
                .json()
                .unwrap()
        ),
        ["demo:getItem"]
    );

    // profile: scope gives that profile's tools.
    let profile = oidc.token("profile:reader", None);
    let ids = tool_ids(
        &get(&rt, "/v1/catalog/effective", Some(&profile))
            .json()
            .unwrap(),
    );
    assert_eq!(
        ids,
        [
            "demo:getItem",
            "demo:getStatus",
            "demo:getText",
            "demo:listItems"
        ]
    );

    // No recognised scope: an empty catalog, not an error.
    let none = oidc.token("tools:read", None);
    let body: Value = get(&rt, "/v1/catalog/effective", Some(&none))
        .json()
        .unwrap();
    assert!(tool_ids(&body).is_empty());

    // Runtime info names the principal for an authenticated caller.
    let info: Value = get(&rt, "/v1/runtime/info", Some(&bundle)).json().unwrap();
    assert_eq!(info["auth"]["required"], true);
    assert_eq!(info["auth"]["principal"], "agent-1");
    assert_eq!(info["auth"]["audience"], AUDIENCE);
    assert_eq!(
        info["auth"]["tokenValidationProfiles"],
        json!(["oidc_jwks"])
    );
    assert!(info["stateDir"].is_string());
}

#[test]
fn missing_or_bad_tokens_are_refused_before_any_work() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = secured(&api, &oidc, json!({}));
    let good = oidc.token("bundle:demo", None);

    let resp = get(&rt, "/v1/catalog/effective", None);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"open-cli\""
    );
    assert_401(resp, "a bearer token is required");
    assert_401(get(&rt, "/v1/refresh", None), "a bearer token is required");
    // Public routes stay open; anonymous runtime info hides host paths.
    assert_eq!(get(&rt, "/healthz", None).status(), 200);
    assert_eq!(get(&rt, "/readyz", None).status(), 200);
    let info: Value = get(&rt, "/v1/runtime/info", None).json().unwrap();
    assert_eq!(info["auth"]["required"], true);
    assert!(
        info.get("stateDir").is_none() && info.get("configPath").is_none(),
        "{info}"
    );
    // …but a bad token sent to a public route is still refused.
    assert_401(get(&rt, "/v1/runtime/info", Some("not-a-jwt")), "not a JWT");

    // Wrong audience (RFC 8707 resource indicator).
    let other_aud = oidc.token("bundle:demo", Some("urn:someone:else"));
    assert_401(
        get(&rt, "/v1/catalog/effective", Some(&other_aud)),
        "not for this audience",
    );

    // Tampered payload: signature no longer verifies.
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_payload = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims = jwt_claims(&good);
        claims["scope"] = json!("bundle:demo tool:demo:deleteItem profile:reader");
        engine.encode(serde_json::to_vec(&claims).unwrap())
    };
    let tampered = format!("{}.{}.{}", parts[0], tampered_payload, parts[2]);
    assert_401(
        get(&rt, "/v1/catalog/effective", Some(&tampered)),
        "signature does not verify",
    );

    // alg: none.
    let none_header = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#)
    };
    let unsigned = format!("{none_header}.{}.", parts[1]);
    assert_401(
        get(&rt, "/v1/catalog/effective", Some(&unsigned)),
        "not a JWT with a supported algorithm",
    );

    // HS256 "signed" with the provider's public key material (algorithm confusion).
    let jwks = http()
        .get(format!("{}/jwks", oidc.issuer))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let claims = jwt_claims(&good);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = jsonwebtoken::decode_header(&good).unwrap().kid;
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()),
    )
    .unwrap();
    assert_401(
        get(&rt, "/v1/catalog/effective", Some(&confused)),
        "algorithm HS256 is not accepted",
    );

    // A token from another provider: unknown issuer.
    let stranger = Oidc::start(SCOPES, &[]);
    let foreign = stranger.token("bundle:demo", None);
    let resp = get(&rt, "/v1/catalog/effective", Some(&foreign));
    assert_eq!(resp.status(), 401);

    // The good token still works after all that.
    assert_eq!(get(&rt, "/v1/catalog/effective", Some(&good)).status(), 200);

    // A token that is not visible ASCII is refused as invalid on both routes, also right
    // after the good token was remembered (the cache compares raw bytes).
    assert_eq!(get(&rt, "/proxy/demo/items", Some(&good)).status(), 200);
    for route in ["/v1/catalog/effective", "/proxy/demo/items"] {
        for raw in [
            format!("Bearer {good}\u{e9}").into_bytes(),
            format!("Bearer {good}\tx").into_bytes(),
            b"Bearer caf\xc3\xa9".to_vec(),
        ] {
            let resp = http()
                .get(format!("{}{route}", rt.url))
                .header(
                    "authorization",
                    reqwest::header::HeaderValue::from_bytes(&raw).unwrap(),
                )
                .send()
                .unwrap();
            assert_401(resp, "the bearer token must be visible ASCII characters");
        }
    }
}

#[test]
fn expired_tokens_are_refused() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[("AT_TTL", "2")]);
    let (_fx, rt) = secured(&api, &oidc, json!({"leewaySeconds": 0}));
    let token = oidc.token("bundle:demo", None);
    assert_eq!(
        get(&rt, "/v1/catalog/effective", Some(&token)).status(),
        200
    );
    let resp = wait_for("the token to expire", Duration::from_secs(10), || {
        let r = get(&rt, "/v1/catalog/effective", Some(&token));
        (r.status() == 401).then_some(r)
    })
    .unwrap();
    assert_401(resp, "the token has expired");
}

#[test]
fn es256_keys_and_issuer_discovery_without_a_jwks_url() {
    let api = TestApi::start();
    let keys = Fixture::new();
    let jwks_file = keys.path().join("jwks.private.json");
    let keygen = std::process::Command::new("node")
        .arg("-e")
        .arg(r#"const c=require("crypto");const k=c.generateKeyPairSync("rsa",{modulusLength:2048}).privateKey.export({format:"jwk"});const e=c.generateKeyPairSync("ec",{namedCurve:"P-256"}).privateKey.export({format:"jwk"});require("fs").writeFileSync(process.argv[1],JSON.stringify({keys:[{...k,kid:"rsa-1",use:"sig",alg:"RS256"},{...e,kid:"ec-1",use:"sig",alg:"ES256"}]}))"#)
        .arg(&jwks_file)
        .status()
        .unwrap();
    assert!(keygen.success());
    let oidc = Oidc::start(
        SCOPES,
        &[
            ("AT_ALG", "ES256"),
            ("JWKS_FILE", jwks_file.to_str().unwrap()),
        ],
    );
    let (_fx, rt) = secured(&api, &oidc, json!({}));
    let token = oidc.token("bundle:demo", None);
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    let resp = get(&rt, "/v1/catalog/effective", Some(&token));
    assert_eq!(resp.status(), 200);
    // The runtime found the keys through the discovery document (no jwksURL configured).
    // (Log lines reach stderr within the log spool's linger, so wait for it.)
    wait_for("the key-set log line", Duration::from_secs(10), || {
        rt.proc
            .stderr()
            .contains("fetched the provider's key set")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", rt.proc.stderr()));
}

#[test]
fn key_rotation_at_the_provider_needs_no_restart() {
    let api = TestApi::start();
    let keys = Fixture::new();
    let key_a = open_cli_product_tests::rsa_jwks(keys.path(), "rsa-a");
    let key_b = open_cli_product_tests::rsa_jwks(keys.path(), "rsa-b");
    let oidc = Oidc::start(SCOPES, &[("JWKS_FILE", key_a.to_str().unwrap())]);
    let (_fx, mut rt) = secured(&api, &oidc, json!({}));
    let old = oidc.token("bundle:demo", None);
    assert_eq!(get(&rt, "/v1/catalog/effective", Some(&old)).status(), 200);

    // The provider rotates to a new key (same issuer URL) and drops the old one.
    let oidc = oidc.restart(SCOPES, &[("JWKS_FILE", key_b.to_str().unwrap())]);
    let new = oidc.token("bundle:demo", None);
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some("rsa-b")
    );
    assert_eq!(
        get(&rt, "/v1/catalog/effective", Some(&new)).status(),
        200,
        "unknown kid → refetch → accepted"
    );
    // Tokens signed with the retired key are refused now.
    assert_401(
        get(&rt, "/v1/catalog/effective", Some(&old)),
        "no key with kid `rsa-a`",
    );
    // The first fetch and the refetch for the unknown kid (log lines reach stderr within the
    // log spool's linger, so wait for both).
    let count = |rt: &Runtime| {
        rt.proc
            .stderr()
            .matches("fetched the provider's key set")
            .count()
    };
    wait_for(
        "two key-set fetches in the log",
        Duration::from_secs(10),
        || (count(&rt) >= 2).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", rt.proc.stderr()));
    let fetches = count(&rt);
    // A flood of unknown kids does not hammer the provider: at most one refetch per interval.
    for _ in 0..20 {
        assert_eq!(get(&rt, "/v1/catalog/effective", Some(&old)).status(), 401);
    }
    // Stop the runtime: exiting flushes every log line, so the count below is complete.
    rt.proc.signal(libc::SIGTERM);
    rt.proc.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(count(&rt), fetches, "{}", rt.proc.stderr());
}

/// A secured demo runtime with two workflows: one within `bundle:demo` minus policy deny, one
/// touching the denied `deleteItem`.
fn secured_with_workflows(api: &TestApi, oidc: &Oidc) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    fx.write(
        "flows.yaml",
        "workflows:\n  - workflowId: browse\n    steps:\n      - {stepId: list, operationId: listItems}\n      - {stepId: read, operationId: getItem}\n  - workflowId: purge\n    steps:\n      - {stepId: list, operationId: listItems}\n      - {stepId: drop, operationId: deleteItem}\n",
    );
    let mut cfg = open_cli_product_tests::demo_config(json!({
        "runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": AUDIENCE,
            "authorizationURL": format!("{}/auth", oidc.issuer), "tokenURL": format!("{}/token", oidc.issuer), "browserClientId": "cli"}}}
    }));
    cfg["services"]["demo"]["workflows"] = json!(["flows.yaml"]);
    cfg["policy"] = json!({"deny": ["demo:delete*"]});
    let path = fx.write_json(".cli.json", &cfg);
    let rt = Runtime::start(&path);
    (fx, rt)
}

#[test]
fn out_of_scope_use_is_refused_with_403_before_anything_runs() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = secured_with_workflows(&api, &oidc);
    let token = oidc.token("bundle:demo", None);
    let run = |wf: &str, token: Option<&str>| {
        let mut req = http()
            .post(format!("{}/v1/workflows/run", rt.url))
            .body(json!({"workflowId": wf}).to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    };
    let ok = run("browse", Some(&token));
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().unwrap(),
        json!({"workflowId": "browse", "steps": ["list", "read"]})
    );
    // A step's tool is decided as execute decides it: `deleteItem` is denied by policy.deny
    // (reported as that, before the scope check, as execute does).
    let denied = run("purge", Some(&token));
    open_cli_product_tests::expect_error(denied, 403, "policy_deny", "step `drop`");
    // Out of the token's scopes: authz_denied with the RFC 6750 hint.
    let narrow = oidc.token("tool:demo:getItem", None);
    let denied = run("browse", Some(&narrow));
    assert_eq!(
        denied.headers()["www-authenticate"],
        "Bearer realm=\"open-cli\", error=\"insufficient_scope\""
    );
    open_cli_product_tests::expect_error(denied, 403, "authz_denied", "step `list`");
    // The workflow with a hidden step is not even listed to this caller.
    let cat: Value = get(&rt, "/v1/catalog/effective", Some(&token))
        .json()
        .unwrap();
    let wfs: Vec<&str> = cat["catalog"]["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workflowId"].as_str().unwrap())
        .collect();
    assert_eq!(wfs, ["browse"]);
    assert_eq!(run("browse", None).status(), 401, "authenticate first");
    assert_eq!(run("ghost", Some(&token)).status(), 404);
}

#[test]
fn browser_login_is_discoverable_without_a_token() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = secured_with_workflows(&api, &oidc);
    let cfg: Value = get(&rt, "/v1/auth/browser-config", None).json().unwrap();
    assert_eq!(cfg["authorizationURL"], format!("{}/auth", oidc.issuer));
    assert_eq!(cfg["tokenURL"], format!("{}/token", oidc.issuer));
    assert_eq!(cfg["clientId"], "cli");
    assert_eq!(cfg["audience"], AUDIENCE);
    assert_eq!(
        cfg["scopePrefixes"],
        json!(["bundle:", "profile:", "tool:"])
    );
    let info: Value = get(&rt, "/v1/runtime/info", None).json().unwrap();
    assert_eq!(info["auth"]["browserLogin"]["configured"], true);
    // Without the three settings, browser login is not offered.
    let (_fx2, plain) = secured(&api, &oidc, json!({}));
    assert_eq!(get(&plain, "/v1/auth/browser-config", None).status(), 404);
}

#[test]
fn opaque_tokens_via_introspection_and_revocation_within_the_cache_ttl() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let opaque_aud = "urn:open-cli:opaque";
    let introspection = |extra: Value| {
        let mut a = json!({"validationProfile": "oauth2_introspection", "audience": opaque_aud, "issuer": oidc.issuer,
            "introspectionURL": format!("{}/token/introspection", oidc.issuer),
            "clientId": {"type": "literal", "value": "runtime"}, "clientSecret": {"type": "literal", "value": "runtime-secret"},
            "introspectionCacheSeconds": 1});
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(
        ".cli.json",
        &open_cli_product_tests::demo_config(
            json!({"runtime": {"server": {"auth": introspection(json!({}))}}}),
        ),
    );
    let rt = Runtime::start(&cfg);
    let token = oidc.token("tool:demo:getItem", Some(opaque_aud));
    assert!(!token.contains('.'), "an opaque token, not a JWT");
    let body: Value = get(&rt, "/v1/catalog/effective", Some(&token))
        .json()
        .unwrap();
    assert_eq!(tool_ids(&body), ["demo:getItem"]);
    let info: Value = get(&rt, "/v1/runtime/info", Some(&token)).json().unwrap();
    assert_eq!(info["auth"]["principal"], "agent-1");
    assert_eq!(
        info["auth"]["tokenValidationProfiles"],
        json!(["oauth2_introspection"])
    );

    // Revoked at the provider: refused once the cached answer (1 s) runs out.
    let resp = http()
        .post(format!("{}/token/revocation", oidc.issuer))
        .basic_auth("agent-1", Some("agent-1-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .unwrap();
    assert!(resp.status().is_success());
    let refused = wait_for(
        "the revocation to take effect",
        Duration::from_secs(10),
        || {
            let r = get(&rt, "/v1/catalog/effective", Some(&token));
            (r.status() == 401).then_some(r)
        },
    )
    .unwrap();
    assert_401(refused, "not active (expired or revoked)");

    // A JWT is not introspectable at this provider; a wrong audience is refused.
    let jwt = oidc.token("bundle:demo", None);
    assert_eq!(get(&rt, "/v1/catalog/effective", Some(&jwt)).status(), 401);
    let other = oidc.token("bundle:demo", Some("urn:someone:opaque"));
    assert_401(
        get(&rt, "/v1/catalog/effective", Some(&other)),
        "not for this audience",
    );

    // client_secret_post sends the runtime's credentials as form fields (without them the
    // provider answers invalid_client and the runtime refuses).
    let fx2 = Fixture::new();
    fx2.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg2 = fx2.write_json(
        ".cli.json",
        &open_cli_product_tests::demo_config(json!({"runtime": {"server": {"auth": introspection(json!({"clientAuthMethod": "client_secret_post"}))}}})),
    );
    let rt2 = Runtime::start(&cfg2);
    let fresh = oidc.token("bundle:demo", Some(opaque_aud));
    assert_eq!(
        get(&rt2, "/v1/catalog/effective", Some(&fresh)).status(),
        200
    );
    let fx3 = Fixture::new();
    fx3.write("demo.openapi.yaml", &api.spec_yaml());
    let mut no_creds = introspection(json!({}));
    no_creds.as_object_mut().unwrap().remove("clientSecret");
    no_creds["clientId"] = json!({"type": "literal", "value": "nobody"});
    let cfg3 = fx3.write_json(
        ".cli.json",
        &open_cli_product_tests::demo_config(json!({"runtime": {"server": {"auth": no_creds}}})),
    );
    let rt3 = Runtime::start(&cfg3);
    assert_401(
        get(&rt3, "/v1/catalog/effective", Some(&fresh)),
        "introspection refused",
    );
}

/// A client config for the secured runtime `rt` with the given `runtime.remote.oauth`.
fn client_config(fx: &Fixture, rt: &Runtime, oauth: Value) -> String {
    fx.write_json(
        "client.cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"}, "runtime": {"remote": {"url": rt.url, "oauth": oauth}}}),
    )
    .display()
    .to_string()
}

#[test]
fn the_cli_sends_a_provided_token_from_env_or_file() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = secured(&api, &oidc, json!({}));
    let client = Fixture::new();
    let token = oidc.token("tool:demo:getItem", None);
    let cfg = client_config(
        &client,
        &rt,
        json!({"mode": "providedToken", "tokenRef": "env:OC_TEST_TOKEN"}),
    );
    let out = open_cli_product_tests::cli(
        &["--config", &cfg, "catalog", "list", "--format", "json"],
        &[("OC_TEST_TOKEN", &token)],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        open_cli_product_tests::text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tool_ids(&v), ["demo:getItem"]);

    let out = open_cli_product_tests::cli(&["--config", &cfg, "catalog", "list"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unset variable is an error, not an anonymous call"
    );
    assert!(open_cli_product_tests::text(&out.stderr).contains(
        "environment variable `OC_TEST_TOKEN` (runtime.remote.oauth.tokenRef) is not set"
    ));

    client.write("token.txt", &format!("{token}\n"));
    let cfg = client_config(
        &client,
        &rt,
        json!({"mode": "providedToken", "tokenRef": "file:token.txt"}),
    );
    let out = open_cli_product_tests::cli(
        &["--config", &cfg, "auth", "status", "--format", "json"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        open_cli_product_tests::text(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["authRequired"], true);
    assert_eq!(s["tokenSource"], "providedToken");
    assert_eq!(s["principal"], "agent-1");

    // Without any token the runtime's refusal comes through with its code and a hint.
    let anon = open_cli_product_tests::cli(&["--runtime", &rt.url, "catalog", "list"], &[]);
    assert_eq!(anon.status.code(), Some(1));
    let err = open_cli_product_tests::text(&anon.stderr);
    assert!(
        err.contains("HTTP 401, authn_failed") && err.contains("hint: your runtime token"),
        "{err}"
    );
}

#[test]
fn the_cli_gets_caches_and_renews_client_credentials_tokens() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = secured(&api, &oidc, json!({}));
    let client = Fixture::new();
    let state = Fixture::new();
    let env = [("OPEN_CLI_STATE_DIR", state.path().to_str().unwrap())];
    // No audience configured: borrowed from the runtime's advertised audience.
    let cfg = client_config(
        &client,
        &rt,
        json!({"mode": "oauthClient", "scopes": ["bundle:demo"], "client": {"tokenURL": format!("{}/token", oidc.issuer),
               "clientId": {"type": "literal", "value": "agent-1"}, "clientSecret": {"type": "literal", "value": "agent-1-secret"}}}),
    );
    let out = open_cli_product_tests::cli(
        &["--config", &cfg, "catalog", "list", "--format", "json"],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        open_cli_product_tests::text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tool_ids(&v).len(), 16);

    let tokens: Vec<std::path::PathBuf> = std::fs::read_dir(state.path().join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tokens.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tokens[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read_to_string(&tokens[0]).unwrap();
    // Reused, not fetched again, on the next run.
    let out = open_cli_product_tests::cli(
        &["--config", &cfg, "auth", "status", "--format", "json"],
        &env,
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["principal"],
        "agent-1"
    );
    assert_eq!(std::fs::read_to_string(&tokens[0]).unwrap(), first);

    // A cached token the runtime refuses (here: garbage with a far expiry) is renewed once.
    std::fs::write(
        &tokens[0],
        r#"{"accessToken":"garbage","expiresAt":99999999999}"#,
    )
    .unwrap();
    let out = open_cli_product_tests::cli(
        &["--config", &cfg, "catalog", "list", "--format", "json"],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        open_cli_product_tests::text(&out.stderr)
    );
    assert_ne!(
        std::fs::read_to_string(&tokens[0]).unwrap(),
        r#"{"accessToken":"garbage","expiresAt":99999999999}"#
    );

    // `auth logout` forgets this client's cached token (only it), once; the next command
    // fetches a new one.
    let out = open_cli_product_tests::cli(&["--config", &cfg, "auth", "logout"], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        open_cli_product_tests::text(&out.stderr)
    );
    assert!(open_cli_product_tests::text(&out.stdout).contains("forgot the cached token"));
    assert!(!tokens[0].exists());
    let out = open_cli_product_tests::cli(&["--config", &cfg, "auth", "logout"], &env);
    assert!(open_cli_product_tests::text(&out.stdout).contains("nothing cached"));
    let out = open_cli_product_tests::cli(
        &["--config", &cfg, "catalog", "list", "--format", "json"],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        open_cli_product_tests::text(&out.stderr)
    );
    assert!(tokens[0].exists());

    // Wrong client secret: a clear error from the token endpoint.
    let bad = client_config(
        &client,
        &rt,
        json!({"mode": "oauthClient", "client": {"tokenURL": format!("{}/token", oidc.issuer),
               "clientId": {"type": "literal", "value": "agent-1"}, "clientSecret": {"type": "literal", "value": "wrong"}}}),
    );
    let out = open_cli_product_tests::cli(&["--config", &bad, "catalog", "list"], &env);
    assert_eq!(out.status.code(), Some(1));
    let err = open_cli_product_tests::text(&out.stderr);
    assert!(
        err.contains("cannot get a runtime token") && err.contains("invalid_client"),
        "{err}"
    );
}

#[test]
fn several_providers_may_be_trusted_and_the_tokens_iss_picks_one() {
    let api = TestApi::start();
    let first = Oidc::start(SCOPES, &[]);
    let second = Oidc::start(SCOPES, &[]);
    let untrusted = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = secured(
        &api,
        &first,
        json!({"additionalIssuers": [{"issuer": second.issuer, "jwksURL": format!("{}/jwks", second.issuer)}]}),
    );
    for (name, p) in [("first", &first), ("second", &second)] {
        let t = p.token("tool:demo:getItem", None);
        let body: Value = get(&rt, "/v1/catalog/effective", Some(&t)).json().unwrap();
        assert_eq!(tool_ids(&body), ["demo:getItem"], "{name} provider");
    }
    let foreign = untrusted.token("bundle:demo", None);
    assert_401(
        get(&rt, "/v1/catalog/effective", Some(&foreign)),
        "which is not a trusted issuer",
    );
}

/// A delegated token (RFC 8693 `act`, with `delegated_by` and `delegation_id`) is validated
/// like any other, and every audit line of its calls carries the lineage, on both channels.
#[test]
fn delegated_tokens_are_audited_with_their_lineage() {
    let api = TestApi::start();
    let issuer = open_cli_product_tests::KeyedIssuer::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = open_cli_product_tests::demo_config(
        json!({"runtime": {"server": {"auth": issuer.auth()}}}),
    );
    let mut rt = Runtime::start(&fx.write_json(".cli.json", &cfg));
    let child = issuer.token_with(
        "alice",
        "bundle:demo",
        json!({"act": {"sub": "sub-agent-7"}, "delegated_by": "alice", "delegation_id": "d-42"}),
    );
    let r = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .bearer_auth(&child)
        .body(json!({"toolId": "demo:listItems"}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .bearer_auth(&child)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A token without delegation claims has no lineage.
    let plain = issuer.token("bob", "bundle:demo");
    let r = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .bearer_auth(&plain)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    rt.stop();
    let log = std::fs::read_to_string(rt.state_dir.join("instances/test/audit.log")).unwrap();
    let calls: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["eventType"] == "tool_execution")
        .collect();
    assert_eq!(calls.len(), 3, "{log}");
    for c in &calls {
        if c["principal"] == "alice" {
            assert_eq!(
                c["lineage"],
                json!({"actor": {"sub": "sub-agent-7"}, "delegatedBy": "alice", "delegationId": "d-42"}),
                "{c}"
            );
        } else {
            assert!(c.get("lineage").is_none(), "{c}");
        }
    }
}
