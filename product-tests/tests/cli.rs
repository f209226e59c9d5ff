use open_cli_product_tests::{Fixture, TestApi, cli, run, start_demo_runtime, text};
use serde_json::{Value, json};

#[test]
fn catalog_list_json_matches_the_runtime() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let out = cli(
        &["--runtime", &rt.url, "catalog", "list", "--format", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let served = rt.catalog();
    assert_eq!(
        listed, served,
        "json output is the runtime's effective catalog"
    );
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr: {}",
        text(&out.stderr)
    );

    // Filters narrow view.tools only.
    let out = cli(
        &[
            "--runtime",
            &rt.url,
            "catalog",
            "list",
            "--format",
            "json",
            "--group",
            "auth",
            "--safety",
            "read-only",
        ],
        &[],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v["view"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    assert!(ids.iter().all(|i| i.starts_with("demo:auth")));
}

#[test]
fn piped_output_defaults_to_json_and_table_is_aligned() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let out = cli(
        &["catalog", "list", "--agent-profile", "reader"],
        &[("OPEN_CLI_RUNTIME_URL", &rt.url)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json when stdout is not a terminal");
    assert_eq!(v["view"]["name"], "reader");

    let out = cli(
        &[
            "--runtime",
            &rt.url,
            "catalog",
            "list",
            "--format",
            "table",
            "--service",
            "demo",
            "--group",
            "items",
        ],
        &[],
    );
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TOOL", "SERVICE", "GROUP", "COMMAND", "METHOD", "SUMMARY"]
    );
    assert_eq!(lines.len(), 6, "{table}");
    let col = lines[0].find("COMMAND").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[col..].starts_with(|c: char| c.is_ascii_lowercase())),
        "{table}"
    );
    assert!(
        table.contains("demo:createItem  demo     items  create-item"),
        "{table}"
    );

    let out = cli(
        &[
            "--runtime",
            &rt.url,
            "catalog",
            "list",
            "--format",
            "yaml",
            "--group",
            "diagnostics",
        ],
        &[],
    );
    let yaml = text(&out.stdout);
    assert!(yaml.contains("catalogVersion: 1.0.0"), "{yaml}");
}

