use std::time::Duration;

use open_cli_product_tests::{Fixture, Runtime, TestApi, run, start_demo_runtime, text};
use serde_json::Value;

fn runtime() -> (TestApi, Fixture, Runtime) {
    let api = TestApi::start();
    let (fx, rt) = start_demo_runtime(&api);
    (api, fx, rt)
}

#[test]
fn runtime_json_names_the_real_port_and_is_removed_on_sigterm() {
    let (_api, _fx, mut rt) = runtime();
    let rj: Value =
        serde_json::from_str(&std::fs::read_to_string(&rt.runtime_json).unwrap()).unwrap();
    assert_eq!(rj["instanceId"], "test");
    assert_eq!(rj["url"], rt.url);
    assert!(
        !rt.url.ends_with(":0"),
        "port 0 was resolved to the real port"
    );
    assert_eq!(rj["pid"], rt.proc.pid());

    rt.proc.signal(libc::SIGTERM);
    // "Promptly": well under Pingora's 300 s default grace; an idle runtime exits at once.
    let status = rt.proc.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(status.success(), "exit status {status}\n{}", rt.proc.logs());
    assert!(
        !rt.runtime_json.exists(),
        "runtime.json removed on clean exit"
    );
    assert!(
        rt.proc.stderr().contains("drained; exiting"),
        "{}",
        rt.proc.logs()
    );
}

#[test]
fn sigint_also_stops_the_runtime_cleanly() {
    let (_api, _fx, mut rt) = runtime();
    rt.proc.signal(libc::SIGINT);
    let status = rt.proc.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(!rt.runtime_json.exists());
}

#[test]
fn serving_requires_a_config_and_a_free_address() {
    let out = run("open-cli-toolbox", &[], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--config FILE is required"),
        "{}",
        text(&out.stderr)
    );

    for bad in ["0", "1025", "many"] {
        let out = run(
            "open-cli-toolbox",
            &["--config", "unused.json", "--threads", bad],
            &[],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "--threads {bad}");
        assert!(
            text(&out.stderr).contains(&format!("'{bad}' for '--threads <N>'")),
            "{}",
            text(&out.stderr)
        );
    }

    let (_api, fx, rt) = runtime();
    let addr = rt.url.trim_start_matches("http://").to_string();
    let cfg = fx.path().join(".cli.json");
    // One listening socket per serving thread (`--threads 2`): the kernel lists two
    // listeners on the port (a shared socket would be one).
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let listening = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[1].ends_with(&format!(":{port:04X}")) && f[3] == "0A"
        })
        .count();
    assert_eq!(listening, 2, "listening sockets on port {port}");
    // The running runtime listens with one SO_REUSEPORT socket per serving thread; a second
    // one, with one thread or several, must be refused rather than join that group and take
    // a share of the first one's connections.
    for threads in ["1", "2"] {
        let out = run(
            "open-cli-toolbox",
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--addr",
                &addr,
                "--threads",
                threads,
                "--state-dir",
                fx.path().to_str().unwrap(),
            ],
            &[],
            None,
        );
        assert_eq!(out.status.code(), Some(1), "--threads {threads}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("cannot listen on {addr}: ")) && err.contains("in use"),
            "--threads {threads}: {err}"
        );
    }
    assert_eq!(
        rt.get("/readyz").status(),
        200,
        "the first runtime still serves"
    );
}

#[test]
fn logs_carry_the_request_id() {
    let (_api, _fx, mut rt) = runtime();
    let client = open_cli_product_tests::http();
    client
        .get(format!("{}/v1/runtime/info", rt.url))
        .header("x-request-id", "log-me-123")
        .send()
        .unwrap();
    rt.proc.signal(libc::SIGTERM);
    rt.proc.wait_exit(Duration::from_secs(5)).unwrap();
    let log = rt.proc.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("log-me-123"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("/v1/runtime/info") && line.contains("status=200"),
        "{line}"
    );
}

/// SIGTERM while a pass-through request is in flight: the runtime stops accepting, lets
/// the request finish (it is counted on its serving thread) and exits once it has.
#[test]
fn sigterm_lets_an_in_flight_request_finish_before_exiting() {
    let (api, _fx, mut rt) = runtime();
    let url = format!("{}/proxy/demo/slow?ms=1500", rt.url);
    let slow = std::thread::spawn(move || {
        let resp = open_cli_product_tests::http().get(url).send().unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    });
    open_cli_product_tests::wait_for(
        "the slow request to reach the upstream",
        Duration::from_secs(10),
        || (!api.requests_for("/slow").is_empty()).then_some(()),
    )
    .unwrap();
    rt.proc.signal(libc::SIGTERM);
    let (status, body) = slow.join().unwrap();
    assert_eq!(
        (status, &body["sleptMs"]),
        (200, &Value::from(1500)),
        "{body}"
    );
    let exit = rt.proc.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(exit.success(), "exit status {exit}\n{}", rt.proc.logs());
    let logs = rt.proc.stderr();
    assert!(logs.contains("inflight=1"), "{logs}");
    assert!(logs.contains("drained; exiting"), "{logs}");
}
