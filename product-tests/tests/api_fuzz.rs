//! API fuzzing (issue 18, item 6): schemathesis, every check it has, generated from the
//! runtime's own `/v1/openapi.json`, against a runtime with auth on (with a valid token and
//! with none) and one with auth off: no server error, no answer the description does not
//! allow. `product-tests/schemathesis/schemathesis.toml` holds the check settings that are
//! not the default (and why). `API_FUZZ_EXAMPLES` (default 60) sets the examples per
//! operation; `API_FUZZ_SEED` a seed (default fixed, so CI runs are repeatable; any failure
//! prints its own seed and a `curl` to reproduce it).

use std::process::Command;

use open_cli_product_tests::*;
use serde_json::json;

fn schemathesis(rt: &Runtime, token: Option<&str>) {
    let dir = repo_root().join("product-tests/schemathesis");
    let bin = dir.join("venv/bin/schemathesis");
    assert!(bin.exists(), "schemathesis is missing: run scripts/deps");
    let examples = std::env::var("API_FUZZ_EXAMPLES").unwrap_or_else(|_| "60".into());
    let seed = std::env::var("API_FUZZ_SEED").unwrap_or_else(|_| "18".into());
    let mut cmd = Command::new(bin);
    cmd.arg("--no-color")
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .args(["run", &format!("{}/v1/openapi.json", rt.url)])
        .args(["--max-examples", &examples, "--seed", &seed])
        // One worker: hypothesis' lambda-source cache races on several (a CPython 3.11
        // `ast.parse` error inside schemathesis, not an answer of the runtime).
        .args(["--workers", "1"]);
    if let Some(t) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    cmd.env("SCHEMATHESIS_HOOKS", "").current_dir(&dir);
    let out = cmd.output().expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems (token: {}):\n{text}",
        token.is_some()
    );
    // It really ran: every described operation was tested (all 15 but the description's own,
    // which schemathesis only loads).
    assert!(text.contains("Tested: 14"), "{text}");
}

/// The demo runtime with every static credential it may inject, so a generated execute call
/// reaches the upstream instead of stopping at a missing secret (a 502 by design, which the
/// server-error check cannot tell from a fault); the one tool whose credential needs an
/// OAuth provider of its own is denied (403).
fn fuzz_runtime(api: &TestApi, server: serde_json::Value) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let mut extra = json!({
        "secrets": {
            "demo.apiKeyHeader": {"type": "literal", "value": "header-key"},
            "demo.apiKeyQuery": {"type": "literal", "value": "query-key"},
            "demo.apiKeyCookie": {"type": "literal", "value": "cookie-key"},
            "demo.basicAuth": {"type": "literal", "value": "ann:s3cret"},
            "demo.bearerAuth": {"type": "literal", "value": "bearer-token"}
        },
        "policy": {"deny": ["demo:authOAuth2"]}
    });
    if server.as_object().is_some_and(|o| !o.is_empty()) {
        extra["runtime"] = json!({"mode": "remote", "server": server});
    }
    let config = fx.write_json(".cli.json", &demo_config(extra));
    let rt = Runtime::start(&config);
    (fx, rt)
}

#[test]
fn schemathesis_finds_nothing_with_a_token_without_one_and_with_auth_off() {
    let api = TestApi::start();
    let issuer = KeyedIssuer::start();
    let (_fx, rt) = fuzz_runtime(&api, json!({"auth": issuer.auth()}));
    let token = issuer.token(
        "fuzzer",
        "bundle:demo audit:read runtime:refresh metrics:read",
    );
    schemathesis(&rt, Some(&token));
    schemathesis(&rt, None);

    let (_open, rt) = fuzz_runtime(&api, json!({}));
    schemathesis(&rt, None);
}
