//! The three hosting models of `deploy/examples/` (loopback, shared remote with auth, brokered
//! enterprise), each started and stopped by its own script as a user would, and used with the
//! real CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::Duration;

use open_cli_product_tests::{
    bin, http, json_out, jwt_claims, repo_root, text, view_tool_ids, wait_for,
};
use serde_json::{Value, json};

/// An example brought up by `deploy/examples/<name>/run.sh up <dir>`; brought down (by the
/// same script) on drop.
struct Example {
    script: PathBuf,
    dir: tempfile::TempDir,
    /// `<dir>/env`: what the script tells the CLI (`export K=V` lines).
    env: BTreeMap<String, String>,
}

impl Example {
    fn up(name: &str) -> Self {
        let script = repo_root().join(format!("deploy/examples/{name}/run.sh"));
        let dir = tempfile::tempdir().unwrap();
        let out = Self::run(&script, "up", dir.path());
        assert!(
            out.status.success(),
            "{name} did not come up:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { script, dir, env }
    }

    fn run(script: &Path, verb: &str, dir: &Path) -> Output {
        let bins = bin("open-cli-toolbox").parent().unwrap().to_path_buf();
        Command::new("bash")
            .arg(script)
            .arg(verb)
            .arg(dir)
            .env("OPEN_CLI_BIN_DIR", bins)
            .output()
            .unwrap()
    }

    fn url(&self) -> &str {
        &self.env["OPEN_CLI_RUNTIME_URL"]
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// `open-cli` with the example's env (and `extra`).
    fn cli(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect();
        open_cli_product_tests::cli(args, &env)
    }

    fn json(&self, args: &[&str], extra: &[(&str, &str)]) -> Value {
        json_out(&self.cli(args, extra))
    }

    /// The PIDs the script started (its `*.pid` files).
    fn pids(&self) -> Vec<i32> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == "pid").then(|| std::fs::read_to_string(p).ok())?
            })
            .map(|s| s.trim().parse().unwrap())
            .collect()
    }

    /// `run.sh down`: every process it started is gone, the runtime no longer answers.
    fn down(self) {
        let pids = self.pids();
        assert!(pids.len() >= 2, "{pids:?}");
        let out = Self::run(&self.script, "down", self.dir.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        for pid in pids {
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            assert!(!alive, "process {pid} survived `run.sh down`");
        }
        assert!(
            http()
                .get(format!("{}/healthz", self.url()))
                .send()
                .is_err()
        );
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = Self::run(&self.script, "down", self.dir.path());
    }
}

/// Loopback: no token, 127.0.0.1 only; the API key is the runtime's.
#[test]
fn loopback() {
    let ex = Example::up("loopback");
    assert!(ex.url().starts_with("http://127.0.0.1:"), "{}", ex.url());
    let out = ex.json(&["demo", "keyed", "keyed-whoami"], &[]);
    assert_eq!(out, json!({"owner": "me"}));
    let info: Value = http()
        .get(format!("{}/v1/runtime/info", ex.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["auth"]["required"], false, "{info}");
    ex.down();
}

/// Shared remote: a token of the team's provider is required; an agent with client
/// credentials gets one and runs a tool with the team's key.
#[test]
fn shared_remote_with_auth() {
    let ex = Example::up("shared");
    let client = ex.path("client.cli.json");
    let r = http()
        .get(format!("{}/v1/catalog/effective", ex.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "no token, no catalog");
    let out = ex.json(&["--config", &client, "demo", "keyed", "keyed-whoami"], &[]);
    assert_eq!(out, json!({"owner": "team"}));
    let status = ex.json(
        &["--config", &client, "auth", "status", "--format", "json"],
        &[],
    );
    assert_eq!(status["principal"], "agent-1", "{status}");
    assert_eq!(status["tokenSource"], "oauthClient", "{status}");
    ex.down();
}

/// Brokered enterprise: the upstream sees the caller (an exchanged token), the agent delegates
/// a narrower child to a sub-agent, and the child's calls are audited with their lineage.
#[test]
fn brokered_enterprise() {
    let ex = Example::up("brokered");
    let client = ex.path("client.cli.json");
    let me = ex.json(&["--config", &client, "demo", "whoami", "whoami"], &[]);
    assert_eq!(me["sub"], "agent-1");
    assert_eq!(me["aud"], "urn:demo-api");
    assert_eq!(me["act"], json!({"sub": "runtime"}));

    let child = ex.json(
        &[
            "--config",
            &client,
            "auth",
            "delegate",
            "--scope",
            "bundle:demo,tool:demo:keyedWhoami",
            "--ttl",
            "5m",
            "--actor",
            "sub-agent-1",
            "--format",
            "json",
        ],
        &[],
    );
    let token = child["accessToken"].as_str().unwrap();
    assert_eq!(jwt_claims(token)["act"], json!({"sub": "sub-agent-1"}));
    // The sub-agent: the child token only.
    let sub = [("OPEN_CLI_TOKEN", token)];
    assert_eq!(
        ex.json(&["demo", "keyed", "keyed-whoami"], &sub),
        json!({"owner": "agent-1"})
    );
    let out = ex.cli(&["demo", "whoami", "whoami"], &sub);
    assert!(!out.status.success(), "the child was not given whoami");
    let listed = ex.json(&["catalog", "list", "--format", "json"], &sub);
    let ids = view_tool_ids(&listed);
    assert_eq!(ids, ["demo:keyedWhoami"]);

    // The audit writer commits in batches: wait for both lines.
    let log = ex.path("runtime/instances/example/audit.log");
    let calls = wait_for("two tool calls audited", Duration::from_secs(20), || {
        let calls: Vec<Value> = std::fs::read_to_string(&log)
            .ok()?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["eventType"] == "tool_execution")
            .collect();
        (calls.len() >= 2).then_some(calls)
    })
    .unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].get("lineage").is_none(), "{}", calls[0]);
    assert_eq!(
        calls[1]["lineage"],
        json!({"actor": {"sub": "sub-agent-1"}, "delegatedBy": "agent-1",
            "delegationId": child["delegationId"]}),
        "{}",
        calls[1]
    );
    ex.down();
}
