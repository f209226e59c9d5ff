//! Delegated sub-agent tokens and per-caller upstream identity, with the deployment example's
//! broker (`deploy/examples/delegation-broker`, a real `oidc-provider` with an RFC 8693
//! token-exchange grant) in front of the runtime and its demo upstream behind it.

use std::time::Duration;

use open_cli_product_tests::{
    Broker, DemoApi, Fixture, KeyedMcp, Runtime, audit_rows, cli_at, http, json_out, jwt_claims,
    text, view_tool_ids, visible_tool_ids, wait_for,
};
use serde_json::{Value, json};

const WHOAMI: &str = "demo:whoami";
const KEYED: &str = "demo:keyedWhoami";

/// Broker, demo upstream and a runtime trusting the broker (no clock leeway, so a token is
/// refused the second it expires), with both per-caller credential forms configured.
struct Setup {
    broker: Broker,
    _api: DemoApi,
    _fx: Fixture,
    rt: Runtime,
}

fn setup() -> Setup {
    let broker = Broker::start("bundle:demo", &json!({"urn:demo-api": ["read", "write"]}));
    let api = DemoApi::start(&broker, &json!({"key-alice": "alice", "key-bob": "bob"}));
    let fx = Fixture::new();
    let mut auth = broker.auth();
    auth["leewaySeconds"] = json!(0);
    let cfg = json!({
        "cli": "1.0.0",
        "mode": {"default": "discover"},
        "sources": {"demo": {"type": "openapi", "uri": format!("{}/openapi.json", api.url)}},
        "services": {"demo": {"source": "demo", "alias": "demo"}},
        "secrets": {
            "demo.broker": {"type": "oauth2", "mode": "tokenExchange",
                "tokenURL": format!("{}/token", broker.issuer), "audience": "urn:demo-api",
                "scopes": ["read"],
                "clientId": {"type": "literal", "value": "runtime"},
                "clientSecret": {"type": "literal", "value": "runtime-secret"}},
            "demo.apiKey": {"type": "byPrincipal", "principals": {
                "alice": {"type": "literal", "value": "key-alice"},
                "bob": {"type": "literal", "value": "key-bob"}}}
        },
        "runtime": {"mode": "remote", "server": {"auth": auth,
            "documents": {"allowedOrigins": [api.url]}}}
    });
    let rt = Runtime::start(&fx.write_json(".cli.json", &cfg));
    Setup {
        broker,
        _api: api,
        _fx: fx,
        rt,
    }
}

fn execute(rt: &Runtime, token: &str, tool: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .bearer_auth(token)
        .body(json!({"toolId": tool}).to_string())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// `open-cli auth delegate` run by a holder of `parent` (the CLI takes `OPEN_CLI_TOKEN`).
fn delegate(rt: &Runtime, parent: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["auth", "delegate", "--format", "json"];
    all.extend_from_slice(args);
    cli_at(
        &rt.url,
        &all,
        &[
            ("OPEN_CLI_TOKEN", parent),
            ("OPEN_CLI_AGENT_SESSION_ID", "sub-agent-1"),
        ],
    )
}

/// A child token with a subset of its parent's scopes is accepted and each of its calls is
/// audited with the lineage; an escalation (a scope not held, or dropping the `tool:` scopes
/// that narrow the parent) is refused by the broker.
#[test]
fn a_child_token_gets_a_subset_and_is_audited_with_its_lineage() {
    let s = setup();
    let parent = s.broker.token(
        "alice",
        &format!("bundle:demo tool:{WHOAMI} tool:{KEYED}"),
        3600,
    );
    assert_eq!(visible_tool_ids(&s.rt, &parent), [KEYED, WHOAMI]);

    let child = json_out(&delegate(
        &s.rt,
        &parent,
        &[
            "--scope",
            &format!("bundle:demo,tool:{KEYED}"),
            "--ttl",
            "5m",
        ],
    ));
    let token = child["accessToken"].as_str().unwrap();
    let claims = jwt_claims(token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["act"], json!({"sub": "sub-agent-1"}));
    assert_eq!(claims["delegated_by"], "alice");
    assert_eq!(claims["delegation_id"], child["delegationId"]);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 300, "--ttl 5m");

    // The child sees and runs only its subset.
    assert_eq!(visible_tool_ids(&s.rt, token), [KEYED]);
    let (status, body) = execute(&s.rt, token, KEYED);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["body"]["owner"], "alice", "alice's own key: {body}");
    let (status, body) = execute(&s.rt, token, WHOAMI);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "authz_denied", "{body}");

    // Escalation: a scope the parent does not hold; dropping the tool: narrowing.
    for (scopes, why) in [
        (
            "bundle:admin",
            "escalation refused: `bundle:admin` is not held",
        ),
        ("bundle:demo", "tool:"),
    ] {
        let out = delegate(&s.rt, &parent, &["--scope", scopes]);
        assert!(!out.status.success(), "{scopes} was delegated");
        let err = text(&out.stderr);
        assert!(err.contains("invalid_scope") && err.contains(why), "{err}");
    }

    // The audit lines of the child's calls carry the lineage; the parent's carry none.
    assert_eq!(execute(&s.rt, &parent, KEYED).0, 200);
    let rows = audit_rows(&s.rt, 3, |v| {
        v["eventType"] == "tool_execution" || v["eventType"] == "authz_denial"
    });
    let lineage = json!({"actor": {"sub": "sub-agent-1"}, "delegatedBy": "alice",
        "delegationId": child["delegationId"]});
    assert_eq!(rows.len(), 3, "{rows:?}");
    for r in &rows[..2] {
        assert_eq!(r["principal"], "alice", "{r}");
        assert_eq!(r["lineage"], lineage, "{r}");
    }
    assert!(rows[2].get("lineage").is_none(), "{}", rows[2]);

    // The broker granted one delegation and refused two, and logged no token.
    let log = s.broker.exchanges();
    let outcomes: Vec<&str> = log.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["granted", "refused", "refused"], "{log:?}");
    assert!(!s.broker.proc.stdout().contains(token));
}

