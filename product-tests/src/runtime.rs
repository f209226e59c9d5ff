//! `open-cli-toolbox`, the runtime under test: a [`Fixture`] directory for its config and
//! documents, a running [`Runtime`] and its HTTP API, and the checks of its answers (JSON
//! errors, catalogs against the NTC schema, `validate`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::process::{
    Port, Proc, START_DEADLINE, bin, http, isolate, repo_root, run, spawn_on_free_port, text,
    wait_for,
};
use crate::testapi::TestApi;

/// A temp directory holding a config and the documents it references.
#[derive(Debug)]
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, text).expect("write fixture");
        p
    }

    pub fn write_json(&self, name: &str, v: &Value) -> PathBuf {
        self.write(name, &serde_json::to_string_pretty(v).expect("json"))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// A config serving the demo API's document (already written as `demo.openapi.yaml`).
pub fn demo_config(extra: Value) -> Value {
    let mut base = serde_json::json!({
        "cli": "1.0.0",
        "mode": {"default": "discover"},
        "sources": {"demo": {"type": "openapi", "uri": "demo.openapi.yaml"}},
        "services": {"demo": {"source": "demo", "alias": "demo"}},
        "curation": {"toolSets": {"read-only": {"allow": ["demo:list*", "demo:get*"]}}},
        "agents": {"defaultProfile": "reader", "profiles": {"reader": {"mode": "curated", "toolSet": "read-only"}}}
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// The demo API's config without agent profiles (so the pass-through admits every tool), with
/// `server` as `runtime.server` (nothing when it is empty).
pub fn open_demo_config(server: Value) -> Value {
    let mut config = serde_json::json!({
        "cli": "1.0.0",
        "mode": {"default": "discover"},
        "sources": {"demo": {"type": "openapi", "uri": "demo.openapi.yaml"}},
        "services": {"demo": {"source": "demo", "alias": "demo"}}
    });
    if server.as_object().is_some_and(|o| !o.is_empty()) {
        config["runtime"] = serde_json::json!({"mode": "remote", "server": server});
    }
    config
}

/// The audit records of `rt` (as JSON) that `keep` admits, once there are at least `n`.
pub fn audit_rows(rt: &Runtime, n: usize, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    let path = rt.state_dir.join("instances/test/audit.log");
    crate::process::wait_for("audit records", Duration::from_secs(20), || {
        let text = fs::read_to_string(&path).ok()?;
        let rows: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| keep(v))
            .collect();
        (rows.len() >= n).then_some(rows)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The IDs of the tools `token` sees in `rt`'s default view, sorted.
pub fn visible_tool_ids(rt: &Runtime, token: &str) -> Vec<String> {
    let v: Value = crate::process::http()
        .get(format!("{}/v1/catalog/effective", rt.url))
        .bearer_auth(token)
        .send()
        .expect("effective catalog")
        .json()
        .expect("effective catalog JSON");
    view_tool_ids(&v)
}

/// The tool IDs of an effective view (`GET /v1/catalog/effective`, `catalog list --format
/// json`), sorted.
pub fn view_tool_ids(view: &Value) -> Vec<String> {
    let mut ids: Vec<String> = view["view"]["tools"]
        .as_array()
        .expect("view.tools")
        .iter()
        .map(|t| t["id"].as_str().expect("tool id").to_string())
        .collect();
    ids.sort();
    ids
}

/// A running `open-cli-toolbox`.
#[derive(Debug)]
pub struct Runtime {
    pub proc: Proc,
    pub url: String,
    pub state_dir: PathBuf,
    _state_tmp: Option<TempDir>,
    pub runtime_json: PathBuf,
    pub config: PathBuf,
}

impl Runtime {
    pub fn start(config: &Path) -> Self {
        Self::try_start(config, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start and wait until `runtime.json` names the URL and `/readyz` answers 200.
    pub fn try_start(config: &Path, extra_args: &[&str]) -> Result<Self, String> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        Self::try_start_in(config, &dir, extra_args).map(|mut rt| {
            rt._state_tmp = Some(tmp);
            rt
        })
    }

    /// Start with a given state directory (to observe what survives a restart).
    pub fn start_in(config: &Path, state_dir: &Path) -> Self {
        Self::try_start_in(config, state_dir, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start_in(
        config: &Path,
        state_dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self, String> {
        Self::try_start_env(config, state_dir, extra_args, &[])
    }

    /// Start with extra environment variables (e.g. scope file locations).
    pub fn try_start_env(
        config: &Path,
        state_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        Self::try_start_probed(config, state_dir, extra_args, env, http())
    }

    /// Start, probing `/readyz` with `client` (one that trusts the runtime's TLS certificate,
    /// for an `https://` runtime).
    pub fn try_start_probed(
        config: &Path,
        state_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
        client: reqwest::blocking::Client,
    ) -> Result<Self, String> {
        let runtime_json = state_dir.join("instances/test/runtime.json");
        let (proc, url) = spawn_on_free_port(
            "open-cli-toolbox",
            Port::Ephemeral,
            // A START_DEADLINE for each step: `runtime.json` written, then `/readyz` (after the
            // first catalog build).
            START_DEADLINE * 2,
            |port| {
                let mut cmd = Command::new(bin("open-cli-toolbox"));
                isolate(&mut cmd);
                cmd.envs(env.iter().copied());
                cmd.arg("--config")
                    .arg(config)
                    .args([
                        "--addr",
                        &format!("127.0.0.1:{port}"),
                        "--instance-id",
                        "test",
                        "--threads",
                        "2",
                    ])
                    .arg("--state-dir")
                    .arg(state_dir)
                    .args(extra_args);
                cmd
            },
            // Ready: `runtime.json` names the URL and its `/readyz` answers 200.
            |_, _| {
                let text = fs::read_to_string(&runtime_json).ok()?;
                let v: Value = serde_json::from_str(&text).ok()?;
                let url = v["url"].as_str()?;
                client
                    .get(format!("{url}/readyz"))
                    .send()
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| url.to_string())
            },
        )?;
        Ok(Self {
            proc,
            url,
            state_dir: state_dir.to_path_buf(),
            _state_tmp: None,
            runtime_json,
            config: config.to_path_buf(),
        })
    }

    pub fn get(&self, path_and_query: &str) -> reqwest::blocking::Response {
        http()
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .expect("request")
    }

    /// Send SIGHUP (re-read the config, rebuild) and wait until `/v1/runtime/info` reports
    /// that rebuild; its info, whether the rebuild succeeded or not.
    pub fn sighup_and_wait(&self) -> Value {
        self.proc.signal(libc::SIGHUP);
        wait_for("the SIGHUP rebuild", Duration::from_secs(10), || {
            let info: Value = self.get("/v1/runtime/info").json().ok()?;
            (info["lastRefresh"]["trigger"] == "sighup").then_some(info)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn post(&self, path_and_query: &str, body: &str) -> reqwest::blocking::Response {
        http()
            .post(format!("{}{path_and_query}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("request")
    }

    /// `GET /v1/catalog/effective` as JSON, checked against the NTC schema.
    pub fn catalog(&self) -> Value {
        self.effective("")
    }

    /// `GET /v1/catalog/effective<query>` as JSON, checked against the NTC schema.
    pub fn effective(&self, query: &str) -> Value {
        let resp = self.get(&format!("/v1/catalog/effective{query}"));
        assert_eq!(resp.status(), 200, "GET /v1/catalog/effective{query}");
        let body: Value = resp.json().expect("catalog json");
        assert_valid_effective(&body);
        body
    }

    /// Stop with SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.proc.signal(libc::SIGTERM);
        let status = self.proc.wait_exit(Duration::from_secs(10)).expect("exit");
        assert!(status.success(), "{status}\n{}", self.proc.logs());
    }

    /// Stop (as [`Runtime::stop`]), then the whole output: every line the runtime would
    /// write is written. For checks that something is *not* in the logs, which could pass
    /// while the last lines are still on their way to the file (the log spool writes every
    /// 20 ms).
    pub fn stopped_logs(&mut self) -> String {
        self.stop();
        self.proc.logs()
    }
}

/// The demo API's own document and [`demo_config`] in a fixture, and a runtime serving them.
pub fn start_demo_runtime(api: &TestApi) -> (Fixture, Runtime) {
    start_demo_runtime_with(api, serde_json::json!({}))
}

/// [`start_demo_runtime`] with `server` as `runtime.server` (nothing when it is empty).
pub fn start_demo_runtime_with(api: &TestApi, server: Value) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let extra = if server.as_object().is_some_and(|o| !o.is_empty()) {
        serde_json::json!({"runtime": {"mode": "remote", "server": server}})
    } else {
        serde_json::json!({})
    };
    let config = fx.write_json(".cli.json", &demo_config(extra));
    let rt = Runtime::start(&config);
    (fx, rt)
}

/// `POST /v1/tools/execute` with `body`: the status and the JSON answer (`null` if none).
pub fn execute(rt: &Runtime, body: Value) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .expect("execute request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// Assert that `resp` is the runtime's JSON error with `status` and `code`, whose message
/// mentions `mentions`; return the body.
pub fn expect_error(
    resp: reqwest::blocking::Response,
    status: u16,
    code: &str,
    mentions: &str,
) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let e: Value = resp.json().expect("a JSON error body");
    assert_eq!(e["error"]["code"], code, "{e}");
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "`{mentions}` not in {e}");
    e
}

/// Assert that an NTC document validates against `config/schemas/ntc.schema.json`.
pub fn assert_valid_ntc(catalog: &Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = repo_root().join("config/schemas/ntc.schema.json");
        let schema: Value = serde_json::from_str(&fs::read_to_string(&path).expect("ntc schema"))
            .expect("ntc schema json");
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("valid schema")
    });
    let errors: Vec<String> = validator
        .iter_errors(catalog)
        .take(20)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "catalog does not match the NTC schema:\n{}",
        errors.join("\n")
    );
}

/// An effective-catalog response (`{catalog, view}`): the catalog validates, and the view is
/// one of its effective views (in the compact form, `?compact=true`, one of its views by name,
/// whose tools are only in `view`).
pub fn assert_valid_effective(body: &Value) {
    assert_valid_ntc(&body["catalog"]);
    let views = body["catalog"]["effectiveViews"].as_array().expect("views");
    if body.get("compact").is_some() {
        assert!(
            views
                .iter()
                .any(|v| v["name"] == body["view"]["name"] && v["tools"] == serde_json::json!([])),
            "the selected view is named among the catalog's views"
        );
        return;
    }
    assert!(
        views
            .iter()
            .any(|v| v["name"] == body["view"]["name"] && v["tools"] == body["view"]["tools"]),
        "the selected view is one of the catalog's effective views"
    );
}

/// `open-cli-toolbox validate --config FILE` expected to fail with exit 1; returns stderr.
pub fn validate_fails(config: &Path) -> String {
    let out = run(
        "open-cli-toolbox",
        &["validate", "--config", config.to_str().expect("utf-8 path")],
        &[],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "validate should fail:\n{err}");
    err
}
