use std::time::{Duration, Instant};

use base64::Engine;
use open_cli_product_tests::{
    AUDIENCE, BearerGate, Fixture, McpEverything, Oidc, Runtime, TestApi, demo_config, execute,
    free_port, http, jwt_claims, wait_for,
};
use serde_json::{Value, json};

/// The demo API with `extra` merged into the demo config; env for the runtime.
fn start(api: &TestApi, extra: Value, env: &[(&str, &str)]) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(".cli.json", &demo_config(extra));
    let state = fx.path().join("state");
    let rt = Runtime::try_start_env(&cfg, &state, &[], env).unwrap_or_else(|e| panic!("{e}"));
    (fx, rt)
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Milliseconds since the epoch of an audit timestamp (`2026-11-30T11:01:15.275Z`).
fn rfc3339_ms(t: &str) -> u64 {
    assert_eq!(t.len(), 24, "{t}");
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (proleptic Gregorian), March-based year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)) as u64
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn audit(rt: &Runtime, token: Option<&str>) -> Vec<Value> {
    let mut req = http().get(format!("{}/v1/audit/events", rt.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().unwrap()
}

#[test]
fn execute_relays_upstream_answers_in_the_envelope() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}), &[]);

    let (s, v) = execute(
        &rt,
        json!({"toolId": "demo:createItem", "body": b64(r#"{"name":"lamp","tag":"home"}"#)}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["statusCode"], 201);
    assert_eq!(v["body"]["name"], "lamp");
    let id = v["body"]["id"].as_u64().unwrap().to_string();

    let (_, v) = execute(&rt, json!({"toolId": "demo:getItem", "pathArgs": [id]}));
    assert_eq!(v["statusCode"], 200);
    assert_eq!(v["body"]["tag"], "home");
    assert_eq!(v["contentType"], "application/json");

    // Upstream errors are relayed, not turned into runtime errors.
    let (s, v) = execute(&rt, json!({"toolId": "demo:getItem", "pathArgs": ["999"]}));
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(404)), "{v}");
    assert_eq!(v["body"]["message"], "item 999 not found");

    let (_, v) = execute(&rt, json!({"toolId": "demo:getText"}));
    assert_eq!(v["text"], "hello from the demo API\n");
    assert!(v["contentType"].as_str().unwrap().starts_with("text/plain"));

    // Flags by slug or by original name; header flags go out as headers.
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:listItems", "flags": {"tag": "home", "limit": 5}}),
    );
    assert_eq!(v["body"].as_array().unwrap().len(), 1, "{v}");
    let seen = api.requests_for("/items");
    assert_eq!(seen.last().unwrap()["query"], "limit=5&tag=home");

    // Path arguments are one segment each: they cannot reach another operation (the
    // pass-through's path rule refuses them; nothing is sent).
    let before = api.requests().len();
    let (s, v) = execute(
        &rt,
        json!({"toolId": "demo:getItem", "pathArgs": ["1/../../auth/basic"]}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    assert_eq!(api.requests().len(), before);
    let (s, v) = execute(&rt, json!({"toolId": "demo:getItem", "pathArgs": [".."]}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );

    // Caller mistakes are precise 400/404 JSON errors.
    for (body, status, code, needle) in [
        (
            json!({"toolId": "demo:nope"}),
            404,
            "tool_not_found",
            "demo:nope",
        ),
        (
            json!({"toolId": "demo:getItem"}),
            400,
            "invalid_request",
            "1 path argument",
        ),
        (
            json!({"toolId": "demo:listItems", "flags": {"colour": "x"}}),
            400,
            "invalid_request",
            "no flag `colour`",
        ),
        (
            json!({"toolId": "demo:createItem", "body": "%%%"}),
            400,
            "invalid_request",
            "base64",
        ),
        (
            json!({"toolId": "demo:createItem"}),
            400,
            "invalid_request",
            "requires a request body",
        ),
        (json!({"tool": "x"}), 400, "invalid_request", "toolId"),
    ] {
        let (s, v) = execute(&rt, body.clone());
        assert_eq!(s, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
        assert!(v["error"]["requestId"].is_string());
    }
}

#[test]
fn every_credential_scheme_reaches_the_upstream_and_the_callers_never_does() {
    let began = epoch_ms();
    let api = TestApi::start();
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "file-bearer-token\n").unwrap();
    let (_fx, mut rt) = start(
        &api,
        json!({"secrets": {
            "demo.apiKeyHeader": {"type": "env", "value": "DEMO_KEY"},
            "apiKeyQuery": {"type": "literal", "value": "query-key"},
            "demo.apiKeyCookie": {"type": "exec", "command": ["/bin/echo", " cookie-key "]},
            "demo.basicAuth": {"type": "literal", "value": "ann:s3cret"},
            "demo.bearerAuth": {"type": "file", "value": secret_file.path()}
        }, "policy": {"allowExecSecrets": true}}),
        &[("DEMO_KEY", "header-key")],
    );
    let basic = format!("Basic {}", b64("ann:s3cret"));
    // Each through execute, then the pass-through; a query credential joins the caller's
    // query. The caller's own credentials must never travel upstream.
    for (tool, path, received) in [
        (
            "demo:authApiKeyHeader",
            "/auth/api-key-header",
            "header-key",
        ),
        (
            "demo:authApiKeyQuery",
            "/auth/api-key-query?caller=1",
            "query-key",
        ),
        (
            "demo:authApiKeyCookie",
            "/auth/api-key-cookie",
            "cookie-key",
        ),
        (
            "demo:authBasic",
            "/auth/basic",
            basic.strip_prefix("Basic ").unwrap(),
        ),
        ("demo:authBearer", "/auth/bearer", "file-bearer-token"),
    ] {
        let as_caller = |r: reqwest::blocking::RequestBuilder| {
            r.header("authorization", "Bearer caller-secret-token")
                .header("cookie", "caller_cookie=caller-secret-cookie")
                .send()
                .unwrap()
        };
        let resp = as_caller(
            http()
                .post(format!("{}/v1/tools/execute", rt.url))
                .body(json!({"toolId": tool}).to_string()),
        );
        let v: Value = resp.json().unwrap();
        assert_eq!(v["statusCode"], 200, "{tool}: {v}");
        assert_eq!(v["body"]["received"], received, "{tool}: {v}");
        let resp = as_caller(http().get(format!("{}/proxy/demo{path}", rt.url)));
        assert_eq!(resp.status(), 200, "{path}");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["received"], received, "{path}: {v}");
    }
    assert_eq!(
        api.requests_for("/auth/api-key-query").last().unwrap()["query"],
        "caller=1&api_key=query-key"
    );
    let all = serde_json::to_string(&api.requests()).unwrap();
    assert!(!all.contains("caller-secret"), "caller credentials leaked");
    let events = audit(&rt, None);
    let each = [
        "apiKeyHeader",
        "apiKeyQuery",
        "apiKeyCookie",
        "basicAuth",
        "bearerAuth",
    ];
    let e = events
        .iter()
        .find(|e| e["eventType"] == "tool_execution" && e["channel"] == "execute")
        .expect("an execute record");
    for field in [
        "timestamp",
        "toolId",
        "serviceId",
        "targetBaseUrl",
        "method",
        "path",
        "requestId",
        "latencyMs",
        "statusCode",
    ] {
        assert!(!e[field].is_null(), "audit field {field} missing: {e}");
    }
    // One record per scheme and channel. Every record's timestamp is the wall-clock time of
    // the call (the pass-through derives it from the request's monotonic readings): within
    // this test's run, and in call order per channel. (The file's order is not the calls'
    // order: lines of different serving threads within one write window are grouped by
    // thread.)
    let ended = epoch_ms();
    for channel in ["execute", "passthrough"] {
        let records: Vec<(&str, u64)> = events
            .iter()
            .filter(|e| e["eventType"] == "tool_execution" && e["channel"] == channel)
            .map(|e| {
                (
                    e["authScheme"].as_str().unwrap(),
                    rfc3339_ms(e["timestamp"].as_str().unwrap()),
                )
            })
            .collect();
        let mut schemes: Vec<&str> = records.iter().map(|(s, _)| *s).collect();
        schemes.sort_unstable();
        let mut expected = each.to_vec();
        expected.sort_unstable();
        assert_eq!(schemes, expected, "{channel}: one record per scheme");
        let stamps: Vec<u64> = each
            .iter()
            .map(|s| records.iter().find(|(r, _)| r == s).unwrap().1)
            .collect();
        for t in &stamps {
            assert!(
                began <= *t && *t <= ended,
                "{channel}: {t} outside {began}..{ended}"
            );
        }
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "{channel}: {stamps:?} not in call order {each:?}"
        );
    }
    // Stopped first: every log and audit line is then in its file (a negative check on a
    // file still being written could pass too early).
    let logs = rt.stopped_logs();
    let log = std::fs::read_to_string(rt.state_dir.join("instances/test/audit.log")).unwrap();
    for secret in [
        "header-key",
        "query-key",
        "cookie-key",
        "s3cret",
        "file-bearer-token",
    ] {
        assert!(!log.contains(secret), "secret `{secret}` in the audit log");
        assert!(!logs.contains(secret), "secret `{secret}` in the logs");
    }
}

#[test]
fn unresolvable_credentials_refuse_the_call_and_send_nothing() {
    let api = TestApi::start();
    let (_fx, rt) = start(
        &api,
        json!({"secrets": {"demo.apiKeyHeader": {"type": "env", "value": "OPEN_CLI_TEST_UNSET_KEY"}}}),
        &[],
    );
    let (s, v) = execute(&rt, json!({"toolId": "demo:authApiKeyHeader"}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("credentials_unavailable")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("demo:authApiKeyHeader"), "{msg}");
    assert!(msg.contains("OPEN_CLI_TEST_UNSET_KEY` is not set"), "{msg}");
    // No secret defined at all names the keys to define.
    let (_, v) = execute(&rt, json!({"toolId": "demo:authBearer"}));
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("secrets.demo.bearerAuth"), "{msg}");
    assert!(api.requests_for("/auth/api-key-header").is_empty());
    assert!(api.requests_for("/auth/bearer").is_empty());
    // The runtime warned at start-up.
    let logs = rt.proc.logs();
    assert!(logs.contains("OPEN_CLI_TEST_UNSET_KEY"), "{logs}");
    let events = audit(&rt, None);
    assert_eq!(events[0]["eventType"], "execution_error");
    assert_eq!(events[0]["reasonCode"], "credentials_unavailable");
}

/// A relative `file` secret path names a file beside the config file that declares it, not
/// one in the runtime's working directory (which under systemd is `/`).
#[test]
fn relative_file_secrets_resolve_against_the_config_files_directory() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    fx.write("keys/api-key", "beside-the-config\n");
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({"secrets": {
            "demo.apiKeyHeader": {"type": "file", "value": "keys/api-key"}
        }})),
    );
    // Started from another directory than the config's.
    let state = fx.path().join("state");
    let rt = Runtime::try_start_env(&cfg, &state, &[], &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(std::env::current_dir().unwrap(), fx.path());
    let (s, v) = execute(&rt, json!({"toolId": "demo:authApiKeyHeader"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["body"]["received"], "beside-the-config", "{v}");
}

/// Issue 15, item 1 (every file a config names): a `file` secret naming a FIFO, a device or a
/// directory is refused at once with the reason (`credentials_unavailable`, nothing sent);
/// the read never blocks a serving thread (a FIFO with no writer) nor runs unbounded
/// (`/dev/zero`); and the runtime serves on. The same reads back `caFile` and token files.
#[test]
fn file_secrets_that_are_not_regular_files_are_refused_promptly() {
    let api = TestApi::start();
    let dir = Fixture::new();
    let fifo = dir.path().join("key.fifo");
    open_cli_product_tests::mkfifo(&fifo);
    let (_fx, rt) = start(
        &api,
        json!({"secrets": {
            "demo.apiKeyHeader": {"type": "file", "value": fifo},
            "demo.bearerAuth": {"type": "file", "value": "/dev/zero"},
            "demo.basicAuth": {"type": "file", "value": dir.path()},
        }}),
        &[],
    );
    for (tool, what) in [
        ("demo:authApiKeyHeader", "it is a FIFO"),
        ("demo:authBearer", "it is a device"),
        ("demo:authBasic", "it is a directory"),
    ] {
        let (s, v) = execute(&rt, json!({"toolId": tool}));
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (502, Some("credentials_unavailable")),
            "{tool}: {v}"
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(what), "{tool}: {msg}");
    }
    // The pass-through too, and the runtime serves on.
    let resp = rt.get("/proxy/demo/auth/api-key-header");
    assert_eq!(resp.status(), 502);
    assert_eq!(rt.get("/proxy/demo/items").status(), 200);
    assert!(api.requests_for("/auth/api-key-header").is_empty());
    assert!(api.requests_for("/auth/bearer").is_empty());
}

#[test]
fn oauth_client_credentials_are_cached_shared_and_renewed_after_a_401() {
    let oidc = Oidc::start("items:read", &[]);
    let api = TestApi::start();
    let (_fx, mut rt) = start(
        &api,
        json!({"secrets": {"demo.oauthClient": {"type": "oauth2", "mode": "clientCredentials",
            "tokenURL": format!("{}/token", oidc.issuer),
            "clientId": {"type": "literal", "value": "agent-1"},
            "clientSecret": {"type": "env", "value": "AGENT_SECRET"}}}}),
        &[("AGENT_SECRET", "agent-1-secret")],
    );
    // Concurrent first calls share one token.
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| execute(&rt, json!({"toolId": "demo:authOAuth2"}))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let (_, v) = h.join().unwrap();
                assert_eq!(v["statusCode"], 200, "{v}");
                v["body"]["received"].as_str().unwrap().to_string()
            })
            .collect()
    });
    assert!(tokens.iter().all(|t| *t == tokens[0]), "one token for all");
    let first = tokens[0].clone();
    let claims = jwt_claims(&first);
    assert_eq!(claims["client_id"], "agent-1");
    assert_eq!(claims["scope"], "items:read");
    // The upstream now refuses that token: one 401, a fresh token, one retry.
    http()
        .post(format!("{}/_debug/reject-token", api.url))
        .json(&json!({"token": first}))
        .send()
        .unwrap();
    let (_, v) = execute(&rt, json!({"toolId": "demo:authOAuth2"}));
    assert_eq!(v["statusCode"], 200, "{v}");
    let second = v["body"]["received"].as_str().unwrap();
    assert_ne!(second, first);
    let seen = api.requests_for("/auth/oauth2");
    assert_eq!(seen.len(), 8, "6 calls, then a 401 and its retry");
    let events = audit(&rt, None);
    assert_eq!(events.last().unwrap()["retryCount"], 1);
    // Persisted for a restart, owner-only.
    let dir = rt.state_dir.join("instances/test/oauth");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        files[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!rt.stopped_logs().contains(&first[..20]));
}

