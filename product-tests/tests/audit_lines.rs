//! Audit lines are a wire format: one line of each event type, with the values that change
//! from run to run normalised, is compared byte for byte with a stored line
//! (`product-tests/golden/audit-lines.jsonl`), so a refactor of how records are built cannot
//! change a key, its order, an omission or a value unnoticed (issue 16, "done when").
//!
//! To accept an intended change: `OPEN_CLI_UPDATE_GOLDEN=1` rewrites the file from this run;
//! review its diff.

use open_cli_product_tests::{AUDIENCE, Fixture, Oidc, Runtime, TestApi, http, parse_audit};
use serde_json::{Value, json};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/audit-lines.jsonl");

/// Replace the value of `"key":` in a raw JSON line (a string or a number) by `with`,
/// keeping every other byte.
fn normalise(line: &str, key: &str, with: &str) -> String {
    let pat = format!("\"{key}\":");
    let Some(at) = line.find(&pat) else {
        return line.to_string();
    };
    let start = at + pat.len();
    let rest = &line[start..];
    let len = if let Some(s) = rest.strip_prefix('"') {
        // A string without escapes (timestamps, IDs, URLs).
        s.find('"').map(|e| e + 2).unwrap_or(rest.len())
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    format!("{}{with}{}", &line[..start], &line[start + len..])
}

fn execute_as(rt: &Runtime, token: &str, body: Value) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn stable(line: &str, upstream: &str) -> String {
    let mut l = line.replace(upstream, "http://UPSTREAM");
    for (key, with) in [
        ("timestamp", "\"T\""),
        ("latencyMs", "0"),
        ("requestId", "\"R\""),
        ("principal", "\"P\""),
    ] {
        l = normalise(&l, key, with);
    }
    l
}

#[test]
fn one_line_of_each_event_type_is_byte_compatible() {
    let api = TestApi::start();
    let oidc = Oidc::start("bundle:demo", &[]);
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let mut cfg = open_cli_product_tests::demo_config(json!({"runtime": {"server": {"auth": {
        "validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": AUDIENCE}}}}));
    cfg["policy"] = json!({"deny": ["demo:deleteItem"]});
    let path = fx.write_json(".cli.json", &cfg);
    let mut rt = Runtime::start(&path);
    let token = oidc.token("bundle:demo", None);

    // authenticated_connect, catalog_filtered
    let resp = http()
        .get(format!("{}/v1/catalog/effective", rt.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // authn_failure
    let resp = http()
        .get(format!("{}/v1/catalog/effective", rt.url))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    // tool_execution on both channels
    let (s, v) = execute_as(&rt, &token, json!({"toolId": "demo:listItems"}));
    assert_eq!(s, 200, "{v}");
    let resp = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // authz_denial
    let (s, v) = execute_as(
        &rt,
        &token,
        json!({"toolId": "demo:deleteItem", "pathArgs": ["1"]}),
    );
    assert_eq!(s, 403, "{v}");
    // execution_error: a credential that cannot be resolved
    let (s, v) = execute_as(&rt, &token, json!({"toolId": "demo:authApiKeyHeader"}));
    assert_eq!(s, 502, "{v}");

    rt.stop();
    let log = std::fs::read_to_string(rt.state_dir.join("instances/test/audit.log")).unwrap();
    let rows = parse_audit(&log);
    let kinds = [
        ("authenticated_connect", None),
        ("catalog_filtered", None),
        ("authn_failure", None),
        ("tool_execution", Some("execute")),
        ("tool_execution", Some("passthrough")),
        ("authz_denial", Some("execute")),
        ("execution_error", Some("execute")),
    ];
    let upstream = api.url.trim_end_matches('/');
    let mut got = String::new();
    for (kind, channel) in kinds {
        let row = rows
            .iter()
            .find(|r| r.event_type == kind && r.channel.as_deref() == channel)
            .unwrap_or_else(|| panic!("no {kind} {channel:?} line in:\n{log}"));
        got.push_str(&stable(&row.line, upstream));
        got.push('\n');
    }
    if std::env::var_os("OPEN_CLI_UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).unwrap();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(
            g, w,
            "an audit line changed (OPEN_CLI_UPDATE_GOLDEN=1 accepts it)"
        );
    }
    assert_eq!(got.lines().count(), want.lines().count());
}
