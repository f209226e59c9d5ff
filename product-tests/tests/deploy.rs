use std::path::Path;
use std::process::Command;
use std::time::Duration;

use open_cli_product_tests::{
    Fixture, Proc, TestApi, bin, demo_config, isolate, repo_root, text, wait_for,
};
use serde_json::json;

/// The shipped unit with the binary's path pointing at this build.
fn unit(dir: &Path) -> (std::path::PathBuf, String) {
    let shipped =
        std::fs::read_to_string(repo_root().join("deploy/systemd/open-cli-toolbox.service"))
            .unwrap();
    let text = shipped.replace(
        "/usr/local/bin/open-cli-toolbox",
        bin("open-cli-toolbox").to_str().unwrap(),
    );
    let path = dir.join("open-cli-toolbox.service");
    std::fs::write(&path, &text).unwrap();
    (path, shipped)
}

/// `deploy/systemd/open-cli-toolbox.service` is a valid unit (`systemd-analyze verify`: no
/// warning) whose exposure (`systemd-analyze security`) is at most 2.0, with the settings the
/// hardening relies on.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let fx = Fixture::new();
    let (path, shipped) = unit(fx.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/deps installs systemd)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim(), "", "verify warns");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let report = text(&out.stdout);
    let level: f64 = report
        .lines()
        .find_map(|l| {
            l.split("exposure level for open-cli-toolbox.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}{}", text(&out.stderr)));
    println!("systemd-analyze security: exposure {level}");
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{report}");
    for setting in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "StateDirectory=open-cli",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(shipped.contains(setting), "the unit lacks {setting:?}");
    }
}

/// The unit's own command line (`ExecStartPre`, `ExecStart` with `%H` and
/// `${STATE_DIRECTORY}` filled in as systemd would, the address made free) runs: the config
/// validates, the runtime serves, answers SIGHUP (`ExecReload`) by rebuilding and keeps
/// serving, and stops on SIGTERM within `TimeoutStopSec`.
#[test]
fn the_systemd_units_command_lines_run() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(".cli.json", &demo_config(json!({})));
    let (path, _) = unit(fx.path());
    let unit_text = std::fs::read_to_string(&path).unwrap();
    let state = fx.path().join("state");
    let port = open_cli_product_tests::free_port();
    // Joined continuation lines, variables as systemd fills them.
    let joined = unit_text.replace("\\\n", " ");
    let line = |key: &str| -> Vec<String> {
        let l = joined
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"));
        l.replace("/etc/open-cli/.cli.json", config.to_str().unwrap())
            .replace("${STATE_DIRECTORY}", state.to_str().unwrap())
            .replace("%H", "host-1")
            .replace("127.0.0.1:8765", &format!("127.0.0.1:{port}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let pre = line("ExecStartPre=");
    let mut cmd = Command::new(&pre[0]);
    isolate(&mut cmd);
    let out = cmd.args(&pre[1..]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = line("ExecStart=");
    let mut cmd = Command::new(&start[0]);
    isolate(&mut cmd);
    cmd.args(&start[1..]);
    let mut rt = Proc::spawn("open-cli-toolbox", cmd);
    let ready = |rt: &Proc| {
        wait_for("ready", Duration::from_secs(30), || {
            open_cli_product_tests::http()
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .ok()
                .filter(|r| r.status() == 200)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", rt.logs()));
    };
    ready(&rt);
    assert!(state.join("instances/host-1/runtime.json").exists());
    // ExecReload: SIGHUP rebuilds the catalog; it keeps serving.
    rt.signal(libc::SIGHUP);
    wait_for("the SIGHUP rebuild", Duration::from_secs(30), || {
        rt.stderr().contains("SIGHUP").then_some(())
    })
    .unwrap();
    ready(&rt);
    rt.signal(libc::SIGTERM);
    let status = rt.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{}", rt.logs());
}
