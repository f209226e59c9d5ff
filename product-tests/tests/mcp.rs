use base64::Engine as _;
use open_cli_product_tests::{Fixture, McpEverything, Runtime};
use serde_json::{Value, json};

/// The tools server-everything 2026.8.31 lists.
const EVERYTHING: [&str; 13] = [
    "echo",
    "get-annotated-message",
    "get-env",
    "get-resource-links",
    "get-resource-reference",
    "get-structured-content",
    "get-sum",
    "get-tiny-image",
    "gzip-file-as-resource",
    "simulate-research-query",
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    "trigger-long-running-operation",
];

fn start(config: Value) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    let mut base = json!({"cli": "1.0.0", "mode": {"default": "discover"}});
    base.as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    let cfg = fx.write_json(".cli.json", &base);
    let rt = Runtime::start(&cfg);
    (fx, rt)
}

fn tool_names(cat: &Value, service: &str) -> Vec<String> {
    cat["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["id"]
                .as_str()
                .unwrap()
                .strip_prefix(&format!("{service}:"))
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_stdio_mcp_server_becomes_a_service() {
    let (node, args) = McpEverything::stdio_command();
    let (_fx, rt) = start(json!({"sources": {"everything": {"type": "mcp",
        "transport": {"type": "stdio", "command": node, "args": args}, "disabledTools": ["get-env"]}}}));
    let cat = rt.catalog();
    let want: Vec<&str> = EVERYTHING
        .iter()
        .copied()
        .filter(|t| *t != "get-env")
        .collect();
    assert_eq!(
        tool_names(&cat, "everything"),
        want,
        "every listed tool but the disabled one"
    );
    let tools = cat["catalog"]["tools"].as_array().unwrap();
    let sum = tools
        .iter()
        .find(|t| t["id"] == "everything:get-sum")
        .unwrap();
    assert_eq!(sum["method"], "POST");
    assert_eq!(sum["path"], "/_mcp/everything/get-sum");
    assert_eq!(sum["group"], "everything");
    assert_eq!(sum["command"], "get-sum");
    assert_eq!(sum["operationId"], "get-sum");
    assert_eq!(
        sum["backend"],
        json!({"kind": "mcp", "sourceId": "everything", "toolName": "get-sum", "transport": "stdio", "inputWrapped": false})
    );
    let schema = &sum["requestBody"]["contentTypes"][0]["schema"];
    assert_eq!(schema["type"], "object");
    assert!(
        schema["properties"]["a"].is_object() && schema["properties"]["b"].is_object(),
        "{schema}"
    );
    // MCP annotations set safety (the reference ignores them).
    assert_eq!(
        sum["safety"],
        json!({"destructive": false, "readOnly": true, "requiresApproval": false, "idempotent": true})
    );
    let toggle = tools
        .iter()
        .find(|t| t["id"] == "everything:toggle-simulated-logging")
        .unwrap();
    assert_eq!(toggle["safety"]["readOnly"], false);
    assert_eq!(toggle["safety"]["idempotent"], false);
    let src = &cat["catalog"]["sources"][0];
    assert_eq!(
        (src["type"].as_str(), src["uri"].as_str()),
        (Some("mcp"), Some(""))
    );
    assert_eq!(cat["catalog"]["services"][0]["id"], "everything");
}

#[test]
fn streamable_http_via_the_mcp_servers_compat_form() {
    let server = McpEverything::start("streamableHttp");
    let (_fx, rt) = start(json!({"mcpServers": {"remote": {"type": "http", "url": server.url}}}));
    let cat = rt.catalog();
    assert_eq!(tool_names(&cat, "remote"), EVERYTHING);
    let echo = cat["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "remote:echo")
        .unwrap()
        .clone();
    assert_eq!(echo["backend"]["transport"], "streamable-http");
}

#[test]
fn legacy_sse_transport() {
    let server = McpEverything::start("sse");
    let (_fx, rt) = start(
        json!({"sources": {"legacy": {"type": "mcp", "transport": {"type": "sse", "url": server.url}}}}),
    );
    let cat = rt.catalog();
    assert_eq!(tool_names(&cat, "legacy"), EVERYTHING);
}

#[test]
fn overlays_and_curation_apply_to_mcp_services() {
    let (node, args) = McpEverything::stdio_command();
    let fx_overlay = Fixture::new();
    let overlay = fx_overlay.write(
        "o.yaml",
        "overlay: 1.0.0\nactions:\n  - target: \"$.paths['/_mcp/everything/echo'].post\"\n    update: {x-cli-name: say, x-cli-safety: {requiresApproval: true}}\n",
    );
    let (_fx, rt) = start(json!({
        "sources": {"everything": {"type": "mcp", "transport": {"type": "stdio", "command": node, "args": args}}},
        "services": {"everything": {"source": "everything", "alias": "ev", "overlays": [overlay]}},
        "curation": {"toolSets": {"safe": {"allow": ["everything:get-*"]}}},
        "agents": {"profiles": {"safe": {"mode": "curated", "toolSet": "safe"}}},
        // The overlay lives outside the config file's directory (issue 15 item 1).
        "runtime": {"server": {"documents": {"allowedDirectories": [fx_overlay.path()]}}}
    }));
    let cat = rt.catalog();
    let echo = cat["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "everything:echo")
        .unwrap()
        .clone();
    assert_eq!(echo["command"], "say");
    assert_eq!(echo["safety"]["requiresApproval"], true);
    let safe = rt.effective("?agentProfile=safe");
    let names = tool_names(
        &json!({"catalog": {"tools": safe["view"]["tools"]}}),
        "everything",
    );
    assert!(
        names.iter().all(|n| n.starts_with("get-")) && names.len() == 7,
        "{names:?}"
    );
}

#[test]
fn unreachable_servers_and_unresolvable_header_secrets_fail_the_build() {
    let fx = Fixture::new();
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1", "mode": {"default": "discover"},
            "mcpServers": {"down": {"url": "http://127.0.0.1:9/mcp"},
                           "authed": {"url": "http://127.0.0.1:9/mcp", "headerSecrets": {"X-Api-Key": "mcp.key"}},
                           "nothere": {"command": "/nonexistent/mcp-server"},
                           "clash": {"command": "x"}},
            "sources": {"clash": {"type": "openapi", "uri": "a.yaml"}},
            "secrets": {"mcp.key": {"type": "env", "value": "OPEN_CLI_TEST_UNSET_MCP_KEY"}}}),
    );
    let err = open_cli_product_tests::validate_fails(&cfg);
    assert!(
        err.contains("mcpServers.clash: is ambiguous with `sources.clash`"),
        "{err}"
    );
    let fixed = fx.write_json(
        ".cli.json",
        &json!({"cli": "1", "mode": {"default": "discover"},
            "mcpServers": {"down": {"url": "http://127.0.0.1:9/mcp"},
                           "authed": {"url": "http://127.0.0.1:9/mcp", "headerSecrets": {"X-Api-Key": "mcp.key"}},
                           "nothere": {"command": "/nonexistent/mcp-server"}},
            "secrets": {"mcp.key": {"type": "env", "value": "OPEN_CLI_TEST_UNSET_MCP_KEY"}}}),
    );
    let err = open_cli_product_tests::validate_fails(&fixed);
    for want in [
        "sources.down (mcp): MCP initialize failed: POST http://127.0.0.1:9/mcp",
        "sources.authed (mcp): transport.headerSecrets.X-Api-Key: secret `mcp.key`: environment variable `OPEN_CLI_TEST_UNSET_MCP_KEY` is not set",
        "sources.nothere (mcp): cannot start MCP server `/nonexistent/mcp-server`",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
}

/// A stdio source whose server records each start's PID in the returned file.
fn start_recorded_stdio() -> (Fixture, Runtime, std::path::PathBuf) {
    let (node, args) = McpEverything::stdio_command();
    let fx = Fixture::new();
    let pids = fx.path().join("pids");
    let wrapper =
        open_cli_product_tests::process::repo_root().join("product-tests/mcp/record-pid.sh");
    let mut argv = vec![json!(node)];
    argv.extend(args.iter().map(|a| json!(a)));
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"},
            "sources": {"everything": {"type": "mcp", "transport": {"type": "stdio",
                "command": wrapper, "args": argv, "env": {"MCP_PID_FILE": pids}}}},
            "services": {"everything": {"source": "everything"}}}),
    );
    let rt = Runtime::start(&cfg);
    (fx, rt, pids)
}

