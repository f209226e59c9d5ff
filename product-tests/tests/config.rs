use open_cli_product_tests::{Fixture, Runtime, TestApi, demo_config, repo_root, run, text};
use serde_json::json;

fn validate(config: &std::path::Path) -> (Option<i32>, String, String) {
    let out = run(
        "open-cli-toolbox",
        &["validate", "--config", config.to_str().unwrap()],
        &[],
        None,
    );
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn every_problem_is_reported_with_file_and_key_path() {
    let fx = Fixture::new();
    let cfg = fx.write_json(
        ".cli.json",
        &json!({
            "cli": "1.0.0",
            "mode": {"default": "curatd"},
            "sources": {
                "tickets": {"type": "openapi", "urii": "tickets.yaml"},
                "files": {"type": "mcp", "uri": "x", "transport": {"type": "stdio", "url": "http://x"}}
            },
            "services": {"tix": {"source": "tickets-missing"}},
            "policy": {"deny": "everything"},
            "secrets": {"k": {"type": "env"}},
            "surprise": true
        }),
    );
    let (code, stdout, stderr) = validate(&cfg);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    let file = cfg.display().to_string();
    for want in [
        "mode.default: must be one of `discover`, `curated`, found `curatd` (did you mean `curated`?)",
        "sources.tickets.uri: is required for `openapi` sources",
        "sources.tickets.urii: unknown key (did you mean `uri`?)",
        "sources.files.uri: is not allowed on an `mcp` source",
        "sources.files.transport.command: is required for transport type `stdio`",
        "sources.files.transport.url: is not allowed for transport type `stdio`",
        "services.tix.source: names source `tickets-missing`, which is not defined in `sources` (defined: files, tickets)",
        "policy.deny: must be an array of strings, found a string",
        "secrets.k.value: is required for `env` secrets",
        "surprise: unknown key",
    ] {
        assert!(
            stderr.contains(&format!("{file}: {want}")),
            "missing `{want}` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("configuration problems"), "{stderr}");

    // The runtime refuses to start with the same messages.
    let out = run(
        "open-cli-toolbox",
        &["--config", cfg.to_str().unwrap(), "--addr", "127.0.0.1:0"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("sources.tickets.urii: unknown key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "broken.cli.json",
        "{\n  \"cli\": \"1.0.0\",\n  \"mode\": {\"default\": \"discover\"}\n  \"sources\": {}\n}\n",
    );
    let (code, _, stderr) = validate(&cfg);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("{}:4:3: invalid JSON", cfg.display())),
        "{stderr}"
    );
}

#[test]
fn catalog_problems_name_the_source_and_operation() {
    let fx = Fixture::new();
    fx.write(
        "swagger.json",
        r#"{"swagger": "2.0", "info": {"title": "old"}, "paths": {}}"#,
    );
    fx.write(
        "dupes.yaml",
        "openapi: 3.0.3\ninfo: {title: d, version: '1'}\npaths:\n  /a:\n    get: {operationId: same, responses: {'200': {description: ok}}}\n  /b:\n    get: {operationId: same, responses: {'200': {description: ok}}}\n  /c/{id}:\n    get:\n      operationId: broken\n      security: [{nope: []}]\n      responses: {'200': {description: ok}}\n",
    );
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1", "mode": {"default": "discover"},
                "sources": {"old": {"type": "openapi", "uri": "swagger.json"}, "d": {"type": "openapi", "uri": "dupes.yaml"},
                            "gone": {"type": "openapi", "uri": "missing.yaml"}}}),
    );
    let (code, _, stderr) = validate(&cfg);
    assert_eq!(code, Some(1), "{stderr}");
    for want in [
        "Swagger 2.0 documents are not supported",
        "duplicate tool ID `a:same`: both GET /a and GET /b produce it",
        "GET /c/{id}: security scheme `nope` is not defined in components.securitySchemes",
        "GET /c/{id}: path parameter `id` is not declared",
        "sources.gone (",
        "missing.yaml: No such file or directory",
    ] {
        assert!(stderr.contains(want), "missing `{want}` in:\n{stderr}");
    }
}

#[test]
fn shipped_example_configs_validate() {
    let dir = repo_root().join("config/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".cli.json") {
            let (code, stdout, stderr) = validate(&path);
            assert_eq!(code, Some(0), "{}: {stderr}", path.display());
            assert!(stdout.contains(": ok: "), "{stdout}");
            checked += 1;
        }
    }
    assert!(
        checked >= 1,
        "no example configs found in {}",
        dir.display()
    );
}

#[test]
fn a_valid_config_serves_after_validate_says_ok() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(".cli.json", &demo_config(json!({})));
    let (code, stdout, _) = validate(&cfg);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("1 service(s), 17 tool(s), views: discover (17 tools), reader (4 tools)"),
        "{stdout}"
    );
    let rt = Runtime::start(&cfg);
    assert_eq!(rt.get("/readyz").status(), 200);
}
