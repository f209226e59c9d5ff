//! `runtime.server.audit` (issue 17, item 1): `durability: always` holds a tool call's
//! answer until its record is synced, so a crash loses no answered call; `failClosed` refuses
//! tool calls while the audit log cannot be written.

use std::collections::HashSet;
use std::time::Duration;

use open_cli_product_tests::{
    Fixture, Load, Runtime, TestApi, demo_config, expect_error, http, read_audit, wait_for,
};
use serde_json::{Value, json};

fn runtime_with(api: &TestApi, audit: Value, args: &[&str]) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(
        ".cli.json",
        &demo_config(json!({"runtime": {"server": {"audit": audit}}})),
    );
    let rt = Runtime::try_start(&config, args).unwrap_or_else(|e| panic!("{e}"));
    (fx, rt)
}

fn execute_list(rt: &Runtime) -> reqwest::blocking::Response {
    http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .header("content-type", "application/json")
        .body(json!({"toolId": "demo:listItems"}).to_string())
        .send()
        .expect("execute")
}

/// The audit log is `/dev/full`: every write fails with ENOSPC, as on a full disk.
#[test]
fn fail_closed_refuses_tool_calls_while_the_audit_log_cannot_be_written() {
    let api = TestApi::start();
    let (_fx, mut rt) = runtime_with(
        &api,
        json!({"durability": "always", "failClosed": true}),
        &["--audit-path", "/dev/full"],
    );
    // The first call runs, but its record cannot be written: its answer is withheld.
    expect_error(execute_list(&rt), 503, "audit_unavailable", "failClosed");
    // From then on calls are refused before any work, on both channels, and readiness says so.
    expect_error(execute_list(&rt), 503, "audit_unavailable", "failClosed");
    let pass = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .send()
        .unwrap();
    expect_error(pass, 503, "audit_unavailable", "failClosed");
    let ready = http().get(format!("{}/readyz", rt.url)).send().unwrap();
    expect_error(ready, 503, "audit_unavailable", "audit log");
    // The catalog is not a tool call: still served.
    let catalog = http()
        .get(format!("{}/v1/catalog/effective", rt.url))
        .send()
        .unwrap();
    assert_eq!(catalog.status(), 200);
    let logs = rt.stopped_logs();
    assert!(logs.contains("audit-writer: cannot write"), "{logs}");
}

/// The pass-through's answer is held for its record too: with the record unwritable, the
/// upstream's answer never reaches the caller.
#[test]
fn fail_closed_withholds_a_pass_through_answer_whose_record_cannot_be_written() {
    let api = TestApi::start();
    let (_fx, rt) = runtime_with(
        &api,
        json!({"durability": "always", "failClosed": true}),
        &["--audit-path", "/dev/full"],
    );
    let pass = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .send()
        .unwrap();
    expect_error(pass, 503, "audit_unavailable", "failClosed");
}

/// Without `failClosed` an unwritable audit log is reported, and calls are answered.
#[test]
fn without_fail_closed_calls_are_answered_and_the_failure_logged() {
    let api = TestApi::start();
    let (_fx, mut rt) = runtime_with(
        &api,
        json!({"durability": "always"}),
        &["--audit-path", "/dev/full"],
    );
    for _ in 0..3 {
        assert_eq!(execute_list(&rt).status(), 200);
    }
    let ready = http().get(format!("{}/readyz", rt.url)).send().unwrap();
    assert_eq!(ready.status(), 200);
    let logs = rt.stopped_logs();
    assert!(
        logs.contains("an audit record could not be made durable"),
        "{logs}"
    );
}

/// With `durability: always`, SIGKILL under a load of execute and pass-through calls loses no
/// record of a call whose answer reached the client, and tears no line.
#[test]
fn always_loses_no_answered_call_to_a_crash() {
    let api = TestApi::start();
    let (_fx, rt) = runtime_with(&api, json!({"durability": "always"}), &[]);
    let rj: Value =
        serde_json::from_str(&std::fs::read_to_string(&rt.runtime_json).unwrap()).unwrap();
    let audit: std::path::PathBuf = rj["auditPath"].as_str().expect("auditPath").into();

    // Two workers execute, two go through the pass-through.
    let base = rt.url.clone();
    let load = Load::start(4, "always", move |client, w| {
        if w < 2 {
            client
                .post(format!("{base}/v1/tools/execute"))
                .header("content-type", "application/json")
                .body(json!({"toolId": "demo:listItems"}).to_string())
        } else {
            client.get(format!("{base}/proxy/demo/items"))
        }
    });
    wait_for(
        "200 answered calls under load",
        Duration::from_secs(60),
        || (load.answered() >= 200).then_some(()),
    )
    .unwrap();
    rt.proc.signal(libc::SIGKILL);
    let answered = load.stop();
    // `read_audit` panics on a torn or invalid line.
    let recorded: HashSet<String> = read_audit(&audit)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.request_id)
        .collect();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered calls have no record: {:?}",
        lost.len(),
        answered.len(),
        &lost[..lost.len().min(5)]
    );
}