/// A child is refused once it expires (the runtime's own check, no broker involved), however
/// long its parent lives.
#[test]
fn an_expired_child_is_refused() {
    let s = setup();
    let parent = s.broker.token("alice", "bundle:demo", 3600);
    let child = json_out(&delegate(
        &s.rt,
        &parent,
        &["--scope", "bundle:demo", "--ttl", "3s"],
    ));
    let token = child["accessToken"].as_str().unwrap().to_string();
    let exp = jwt_claims(&token)["exp"].as_u64().unwrap();
    let (status, body) = execute(&s.rt, &token, KEYED);
    assert_eq!(status, 200, "{body}");
    // Asked again until refused; the refusal comes at expiry, not before.
    let refused = wait_for("the child to be refused", Duration::from_secs(20), || {
        let (status, body) = execute(&s.rt, &token, KEYED);
        (status == 401).then_some(body)
    })
    .unwrap();
    assert!(open_cli_product_tests::broker::now() >= exp);
    assert!(refused.to_string().contains("expired"), "{refused}");
    assert_eq!(execute(&s.rt, &parent, KEYED).0, 200, "the parent lives on");
}

/// A child keeps exactly its own scopes: after its parent's scopes shrink (the person lost a
/// tool: the provider now issues their tokens without it), a child issued before still
/// reaches only what it was given, never the parent's new scopes; and the shrunk parent can
/// no longer delegate what it lost.
#[test]
fn a_child_keeps_only_its_own_scopes_after_the_parent_shrinks() {
    let s = setup();
    let before = s.broker.token(
        "alice",
        &format!("bundle:demo tool:{WHOAMI} tool:{KEYED}"),
        3600,
    );
    let child = json_out(&delegate(
        &s.rt,
        &before,
        &["--scope", &format!("bundle:demo,tool:{KEYED}")],
    ));
    let token = child["accessToken"].as_str().unwrap();
    let after = s
        .broker
        .token("alice", &format!("bundle:demo tool:{WHOAMI}"), 3600);
    assert_eq!(visible_tool_ids(&s.rt, &after), [WHOAMI]);
    assert_eq!(
        visible_tool_ids(&s.rt, token),
        [KEYED],
        "the child's scopes only"
    );
    assert_eq!(execute(&s.rt, token, WHOAMI).0, 403);
    let out = delegate(
        &s.rt,
        &after,
        &["--scope", &format!("bundle:demo,tool:{KEYED}")],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("escalation refused"));
}