#[test]
fn runtime_is_found_by_flag_then_env_then_config() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    // Client config naming the runtime in runtime.remote.url, read from the working directory.
    let client_dir = Fixture::new();
    client_dir.write_json(".cli.json", &json!({"cli": "1.0.0", "mode": {"default": "discover"}, "runtime": {"mode": "remote", "remote": {"url": rt.url}}}));
    let out = run(
        "open-cli",
        &["runtime", "info", "--format", "json"],
        &[],
        Some(client_dir.path()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["url"], rt.url);

    // The env variable beats the config; the flag beats both.
    let dead = "http://127.0.0.1:9";
    let out = run(
        "open-cli",
        &["runtime", "info"],
        &[("OPEN_CLI_RUNTIME_URL", dead)],
        Some(client_dir.path()),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "env var wins and is unreachable"
    );
    assert!(text(&out.stderr).contains("cannot reach the runtime at http://127.0.0.1:9"));
    let out = run(
        "open-cli",
        &["--runtime", &rt.url, "runtime", "info"],
        &[("OPEN_CLI_RUNTIME_URL", dead)],
        Some(client_dir.path()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Nothing configured: usage error with a hint.
    let empty = Fixture::new();
    let out = run("open-cli", &["runtime", "info"], &[], Some(empty.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: no runtime to talk to"), "{err}");
    assert!(err.contains("hint: pass --runtime"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_request_config_path_mismatch_is_reported_with_the_runtimes_code() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let client_dir = Fixture::new();
    let cfg = client_dir.write_json(
        "client.cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"},
                "runtime": {"remote": {"url": rt.url, "requestConfigPath": "/srv/elsewhere/.cli.json"}}}),
    );
    let out = cli(&["--config", cfg.to_str().unwrap(), "catalog", "list"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("HTTP 409, runtime_attach_mismatch"), "{err}");
    assert!(err.contains("request id: "), "{err}");
    assert!(
        err.contains("hint: the runtime serves another config"),
        "{err}"
    );

    // With the bound path it works.
    let cfg = client_dir.write_json(
        "ok.cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"},
                "runtime": {"remote": {"url": rt.url, "requestConfigPath": rt.config}}}),
    );
    let out = cli(&["--config", cfg.to_str().unwrap(), "catalog", "list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_invalid_client_config_is_a_usage_error() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "bad.cli.json",
        r#"{"cli": "1", "mode": {"default": "discover"}, "runtime": {"remote": {"ur": "x"}}}"#,
    );
    let out = cli(&["--config", cfg.to_str().unwrap(), "runtime", "info"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("runtime.remote.ur: unknown key (did you mean `url`?)"),
        "{err}"
    );
}

#[test]
fn tool_schema_by_id_and_by_command_words() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let by_id = cli(
        &[
            "--runtime",
            &rt.url,
            "tool",
            "schema",
            "demo:getItem",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(by_id.status.code(), Some(0), "{}", text(&by_id.stderr));
    let tool: Value = serde_json::from_slice(&by_id.stdout).unwrap();
    let served = rt.catalog();
    let want = served["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "demo:getItem")
        .unwrap();
    assert_eq!(&tool, want);
    for words in [vec!["demo", "items", "get-item"], vec!["demo", "get-item"]] {
        let mut args = vec!["--runtime", rt.url.as_str(), "tool", "schema"];
        args.extend(&words);
        args.extend(["--format", "json"]);
        let out = cli(&args, &[]);
        assert_eq!(out.stdout, by_id.stdout, "{words:?}");
    }
    let pretty = cli(
        &[
            "--runtime",
            &rt.url,
            "tool",
            "schema",
            "demo:listItems",
            "--format",
            "pretty",
        ],
        &[],
    );
    let p = text(&pretty.stdout);
    assert!(
        p.lines()
            .any(|l| l.starts_with("request ") && l.ends_with(" GET /items")),
        "{p}"
    );
    assert!(p.contains("--x-trace-id [header]"), "{p}");

    let missing = cli(&["--runtime", &rt.url, "tool", "schema", "demo:nope"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no tool with ID `demo:nope`"));
    // In the catalog but outside the selected view.
    let hidden = cli(
        &[
            "--runtime",
            &rt.url,
            "--agent-profile",
            "reader",
            "tool",
            "schema",
            "demo:deleteItem",
        ],
        &[],
    );
    assert_eq!(hidden.status.code(), Some(2));
    assert!(
        text(&hidden.stderr).contains("is not in the `reader` view"),
        "{}",
        text(&hidden.stderr)
    );
}

#[test]
fn the_cli_does_not_link_pingora() {
    let out = std::process::Command::new("cargo")
        .args([
            "tree",
            "-p",
            "open-cli",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(open_cli_product_tests::repo_root())
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = text(&out.stdout);
    assert!(
        tree.contains("reqwest"),
        "sanity: the tree lists dependencies"
    );
    assert!(
        !tree.contains("pingora"),
        "open-cli must not depend on pingora"
    );
}

/// `catalog list --service/--group` naming nothing in the view: a usage error that says what
/// there is and suggests the near miss, not an empty list.
#[test]
fn unknown_service_or_group_filters_are_usage_errors() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let list = |extra: &[&str]| {
        let mut args = vec!["--runtime", rt.url.as_str(), "catalog", "list"];
        args.extend_from_slice(extra);
        cli(&args, &[])
    };
    let out = list(&["--service", "demoo"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown --service `demoo`") && err.contains("did you mean `demo`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let out = list(&["--service", "demo", "--group", "itemz"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown --group `itemz`") && err.contains("did you mean `items`"),
        "{err}"
    );
    // A known group is still listed.
    let out = list(&["--group", "items", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
