use std::io::Write;
use std::process::{Command, Output, Stdio};

use open_cli_product_tests::{
    Fixture, McpEverything, Runtime, TestApi, bin, cli, demo_config, isolate, json_out,
    start_demo_runtime, text, usage_error,
};
use serde_json::{Value, json};

/// `open-cli --runtime <url> <args…>`.
fn oc(rt: &Runtime, args: &[&str]) -> Output {
    open_cli_product_tests::cli_at(&rt.url, args, &[])
}

/// `open-cli` with `input` on stdin.
fn oc_stdin(rt: &Runtime, args: &[&str], input: &str) -> Output {
    let mut cmd = Command::new(bin("open-cli"));
    isolate(&mut cmd);
    cmd.arg("--runtime")
        .arg(&rt.url)
        .args(args)
        .env_remove("OPEN_CLI_RUNTIME_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

// ---- without the execute endpoint: help, dry-run, validation ----

#[test]
fn help_lists_services_groups_commands_and_typed_flags() {
    // The static help needs no runtime and documents tool commands and exit code 5.
    let out = cli(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    assert!(
        help.contains("open-cli <service> [<group>] <command>"),
        "{help}"
    );
    assert!(help.contains("5 the upstream API answered"), "{help}");

    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let out = oc(&rt, &["demo", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for group in ["items", "diagnostics", "auth"] {
        assert!(help.contains(group), "{group} in\n{help}");
    }
    assert!(help.contains("get-item"), "{help}");

    let out = oc(&rt, &["demo", "items", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for (command, summary) in [
        ("list-items", "List items"),
        ("create-item", "Create an item"),
        ("get-item", "Get one item"),
        ("update-item", "Replace an item"),
        ("delete-item", "Delete an item"),
    ] {
        let line = help
            .lines()
            .find(|l| l.starts_with(&format!("  {command} ")))
            .unwrap_or_else(|| panic!("{command} in\n{help}"));
        assert!(line.contains(summary), "{line}");
    }

    let out = oc(&rt, &["demo", "items", "get-item", "--help"]);
    let help = text(&out.stdout);
    assert!(
        help.contains("<item-id>")
            && help.contains("Item identifier.")
            && help.contains("[integer]"),
        "{help}"
    );
    assert!(
        help.contains("Tool: demo:getItem (GET /items/{itemId})"),
        "{help}"
    );

    let out = oc(&rt, &["demo", "items", "list-items", "--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("--limit <INTEGER>"), "{help}");
    assert!(help.contains("Maximum number of items. [query]"), "{help}");
    assert!(help.contains("--x-trace-id <STRING>"), "{help}");
    assert!(help.contains("[header]"), "{help}");
    assert!(help.contains("--dry-run"), "{help}");

    let out = oc(&rt, &["demo", "diagnostics", "slow-response", "--help"]);
    let help = text(&out.stdout);
    let ms = help
        .lines()
        .find(|l| l.trim_start().starts_with("--ms <INTEGER>"))
        .unwrap_or_else(|| panic!("--ms in\n{help}"));
    assert!(ms.contains("[required]"), "{ms}");

    let out = oc(&rt, &["demo", "items", "create-item", "--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("--body <JSON|@FILE|->"), "{help}");
    assert!(help.contains("application/json"), "{help}");
    // The body's fields, with their types, requirement and limits.
    assert!(
        help.contains("Request body (application/json, required), --body JSON with:"),
        "{help}"
    );
    assert!(
        help.lines().any(|l| l.trim_start().starts_with("name")
            && l.contains("[string; required; min length 1]")),
        "{help}"
    );
    assert!(
        help.lines()
            .any(|l| l.trim_start().starts_with("tag") && l.contains("[string]")),
        "{help}"
    );
}

#[test]
fn dry_run_prints_the_request_and_sends_nothing() {
    let api = TestApi::start();
    let (fx, rt) = start_demo_runtime(&api);

    let out = oc(
        &rt,
        &[
            "demo",
            "items",
            "get-item",
            "42",
            "--format",
            "json",
            "--dry-run",
        ],
    );
    let v = json_out(&out);
    assert_eq!(
        v,
        json!({
            "toolId": "demo:getItem",
            "method": "GET",
            "url": format!("{}/items/42", api.url),
            "headers": {},
            "auth": "not_required",
            "approval": "not_required"
        })
    );

    // Query and header flags under their original names; values encoded.
    let out = oc(
        &rt,
        &[
            "demo",
            "items",
            "list-items",
            "--limit",
            "5",
            "--tag",
            "a b&c",
            "--x-trace-id",
            "t-1",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let v = json_out(&out);
    assert_eq!(v["url"], format!("{}/items?limit=5&tag=a+b%26c", api.url));
    assert_eq!(v["headers"], json!({"X-Trace-Id": "t-1"}));

    // Any value from a file (`@path`, the final newline dropped; typed as usual), `@@` for a
    // literal `@`.
    let file = fx.write("limit.txt", "7\n");
    let at_file = format!("@{}", file.display());
    let out = oc(
        &rt,
        &[
            "demo",
            "items",
            "list-items",
            "--limit",
            &at_file,
            "--x-trace-id",
            "@@t",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let v = json_out(&out);
    assert_eq!(v["url"], format!("{}/items?limit=7", api.url));
    assert_eq!(v["headers"], json!({"X-Trace-Id": "@t"}));
    let bad = fx.write("bad.txt", "seven");
    let out = oc(
        &rt,
        &[
            "demo",
            "items",
            "list-items",
            "--limit",
            &format!("@{}", bad.display()),
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // Upstream auth is reported (the demo's path parameters are integers; the encoding of
    // path arguments is covered by the CLI's unit tests).
    let out = oc(
        &rt,
        &[
            "demo",
            "auth",
            "auth-bearer",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let v = json_out(&out);
    assert_eq!(v["auth"], "required");

    // A body, in the text form.
    let out = oc(
        &rt,
        &[
            "demo",
            "items",
            "create-item",
            "--body",
            r#"{"name":"x"}"#,
            "--dry-run",
            "--format",
            "pretty",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.starts_with(&format!("POST {}/items\n", api.url)), "{t}");
    assert!(
        t.contains("Auth: not_required\nApproval: not_required\n"),
        "{t}"
    );
    assert!(t.contains("Content-Type: application/json\n"), "{t}");
    assert!(t.contains(r#"{"name":"x"}"#), "{t}");

    assert!(
        api.requests_for("/items/42").is_empty() && api.requests_for("/items").is_empty(),
        "a dry run calls nothing: {:?}",
        api.requests()
    );
}

#[test]
fn approval_shows_in_dry_run() {
    let api = TestApi::start();
    let fx = Fixture::new();
    // `safety.requiresApproval` comes from the description (`x-cli-safety`).
    let spec = api.spec_yaml().replace(
        "operationId: deleteItem\n",
        "operationId: deleteItem\n      x-cli-safety: {requiresApproval: true}\n",
    );
    assert!(spec.contains("requiresApproval"), "the demo spec changed");
    fx.write("demo.openapi.yaml", &spec);
    let cfg = fx.write_json(".cli.json", &demo_config(json!({})));
    let rt = Runtime::start(&cfg);
    let out = oc(
        &rt,
        &[
            "demo",
            "items",
            "delete-item",
            "7",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let v = json_out(&out);
    assert_eq!(v["method"], "DELETE");
    assert_eq!(v["url"], format!("{}/items/7", api.url));
    assert_eq!(v["approval"], "required");
    let out = oc(&rt, &["demo", "items", "delete-item", "--help"]);
    assert!(
        text(&out.stdout).contains("Requires approval: pass --approval"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn typed_flags_are_checked_before_any_request() {
    let api = TestApi::start();
    let (fx, rt) = start_demo_runtime(&api);

    let err = usage_error(&oc(&rt, &["demo", "items", "list-items", "--limit", "ten"]));
    assert!(
        err.contains("--limit <INTEGER>") && err.contains("expected an integer"),
        "{err}"
    );

    let err = usage_error(&oc(&rt, &["demo", "items", "get-item", "abc"]));
    assert!(
        err.contains("<item-id>") && err.contains("expected an integer"),
        "{err}"
    );

    let err = usage_error(&oc(&rt, &["demo", "items", "get-item"]));
    assert!(err.contains("<item-id>"), "{err}");

    let err = usage_error(&oc(&rt, &["demo", "diagnostics", "slow-response"]));
    assert!(err.contains("--ms <INTEGER>"), "{err}");

    let err = usage_error(&oc(&rt, &["demo", "items", "create-item"]));
    assert!(err.contains("--body"), "{err}");

    let err = usage_error(&oc(
        &rt,
        &["demo", "items", "create-item", "--body", "{nope"],
    ));
    assert!(err.contains("not valid JSON"), "{err}");

    let missing = fx.path().join("missing.json");
    let spec = format!("@{}", missing.display());
    let err = usage_error(&oc(&rt, &["demo", "items", "create-item", "--body", &spec]));
    assert!(err.contains("cannot read the request body"), "{err}");

    let err = usage_error(&oc(
        &rt,
        &["demo", "items", "list-items", "--no-such-flag", "1"],
    ));
    assert!(err.contains("--no-such-flag"), "{err}");

    assert!(
        api.requests()
            .iter()
            .all(|r| r["path"] == "/openapi.yaml" || r["path"] == "/openapi.json"),
        "nothing reached the upstream: {:?}",
        api.requests()
    );
}

#[test]
fn unknown_commands_are_usage_errors_with_suggestions() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);

    let err = usage_error(&oc(&rt, &["demo", "items", "get-itme", "1"]));
    assert!(
        err.contains("get-itme") && err.contains("get-item"),
        "{err}"
    );

    let err = usage_error(&oc(&rt, &["dmeo", "items", "list-items"]));
    assert!(err.contains("dmeo") && err.contains("demo"), "{err}");

    let err = usage_error(&oc(&rt, &["catalgo", "list"]));
    assert!(err.contains("open-cli catalog"), "{err}");

    // Without any runtime, a tool command is an unknown command, not a crash.
    let err = usage_error(&cli(&["demo", "items", "list-items"], &[]));
    assert!(err.contains("unknown command `demo`"), "{err}");
    assert!(err.contains("--runtime"), "{err}");
}

// ---- through POST /v1/tools/execute ----

#[test]
fn tool_commands_execute_through_the_runtime() {
    let api = TestApi::start();
    let (fx, rt) = start_demo_runtime(&api);

    let v = json_out(&oc(
        &rt,
        &["demo", "items", "list-items", "--format", "json"],
    ));
    assert_eq!(v, json!([]));

    let v = json_out(&oc(
        &rt,
        &[
            "demo",
            "items",
            "create-item",
            "--body",
            r#"{"name":"lamp","tag":"home"}"#,
            "--format",
            "json",
        ],
    ));
    assert_eq!(v, json!({"id": 1, "name": "lamp", "tag": "home"}));

    let file = fx.write("item.json", r#"{"name":"desk"}"#);
    let spec = format!("@{}", file.display());
    let v = json_out(&oc(
        &rt,
        &[
            "demo",
            "items",
            "create-item",
            "--body",
            &spec,
            "--format",
            "json",
        ],
    ));
    assert_eq!(v["name"], "desk");

    let v = json_out(&oc_stdin(
        &rt,
        &[
            "demo",
            "items",
            "create-item",
            "--body",
            "-",
            "--format",
            "json",
        ],
        r#"{"name":"chair","tag":"home"}"#,
    ));
    assert_eq!(v["name"], "chair");

    let v = json_out(&oc(
        &rt,
        &["demo", "items", "get-item", "1", "--format", "json"],
    ));
    assert_eq!(v, json!({"id": 1, "name": "lamp", "tag": "home"}));

    // Flags reach the upstream under their original names.
    let v = json_out(&oc(
        &rt,
        &[
            "demo",
            "items",
            "list-items",
            "--tag",
            "home",
            "--limit",
            "1",
            "--x-trace-id",
            "trace-7",
            "--format",
            "json",
        ],
    ));
    assert_eq!(v, json!([{"id": 1, "name": "lamp", "tag": "home"}]));
    let last = api.requests_for("/items").pop().unwrap();
    let query = last["query"].as_str().unwrap();
    assert!(
        query.contains("tag=home") && query.contains("limit=1"),
        "{last}"
    );
    assert_eq!(last["headers"]["x-trace-id"], "trace-7");

    // Table: columns from the keys.
    let out = oc(&rt, &["demo", "items", "list-items", "--format", "table"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let mut lines = t.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("NAME") && header.contains("TAG"),
        "{t}"
    );
    assert_eq!(lines.count(), 3, "{t}");

    // yaml: the same shape as json (the body).
    let out = oc(&rt, &["demo", "items", "get-item", "2", "--format", "yaml"]);
    let from_yaml: Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let out = oc(&rt, &["demo", "items", "get-item", "2", "--format", "json"]);
    let from_json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_yaml, from_json);
    assert_eq!(from_json["name"], "desk");

    // Non-JSON answers are printed raw in json format.
    let out = oc(
        &rt,
        &["demo", "diagnostics", "get-text", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hello"), "{}", text(&out.stdout));
}

#[test]
fn upstream_errors_exit_5_and_still_print_the_answer() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);

    let out = oc(
        &rt,
        &["demo", "items", "get-item", "999999", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["code"], 404);
    assert_eq!(text(&out.stderr).trim(), "error: upstream answered 404");

    let out = oc(
        &rt,
        &[
            "demo",
            "diagnostics",
            "get-status",
            "418",
            "--format",
            "yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim(), "error: upstream answered 418");

    let out = oc(
        &rt,
        &[
            "demo",
            "items",
            "create-item",
            "--body",
            r#"{"name":""}"#,
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("422"), "{}", text(&out.stderr));
}

#[test]
fn runtime_refusals_exit_1_with_hints() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({
            "policy": {"approvalRequired": ["demo:deleteItem"]},
            "secrets": {"demo.bearerAuth": {"type": "env", "value": "OPEN_CLI_TEST_UNSET_BEARER"}}
        })),
    );
    let rt = Runtime::start(&cfg);
    json_out(&oc(
        &rt,
        &[
            "demo",
            "items",
            "create-item",
            "--body",
            r#"{"name":"x"}"#,
            "--format",
            "json",
        ],
    ));

    // `policy.approvalRequired` shows in the catalog the CLI reads: in help, in a dry run
    // and in the safety filter, not only when the runtime refuses the call.
    let out = oc(&rt, &["demo", "items", "delete-item", "--help"]);
    assert!(
        text(&out.stdout).contains("Requires approval"),
        "{}",
        text(&out.stdout)
    );
    let plan = json_out(&oc(
        &rt,
        &[
            "demo",
            "items",
            "delete-item",
            "1",
            "--dry-run",
            "--format",
            "json",
        ],
    ));
    assert_eq!(plan["approval"], "required", "{plan}");
    let listed = json_out(&oc(
        &rt,
        &[
            "catalog",
            "list",
            "--safety",
            "requires-approval",
            "--format",
            "json",
        ],
    ));
    assert!(listed.to_string().contains("demo:deleteItem"), "{listed}");

    let out = oc(&rt, &["demo", "items", "delete-item", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("approval_required") && err.contains("--approval"),
        "{err}"
    );
    assert_eq!(
        api.requests_for("/items/1").len(),
        0,
        "refused before the upstream"
    );

    let out = oc(&rt, &["demo", "items", "delete-item", "1", "--approval"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(api.requests_for("/items/1").len(), 1);
    // An empty answer is named on stderr (stdout stays empty).
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("succeeded") && text(&out.stderr).contains("no content"),
        "{}",
        text(&out.stderr)
    );

    let out = oc(&rt, &["demo", "auth", "auth-bearer"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("credentials_unavailable") && err.contains("secrets"),
        "{err}"
    );

    // A curated view without the tool: the command does not exist there.
    let err = usage_error(&oc(
        &rt,
        &[
            "--agent-profile",
            "reader",
            "demo",
            "items",
            "create-item",
            "--body",
            "{}",
        ],
    ));
    assert!(err.contains("create-item"), "{err}");
}

#[test]
fn mcp_tools_take_typed_property_flags_or_a_body() {
    let (cmd, args) = McpEverything::stdio_command();
    let fx = Fixture::new();
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"},
            "sources": {"everything": {"type": "mcp", "transport": {"type": "stdio", "command": cmd, "args": args}}},
            "services": {"everything": {"source": "everything"}}}),
    );
    let rt = Runtime::start(&cfg);

    let out = oc(&rt, &["everything", "get-sum", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    assert!(
        help.contains("--a <NUMBER>") && help.contains("--b <NUMBER>"),
        "{help}"
    );

    let out = oc(
        &rt,
        &[
            "everything",
            "get-sum",
            "--a",
            "2",
            "--b",
            "40",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let v = json_out(&out);
    assert_eq!(v["method"], "MCP");
    assert_eq!(v["body"], json!({"a": 2, "b": 40}));

    let err = usage_error(&oc(
        &rt,
        &["everything", "get-sum", "--a", "two", "--b", "1"],
    ));
    assert!(err.contains("expected a number"), "{err}");
    // A number is sent exactly as typed or refused, never rounded (issue 15, item 10).
    let err = usage_error(&oc(
        &rt,
        &[
            "everything",
            "get-sum",
            "--a",
            "12345678901234567890123",
            "--b",
            "1",
        ],
    ));
    assert!(
        err.contains("--a") && err.contains("cannot be sent exactly"),
        "{err}"
    );
    let out = oc(
        &rt,
        &[
            "everything",
            "get-sum",
            "--a",
            "9007199254740993",
            "--b",
            "0.1",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let v = json_out(&out);
    assert_eq!(v["body"], json!({"a": 9_007_199_254_740_993_i64, "b": 0.1}));
    let err = usage_error(&oc(
        &rt,
        &["everything", "get-sum", "--a", "2", "--body", "{}"],
    ));
    assert!(err.contains("cannot be used with"), "{err}");

    let v = json_out(&oc(
        &rt,
        &[
            "everything",
            "get-sum",
            "--a",
            "2",
            "--b",
            "40",
            "--format",
            "json",
        ],
    ));
    assert!(
        v["content"][0]["text"].as_str().unwrap().contains("42"),
        "{v}"
    );
    let v = json_out(&oc(
        &rt,
        &[
            "everything",
            "get-sum",
            "--body",
            r#"{"a": 1, "b": 2}"#,
            "--format",
            "json",
        ],
    ));
    assert!(
        v["content"][0]["text"].as_str().unwrap().contains('3'),
        "{v}"
    );
}

/// A tool call that outlives `--timeout` is reported as exactly that, with the request ID
/// the runtime audits it under (it finishes the call), not as an unreachable runtime.
#[test]
fn a_call_past_the_timeout_names_its_request_id() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let out = oc(
        &rt,
        &[
            "--timeout",
            "1",
            "demo",
            "diagnostics",
            "slow-response",
            "--ms",
            "2500",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("within --timeout 1s"), "{err}");
    assert!(err.contains("may still complete"), "{err}");
    assert!(!err.contains("is it running"), "{err}");
    let rid = err
        .split("request ID ")
        .nth(1)
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .next()
        })
        .unwrap_or_else(|| panic!("no request ID: {err}"))
        .to_string();
    assert!(rid.starts_with("cli-"), "{err}");
    // The runtime finished it, under that ID.
    let rows = open_cli_product_tests::audit_rows(&rt, 1, |v| v["requestId"] == rid.as_str());
    assert_eq!(rows[0]["toolId"], "demo:slowResponse", "{}", rows[0]);
    assert_eq!(rows[0]["statusCode"], 200, "{}", rows[0]);
}

/// `--jq` filters JSON output in process, for built-in and tool commands alike, wherever it
/// stands on the command line; a bad program is a usage error.
#[test]
fn jq_filters_the_output() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    for name in ["lamp", "desk"] {
        json_out(&oc(
            &rt,
            &[
                "demo",
                "items",
                "create-item",
                "--body",
                &format!(r#"{{"name":"{name}"}}"#),
                "--format",
                "json",
            ],
        ));
    }
    let out = oc(&rt, &["demo", "items", "list-items", "--jq", ".[].name"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"lamp\"\n\"desk\"\n");
    let out = oc(
        &rt,
        &["--jq", "[.view.tools[].id] | length", "catalog", "list"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let n: usize = text(&out.stdout).trim().parse().unwrap();
    assert!(n > 10, "{n}");
    let out = oc(&rt, &["catalog", "list", "--jq", ".view.tools["]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--jq"), "{}", text(&out.stderr));
}