#[test]
fn policy_is_checked_in_order_and_every_decision_is_audited() {
    let api = TestApi::start();
    let managed = Fixture::new();
    let managed_path = managed.write_json(
        "managed.cli.json",
        &json!({"cli": "1.0.0", "policy": {"deny": ["demo:updateItem"]}}),
    );
    let (_fx, rt) = start(
        &api,
        json!({"policy": {"deny": ["demo:authBasic"], "approvalRequired": ["demo:deleteItem"]}}),
        &[("OPEN_CLI_MANAGED_CONFIG", managed_path.to_str().unwrap())],
    );
    let cases = [
        (
            json!({"toolId": "demo:updateItem", "pathArgs": ["1"], "body": b64("{}")}),
            "managed_deny",
        ),
        (json!({"toolId": "demo:authBasic"}), "policy_deny"),
        (
            json!({"toolId": "demo:createItem", "agentProfile": "reader", "body": b64("{}")}),
            "curated_deny",
        ),
        (
            json!({"toolId": "demo:createItem", "mode": "curated", "body": b64("{}")}),
            "curated_deny",
        ),
        (
            json!({"toolId": "demo:deleteItem", "pathArgs": ["1"]}),
            "approval_required",
        ),
    ];
    for (body, code) in &cases {
        let (s, v) = execute(&rt, body.clone());
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some(*code)),
            "{body}: {v}"
        );
    }
    assert!(
        api.requests().iter().all(|r| r["path"] == "/openapi.yaml"),
        "nothing reached the upstream"
    );
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:deleteItem", "pathArgs": ["1"], "approval": true}),
    );
    assert_eq!(v["statusCode"], 404, "approved: executed: {v}");
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:listItems", "agentProfile": "reader"}),
    );
    assert_eq!(v["statusCode"], 200, "in the curated view: {v}");
    let events = audit(&rt, None);
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e["reasonCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "managed_deny",
            "policy_deny",
            "curated_deny",
            "curated_deny",
            "approval_required",
            "allowed",
            "allowed"
        ]
    );
    assert!(
        events[..5]
            .iter()
            .all(|e| e["eventType"] == "authz_denial" && e["decision"] == "denied")
    );
    assert_eq!(events[2]["agentProfile"], "reader");
}