/// Per-caller upstream identity: each caller's runtime token is exchanged at the broker for
/// an upstream token of its own (cached per principal), on execute and on the pass-through;
/// the upstream never sees a runtime token. `byPrincipal` keys: each caller its own key, a
/// caller without one refused with a message naming it.
#[test]
fn each_caller_reaches_the_upstream_as_itself() {
    let s = setup();
    let alice = s.broker.token("alice", "bundle:demo", 3600);
    let bob = s.broker.token("bob", "bundle:demo", 3600);
    let carol = s.broker.token("carol", "bundle:demo", 3600);

    let (status, a1) = execute(&s.rt, &alice, WHOAMI);
    assert_eq!(status, 200, "{a1}");
    let a1 = &a1["body"];
    assert_eq!(a1["sub"], "alice");
    assert_eq!(a1["aud"], "urn:demo-api");
    assert_eq!(a1["act"], json!({"sub": "runtime"}));
    assert_eq!(a1["scope"], "read");
    let (_, b1) = execute(&s.rt, &bob, WHOAMI);
    assert_eq!(b1["body"]["sub"], "bob", "{b1}");
    // Cached per principal: alice's second call (and her pass-through call) use her token.
    let (_, a2) = execute(&s.rt, &alice, WHOAMI);
    assert_eq!(a2["body"]["jti"], a1["jti"]);
    let r = http()
        .get(format!("{}/proxy/demo/whoami", s.rt.url))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let via_proxy: Value = r.json().unwrap();
    assert_eq!(via_proxy["sub"], "alice");
    assert_eq!(via_proxy["jti"], a1["jti"]);
    let granted: Vec<Value> = s
        .broker
        .exchanges()
        .into_iter()
        .filter(|e| e["audience"] == "urn:demo-api")
        .collect();
    assert_eq!(granted.len(), 2, "one exchange per principal: {granted:?}");
    assert!(granted.iter().all(|e| e["client"] == "runtime"));

    // alice's sub-agent: its own upstream token (never its parent's), with the chain of actors.
    let child = json_out(&delegate(&s.rt, &alice, &["--scope", "bundle:demo"]));
    let child = child["accessToken"].as_str().unwrap();
    let (status, c1) = execute(&s.rt, child, WHOAMI);
    assert_eq!(status, 200, "{c1}");
    let c1 = &c1["body"];
    assert_eq!(c1["sub"], "alice");
    assert_eq!(
        c1["act"],
        json!({"sub": "runtime", "act": {"sub": "sub-agent-1"}})
    );
    assert_ne!(c1["jti"], a1["jti"], "the child's own upstream token");
    let (_, a3) = execute(&s.rt, &alice, WHOAMI);
    assert_eq!(a3["body"]["jti"], a1["jti"], "the parent keeps its own");

    // byPrincipal: each caller's own key; carol has none.
    let (_, k) = execute(&s.rt, &bob, KEYED);
    assert_eq!(k["body"]["owner"], "bob", "{k}");
    let (status, body) = execute(&s.rt, &carol, KEYED);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "credentials_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("secret `demo.apiKey` has no entry for principal `carol`"),
        "{message}"
    );
}

/// Per-caller identity at an MCP server: `transport.headerSecrets` naming a `byPrincipal`
/// secret send each caller's own key, each caller in a session of its own (the server binds a
/// session to the key that started it and refuses it to another); the catalog build lists the
/// tools with the `default` entry, which is also what a caller without an entry gets. Once with
/// the key in `X-Api-Key`, once as a bearer `Authorization` (which must not make the callers
/// take turns replacing one session).
#[test]
fn each_caller_reaches_an_mcp_server_as_itself() {
    per_caller_mcp("X-Api-Key", "");
    per_caller_mcp("Authorization", "Bearer ");
}

