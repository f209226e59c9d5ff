use std::path::Path;
use std::time::Duration;

use open_cli_product_tests::{Fixture, Runtime, TestApi, cli, http, text, wait_for};
use serde_json::{Value, json};

/// A client config (demo API) whose runtime is local.
fn local_config(api: &TestApi, fx: &Fixture) -> String {
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = open_cli_product_tests::demo_config(json!({"runtime": {"mode": "local"}}));
    fx.write_json(".cli.json", &cfg).display().to_string()
}

fn status(cfg: &str, env: &[(&str, &str)]) -> Value {
    let out = cli(
        &["--config", cfg, "runtime", "status", "--format", "json"],
        env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn alive(pid: u64) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

fn tools(out: &std::process::Output) -> usize {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["view"]["tools"].as_array().unwrap().len()
}

/// Stops (SIGTERM) whatever local runtimes are left under a state directory when a test ends.
struct Reaper<'a>(&'a Path);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        let Ok(dirs) = std::fs::read_dir(self.0.join("runtimes/instances")) else {
            return;
        };
        for d in dirs.flatten() {
            let file = d.path().join("runtime.json");
            if let Some(pid) = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["pid"].as_u64())
            {
                // SAFETY: kill(2) on a runtime this test started.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
        }
    }
}

#[test]
fn a_local_runtime_starts_on_first_use_is_reused_replaced_when_stale_and_stopped() {
    let api = TestApi::start();
    let state = Fixture::new();
    let _reaper = Reaper(state.path());
    let env = [("OPEN_CLI_STATE_DIR", state.path().to_str().unwrap())];
    let (one, two) = (Fixture::new(), Fixture::new());
    let cfg = local_config(&api, &one);
    let cfg2 = local_config(&api, &two);

    assert_eq!(status(&cfg, &env)["running"], false);
    // First use starts it; the second reuses the same process.
    assert_eq!(
        tools(&cli(
            &["--config", &cfg, "catalog", "list", "--format", "json"],
            &env
        )),
        17
    );
    let first = status(&cfg, &env);
    assert_eq!(first["running"], true, "{first}");
    let pid = first["pid"].as_u64().unwrap();
    let url = first["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(Path::new(first["runtimeJson"].as_str().unwrap()).exists());
    assert_eq!(
        tools(&cli(
            &["--config", &cfg, "catalog", "list", "--format", "json"],
            &env
        )),
        17
    );
    assert_eq!(status(&cfg, &env)["pid"], pid, "reused, not restarted");

    // Another config gets its own runtime.
    let out = cli(
        &["--config", &cfg2, "runtime", "start", "--format", "json"],
        &env,
    );
    let other: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(other["started"], true, "{other}");
    assert_ne!(other["pid"], pid);
    assert_ne!(other["instanceId"], first["instanceId"]);

    // `runtime stop` asks the runtime to stop (POST /v1/runtime/stop) and waits for it.
    let out = cli(
        &["--config", &cfg, "runtime", "stop", "--format", "json"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!alive(pid));
    assert!(!Path::new(first["runtimeJson"].as_str().unwrap()).exists());

    // A runtime.json left by a process that is gone is stale: replaced by a new runtime.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(
        first["runtimeJson"].as_str().unwrap(),
        json!({"url": "http://127.0.0.1:1", "pid": dead_pid, "instanceId": first["instanceId"]})
            .to_string(),
    )
    .unwrap();
    assert_eq!(
        tools(&cli(
            &["--config", &cfg, "catalog", "list", "--format", "json"],
            &env
        )),
        17
    );
    let fresh = status(&cfg, &env);
    assert_eq!(fresh["running"], true);
    assert_ne!(fresh["pid"], json!(dead_pid));
    assert_ne!(fresh["pid"], json!(pid));
    for c in [&cfg, &cfg2] {
        let out = cli(&["--config", c, "runtime", "stop"], &env);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
}

#[test]
fn an_idle_local_runtime_stops_itself_and_an_embedded_one_lives_for_one_command() {
    let api = TestApi::start();
    let state = Fixture::new();
    let _reaper = Reaper(state.path());
    let env = [("OPEN_CLI_STATE_DIR", state.path().to_str().unwrap())];
    let fx = Fixture::new();
    let cfg = local_config(&api, &fx);

    let out = cli(
        &[
            "--config",
            &cfg,
            "runtime",
            "start",
            "--idle-stop-seconds",
            "1",
            "--format",
            "json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = started["pid"].as_u64().unwrap();
    wait_for("the idle runtime to exit", Duration::from_secs(20), || {
        (!alive(pid)).then_some(())
    })
    .unwrap();
    let log = std::fs::read_to_string(started["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("idle stop"), "{log}");
    assert_eq!(status(&cfg, &env)["running"], false);

    // --embedded: a runtime for this command only; nothing is left running after it.
    assert_eq!(
        tools(&cli(
            &[
                "--config",
                &cfg,
                "--embedded",
                "catalog",
                "list",
                "--format",
                "json"
            ],
            &env
        )),
        17
    );
    let leftovers: Vec<_> = std::fs::read_dir(state.path().join("runtimes/instances"))
        .unwrap()
        .flatten()
        .filter(|d| d.path().join("runtime.json").exists())
        .map(|d| d.path())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(status(&cfg, &env)["running"], false);
}

#[test]
fn lifecycle_routes_heartbeat_and_stop_only_where_allowed() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let rt = Runtime::start(
        &fx.write_json(".cli.json", &open_cli_product_tests::demo_config(json!({}))),
    );
    let post = |path: &str, body: Value| {
        http()
            .post(format!("{}{path}", rt.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let hb = post("/v1/runtime/heartbeat", json!({"sessionId": "s-1"}));
    assert_eq!(hb.status(), 200);
    let v: Value = hb.json().unwrap();
    assert_eq!(v["renewed"], true);
    assert_eq!(v["activeSessions"], 1);
    assert_eq!(
        post("/v1/runtime/heartbeat", json!({"sessionId": "s-2"}))
            .json::<Value>()
            .unwrap()["activeSessions"],
        2
    );
    let closed: Value = post("/v1/runtime/session-close", json!({"sessionId": "s-1"}))
        .json()
        .unwrap();
    assert_eq!(
        closed,
        json!({"closed": true, "sessionId": "s-1", "activeSessions": 1})
    );
    assert_eq!(post("/v1/runtime/heartbeat", json!({})).status(), 400);
    // Not a local runtime and no token with runtime:stop: refused, and it keeps serving.
    let stop = post("/v1/runtime/stop", json!({}));
    assert_eq!(stop.status(), 403);
    assert!(stop.text().unwrap().contains("runtime:stop"));
    assert_eq!(
        http()
            .get(format!("{}/readyz", rt.url))
            .send()
            .unwrap()
            .status(),
        200
    );
}