fn started_pids(file: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

fn get_sum(rt: &Runtime, a: u32, b: u32) -> Value {
    let body =
        base64::engine::general_purpose::STANDARD.encode(json!({"a": a, "b": b}).to_string());
    let (status, v) =
        open_cli_product_tests::execute(rt, json!({"toolId": "everything:get-sum", "body": body}));
    assert_eq!((status, &v["statusCode"]), (200, &json!(200)), "{v}");
    v
}

/// The process is gone (exited, or a zombie whose pipes are closed).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[test]
fn one_stdio_server_process_serves_the_catalog_build_and_over_a_hundred_calls() {
    let (_fx, rt, pids) = start_recorded_stdio();
    let t0 = std::time::Instant::now();
    for i in 0..20 {
        get_sum(&rt, i, i);
    }
    eprintln!(
        "a warm stdio tool call, end to end: {:?}",
        t0.elapsed() / 20
    );
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let rt = &rt;
            s.spawn(move || {
                for i in 0..25u32 {
                    let v = get_sum(rt, t, i);
                    let text = v["body"]["content"][0]["text"].as_str().unwrap();
                    assert!(text.contains(&(t + i).to_string()), "{v}");
                }
            });
        }
    });
    let started = started_pids(&pids);
    assert_eq!(
        started.len(),
        1,
        "one process for the build and 120 calls: {started:?}"
    );
    assert!(!gone(started[0]), "the server is still running");
}

