//! `/mcp` (issue 19): the runtime as an MCP server, driven by real MCP clients no one here
//! wrote — the TypeScript SDK (`@modelcontextprotocol/sdk`) and the Python SDK (`mcp` from
//! PyPI), through `product-tests/mcp-clients` — and by raw HTTP for the protocol's edges.

use std::path::PathBuf;
use std::process::Command;

use open_cli_product_tests::*;
use serde_json::{Value, json};

fn clients() -> PathBuf {
    repo_root().join("product-tests/mcp-clients")
}

/// Run an MCP client script; its stdout as JSON (it prints one document).
fn run_client(mut cmd: Command, token: Option<&str>) -> Value {
    if let Some(t) = token {
        cmd.env("MCP_TOKEN", t);
    } else {
        cmd.env_remove("MCP_TOKEN");
    }
    let out = cmd.output().expect("an MCP client runs");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The TypeScript SDK's client: `list` or `call <name> <json>`.
fn ts(url: &str, token: Option<&str>, args: &[&str]) -> Value {
    let script = clients().join("ts-client.mjs");
    assert!(
        clients().join("node_modules").exists(),
        "product-tests/mcp-clients is not installed: run scripts/deps"
    );
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(url).args(args);
    run_client(cmd, token)
}

/// The Python SDK's client (`--mode` legacy, 2026-07-28 or auto).
fn py(url: &str, token: Option<&str>, mode: &str, args: &[&str]) -> Value {
    let python = clients().join("venv/bin/python");
    assert!(
        python.exists(),
        "product-tests/mcp-clients/venv is missing: run scripts/deps"
    );
    let mut cmd = Command::new(python);
    cmd.arg(clients().join("py_client.py"))
        .arg(url)
        .args(args)
        .arg("--mode")
        .arg(mode);
    run_client(cmd, token)
}

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

/// A runtime with auth on in front of the demo API (bearer credential injected) and
/// server-everything over streamable HTTP.
struct Setup {
    issuer: KeyedIssuer,
    api: TestApi,
    _everything: McpEverything,
    _fx: Fixture,
    rt: Runtime,
}

fn setup(extra: Value) -> Setup {
    let issuer = KeyedIssuer::start();
    let api = TestApi::start();
    let everything = McpEverything::start("streamableHttp");
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let mut config = open_demo_config(json!({"auth": issuer.auth()}));
    config["sources"]["everything"] =
        json!({"type": "mcp", "transport": {"type": "streamable-http", "url": everything.url}});
    config["services"]["everything"] = json!({"source": "everything", "alias": "everything"});
    config["secrets"] = json!({"demo.bearerAuth": {"type": "literal", "value": "upstream-secret"}});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let cfg = fx.write_json(".cli.json", &config);
    let rt = Runtime::try_start_in(&cfg, &fx.path().join("state"), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    Setup {
        issuer,
        api,
        _everything: everything,
        _fx: fx,
        rt,
    }
}

fn mcp_url(rt: &Runtime) -> String {
    format!("{}/mcp", rt.url)
}

fn listed_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["_meta"]["io.open-cli/toolId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn both_sdks_list_the_tokens_tools_and_call_an_openapi_tool_with_the_injected_credential() {
    let s = setup(json!({}));
    let url = mcp_url(&s.rt);
    let demo_only = s.issuer.token("alice", "bundle:demo");
    let everything = s.issuer.token("bob", "bundle:demo bundle:everything");

    // tools/list is /v1/catalog/effective's view for the same token, in both SDKs and in
    // the stateless revision.
    let ts_list = ts(&url, Some(&demo_only), &["list"]);
    assert_eq!(listed_ids(&ts_list), visible_tool_ids(&s.rt, &demo_only));
    assert!(names(&ts_list).contains(&"demo__authBearer".to_string()));
    assert!(
        !names(&ts_list)
            .iter()
            .any(|n| n.starts_with("everything__"))
    );
    for mode in ["legacy", "2026-07-28"] {
        let py_list = py(&url, Some(&everything), mode, &["list"]);
        assert_eq!(
            listed_ids(&py_list),
            visible_tool_ids(&s.rt, &everything),
            "{mode}"
        );
        assert!(names(&py_list).contains(&"everything__echo".to_string()));
    }
    let tool = ts_list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "demo__authBearer")
        .unwrap();
    assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    assert!(tool["annotations"]["readOnlyHint"].is_boolean(), "{tool}");

    // The call carries the configured upstream credential, never the caller's token.
    let before = s.api.requests().len();
    let r = ts(&url, Some(&demo_only), &["call", "demo__authBearer", "{}"]);
    assert_ne!(r["isError"], true, "{r}");
    assert_eq!(r["structuredContent"]["received"], "upstream-secret", "{r}");
    let r = py(
        &url,
        Some(&demo_only),
        "2026-07-28",
        &["call", "demo__authBearer", "{}"],
    );
    assert_eq!(r["structuredContent"]["received"], "upstream-secret", "{r}");
    let sent = serde_json::to_string(&s.api.requests()[before..]).unwrap();
    assert!(
        !sent.contains(&demo_only),
        "the caller's token went upstream"
    );

    // Audited on channel `mcp`, with the principal.
    let rows = audit_rows(&s.rt, 2, |v| {
        v["channel"] == "mcp" && v["toolId"] == "demo:authBearer" && v["decision"] == "allowed"
    });
    assert_eq!(rows[0]["principal"], "alice");
}

#[test]
fn an_mcp_tool_is_called_through_mcp_with_progress() {
    let s = setup(json!({}));
    let url = mcp_url(&s.rt);
    let token = s.issuer.token("bob", "bundle:everything");
    let r = ts(
        &url,
        Some(&token),
        &["call", "everything__echo", r#"{"message":"hi"}"#],
    );
    assert_eq!(r["content"][0]["text"], "Echo: hi", "{r}");
    let r = py(
        &url,
        Some(&token),
        "2026-07-28",
        &["call", "everything__get-sum", r#"{"a":2,"b":3}"#],
    );
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains('5'),
        "{r}"
    );
    // A call that takes over a second gets progress notifications while it waits.
    let r = ts(
        &url,
        Some(&token),
        &[
            "call",
            "everything__trigger-long-running-operation",
            r#"{"duration":2,"steps":2}"#,
            "--progress",
        ],
    );
    assert!(r["progressCount"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert_ne!(r["isError"], true, "{r}");
}

#[test]
fn out_of_scope_denied_and_unapproved_calls_are_refused() {
    let s = setup(
        json!({"policy": {"deny": ["demo:deleteItem"], "approvalRequired": ["demo:updateItem"]}}),
    );
    let url = mcp_url(&s.rt);
    let token = s.issuer.token("carol", "bundle:demo");

    // Out of scope: 403 insufficient_scope naming the scope, before any MCP work; audited.
    let resp = http()
        .post(&url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "everything__echo")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "everything__echo", "arguments": {"message": "x"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"tool:everything:echo\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("resource_metadata=\"http://127.0.0.1:"),
        "{challenge}"
    );
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["data"]["code"], "authz_denied", "{v}");
    audit_rows(&s.rt, 1, |v| {
        v["channel"] == "mcp"
            && v["toolId"] == "everything:echo"
            && v["reasonCode"] == "authz_denied"
    });

    // A denied tool and an unapproved one: refused with the runtime's code, nothing sent.
    let before = s.api.requests().len();
    for (name, id, says, reason) in [
        (
            "demo__deleteItem",
            "demo:deleteItem",
            "policy.deny",
            "policy_deny",
        ),
        (
            "demo__updateItem",
            "demo:updateItem",
            "requires approval",
            "approval_required",
        ),
    ] {
        let r = ts(&url, Some(&token), &["call", name, "{}"]);
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{r}"
        );
        assert_eq!(
            s.api.requests().len(),
            before,
            "a refused call of {name} reached the upstream"
        );
        audit_rows(&s.rt, 1, |v| {
            v["channel"] == "mcp" && v["toolId"] == id && v["reasonCode"] == reason
        });
    }
}

#[test]
fn without_a_token_mcp_points_at_its_protected_resource_metadata() {
    let s = setup(json!({}));
    let url = mcp_url(&s.rt);
    let resp = http()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let meta_url = format!("{}/.well-known/oauth-protected-resource/mcp", s.rt.url);
    assert!(
        challenge.contains(&format!("resource_metadata=\"{meta_url}\"")),
        "{challenge}"
    );
    let meta: Value = http().get(&meta_url).send().unwrap().json().unwrap();
    assert_eq!(meta["resource"], url);
    assert_eq!(meta["authorization_servers"][0], s.issuer.oidc.issuer);
    let scopes: Vec<&str> = meta["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"bundle:demo") && scopes.contains(&"bundle:everything"),
        "{meta}"
    );
    // A browser page from elsewhere is refused (DNS rebinding).
    let token = s.issuer.token("dave", "bundle:demo");
    let resp = http()
        .post(&url)
        .bearer_auth(&token)
        .header("origin", "http://evil.example")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[test]
fn a_session_belongs_to_the_principal_that_opened_it() {
    let s = setup(json!({}));
    let url = mcp_url(&s.rt);
    let alice = s.issuer.token("alice", "bundle:demo");
    let mallory = s.issuer.token("mallory", "bundle:demo");
    let init = http()
        .post(&url)
        .bearer_auth(&alice)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .unwrap();
    assert_eq!(init.status(), 200);
    let sid = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let list = |token: &str| {
        http()
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "2025-06-18")
            .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
            .send()
            .unwrap()
    };
    assert_eq!(list(&mallory).status(), 404);
    assert_eq!(list(&alice).status(), 200);
}

/// RFC 9728 discovery driven by the Python SDK's own OAuth flow against a real OpenID
/// provider: the client sends no token, follows the 401's `resource_metadata` to the
/// protected resource metadata, from there to the provider's metadata, takes a
/// client-credentials token for the scopes the metadata lists and the `/mcp` resource
/// (RFC 8707), and lists the tools that token reaches. The provider binds the token's `aud`
/// to that resource, so the runtime's `audience` is the `/mcp` URL (docs/mcp.md,
/// "Authorization").
#[test]
fn an_sdk_client_discovers_the_provider_and_gets_its_own_token() {
    let oidc = Oidc::start("bundle:demo", &[]);
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let auth = |audience: &str| json!({"auth": {"validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": audience}});
    let cfg = fx.write_json(".cli.json", &open_demo_config(auth("urn:not-yet")));
    let rt = Runtime::try_start_in(&cfg, &fx.path().join("state"), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    // The audience is the resource the client will reach, known once the runtime listens.
    let url = mcp_url(&rt);
    fx.write_json(".cli.json", &open_demo_config(auth(&url)));
    let info = rt.sighup_and_wait();
    assert_eq!(info["lastRefresh"]["ok"], true, "{info}");

    let python = clients().join("venv/bin/python");
    let mut cmd = Command::new(python);
    cmd.arg(clients().join("py_client.py"))
        .arg(&url)
        .arg("oauth-list")
        .args(["--mode", "auto"])
        .env("OAUTH_CLIENT_ID", "agent-1")
        .env("OAUTH_CLIENT_SECRET", "agent-1-secret");
    let out = run_client(cmd, None);
    let oauth = &out["oauth"];
    assert_eq!(
        oauth["authorizationServer"]
            .as_str()
            .map(|s| s.trim_end_matches('/')),
        Some(oidc.issuer.as_str()),
        "{out}"
    );
    assert_eq!(oauth["resource"], url, "{out}");
    assert_eq!(oauth["scope"], "bundle:demo", "{out}");
    assert_eq!(
        oauth["tokenType"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("bearer")
    );
    let listed = listed_ids(&out);
    assert!(
        !listed.is_empty() && listed.iter().all(|id| id.starts_with("demo:")),
        "{out}"
    );
    // The same tools `/v1/catalog/effective` gives a token of that provider for that scope.
    let token = oidc.token("bundle:demo", Some(&url));
    assert_eq!(listed, visible_tool_ids(&rt, &token));
    // A token for another audience is refused by the same authenticator.
    let other = oidc.token("bundle:demo", None);
    let resp = http()
        .get(format!("{}/v1/catalog/effective", rt.url))
        .bearer_auth(&other)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// A plain stateless `tools/call` is answered by the runtime itself (the fast path of
/// `gateway::mcp`), everything else by the SDK: both must give the same answer, for a result,
/// a tool error and a JSON-RPC error, and the SDK's checks must still apply (a mismatched
/// `Mcp-Name` is refused, not called).
#[test]
fn the_direct_answer_to_a_stateless_call_is_the_sdks() {
    let s = setup(json!({"policy": {"deny": ["demo:deleteItem"]}}));
    let token = s.issuer.token("erin", "bundle:demo");
    let url = mcp_url(&s.rt);
    let call = |name: &str, args: Value, extra_meta: Value, headers: &[(&str, &str)]| {
        let mut meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}});
        meta.as_object_mut()
            .unwrap()
            .extend(extra_meta.as_object().unwrap().clone());
        let mut req = http()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", name);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .body(
                json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": name, "arguments": args, "_meta": meta}})
                .to_string(),
            )
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let text = resp.text().unwrap();
        // The SDK answers a call with a progress token as a stream when a notification
        // comes first; these calls are quick, so its first message is the answer.
        let body = if ct.starts_with("text/event-stream") {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .find(|d| d.contains("\"id\":7"))
                .unwrap_or_else(|| panic!("no answer in the stream: {text}"))
                .to_string()
        } else {
            text
        };
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let via_sdk = json!({"progressToken": "p1"});
    let origin = [("origin", "http://127.0.0.1:9")];
    for (name, args) in [
        ("demo__authBearer", json!({})),             // a result
        ("demo__getItem", json!({})),                // arguments that do not fit: a tool error
        ("demo__deleteItem", json!({"item-id": 1})), // denied: a JSON-RPC error
        ("demo__nope", json!({})),                   // unknown: -32602
    ] {
        let direct = call(name, args.clone(), json!({}), &[]);
        let sdk = call(name, args.clone(), via_sdk.clone(), &[]);
        let sdk_origin = call(name, args, json!({}), &origin);
        assert_eq!(direct.0, sdk.0, "{name}");
        assert_eq!(direct, sdk_origin, "{name}");
        let strip = |mut v: Value| {
            // The request ID of the call differs (it is the runtime's, per request).
            if let Some(m) = v.pointer_mut("/result/_meta") {
                m.as_object_mut().unwrap().remove("io.open-cli/requestId");
            }
            v
        };
        assert_eq!(strip(direct.1.clone()), strip(sdk.1), "{name}");
        assert_eq!(direct.1["id"], 7, "{name}: {}", direct.1);
    }
    // The SDK's header check still stands in front of the call.
    let mismatched = {
        let resp = http()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "demo__other")
            .body(
                json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                "params": {"name": "demo__authBearer", "arguments": {},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}}})
                .to_string(),
            )
            .send()
            .unwrap();
        resp.status().as_u16()
    };
    assert_eq!(mismatched, 400);
    let sent = s.api.requests_for("/auth/bearer").len();
    assert_eq!(
        sent, 3,
        "the three authBearer calls, not the mismatched one"
    );
}
