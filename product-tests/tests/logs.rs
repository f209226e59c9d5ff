//! Logs never carry a secret (issue 17, item 7): at `RUST_LOG=trace`, the most any operator
//! can turn on, in JSON lines, with a credential of every secret type injected on both
//! channels, a runtime token and a caller's own credentials, no secret value appears in the
//! process log or the audit log; and each JSON line is one object.

use base64::Engine;
use open_cli_product_tests::{Fixture, Runtime, TestApi, demo_config, http};
use serde_json::{Value, json};

#[test]
fn no_secret_of_any_type_reaches_the_logs_even_at_trace_level() {
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
            "demo.bearerAuth": {"type": "file", "value": secret_file}
        }, "policy": {"allowExecSecrets": true}})),
    );
    let state = fx.path().join("state");
    let mut rt = Runtime::try_start_env(
        &cfg,
        &state,
        &["--log-format", "json"],
        &[("DEMO_KEY", "header-env-s3cret"), ("RUST_LOG", "trace")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let basic = base64::engine::general_purpose::STANDARD.encode("ann:basic-pass-s3cret");
    for (tool, path) in [
        ("demo:authApiKeyHeader", "/auth/api-key-header"),
        ("demo:authApiKeyQuery", "/auth/api-key-query"),
        ("demo:authApiKeyCookie", "/auth/api-key-cookie"),
        ("demo:authBasic", "/auth/basic"),
        ("demo:authBearer", "/auth/bearer"),
    ] {
        let caller = |r: reqwest::blocking::RequestBuilder| {
            r.header("authorization", "Bearer caller-token-s3cret")
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
        let r = caller(http().get(format!("{}/proxy/demo{path}", rt.url)));
        assert_eq!(r.status(), 200, "{path}");
    }
    // Stopped first: every line is then in its file.
    let logs = rt.stopped_logs();
    let audit = std::fs::read_to_string(state.join("instances/test/audit.log")).unwrap();
    // The verbose levels were on: the runtime's own debug line per audited request.
    assert!(
        logs.lines()
            .filter(|l| l.contains("\"level\":\"DEBUG\"") && l.contains("request_id"))
            .count()
            >= 10,
        "no debug lines: the test would prove nothing\n{logs}"
    );
    for secret in [
        "header-env-s3cret",
        "query-literal-s3cret",
        "cookie-exec-s3cret",
        "basic-pass-s3cret",
        basic.as_str(),
        "file-bearer-s3cret",
        "caller-token-s3cret",
        "caller-cookie-s3cret",
    ] {
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
