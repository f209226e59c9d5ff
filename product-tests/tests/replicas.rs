use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use open_cli_product_tests::{
    Fixture, Proc, SteadyLoad, TestApi, bin, demo_config, free_port, isolate, repo_root, wait_200,
    wait_for,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

/// One replica: a runtime on a fixed port with its own instance ID and state directory, so
/// that it can be killed and started again in its place.
struct Replica {
    id: String,
    port: u16,
    state: PathBuf,
    proc: Option<Proc>,
}

impl Replica {
    fn start(&mut self, config: &Path) {
        let mut cmd = Command::new(bin("open-cli-toolbox"));
        isolate(&mut cmd);
        cmd.arg("--config")
            .arg(config)
            .args(["--addr", &format!("127.0.0.1:{}", self.port)])
            .args(["--instance-id", &self.id, "--threads", "1"])
            .arg("--state-dir")
            .arg(&self.state);
        let proc = Proc::spawn(&self.id, cmd);
        wait_200(
            &format!("http://127.0.0.1:{}/readyz", self.port),
            DEADLINE,
            &proc,
        );
        self.proc = Some(proc);
    }

    fn signal(&mut self, sig: i32) {
        let mut proc = self.proc.take().expect("running");
        proc.signal(sig);
        proc.wait_exit(DEADLINE)
            .unwrap_or_else(|e| panic!("{e}\n{}", proc.logs()));
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.state.join(format!("instances/{}/audit.log", self.id)))
            .unwrap_or_default()
    }
}

/// `show stat` of HAProxy's admin socket: each server's status (`UP`, `DOWN`, …).
fn server_status(socket: &Path, server: &str) -> Option<String> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().find_map(|l| {
        let cols: Vec<&str> = l.split(',').collect();
        (cols.len() > 17 && cols[0] == "runtimes" && cols[1] == server)
            .then(|| cols[17].to_string())
    })
}

fn wait_status(lb: &mut Proc, socket: &Path, server: &str, want: &str) {
    wait_for(&format!("HAProxy to see {server} {want}"), DEADLINE, || {
        if let Some(status) = lb.try_status() {
            panic!("haproxy exited ({status}):\n{}", lb.logs());
        }
        server_status(socket, server)
            .filter(|s| s.starts_with(want))
            .map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lb.logs()));
}

/// Three runtimes behind HAProxy (`deploy/haproxy/haproxy.cfg`, as shipped) under steady GET
/// load: one killed with SIGKILL and started again, then all three restarted one by one with
/// SIGTERM (each drains, HAProxy's `/readyz` check takes it out, a new one takes its place).
/// No call fails; every audit line names the replica that wrote it, and every answered call
/// has one.
#[test]
fn replicas_behind_haproxy_lose_no_request_to_a_kill_or_a_rolling_restart() {
    let haproxy = which("haproxy").expect("haproxy (scripts/deps installs it)");
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    // Every answered call's audit line is on disk before the answer (a SIGKILL loses none).
    let config = fx.write_json(
        ".cli.json",
        &demo_config(json!({"runtime": {"server": {"audit": {"durability": "always"}}}})),
    );
    let mut replicas: Vec<Replica> = (1..=3)
        .map(|i| Replica {
            id: format!("r{i}"),
            port: free_port(),
            state: fx.path().join(format!("state-r{i}")),
            proc: None,
        })
        .collect();
    for r in &mut replicas {
        r.start(&config);
    }
    let listen = free_port();
    let socket = fx.path().join("haproxy.sock");
    let mut cmd = Command::new(haproxy);
    cmd.arg("-db")
        .arg("-f")
        .arg(repo_root().join("deploy/haproxy/haproxy.cfg"))
        .env("OC_LISTEN", format!("127.0.0.1:{listen}"))
        .env("OC_HAPROXY_STATS", &socket);
    for r in &replicas {
        cmd.env(
            format!("OC_REPLICA{}", &r.id[1..]),
            format!("127.0.0.1:{}", r.port),
        );
    }
    let mut lb = Proc::spawn("haproxy", cmd);
    for r in &replicas {
        wait_status(&mut lb, &socket, &r.id, "UP");
    }

    let load = SteadyLoad::start(format!("http://127.0.0.1:{listen}/proxy/demo/items"), 4);
    load.run_for(300);

    // kill -9 one replica: HAProxy retries its calls elsewhere and marks it down.
    replicas[1].signal(libc::SIGKILL);
    load.run_for(300);
    wait_status(&mut lb, &socket, "r2", "DOWN");
    replicas[1].start(&config);
    wait_status(&mut lb, &socket, "r2", "UP");
    load.run_for(300);

    // Rolling restart: SIGTERM (drain), a new process in its place, back in rotation.
    for r in &mut replicas {
        r.signal(libc::SIGTERM);
        load.run_for(100);
        r.start(&config);
        wait_status(&mut lb, &socket, &r.id, "UP");
        load.run_for(300);
    }
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "failed calls: {errors:?}\n{}", lb.logs());
    assert!(ok >= 2_500, "{ok}");

    // Audit: every line says which replica wrote it; every answered call has a line.
    let mut calls = 0u64;
    for r in &mut replicas {
        r.signal(libc::SIGTERM);
        let log = r.audit();
        for line in log.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["instanceId"], r.id.as_str(), "{line}");
            if v["eventType"] == "tool_execution" && v["channel"] == "passthrough" {
                calls += 1;
            }
        }
    }
    assert!(
        calls >= ok,
        "{calls} audited pass-through calls for {ok} answered"
    );
}

/// `name` on `PATH`, else in `/usr/sbin` (Debian's haproxy, for users without it on `PATH`).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