#[test]
fn idempotent_calls_are_retried_with_backoff_and_retry_after_others_are_not() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}), &[]);
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:flakyResponse", "flags": {"key": "a", "fail": "2"}}),
    );
    assert_eq!(v["statusCode"], 200, "{v}");
    assert_eq!(v["body"]["attempts"], 3);
    // Retry-After is honoured.
    let started = Instant::now();
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:flakyResponse", "flags": {"key": "b", "fail": "1", "retryAfter": "1"}}),
    );
    assert_eq!(v["body"]["attempts"], 2, "{v}");
    assert!(started.elapsed() >= Duration::from_millis(950));
    // Bounded: the third failure is relayed.
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:flakyResponse", "flags": {"key": "c", "fail": "5"}}),
    );
    assert_eq!(v["statusCode"], 503, "{v}");
    assert_eq!(
        api.requests()
            .iter()
            .filter(|r| r["query"].as_str().unwrap_or("").contains("key=c"))
            .count(),
        3
    );
    // A long Retry-After ends the retries.
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:flakyResponse", "flags": {"key": "d", "fail": "1", "retryAfter": "3600"}}),
    );
    assert_eq!(v["statusCode"], 503, "{v}");
    let events = audit(&rt, None);
    let retries: Vec<u64> = events
        .iter()
        .map(|e| e["retryCount"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(retries, [2, 1, 2, 0]);
}

#[test]
fn timeouts_transport_failures_and_size_limits_are_precise_errors() {
    let api = TestApi::start();
    let (_fx, rt) = start(
        &api,
        json!({"services": {"demo": {"source": "demo", "alias": "demo",
            "upstream": {"totalTimeoutMs": 400, "maxRequestBytes": 1000, "maxResponseBytes": 100000, "retries": 0}}}}),
        &[],
    );
    let started = Instant::now();
    let (s, v) = execute(
        &rt,
        json!({"toolId": "demo:slowResponse", "flags": {"ms": "5000"}}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (504, Some("upstream_timeout")),
        "{v}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("demo:slowResponse")
    );

    let big = "x".repeat(2000);
    let (s, v) = execute(&rt, json!({"toolId": "demo:echoBody", "body": b64(&big)}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    let (_, v) = execute(
        &rt,
        json!({"toolId": "demo:echoBody", "body": b64("hello")}),
    );
    assert_eq!(
        v["body"],
        json!({"bytes": 5, "contentType": "application/octet-stream"})
    );

    let (s, v) = execute(
        &rt,
        json!({"toolId": "demo:largeResponse", "flags": {"bytes": "200000"}}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("response_too_large")),
        "{v}"
    );

    // An upstream that is down: 502 naming the tool and the cause.
    let port = free_port();
    let fx = Fixture::new();
    fx.write(
        "demo.openapi.yaml",
        &api.spec_yaml()
            .replace(&api.url, &format!("http://127.0.0.1:{port}")),
    );
    let cfg = fx.write_json(".cli.json", &demo_config(json!({})));
    let down = Runtime::start(&cfg);
    let (s, v) = execute(&down, json!({"toolId": "demo:listItems"}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("upstream_unreachable")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("demo:listItems") && msg.contains(&port.to_string()),
        "{msg}"
    );
    let events = audit(&down, None);
    assert_eq!(events[0]["eventType"], "execution_error");
    assert_eq!(events[0]["retryCount"].as_u64().unwrap_or(0), 0);
}

#[test]
fn mcp_tools_execute_over_their_transport() {
    let (cmd, args) = McpEverything::stdio_command();
    let fx = Fixture::new();
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"},
            "sources": {"everything": {"type": "mcp", "transport": {"type": "stdio", "command": cmd, "args": args}}},
            "services": {"everything": {"source": "everything"}}}),
    );
    let rt = Runtime::start(&cfg);
    let (_, v) = execute(
        &rt,
        json!({"toolId": "everything:get-sum", "body": b64(r#"{"a": 2, "b": 40}"#)}),
    );
    assert_eq!(v["statusCode"], 200, "{v}");
    let text = v["body"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("42"), "{v}");
    let (s, v) = execute(
        &rt,
        json!({"toolId": "everything:get-sum", "flags": {"a": "1"}}),
    );
    assert_eq!(s, 400, "{v}");
}

#[test]
fn mcp_transport_oauth_gets_shares_and_renews_a_client_credentials_token() {
    // server-everything behind a gate that admits only the OpenID provider's JWTs.
    let oidc = Oidc::start("mcp:use", &[]);
    let server = McpEverything::start("streamableHttp");
    let gate = BearerGate::start(&oidc, &server.url);
    let fx = Fixture::new();
    let oauth = |secret: &str| {
        json!({"mode": "clientCredentials", "tokenURL": format!("{}/token", oidc.issuer),
            "clientId": {"type": "literal", "value": "agent-1"},
            "clientSecret": {"type": "literal", "value": secret},
            "scopes": ["mcp:use"], "audience": AUDIENCE})
    };
    let config = |secret: &str| {
        json!({"cli": "1.0.0", "mode": {"default": "discover"},
            "sources": {"remote": {"type": "mcp", "oauth": oauth(secret),
                "transport": {"type": "streamable-http", "url": format!("{}/mcp", gate.url)}}},
            "services": {"remote": {"source": "remote"}}})
    };
    // A client secret the provider refuses: the build fails and says why.
    let bad = fx.write_json("bad.cli.json", &config("wrong"));
    let err = open_cli_product_tests::validate_fails(&bad);
    assert!(err.contains("sources.remote (mcp): oauth:"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the secret must not be shown: {err}"
    );
    assert!(
        gate.tokens().is_empty(),
        "nothing reached the server without a token"
    );

    let cfg = fx.write_json(".cli.json", &config("agent-1-secret"));
    let state = fx.path().join("state");
    let mut rt = Runtime::try_start_env(&cfg, &state, &[], &[]).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<Value> = rt.catalog()["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert!(ids.contains(&json!("remote:get-sum")), "{ids:?}");
    let sum = || {
        execute(
            &rt,
            json!({"toolId": "remote:get-sum", "body": b64(r#"{"a": 2, "b": 40}"#)}),
        )
    };
    let (_, v) = sum();
    assert_eq!(v["statusCode"], 200, "{v}");
    assert!(
        v["body"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("42"),
        "{v}"
    );
    // One token for the catalog build and the call (cached), and it is the client's.
    let seen = gate.tokens();
    let first = seen[0].clone();
    assert!(seen.iter().all(|t| *t == first), "one token throughout");
    let claims = jwt_claims(&first);
    assert_eq!(claims["client_id"], "agent-1");
    // The server revokes it: one 401, a fresh token, the call succeeds.
    gate.reject(&first);
    let (_, v) = sum();
    assert_eq!(v["statusCode"], 200, "{v}");
    let after = gate.tokens();
    let last = after.last().unwrap();
    assert_ne!(*last, first, "a fresh token after the 401");
    assert_eq!(
        after.iter().filter(|t| **t == first).count(),
        seen.len() + 1,
        "exactly one more request with the revoked token"
    );
    let events = audit(&rt, None);
    let e = events.last().unwrap();
    assert_eq!(e["authScheme"], "mcp-transport-oauth", "{e}");
    assert_eq!(e["retryCount"], 1, "{e}");
    assert_eq!(e["decision"], "allowed", "{e}");
    // Stored for a restart (owner-only); never logged.
    let dir = state.join("instances/test/oauth");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        files[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!rt.stopped_logs().contains(&last[..20]));
}

// ---- pass-through ----

fn secured(api: &TestApi, oidc: &Oidc, extra: Value) -> (Fixture, Runtime) {
    let mut cfg = json!({
        "runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": AUDIENCE}}},
        "secrets": {"demo.apiKeyHeader": {"type": "literal", "value": "injected-key"}}
    });
    cfg.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    start(api, cfg, &[])
}

#[test]
fn pass_through_governs_injects_and_audits_like_execute() {
    let oidc = Oidc::start(
        "bundle:demo tool:demo:authApiKeyHeader tool:demo:listItems audit:read",
        &[],
    );
    let api = TestApi::start();
    let (_fx, rt) = secured(
        &api,
        &oidc,
        json!({"policy": {"approvalRequired": ["demo:deleteItem"]},
            "services": {"demo": {"source": "demo", "alias": "demo", "upstream": {"maxRequestBytes": 200}}}}),
    );
    let narrow = oidc.token("tool:demo:authApiKeyHeader", None);
    let wide = oidc.token("bundle:demo", None);
    let get = |path: &str, token: Option<&str>| {
        let mut r = http()
            .get(format!("{}{path}", rt.url))
            .header("x-forwarded-for", "6.6.6.6")
            .header("cookie", "caller=secret-cookie");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap()
    };
    let resp = get("/proxy/demo/auth/api-key-header", Some(&narrow));
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = resp.json().unwrap();
    assert_eq!(v["received"], "injected-key");
    let seen = api.requests_for("/auth/api-key-header");
    let h = &seen[0]["headers"];
    assert!(
        h.get("authorization").is_none(),
        "caller token forwarded: {h}"
    );
    assert!(h.get("cookie").is_none(), "caller cookie forwarded: {h}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert!(
        h["x-forwarded-host"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(
        h["x-request-id"], request_id,
        "the caller sees the request ID the upstream got"
    );

    // Query strings pass; unknown operations, traversal and other scopes do not.
    let resp = get("/proxy/demo/items?limit=1", Some(&wide));
    assert_eq!(resp.status(), 200);
    assert_eq!(
        api.requests_for("/items").last().unwrap()["query"],
        "limit=1"
    );
    for (path, token, status, code) in [
        ("/proxy/demo/items", None, 401, "authn_failed"),
        (
            "/proxy/demo/items",
            Some(narrow.as_str()),
            403,
            "authz_denied",
        ),
        (
            "/proxy/demo/nowhere",
            Some(wide.as_str()),
            404,
            "no_matching_operation",
        ),
        ("/proxy/nosuch/items", Some(wide.as_str()), 404, "not_found"),
        (
            "/proxy/demo/items/..%2F..%2Fauth%2Fbasic",
            Some(wide.as_str()),
            400,
            "invalid_request",
        ),
    ] {
        let resp = get(path, token);
        assert_eq!(resp.status(), status, "{path}");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["error"]["code"], code, "{path}: {v}");
    }
    // Approval is a header; size limits apply before anything is sent.
    let del = |approval: Option<&str>| {
        let mut r = http()
            .delete(format!("{}/proxy/demo/items/77", rt.url))
            .bearer_auth(&wide);
        if let Some(a) = approval {
            r = r.header("x-open-cli-approval", a);
        }
        r.send().unwrap()
    };
    let resp = del(None);
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().unwrap()["error"]["code"],
        "approval_required"
    );
    assert_eq!(
        del(Some("true")).status(),
        404,
        "approved: relayed upstream answer"
    );
    let resp = http()
        .post(format!("{}/proxy/demo/items", rt.url))
        .bearer_auth(&wide)
        .header("content-type", "application/json")
        .body(format!(r#"{{"name":"{}"}}"#, "n".repeat(300)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(
        api.requests_for("/items")
            .iter()
            .all(|r| r["method"] != "POST")
    );
    // Every principal's events (and anonymous refusals) need `audit:read`.
    let auditor = oidc.token("audit:read", None);
    let events = audit(&rt, Some(&auditor));
    let pass: Vec<&Value> = events
        .iter()
        .filter(|e| e["channel"] == "passthrough")
        .collect();
    assert!(pass.len() >= 4, "{events:?}");
    let first = pass[0];
    assert_eq!(first["eventType"], "tool_execution");
    assert_eq!(first["toolId"], "demo:authApiKeyHeader");
    assert_eq!(first["authScheme"], "apiKeyHeader");
    assert_eq!(first["statusCode"], 200);
    assert!(first["responseSize"].as_u64().unwrap() > 0);
    assert!(events.iter().any(|e| e["eventType"] == "authn_failure"));
    assert!(
        events
            .iter()
            .any(|e| e["reasonCode"] == "authz_denied" && e["channel"] == "passthrough")
    );
    assert!(
        events
            .iter()
            .any(|e| e["reasonCode"] == "approval_required" && e["channel"] == "passthrough")
    );
}

#[test]
fn pass_through_streams_large_bodies_both_ways_in_bounded_memory() {
    let oidc = Oidc::start("bundle:demo", &[]);
    let api = TestApi::start();
    let (_fx, rt) = secured(
        &api,
        &oidc,
        json!({"services": {"demo": {"source": "demo", "alias": "demo", "upstream": {"maxRequestBytes": 300_000_000_u64}}}}),
    );
    let token = oidc.token("bundle:demo", None);
    const SIZE: u64 = 256 * 1024 * 1024;
    let mut resp = http()
        .get(format!("{}/proxy/demo/large?bytes={SIZE}", rt.url))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(120))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let n = std::io::copy(&mut resp, &mut std::io::sink()).unwrap();
    assert_eq!(n, SIZE);
    // Upload: a streamed body the upstream counts.
    struct Zeros(u64);
    impl std::io::Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].fill(0);
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let up: u64 = 64 * 1024 * 1024;
    let resp = http()
        .post(format!("{}/proxy/demo/echo", rt.url))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .timeout(Duration::from_secs(120))
        .body(reqwest::blocking::Body::sized(Zeros(up), up))
        .send()
        .unwrap();
    let v: Value = resp.json().unwrap();
    assert_eq!(v["bytes"], up, "{v}");
    // Neither body was held in memory: the runtime's peak RSS stays far below their sizes.
    let status = std::fs::read_to_string(format!("/proc/{}/status", rt.proc.pid())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(hwm_kb < 128 * 1024, "runtime peak RSS {hwm_kb} kB");
}

/// The pass-through retries a refused connect for idempotent operations only, `retries`
/// times, then answers 502 and audits the failure with its retry count.
#[test]
fn pass_through_retries_failed_connects_of_idempotent_operations_only() {
    let api = TestApi::start();
    let closed = free_port(); // nothing listens there
    let fx = Fixture::new();
    fx.write(
        "demo.openapi.yaml",
        &api.spec_yaml()
            .replace(&api.url, &format!("http://127.0.0.1:{closed}")),
    );
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(
            json!({"services": {"demo": {"source": "demo", "alias": "demo",
            "upstream": {"retries": 2, "connectTimeoutMs": 1000}}}}),
        ),
    );
    let state = fx.path().join("state");
    let rt = Runtime::try_start_env(&cfg, &state, &[], &[]).unwrap_or_else(|e| panic!("{e}"));
    let resp = rt.get("/proxy/demo/items");
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable", "{v}");
    let resp = http()
        .post(format!("{}/proxy/demo/items", rt.url))
        .header("content-type", "application/json")
        .body(r#"{"name": "x"}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 502);
    let events: Vec<Value> = audit(&rt, None)
        .into_iter()
        .filter(|e| e["channel"] == "passthrough")
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert_eq!(e["eventType"], "execution_error", "{e}");
    }
    assert_eq!(events[0]["toolId"], "demo:listItems");
    assert_eq!(events[0]["retryCount"], 2, "GET is retried: {}", events[0]);
    assert_eq!(events[1]["toolId"], "demo:createItem");
    assert_eq!(
        events[1]["retryCount"].as_u64().unwrap_or(0),
        0,
        "POST is never retried: {}",
        events[1]
    );
}

/// Literal and env credentials are resolved once per catalog snapshot; a `file` secret is
/// not: after the file changes, calls send the new value within the file cache's lifetime.
#[test]
fn file_secrets_are_re_read_while_literal_credentials_are_reused() {
    let api = TestApi::start();
    let dir = Fixture::new();
    let key_file = dir.write("api-key", "first-key\n");
    let (_fx, rt) = start(
        &api,
        json!({"secrets": {"demo.apiKeyHeader": {"type": "file", "value": key_file}}}),
        &[],
    );
    let received = || -> Value {
        let resp = rt.get("/proxy/demo/auth/api-key-header");
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().unwrap()["received"].clone()
    };
    assert_eq!(received(), "first-key");
    dir.write("api-key", "second-key\n");
    let seen = wait_for(
        "the rotated key file to be used",
        Duration::from_secs(20),
        || (received() == "second-key").then_some(()),
    );
    assert!(seen.is_ok(), "{seen:?}");
}

/// A runtime in front of `api` whose API-key tool has the literal key `key`, with
/// `services.demo.upstream` set to `upstream` when given.
fn start_with_key(api: &TestApi, key: &str, upstream: Option<Value>) -> (Fixture, Runtime) {
    let mut extra = json!({"secrets": {"demo.apiKeyHeader": {"type": "literal", "value": key}}});
    if let Some(up) = upstream {
        extra["services"] = json!({"demo": {"source": "demo", "alias": "demo", "upstream": up}});
    }
    start(api, extra, &[])
}

/// The demo API-key tool through both channels against an upstream that already serves
/// `api` with the API key `key`: each answers 200 with the key the upstream received. Then
/// each request the upstream saw for it carried `key` and used HTTP `version`.
fn api_key_on_both_channels(rt: &Runtime, api: &TestApi, key: &str, version: &str) {
    let (s, v) = execute(rt, json!({"toolId": "demo:authApiKeyHeader"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["statusCode"], 200, "{v}");
    assert_eq!(v["body"]["received"], key, "{v}");
    let resp = rt.get("/proxy/demo/auth/api-key-header");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["received"], key, "{v}");
    let seen = api.requests_for("/auth/api-key-header");
    assert_eq!(seen.len(), 2, "{seen:?}");
    for r in &seen {
        assert_eq!(r["version"], version, "{r}");
        assert_eq!(r["headers"]["x-api-key"], key);
    }
}

/// The upstream's own `Connection` header is hop-by-hop: the caller gets exactly one,
/// written by the runtime, and the same client connection serves the next request. Each
/// answer carries its request ID.
#[test]
fn pass_through_answers_keep_the_client_connection_with_one_connection_header() {
    use std::io::Write;
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}), &[]);
    let direct = http().get(format!("{}/text", api.url)).send().unwrap();
    assert_eq!(
        direct.headers()["connection"],
        "keep-alive",
        "the upstream names it"
    );
    let (addr, mut reader, mut writer) = raw_connection(&rt);
    for round in 0..2 {
        write!(
            writer,
            "GET /proxy/demo/text HTTP/1.1\r\nHost: {addr}\r\nX-Request-ID: ka-{round}\r\n\r\n"
        )
        .unwrap();
        let (status, headers, body) = read_response(&mut reader);
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "round {round}: {status:?}"
        );
        let all = |n: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(
            all("connection"),
            ["keep-alive"],
            "round {round}: {headers:?}"
        );
        assert_eq!(
            all("x-request-id"),
            [format!("ka-{round}").as_str()],
            "{headers:?}"
        );
        assert_eq!(body, b"hello from the demo API\n");
    }
}

/// A raw HTTP/1.1 connection to the runtime (for requests a client library would not send):
/// the address, a reader and a writer.
fn raw_connection(
    rt: &Runtime,
) -> (
    String,
    std::io::BufReader<std::net::TcpStream>,
    std::net::TcpStream,
) {
    let addr = rt.url.trim_start_matches("http://").to_string();
    let stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = std::io::BufReader::new(stream.try_clone().unwrap());
    (addr, reader, stream)
}

/// One response from a raw connection: status line, headers (lower-case names, in order) and
/// the body its `Content-Length` announces.
fn read_response(
    reader: &mut std::io::BufReader<std::net::TcpStream>,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    use std::io::{BufRead, Read};
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let (name, value) = line.trim_end().split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (status, headers, body)
}

/// `upstream.h2c`: HTTP/2 with prior knowledge to a plaintext upstream, on both channels;
/// without it the same upstream is spoken to in HTTP/1.1.
#[test]
fn h2c_upstreams_are_spoken_to_in_http2_with_prior_knowledge() {
    let api = TestApi::start();
    let (_fx, rt) = start_with_key(&api, "h2c-key", Some(json!({"h2c": true})));
    api_key_on_both_channels(&rt, &api, "h2c-key", "HTTP/2.0");
    let (_fx2, plain) = start_with_key(&api, "h2c-key", None);
    assert_eq!(plain.get("/proxy/demo/auth/api-key-header").status(), 200);
    let last = api.requests_for("/auth/api-key-header").pop().unwrap();
    assert_eq!(last["version"], "HTTP/1.1", "{last}");
}

/// A TLS upstream (`https://localhost:…`, certificate from a private CA, ALPN h2 and
/// http/1.1) trusted through `services.<id>.upstream.caFile`: both channels verify it, speak
/// HTTP/2 to it and inject the credential. Without the CA file, the certificate does not
/// verify and the runtime refuses with 502 `upstream_unreachable`: nothing is sent.
#[test]
fn tls_upstreams_are_verified_against_the_configured_ca_and_spoken_to_in_h2() {
    let certs = Fixture::new();
    let api = TestApi::start_tls(certs.path());
    assert!(api.url.starts_with("https://localhost:"), "{}", api.url);
    let ca = certs.path().join("ca.pem");
    let (_fx, rt) = start_with_key(&api, "tls-key", Some(json!({"caFile": ca})));

    // h2 by ALPN.
    api_key_on_both_channels(&rt, &api, "tls-key", "HTTP/2.0");

    // Same upstream, no CA file: the system roots do not know the test CA.
    let (_fx2, strict) = start_with_key(&api, "tls-key", None);
    let before = api.requests().len();
    let (s, v) = execute(&strict, json!({"toolId": "demo:authApiKeyHeader"}));
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_unreachable", "{v}");
    let resp = strict.get("/proxy/demo/auth/api-key-header");
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable", "{v}");
    assert_eq!(
        api.requests().len(),
        before,
        "a request reached the unverified upstream"
    );
}

/// A silent upstream is cut off by the service's read timeout: 504 `upstream_timeout` naming
/// the tool, after the timeout and not the upstream's delay, audited as an execution error;
/// the runtime then proxies the next request normally.
#[test]
fn pass_through_read_timeouts_answer_504_and_are_audited() {
    let api = TestApi::start();
    let (_fx, rt) = start(
        &api,
        json!({"services": {"demo": {"source": "demo", "alias": "demo",
            "upstream": {"readTimeoutMs": 1000, "retries": 0}}}}),
        &[],
    );
    let started = Instant::now();
    let resp = http()
        .get(format!("{}/proxy/demo/slow?ms=8000", rt.url))
        .header("x-request-id", "slow-1")
        .send()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("demo:slowResponse"),
        "{v}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}; the read timeout is 1 s, the upstream sleeps 8 s"
    );
    let resp = http()
        .get(format!("{}/proxy/demo/slow?ms=10", rt.url))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().unwrap()["sleptMs"], 10);
    let events = audit(&rt, None);
    let e = events
        .iter()
        .find(|e| e["requestId"] == "slow-1")
        .unwrap_or_else(|| panic!("no record of slow-1: {events:?}"));
    assert_eq!(e["eventType"], "execution_error", "{e}");
    assert_eq!(e["toolId"], "demo:slowResponse", "{e}");
    assert_eq!(e["channel"], "passthrough", "{e}");
}

/// Each serving thread keeps its own handle on the catalog snapshot: after a rebuild, every
/// new request (on any thread: a fresh connection each) is governed by the new snapshot.
#[test]
fn pass_through_follows_a_refreshed_snapshot_on_every_thread() {
    let api = TestApi::start();
    let (fx, rt) = start(&api, json!({}), &[]);
    let get = || {
        let resp = http()
            .get(format!("{}/proxy/demo/items", rt.url))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap_or(Value::Null))
    };
    for _ in 0..8 {
        assert_eq!(get().0, 200);
    }
    fx.write_json(
        ".cli.json",
        &demo_config(json!({"policy": {"deny": ["demo:listItems"]}})),
    );
    let info = rt.sighup_and_wait();
    assert_eq!(info["lastRefresh"]["ok"], true, "{info}");
    for _ in 0..8 {
        let (status, v) = get();
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (403, Some("policy_deny")),
            "{v}"
        );
    }
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), the fields the caller's `Connection` names and the
/// caller's framing stop at the runtime; a chunked upload is re-framed for the upstream and
/// arrives whole.
#[test]
fn pass_through_drops_hop_by_hop_fields_and_reframes_a_chunked_upload() {
    use std::io::Write;
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}), &[]);
    let (addr, mut reader, mut writer) = raw_connection(&rt);
    write!(
        writer,
        "POST /proxy/demo/echo HTTP/1.1\r\nHost: {addr}\r\n\
         Connection: keep-alive, x-secret-hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: x-sum\r\n\
         HTTP2-Settings: AAMAAABkAAQAAP__\r\nProxy-Authorization: Basic eDp5\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    .unwrap();
    let (status, _, body) = read_response(&mut reader);
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["bytes"], 11, "{v}");
    let seen = api.requests_for("/echo");
    let h = &seen.last().unwrap()["headers"];
    for hop in [
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "http2-settings",
        "proxy-authorization",
    ] {
        assert!(h.get(hop).is_none(), "{hop} forwarded: {h}");
    }
    assert_ne!(h["connection"], "keep-alive, x-secret-hop", "{h}");
    assert_eq!(h["transfer-encoding"], "chunked", "re-framed: {h}");
    assert_eq!(h["content-type"], "application/octet-stream", "{h}");
}
