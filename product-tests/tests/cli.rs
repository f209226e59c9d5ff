use open_cli_product_tests::{
    Fixture, Runtime, TestApi, cli, cli_at, demo_config, run, start_demo_runtime, text, usage_error,
};
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
    let err = usage_error(&hidden);
    assert!(err.contains("is not in the `reader` view"), "{err}");
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
    let list = |extra: &[&str]| cli_at(&rt.url, &[&["catalog", "list"], extra].concat(), &[]);
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

/// `explain` gives the contract's report of one tool (approval as the runtime's policy says);
/// `search` ranks the view's tools by the words and says so on stderr when nothing matches.
#[test]
fn explain_and_search_find_and_describe_tools() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({"policy": {"approvalRequired": ["demo:deleteItem"]}})),
    );
    let rt = Runtime::start(&cfg);
    let run = |args: &[&str]| cli_at(&rt.url, args, &[]);
    let out = run(&[
        "explain",
        "demo",
        "items",
        "delete-item",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "toolId",
        "summary",
        "method",
        "path",
        "service",
        "group",
        "command",
        "description",
        "pathParams",
        "parameters",
        "requestBody",
        "guidance",
        "servers",
        "safety",
        "auth",
        "authAlternatives",
        "approvalRequired",
        "approvalStatus",
        "runtime",
        "runtimeAvailable",
    ] {
        assert!(r.get(key).is_some(), "{key} missing: {r}");
    }
    assert_eq!(r["toolId"], "demo:deleteItem");
    assert_eq!(r["method"], "DELETE");
    assert_eq!(r["approvalRequired"], true);
    assert_eq!(r["approvalStatus"], "required");
    assert_eq!(r["pathParams"][0]["name"], "item-id", "{r}");
    assert!(
        r["commandLine"]
            .as_str()
            .unwrap()
            .starts_with("open-cli demo items delete-item <item-id>"),
        "{r}"
    );
    // By ID, in text.
    let out = run(&["explain", "demo:listItems", "--format", "pretty"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("GET /items") && t.contains("not required"),
        "{t}"
    );
    // A tool outside the view: said so, no look-alikes.
    let out = run(&["--agent-profile", "reader", "explain", "demo:createItem"]);
    let err = usage_error(&out);
    assert!(err.contains("not in the `reader` view"), "{err}");

    // Search: ranked, every word counts.
    let out = run(&["search", "item", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["toolId"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"demo:getItem") && ids.contains(&"demo:deleteItem"),
        "{hits}"
    );
    let scores: Vec<u64> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_u64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{hits}");
    let out = run(&["search", "delete", "item", "--format", "json"]);
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits[0]["toolId"], "demo:deleteItem", "{hits}");
    // No match: exit 0, a message on stderr, an empty list on stdout.
    let out = run(&["search", "zebra-unicorn", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no tool of the"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "[]");
    // -v: each request on stderr, with its status, time and request ID.
    let out = run(&["search", "item", "-v", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("open-cli: GET ")
            && err.contains("/v1/catalog/effective -> ")
            && err.contains("(request cli-"),
        "{err}"
    );
    // An unknown service is a usage error.
    let out = run(&["search", "item", "--service", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// The warm catalog: the runtime tags each view per token (`ETag`) and answers 304 to a
/// current `If-None-Match`; the CLI keeps the last view and revalidates it, uses its copy on a
/// 304, takes the new one after a rebuild, and `--offline` reads the copy without asking.
#[test]
fn the_catalog_is_revalidated_with_etags_and_served_offline() {
    let api = TestApi::start();
    let (fx, mut rt) = start_demo_runtime(&api);
    let url = format!("{}/v1/catalog/effective", rt.url);
    let first = open_cli_product_tests::http().get(&url).send().unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(first.headers()["cache-control"], "private, no-cache");
    let again = open_cli_product_tests::http()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().unwrap().is_empty());
    // Another view has another tag.
    let other = open_cli_product_tests::http()
        .get(format!("{url}?agentProfile=reader"))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(other.status(), 200);

    // The compact form: each tool once, the catalog's IDs beside it; its own tag.
    // (Checked against the NTC schema, as every effective view the tests read.)
    let compact = rt.effective("?compact=true");
    let full: Value = open_cli_product_tests::http()
        .get(&url)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(compact["view"], full["view"]);
    assert_eq!(compact["catalog"]["tools"], json!([]));
    let views: Vec<Value> = full["catalog"]["effectiveViews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!({"name": v["name"], "mode": v["mode"], "tools": []}))
        .collect();
    assert_eq!(compact["catalog"]["effectiveViews"], json!(views));
    assert_eq!(compact["catalog"]["services"], full["catalog"]["services"]);
    let ids: Vec<&Value> = full["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(
        compact["compact"]["toolIds"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        ids
    );
    let resp = open_cli_product_tests::http()
        .get(format!("{url}?compact=true"))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "the compact form has its own tag");
    let resp = open_cli_product_tests::http()
        .get(format!("{url}?compact=yes"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);

    // The CLI: the first run caches, the second revalidates (304) and uses its copy.
    let cache = fx.path().join("cli-cache");
    let env = [("OPEN_CLI_CACHE_DIR", cache.to_str().unwrap())];
    let rt_url = rt.url.clone();
    let list = |extra: &[&str]| {
        cli_at(
            &rt_url,
            &[&["catalog", "list", "--format", "json"], extra].concat(),
            &env,
        )
    };
    let out = list(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files: Vec<_> = std::fs::read_dir(cache.join("catalogs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Mark the copy: a 304 must make the CLI print the copy, not a fresh download. The file
    // is a JSON header line (`etag`, `identity`), then the body as the runtime sent it.
    let file = std::fs::read_to_string(&files[0]).unwrap();
    let (header, body) = file.split_once('\n').unwrap();
    let header: Value = serde_json::from_str(header).unwrap();
    assert!(
        header["etag"].as_str().unwrap().starts_with("W/"),
        "{header}"
    );
    let marked = body.replacen("List items", "List items (cached copy)", 1);
    assert_ne!(marked, body, "the demo catalog changed");
    std::fs::write(&files[0], format!("{header}\n{marked}")).unwrap();
    let out = list(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(cached copy)"),
        "the copy was not used"
    );
    open_cli_product_tests::process::wait_for(
        "the runtime's 304 line",
        std::time::Duration::from_secs(10),
        || {
            rt.proc
                .logs()
                .lines()
                .any(|l| l.contains("path=/v1/catalog/effective status=304"))
                .then_some(())
        },
    )
    .unwrap();
    // Offline: the copy, with its age on stderr.
    let out = list(&["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(cached copy)"));
    assert!(
        text(&out.stderr).contains("offline"),
        "{}",
        text(&out.stderr)
    );
    // The tag is made of what the view holds, not of the process or the build: a rebuild
    // that changes nothing keeps it (the copy stays current), and a replica started on the
    // same config answers 304 to it too.
    let revalidate = |base: &str, tag: &str| {
        open_cli_product_tests::http()
            .get(format!("{base}/v1/catalog/effective"))
            .header("if-none-match", tag)
            .send()
            .unwrap()
            .status()
    };
    rt.sighup_and_wait();
    assert_eq!(
        revalidate(&rt.url, &etag),
        304,
        "a rebuild of the same catalog"
    );
    let out = list(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(cached copy)"));
    let config = fx.path().join(".cli.json");
    let replica = Runtime::start(&config);
    assert_eq!(revalidate(&replica.url, &etag), 304, "a replica");
    // Both report the same build, the part of the tag that tells builds apart.
    let build = |rt: &Runtime| {
        let info: Value = rt.get("/v1/runtime/info").json().unwrap();
        info["build"].as_str().unwrap_or_default().to_string()
    };
    let ours = build(&rt);
    assert!(
        ours.len() == 16 && ours.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ours}"
    );
    assert_eq!(build(&replica), ours);
    drop(replica);
    // A rebuild that changes the catalog (the curated view loses a tool) makes a new tag:
    // the CLI takes the new view (the mark is gone).
    fx.write_json(
        ".cli.json",
        &demo_config(json!({"curation": {"toolSets": {"read-only": {"allow": ["demo:list*"]}}}})),
    );
    rt.sighup_and_wait();
    assert_eq!(revalidate(&rt.url, &etag), 200, "a changed catalog");
    let out = list(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("(cached copy)"));
    // Offline with the runtime gone still works; offline without a copy is a usage error.
    rt.stop();
    let out = list(&["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let empty = fx.path().join("empty-cache");
    let out = cli(
        &["--runtime", rt_url.as_str(), "--offline", "catalog", "list"],
        &[("OPEN_CLI_CACHE_DIR", empty.to_str().unwrap())],
    );
    let err = usage_error(&out);
    assert!(err.contains("no cached catalog"), "{err}");
}

/// `status` reports the contract's shape, with the runtime reached or not; `catalog refresh`
/// rebuilds and shows each source's outcome.
#[test]
fn status_and_catalog_refresh() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({"policy": {"approvalRequired": ["demo:deleteItem"]}})),
    );
    let mut rt = Runtime::start(&cfg);
    let cfg_s = cfg.to_str().unwrap().to_string();
    let status = |url: &str| {
        let out = cli(
            &[
                "--runtime",
                url,
                "--config",
                &cfg_s,
                "status",
                "--format",
                "json",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let s = status(&rt.url);
    for key in [
        "runtime",
        "config",
        "sources",
        "auth",
        "approval",
        "scopePaths",
    ] {
        assert!(s.get(key).is_some(), "{key}: {s}");
    }
    assert_eq!(s["runtime"]["available"], true, "{s}");
    assert_eq!(s["runtime"]["mode"], "remote");
    assert!(
        s["config"]["activePath"]
            .as_str()
            .unwrap()
            .ends_with(".cli.json")
    );
    assert_eq!(s["sources"]["totalActive"], 1, "{s}");
    assert_eq!(s["sources"]["byType"]["openapi"], 1, "{s}");
    assert_eq!(s["auth"]["mode"], "none");
    assert_eq!(s["auth"]["required"], false);
    assert_eq!(s["approval"]["hasApprovalGatedTools"], true, "{s}");
    assert_eq!(s["approval"]["status"], "required_for_some");
    assert!(
        s["scopePaths"]["project"]
            .as_str()
            .unwrap()
            .ends_with(".cli.json")
    );

    let out = cli(
        &[
            "--runtime",
            &rt.url,
            "catalog",
            "refresh",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sources"][0]["id"], "demo", "{r}");
    assert!(r["refreshedAt"].is_string(), "{r}");
    let out = cli(
        &[
            "--runtime",
            &rt.url,
            "catalog",
            "refresh",
            "--format",
            "table",
        ],
        &[],
    );
    assert!(
        text(&out.stdout).contains("SOURCE"),
        "{}",
        text(&out.stdout)
    );

    // The runtime gone: status still answers, and says so.
    let url = rt.url.clone();
    rt.stop();
    let s = status(&url);
    assert_eq!(s["runtime"]["available"], false, "{s}");
    assert!(s["runtime"]["error"].is_string(), "{s}");
    assert_eq!(s["approval"]["status"], "unknown");
}

/// A demo runtime, a catalog cache of its own, and the completion script `open-cli
/// completions <shell>` prints, in a file.
struct Completion {
    _api: TestApi,
    fx: Fixture,
    rt: Runtime,
    cache: std::path::PathBuf,
    script: std::path::PathBuf,
}

impl Completion {
    fn new(shell: &str) -> Self {
        let api = TestApi::start();
        let (fx, rt) = start_demo_runtime(&api);
        let cache = fx.path().join("completion-cache");
        let mut c = Self {
            _api: api,
            script: fx.path().join(format!("complete.{shell}")),
            fx,
            rt,
            cache,
        };
        let script = cli(&["completions", shell], &c.env());
        assert_eq!(script.status.code(), Some(0), "{}", text(&script.stderr));
        c.script =
            c.fx.write(&format!("complete.{shell}"), &text(&script.stdout));
        c
    }

    /// Run the shell with `args` (its script, with the completion function called as on
    /// <TAB>) and this environment; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let shell = self.script.extension().unwrap().to_str().unwrap();
        let mut cmd = std::process::Command::new(shell);
        open_cli_product_tests::isolate(&mut cmd);
        let out = cmd
            .args(args)
            .env("ZDOTDIR", self.fx.path())
            .envs(self.env())
            .output()
            .unwrap_or_else(|e| panic!("{shell} (scripts/deps installs it): {e}"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    }

    /// The runtime and the cache, as the shell's environment passes them to `open-cli`.
    fn env(&self) -> [(&str, &str); 2] {
        [
            ("OPEN_CLI_RUNTIME_URL", self.rt.url.as_str()),
            ("OPEN_CLI_CACHE_DIR", self.cache.to_str().unwrap()),
        ]
    }
}

/// Shell completion: the script `open-cli completions bash` prints loads in bash and, through
/// bash's own completion hook, completes built-in commands and the catalog's tool commands
/// (service, group, command, flag, enum value) from the cached catalog.
#[test]
fn bash_completes_built_in_and_tool_commands() {
    let c = Completion::new("bash");
    let (script_path, cache) = (&c.script, &c.cache);
    // COMP_WORDS as bash splits the line; the function bash would call on <TAB>.
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_TYPE=9\n_clap_complete_open_cli open-cli '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            script_path.display(),
            quoted.join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        c.run(&["--norc", "-c", &program])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let first = complete(&["open-cli", "ca"]);
    assert!(first.iter().any(|c| c == "catalog"), "{first:?}");
    let services = complete(&["open-cli", "de"]);
    assert!(services.iter().any(|c| c == "demo"), "{services:?}");
    // The catalog was cached by that completion; the rest come from the cache.
    assert!(cache.join("catalogs").exists());
    let groups = complete(&["open-cli", "demo", "it"]);
    assert_eq!(groups, ["items"], "{groups:?}");
    let commands = complete(&["open-cli", "demo", "items", "delete"]);
    assert!(commands.iter().any(|c| c == "delete-item"), "{commands:?}");
    let flags = complete(&["open-cli", "demo", "items", "list-items", "--li"]);
    assert!(flags.iter().any(|c| c == "--limit"), "{flags:?}");
}

/// `init` writes a config from the demo API's description (fetched over HTTP) and says what
/// it found, refuses to overwrite; `config add-source`, `add-secret` and `remove-source` edit
/// the file in place (key order and formatting kept), and an edit that would make the config
/// invalid is refused with the file left byte-identical.
#[test]
fn init_and_config_edits_keep_the_file_valid() {
    let api = TestApi::start();
    let fx = Fixture::new();
    let cfg = fx.path().join(".cli.json");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let oc = |args: &[&str]| {
        let mut all = vec!["--config", cfg_s.as_str()];
        all.extend_from_slice(args);
        cli(&all, &[])
    };
    let spec_url = format!("{}/openapi.yaml", api.url);
    let out = oc(&["init", &spec_url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("operations in"), "{said}");
    assert!(said.contains("config add-secret"), "{said}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let name = written["services"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert_eq!(written["sources"][&name]["uri"], spec_url.as_str());
    // It loads, and a runtime serves it.
    let rt = Runtime::start(&cfg);
    assert!(!rt.catalog()["view"]["tools"].as_array().unwrap().is_empty());
    drop(rt);
    // Never over an existing file.
    let before = std::fs::read(&cfg).unwrap();
    let out = oc(&["init", &spec_url]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&cfg).unwrap(), before);

    // Edits keep what was there as it was.
    let hand = "{\n  \"mode\": {\"default\": \"discover\"},\n  \"cli\": \"1.0.0\",\n  \"sources\": {\n    \"demo\": {\"type\": \"openapi\", \"uri\": \"URI\"}\n  },\n  \"services\": {\"demo\": {\"source\": \"demo\"}}\n}\n"
        .replace("URI", &spec_url);
    std::fs::write(&cfg, &hand).unwrap();
    let out = oc(&[
        "config",
        "add-source",
        "tools",
        "--type",
        "mcp",
        "--url",
        "http://127.0.0.1:9/mcp",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let edited = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        edited.starts_with("{\n  \"mode\": {\"default\": \"discover\"},\n  \"cli\": \"1.0.0\",\n  \"sources\": {\n    \"demo\": {\"type\": \"openapi\", \"uri\": \""),
        "{edited}"
    );
    let v: Value = serde_json::from_str(&edited).unwrap();
    assert_eq!(
        v["sources"]["tools"]["transport"]["type"],
        "streamable-http"
    );
    assert_eq!(v["services"]["tools"]["source"], "tools");
    let out = oc(&[
        "config",
        "add-secret",
        "demo.bearerAuth",
        "--type",
        "env",
        "--env-value",
        "DEMO_TOKEN",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(
        v["secrets"]["demo.bearerAuth"],
        json!({"type": "env", "value": "DEMO_TOKEN"})
    );
    let out = oc(&["config", "remove-source", "tools"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert!(
        v["sources"].get("tools").is_none() && v["services"].get("tools").is_none(),
        "{v}"
    );

    // Invalid edits change nothing, byte for byte, and say why.
    let before = std::fs::read(&cfg).unwrap();
    for args in [
        vec![
            "config",
            "add-source",
            "bad",
            "--type",
            "openapi",
            "--uri",
            "ftp://x/y",
        ],
        vec!["config", "add-source", "demo", "--uri", "other.yaml"],
        vec!["config", "remove-source", "nope"],
        vec![
            "config",
            "add-secret",
            "s",
            "--type",
            "oauth2",
            "--mode",
            "implicit",
        ],
    ] {
        let out = oc(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            std::fs::read(&cfg).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }
    let out = oc(&[
        "config",
        "add-secret",
        "s",
        "--type",
        "oauth2",
        "--mode",
        "implicit",
    ]);
    assert!(
        text(&out.stderr).contains("not written"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn workflow_run_checks_a_workflow_without_running_it() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    fx.write(
        "flows.yaml",
        "workflows:\n  - workflowId: browse\n    steps:\n      - {stepId: list, operationId: listItems}\n      - {stepId: read, operationId: getItem}\n  - workflowId: purge\n    steps:\n      - {stepId: list, operationId: listItems}\n      - {stepId: drop, operationId: deleteItem}\n",
    );
    let mut cfg = demo_config(json!({"policy": {"approvalRequired": ["demo:deleteItem"]}}));
    cfg["services"]["demo"]["workflows"] = json!(["flows.yaml"]);
    let rt = Runtime::start(&fx.write_json(".cli.json", &cfg));
    let out = cli_at(
        &rt.url,
        &["workflow", "run", "browse", "--format", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"workflowId": "browse", "steps": ["list", "read"]})
    );
    let out = cli_at(
        &rt.url,
        &["workflow", "run", "browse", "--format", "table"],
        &[],
    );
    assert!(text(&out.stdout).contains("nothing was executed"));
    // A step that needs approval: refused with the runtime's code, and accepted with it.
    let out = cli_at(&rt.url, &["workflow", "run", "purge"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("approval_required"),
        "{}",
        text(&out.stderr)
    );
    let out = cli_at(
        &rt.url,
        &["--approval", "workflow", "run", "purge", "--format", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = cli_at(&rt.url, &["workflow", "run", "ghost"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("catalog.workflows"),
        "{}",
        text(&out.stderr)
    );
    // Nothing ran: no upstream call was made.
    let calls: Vec<Value> = api
        .requests()
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/items")))
        .collect();
    assert!(calls.is_empty(), "{calls:?}");
}

/// zsh: the script `open-cli completions zsh` prints registers with zsh's completion system
/// (`compinit`, `compdef`) and its completer, run by zsh as on <TAB>, completes built-in and
/// tool commands (zsh's `_describe` is replaced by one that prints what it was given).
#[test]
fn zsh_completes_built_in_and_tool_commands() {
    let c = Completion::new("zsh");
    let script_path = &c.script;
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "autoload -U compinit && compinit -u -D\nsource '{}'\n[[ $_comps[open-cli] == _clap_dynamic_completer_open_cli ]] || {{ print -u2 'not registered'; exit 3 }}\n_describe() {{ [[ $1 == -V ]] && shift; shift; print -l -- \"${{(@P)1}}\" }}\nwords=({})\nCURRENT={}\n_clap_dynamic_completer_open_cli\n",
            script_path.display(),
            quoted.join(" "),
            words.len(),
        );
        // zsh's `value:description` pairs.
        c.run(&["-f", "-c", &program])
            .lines()
            .map(|l| l.split(':').next().unwrap_or_default().trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let first = complete(&["open-cli", "ca"]);
    assert!(first.iter().any(|c| c == "catalog"), "{first:?}");
    let services = complete(&["open-cli", "de"]);
    assert!(services.iter().any(|c| c == "demo"), "{services:?}");
    let commands = complete(&["open-cli", "demo", "items", "delete"]);
    assert!(commands.iter().any(|c| c == "delete-item"), "{commands:?}");
}

/// GitHub-style commands repeat their group (`repos repos-get`); the command also answers
/// without the repeat (`repos get`), the catalog keeps the contract's name, and a near miss
/// is a usage error that suggests the command.
#[test]
fn a_command_that_repeats_its_group_answers_without_the_repeat() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write(
        "gh.yaml",
        &format!(
            "openapi: 3.0.3\ninfo: {{title: gh, version: '1'}}\nservers: [{{url: '{}'}}]\npaths:\n  /repos/{{owner}}/{{repo}}:\n    get:\n      operationId: repos/get\n      tags: [repos]\n      parameters:\n        - {{name: owner, in: path, required: true, schema: {{type: string}}}}\n        - {{name: repo, in: path, required: true, schema: {{type: string}}}}\n      responses: {{'200': {{description: ok}}}}\n",
            api.url
        ),
    );
    let cfg = json!({"cli": "1.0.0", "mode": {"default": "discover"},
        "sources": {"gh": {"type": "openapi", "uri": "gh.yaml"}},
        "services": {"gh": {"source": "gh", "alias": "gh"}}});
    let rt = Runtime::start(&fx.write_json(".cli.json", &cfg));
    let dry = |words: &[&str]| {
        let mut args = words.to_vec();
        args.extend(["--dry-run", "--format", "json"]);
        cli_at(&rt.url, &args, &[])
    };
    for words in [
        ["gh", "repos", "repos-get", "octo", "hello"],
        ["gh", "repos", "get", "octo", "hello"],
    ] {
        let out = dry(&words);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{words:?}: {}",
            text(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["toolId"], "gh:repos/get");
        assert_eq!(v["url"], format!("{}/repos/octo/hello", api.url));
    }
    let out = cli_at(&rt.url, &["catalog", "list", "--format", "json"], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["view"]["tools"][0]["command"], "repos-get");
    let out = dry(&["gh", "repos", "gett", "octo", "hello"]);
    let err = usage_error(&out);
    assert!(err.contains("similar subcommand exists: 'get'"), "{err}");
}

/// What `scripts/quickstart` prints is what the README says it prints.
#[test]
fn the_readme_lists_what_quickstart_prints() {
    let root = open_cli_product_tests::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let script = std::fs::read_to_string(root.join("scripts/quickstart")).unwrap();
    let block = |text: &str, start: &str, end: &str| -> Vec<String> {
        let from = text.find(start).unwrap_or_else(|| panic!("no `{start}`")) + start.len();
        let to = from
            + text[from..]
                .find(end)
                .unwrap_or_else(|| panic!("no `{end}`"));
        text[from..to]
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with("export PATH"))
            .map(str::to_string)
            .collect()
    };
    let listed = block(&readme, "and prints:\n\n```sh\n", "```");
    let printed = block(
        &script,
        "Try, in another terminal:\n",
        "\nThese are debug builds",
    );
    assert!(listed.len() > 5, "{listed:?}");
    assert_eq!(listed, printed);
}

/// `init` on GitHub's REST description (1,223 operations; the file `scripts/deps` fetches):
/// the name derived from it, the counts printed, a config the runtime serves with every
/// operation as a tool.
#[test]
fn init_starts_from_the_github_description() {
    let spec = open_cli_product_tests::repo_root().join("product-tests/specs/api.github.com.json");
    assert!(
        spec.exists(),
        "{} is missing: run scripts/deps",
        spec.display()
    );
    let fx = Fixture::new();
    let cfg = fx.path().join(".cli.json");
    let out = cli(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "init",
            spec.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("1223 operations in"), "{said}");
    // Outside the config's directory: its directory is trusted explicitly, and said so.
    assert!(said.contains("allowedDirectories"), "{said}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(
        written["runtime"]["server"]["documents"]["allowedDirectories"][0],
        spec.parent().unwrap().to_str().unwrap()
    );
    let services: Vec<&String> = written["services"].as_object().unwrap().keys().collect();
    assert_eq!(services.len(), 1, "{written}");
    assert!(services[0].contains("github"), "{written}");
    let rt = Runtime::start(&cfg);
    assert_eq!(
        rt.catalog()["view"]["tools"].as_array().unwrap().len(),
        1223
    );
}
