use std::path::Path;
use std::process::Command;
use std::time::Duration;

use open_cli_product_tests::{
    Fixture, Proc, SteadyLoad, TestApi, bin, demo_config, free_port, isolate, wait_200, wait_for,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

fn pid_in(runtime_json: &Path) -> Option<u64> {
    let v: Value = serde_json::from_slice(&std::fs::read(runtime_json).ok()?).ok()?;
    v["pid"].as_u64()
}

/// The binary of a running runtime replaced under load (a new file renamed over the installed
/// one, then SIGUSR2): the new process takes the listening sockets, the old one drains and
/// exits, and no call fails; each call on a connection of its own, so a refused connection
/// would show.
#[test]
fn a_binary_upgrade_under_load_refuses_no_connection() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(".cli.json", &demo_config(json!({})));
    // The binary at a path of its own, replaced like an installed one.
    let exe = fx.path().join("open-cli-toolbox");
    std::fs::copy(bin("open-cli-toolbox"), &exe).unwrap();
    let port = free_port();
    let state = fx.path().join("state");
    let mut cmd = Command::new(&exe);
    isolate(&mut cmd);
    cmd.arg("--config")
        .arg(&config)
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--instance-id",
            "up",
            "--threads",
            "2",
        ])
        .arg("--state-dir")
        .arg(&state);
    let mut old = Proc::spawn("open-cli-toolbox (old)", cmd);
    let runtime_json = state.join("instances/up/runtime.json");
    wait_200(&format!("http://127.0.0.1:{port}/readyz"), DEADLINE, &old);
    // runtime.json is written once the sockets serve.
    wait_for("runtime.json", DEADLINE, || {
        pid_in(&runtime_json).filter(|p| *p == u64::from(old.pid()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", old.logs()));

    let load = SteadyLoad::start_with(
        format!("http://127.0.0.1:{port}/proxy/demo/items"),
        4,
        false,
    );
    load.run_for(300);
    let next = fx.path().join("open-cli-toolbox.new");
    std::fs::copy(bin("open-cli-toolbox"), &next).unwrap();
    std::fs::rename(&next, &exe).unwrap();
    old.signal(libc::SIGUSR2);
    let new_pid = wait_for("the successor to take over", DEADLINE, || {
        pid_in(&runtime_json).filter(|p| *p != u64::from(old.pid()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", old.logs()));
    // The old process drains and exits cleanly, leaving the successor's runtime.json.
    let status = old.wait_exit(DEADLINE).unwrap();
    assert!(status.success(), "{}", old.logs());
    assert_eq!(pid_in(&runtime_json), Some(new_pid));
    load.run_for(300);
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "{errors:?}\n{}", old.logs());
    assert!(ok >= 600);
    assert!(old.stderr().contains("SIGUSR2"), "{}", old.logs());

    // The successor is a runtime like any other: SIGTERM drains it and it removes its
    // runtime.json on the way out.
    // SAFETY: kill(2) on the successor this test caused to start; no memory is shared.
    assert_eq!(unsafe { libc::kill(new_pid as i32, libc::SIGTERM) }, 0);
    wait_for("the successor to exit", DEADLINE, || {
        (!runtime_json.exists()).then_some(())
    })
    .unwrap();
}