#[test]
fn a_killed_stdio_server_is_started_again_and_the_next_call_succeeds() {
    let (_fx, rt, pids) = start_recorded_stdio();
    get_sum(&rt, 1, 2);
    let first = started_pids(&pids);
    assert_eq!(first.len(), 1, "{first:?}");
    unsafe { libc::kill(first[0], libc::SIGKILL) };
    open_cli_product_tests::process::wait_for(
        "the server to die",
        std::time::Duration::from_secs(10),
        || gone(first[0]).then_some(()),
    )
    .unwrap();
    let v = get_sum(&rt, 20, 22);
    assert!(
        v["body"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("42"),
        "{v}"
    );
    let now = started_pids(&pids);
    assert_eq!(now.len(), 2, "started once more: {now:?}");
    assert_ne!(now[1], first[0]);
    // The restarted server serves on.
    get_sum(&rt, 1, 1);
    assert_eq!(started_pids(&pids).len(), 2);
}

#[test]
fn a_sources_tools_list_changed_notification_rebuilds_the_catalog() {
    // The conformance fixture over stdio: `test_trigger_tool_change` adds `test_dynamic_tool`
    // and sends `notifications/tools/list_changed` on the long-lived session.
    let fixture = open_cli_product_tests::process::repo_root()
        .join("product-tests/conformance/fixture.mjs")
        .display()
        .to_string();
    let (_fx, rt) = start(json!({"sources": {"conf": {"type": "mcp",
        "transport": {"type": "stdio", "command": "node", "args": [fixture, "stdio"]}}},
        "services": {"conf": {"source": "conf", "alias": "conf"}}}));
    assert!(!tool_names(&rt.catalog(), "conf").contains(&"test_dynamic_tool".to_string()));
    let resp = open_cli_product_tests::http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .body(json!({"toolId": "conf:test_trigger_tool_change", "body": "e30="}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    open_cli_product_tests::process::wait_for(
        "the rebuilt catalog",
        std::time::Duration::from_secs(20),
        || {
            tool_names(&rt.catalog(), "conf")
                .contains(&"test_dynamic_tool".to_string())
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