fn per_caller_mcp(header: &str, prefix: &str) {
    let broker = Broker::start("bundle:keyed", &json!({}));
    let mcp =
        KeyedMcp::start(&json!({"key-alice": "alice", "key-bob": "bob", "key-shared": "shared"}));
    let fx = Fixture::new();
    let key = |k: &str| json!({"type": "literal", "value": format!("{prefix}{k}")});
    let cfg = json!({
        "cli": "1.0.0",
        "mode": {"default": "discover"},
        "sources": {"keyed": {"type": "mcp", "transport": {"type": "streamable-http",
            "url": mcp.url, "headerSecrets": {header: "keyed.apiKey"}}}},
        "services": {"keyed": {"source": "keyed", "alias": "keyed"}},
        "secrets": {"keyed.apiKey": {"type": "byPrincipal",
            "principals": {"alice": key("key-alice"), "bob": key("key-bob")},
            "default": key("key-shared")}},
        "runtime": {"mode": "remote", "server": {"auth": broker.auth()}}
    });
    let rt = Runtime::start(&fx.write_json(".cli.json", &cfg));
    let listed: Vec<Value> = mcp.requests();
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|r| r["owner"] == "shared"),
        "{header}: the catalog build lists with the default key: {listed:?}"
    );
    let whoami = |token: &str| {
        let r = http()
            .post(format!("{}/v1/tools/execute", rt.url))
            .bearer_auth(token)
            .body(json!({"toolId": "keyed:whoami", "body": "e30="}).to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap();
        assert_eq!(status, 200, "{header}: {v}");
        let text = v["body"]["content"][0]["text"].as_str().unwrap_or_default();
        serde_json::from_str::<Value>(text).unwrap_or_else(|_| panic!("{v}"))
    };
    let alice = broker.token("alice", "bundle:keyed", 3600);
    let bob = broker.token("bob", "bundle:keyed", 3600);
    let carol = broker.token("carol", "bundle:keyed", 3600);
    let a1 = whoami(&alice);
    assert_eq!(a1["owner"], "alice", "{header}: {a1}");
    let b1 = whoami(&bob);
    assert_eq!(b1["owner"], "bob", "{header}: {b1}");
    assert_ne!(
        b1["session"], a1["session"],
        "{header}: a session per caller"
    );
    // Interleaved again: each caller back in its own session.
    for _ in 0..2 {
        let a = whoami(&alice);
        assert_eq!(
            (&a["owner"], &a["session"]),
            (&a1["owner"], &a1["session"]),
            "{header}"
        );
        let b = whoami(&bob);
        assert_eq!(
            (&b["owner"], &b["session"]),
            (&b1["owner"], &b1["session"]),
            "{header}"
        );
    }
    // No entry for carol: the default key.
    assert_eq!(whoami(&carol)["owner"], "shared", "{header}");
    // Every request the server saw came with a known key, and each caller's in one session:
    // two sessions per caller would mean one was replaced (or shared, which the server
    // refuses with 403 and `whoami` above would have failed on).
    let calls: Vec<Value> = mcp.requests();
    assert!(
        calls.iter().all(|r| !r["owner"].is_null()),
        "{header}: {calls:?}"
    );
    for who in ["alice", "bob"] {
        let sessions: std::collections::BTreeSet<&str> = calls
            .iter()
            .filter(|r| r["owner"] == who)
            .filter_map(|r| r["session"].as_str())
            .collect();
        assert_eq!(sessions.len(), 1, "{header}, {who}: {sessions:?}");
    }
    // The audit records name each caller.
    let rows = audit_rows(&rt, 7, |r| r["toolId"] == "keyed:whoami");
    let principals: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["principal"].as_str())
        .collect();
    assert_eq!(
        principals,
        ["alice", "bob", "alice", "bob", "alice", "bob", "carol"],
        "{header}: {rows:?}"
    );
}

/// `runtime.remote.oauth.delegation.enabled`: every command of the agent sends a child of its
/// token with `delegation.scopes` and its session as the actor, exchanged once and reused by
/// later commands until it nears expiry.
#[test]
fn an_agent_with_delegation_enabled_sends_children() {
    let s = setup();
    let parent = s.broker.token(
        "alice",
        &format!("bundle:demo tool:{WHOAMI} tool:{KEYED}"),
        3600,
    );
    let fx = Fixture::new();
    let client = fx.write_json(
        "client.cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"},
            "runtime": {"mode": "remote", "remote": {"url": s.rt.url, "oauth": {
                "mode": "providedToken", "tokenRef": "env:AGENT_TOKEN",
                "delegation": {"enabled": true, "scopes": ["bundle:demo", format!("tool:{KEYED}")]}}}}}),
    );
    let state = Fixture::new();
    let env = [
        ("AGENT_TOKEN", parent.as_str()),
        ("OPEN_CLI_AGENT_SESSION_ID", "session-9"),
        ("OPEN_CLI_STATE_DIR", state.path().to_str().unwrap()),
    ];
    let run = |args: &[&str]| {
        let mut all = vec!["--config", client.to_str().unwrap()];
        all.extend_from_slice(args);
        json_out(&open_cli_product_tests::cli(&all, &env))
    };
    let listed = run(&["catalog", "list", "--format", "json"]);
    let ids = view_tool_ids(&listed);
    assert_eq!(ids, [KEYED], "the child's scopes, not the parent's");
    assert_eq!(
        run(&["demo", "keyed", "keyed-whoami"]),
        json!({"owner": "alice"})
    );
    let rows = audit_rows(&s.rt, 1, |v| v["eventType"] == "tool_execution");
    assert_eq!(rows[0]["lineage"]["actor"], json!({"sub": "session-9"}));
    assert_eq!(rows[0]["lineage"]["delegatedBy"], "alice");
    let granted: Vec<Value> = s
        .broker
        .exchanges()
        .into_iter()
        .filter(|e| e["outcome"] == "granted" && e["audience"] == open_cli_product_tests::AUDIENCE)
        .collect();
    assert_eq!(granted.len(), 1, "one child for both commands: {granted:?}");
}
