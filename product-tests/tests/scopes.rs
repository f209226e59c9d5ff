use open_cli_product_tests::{Fixture, Runtime, TestApi, run, text};
use serde_json::{Value, json};

/// Managed, user, project and local files around one project; returns (project dir, env).
struct Scopes {
    managed: Fixture,
    user: Fixture,
    project: Fixture,
}

impl Scopes {
    fn new(api: &TestApi) -> Self {
        let s = Self {
            managed: Fixture::new(),
            user: Fixture::new(),
            project: Fixture::new(),
        };
        s.managed.write_json(
            ".cli.json",
            &json!({"cli": "1.0.0", "mode": {"default": "discover"},
                    "policy": {"deny": ["demo:delete*"]},
                    "curation": {"toolSets": {"ro": {"allow": ["demo:list*"]}}}}),
        );
        s.user.write_json(
            "open-cli/.cli.json",
            &json!({"secrets": {"demo.bearerAuth": {"type": "literal", "value": "user-secret-value"}},
                    "curation": {"toolSets": {"ro": {"allow": ["demo:get*"]}}}}),
        );
        s.project.write("demo.openapi.yaml", &api.spec_yaml());
        s.project.write_json(
            ".cli.json",
            &json!({"sources": {"demo": {"type": "openapi", "uri": "demo.openapi.yaml"}},
                    "services": {"demo": {"source": "demo"}},
                    "policy": {"deny": ["demo:delete*", "demo:update*"]}}),
        );
        s.project.write_json(
            ".cli.local.json",
            &json!({"agents": {"profiles": {"viewer": {"mode": "curated", "toolSet": "ro"}}}}),
        );
        s
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "OPEN_CLI_MANAGED_CONFIG".into(),
                self.managed.path().join(".cli.json").display().to_string(),
            ),
            (
                "XDG_CONFIG_HOME".into(),
                self.user.path().display().to_string(),
            ),
        ]
    }

    fn config(&self) -> String {
        self.project.path().join(".cli.json").display().to_string()
    }
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn four_scopes_merge_and_every_key_names_its_file() {
    let api = TestApi::start();
    let s = Scopes::new(&api);
    let env = s.env();
    let out = run(
        "open-cli-toolbox",
        &["validate", "--config", &s.config(), "--format", "json"],
        &env_refs(&env),
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &report["effective"];
    let scopes: Vec<&str> = e["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["managed", "user", "project", "local"]);
    let c = &e["config"];
    assert_eq!(c["cli"], "1.0.0");
    assert_eq!(
        c["policy"]["deny"],
        json!(["demo:delete*", "demo:update*"]),
        "appended without duplicates"
    );
    assert_eq!(
        c["managedDeny"],
        json!(["demo:delete*"]),
        "managed deny kept apart"
    );
    assert_eq!(
        c["curation"]["toolSets"]["ro"]["allow"],
        json!(["demo:list*", "demo:get*"])
    );
    assert_eq!(
        c["secrets"]["demo.bearerAuth"],
        json!({"type": "literal", "value": "<redacted>"})
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("user-secret-value"),
        "secrets never printed"
    );
    let origin = |k: &str| e["origins"][k].as_str().unwrap_or_default().to_string();
    let managed = s.managed.path().join(".cli.json").display().to_string();
    let user = s
        .user
        .path()
        .join("open-cli/.cli.json")
        .display()
        .to_string();
    let project = s.config();
    let local = s
        .project
        .path()
        .join(".cli.local.json")
        .display()
        .to_string();
    assert_eq!(origin("cli"), managed);
    assert_eq!(origin("policy.deny[0]"), managed);
    assert_eq!(origin("policy.deny[1]"), project);
    assert_eq!(origin("secrets[\"demo.bearerAuth\"]"), user);
    assert_eq!(origin("sources.demo.uri"), project);
    assert_eq!(origin("agents.profiles.viewer.toolSet"), local);
    assert_eq!(
        report["views"],
        json!([{"name": "discover", "tools": 17}, {"name": "viewer", "tools": 4}])
    );

    // The runtime serves the merged result.
    let state = Fixture::new();
    let rt = Runtime::try_start_env(
        std::path::Path::new(&project),
        state.path(),
        &[],
        &env_refs(&env),
    )
    .unwrap();
    let ids: Vec<String> = rt.effective("?agentProfile=viewer")["view"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "demo:getItem",
            "demo:getStatus",
            "demo:getText",
            "demo:listItems"
        ]
    );
}

#[test]
fn problems_are_attributed_to_the_file_that_set_the_key() {
    let api = TestApi::start();
    let s = Scopes::new(&api);
    s.user.write_json(
        "open-cli/.cli.json",
        &json!({"secrets": {"k": {"type": "env", "valeu": "X"}}}),
    );
    s.project.write_json(
        ".cli.local.json",
        &json!({"services": {"demo": {"source": "nowhere"}}, "agents": {"profiles": {"viewer": {"toolSet": "missing"}}}}),
    );
    let env = s.env();
    let out = run(
        "open-cli-toolbox",
        &["validate", "--config", &s.config()],
        &env_refs(&env),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let user = s
        .user
        .path()
        .join("open-cli/.cli.json")
        .display()
        .to_string();
    let local = s
        .project
        .path()
        .join(".cli.local.json")
        .display()
        .to_string();
    assert!(
        err.contains(&format!(
            "{user}: secrets.k.valeu: unknown key (did you mean `value`?)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{user}: secrets.k.value: is required for `env` secrets"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{local}: services.demo.source: names source `nowhere`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{local}: agents.profiles.viewer.toolSet: names tool set `missing`"
        )),
        "{err}"
    );
}

#[test]
fn a_project_file_may_rely_on_other_scopes_for_required_keys() {
    let api = TestApi::start();
    let s = Scopes::new(&api);
    // Without the managed file, `cli` and `mode` are missing from the merged result.
    let env = vec![
        (
            "OPEN_CLI_MANAGED_CONFIG".to_string(),
            s.managed.path().join("absent.json").display().to_string(),
        ),
        (
            "XDG_CONFIG_HOME".to_string(),
            s.user.path().display().to_string(),
        ),
    ];
    let out = run(
        "open-cli-toolbox",
        &["validate", "--config", &s.config()],
        &env_refs(&env),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cli: is required") && err.contains("mode: is required"),
        "{err}"
    );
}

#[test]
fn open_cli_config_show_prints_the_merged_config_with_origins() {
    let api = TestApi::start();
    let s = Scopes::new(&api);
    let env = s.env();
    let out = run(
        "open-cli",
        &["config", "show", "--format", "json"],
        &env_refs(&env),
        Some(s.project.path()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let validated = run(
        "open-cli-toolbox",
        &["validate", "--config", &s.config(), "--format", "json"],
        &env_refs(&env),
        None,
    );
    let report: Value = serde_json::from_slice(&validated.stdout).unwrap();
    assert_eq!(
        shown, report["effective"],
        "client and runtime load the same merged config"
    );
    let out = run(
        "open-cli",
        &["config", "show", "--format", "pretty"],
        &env_refs(&env),
        Some(s.project.path()),
    );
    let t = text(&out.stdout);
    assert!(
        t.starts_with("scopes (merged in this order):\n  managed"),
        "{t}"
    );
    assert!(
        t.contains("<redacted>") && !t.contains("user-secret-value"),
        "{t}"
    );
    assert!(t.contains("origins:"), "{t}");

    let empty = Fixture::new();
    let out = run("open-cli", &["config", "show"], &[], Some(empty.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no client config found"));
}
