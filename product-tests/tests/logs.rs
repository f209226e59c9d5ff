//! Logs never carry a secret (issue 17, item 7): at `RUST_LOG=trace`, the most any operator
//! can turn on, in JSON lines, with a credential of every secret type injected on both
//! channels (`env`, `literal`, `exec`, `file`, basic, an OAuth client secret and the access
//! token it gets), the runtime token (a JWT from a real OpenID provider, or an opaque token
//! checked by introspection with the runtime's own client secret) and a caller's own cookie,
//! no secret value appears in the process log or the audit log; and each JSON line is one
//! object.

use base64::Engine;
use open_cli_product_tests::{AUDIENCE, Fixture, Oidc, Runtime, TestApi, demo_config, http};
use serde_json::{Value, json};

#[test]
fn no_secret_of_any_type_reaches_the_logs_even_at_trace_level() {
    let oidc = Oidc::start("bundle:demo items:read", &[]);
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let secret_file = fx.write("bearer.secret", "file-bearer-s3cret\n");
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({"secrets": {
            "demo.apiKeyHeader": {"type": "env", "value": "DEMO_KEY"},
            "apiKeyQuery": {"type": "literal", "value": "query-literal-s3cret"},
            "demo.apiKeyCookie": {"type": "exec", "command": ["/bin/echo", "cookie-exec-s3cret"]},
            "demo.basicAuth": {"type": "literal", "value": "ann:basic-pass-s3cret"},
            "demo.bearerAuth": {"type": "file", "value": secret_file},
            "demo.oauthClient": {"type": "oauth2", "mode": "clientCredentials",
                "tokenURL": format!("{}/token", oidc.issuer),
                "clientId": {"type": "literal", "value": "agent-1"},
                "clientSecret": {"type": "env", "value": "AGENT_SECRET"}}
        }, "policy": {"allowExecSecrets": true},
        "runtime": {"server": {"auth": {"validationProfile": "oidc_jwks",
            "issuer": oidc.issuer, "audience": AUDIENCE}}}})),
    );
    let state = fx.path().join("state");
    let mut rt = Runtime::try_start_env(
        &cfg,
        &state,
        &["--log-format", "json"],
        &[
            ("DEMO_KEY", "header-env-s3cret"),
            ("AGENT_SECRET", "agent-1-secret"),
            ("RUST_LOG", "trace"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let basic = base64::engine::general_purpose::STANDARD.encode("ann:basic-pass-s3cret");
    let runtime_token = oidc.token("bundle:demo", None);
    let mut upstream_tokens = Vec::new();
    for (tool, path) in [
        ("demo:authApiKeyHeader", "/auth/api-key-header"),
        ("demo:authApiKeyQuery", "/auth/api-key-query"),
        ("demo:authApiKeyCookie", "/auth/api-key-cookie"),
        ("demo:authBasic", "/auth/basic"),
        ("demo:authBearer", "/auth/bearer"),
        ("demo:authOAuth2", "/auth/oauth2"),
    ] {
        let caller = |r: reqwest::blocking::RequestBuilder| {
            r.header("authorization", format!("Bearer {runtime_token}"))
                .header("cookie", "sid=caller-cookie-s3cret")
                .send()
                .unwrap()
        };
        let v: Value = caller(
            http()
                .post(format!("{}/v1/tools/execute", rt.url))
                .header("content-type", "application/json")
                .body(json!({"toolId": tool}).to_string()),
        )
        .json()
        .unwrap();
        assert_eq!(v["statusCode"], 200, "{tool}: {v}");
        if tool == "demo:authOAuth2" {
            upstream_tokens.push(v["body"]["received"].as_str().unwrap().to_string());
        }
        let r = caller(http().get(format!("{}/proxy/demo{path}", rt.url)));
        assert_eq!(r.status(), 200, "{path}");
    }
    // Stopped first: every line is then in its file.
    let logs = rt.stopped_logs();
    let audit = std::fs::read_to_string(state.join("instances/test/audit.log")).unwrap();
    // The lines are there: one per request, tool calls included (each carries its request ID).
    assert!(
        logs.lines()
            .filter(|l| l.contains("\"message\":\"request\"") && l.contains("request_id"))
            .count()
            >= 10,
        "no request lines: the test would prove nothing\n{logs}"
    );
    // A JWT's signature: its header and claims encode alike for many tokens.
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_string();
    let mut secrets = vec![
        "header-env-s3cret".to_string(),
        "query-literal-s3cret".into(),
        "cookie-exec-s3cret".into(),
        "basic-pass-s3cret".into(),
        basic.clone(),
        "file-bearer-s3cret".into(),
        "agent-1-secret".into(),
        "caller-cookie-s3cret".into(),
        signature(&runtime_token),
    ];
    assert_eq!(upstream_tokens.len(), 1);
    secrets.extend(upstream_tokens.iter().map(|t| signature(t)));
    for secret in &secrets {
        let secret = secret.as_str();
        assert!(!audit.contains(secret), "`{secret}` in the audit log");
        let found: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            found.is_empty(),
            "`{secret}` in {} log line(s), e.g. {}",
            found.len(),
            found[0]
        );
    }
    // JSON lines: each line on stderr that the runtime's subscriber wrote is one object.
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
}

/// The introspection client's secret and the opaque tokens it checks stay out of the logs at
/// trace level too.
#[test]
fn introspection_secrets_and_opaque_tokens_stay_out_of_the_logs() {
    let oidc = Oidc::start("bundle:demo", &[]);
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let opaque_aud = "urn:open-cli:opaque";
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({"runtime": {"server": {"auth": {
            "validationProfile": "oauth2_introspection", "audience": opaque_aud,
            "issuer": oidc.issuer,
            "introspectionURL": format!("{}/token/introspection", oidc.issuer),
            "clientId": {"type": "literal", "value": "runtime"},
            "clientSecret": {"type": "env", "value": "INTROSPECTION_SECRET"}}}}})),
    );
    let state = fx.path().join("state");
    let mut rt = Runtime::try_start_env(
        &cfg,
        &state,
        &["--log-format", "json"],
        &[
            ("INTROSPECTION_SECRET", "runtime-secret"),
            ("RUST_LOG", "trace"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let token = oidc.token("bundle:demo", Some(opaque_aud));
    assert!(!token.contains('.'), "an opaque token, not a JWT");
    let r = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(format!("{}/v1/catalog/effective", rt.url))
        .header("authorization", "Bearer not-a-valid-opaque-s3cret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let logs = rt.stopped_logs();
    let audit = std::fs::read_to_string(state.join("instances/test/audit.log")).unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("runtime:runtime-secret");
    for secret in [
        "runtime-secret",
        basic.as_str(),
        token.as_str(),
        "not-a-valid-opaque-s3cret",
    ] {
        assert!(!audit.contains(secret), "`{secret}` in the audit log");
        assert!(!logs.contains(secret), "`{secret}` in the logs");
    }
}

/// An MCP server's `headerSecrets` value stays out of the logs at trace level, through the
/// catalog build (`tools/list`) and a tool call.
#[test]
fn mcp_header_secrets_stay_out_of_the_logs() {
    let server = open_cli_product_tests::McpEverything::start("streamableHttp");
    let fx = Fixture::new();
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1", "mode": {"default": "discover"},
            "mcpServers": {"remote": {"type": "http", "url": server.url,
                                      "headerSecrets": {"X-Api-Key": "mcp.key"}}},
            "secrets": {"mcp.key": {"type": "env", "value": "MCP_KEY"}}}),
    );
    let state = fx.path().join("state");
    let mut rt = Runtime::try_start_env(
        &cfg,
        &state,
        &["--log-format", "json"],
        &[("MCP_KEY", "mcp-s3cret-value"), ("RUST_LOG", "trace")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .body(
            json!({"toolId": "remote:echo",
                   "body": base64::engine::general_purpose::STANDARD.encode(r#"{"message":"hello"}"#)})
            .to_string(),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["statusCode"], 200, "{v}");
    let logs = rt.stopped_logs();
    assert!(logs.contains("\"message\":\"request\""), "{logs}");
    assert!(
        !logs.contains("mcp-s3cret-value"),
        "the MCP header secret is in the log:\n{logs}"
    );
}
