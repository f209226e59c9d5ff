//! What a crash (SIGKILL) does to the audit log (issue 15, item 11). The size of the window a
//! crash loses is a timing figure and is measured by `bench/audit-crash.sh`; these tests hold
//! what must be true whatever the timing: records are written without anyone asking for a
//! flush, a crash tears no line, and it loses only recent records.

use std::collections::HashSet;
use std::time::Duration;

use open_cli_product_tests::{
    AuditRow, Load, TestApi, http, read_audit, start_demo_runtime, wait_for,
};
use serde_json::Value;

fn audit_path(runtime_json: &std::path::Path) -> std::path::PathBuf {
    let rj: Value = serde_json::from_str(&std::fs::read_to_string(runtime_json).unwrap()).unwrap();
    rj["auditPath"].as_str().expect("auditPath").into()
}

/// The request IDs of the audit file's records ([`read_audit`] panics on a torn or invalid
/// line).
fn recorded_ids(rows: Vec<AuditRow>) -> HashSet<String> {
    rows.into_iter()
        .map(|r| r.request_id.unwrap_or_default())
        .collect()
}

#[test]
fn a_crash_tears_no_audit_line_and_loses_only_recent_records() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let audit = audit_path(&rt.runtime_json);
    let client = http();
    let call = |client: &reqwest::blocking::Client, id: &str| {
        client
            .get(format!("{}/proxy/demo/items", rt.url))
            .header("x-request-id", id)
            .send()
            .is_ok_and(|r| r.status() == 200)
    };

    // Earlier calls reach the file by themselves (the writer's linger window), with no
    // `GET /v1/audit/events` to flush it.
    let before: Vec<String> = (0..20).map(|i| format!("before-crash-{i}")).collect();
    for id in &before {
        assert!(call(&client, id), "{id} was answered");
    }
    wait_for(
        "the earlier calls' records in the audit file",
        Duration::from_secs(10),
        || {
            let ids = recorded_ids(read_audit(&audit).ok()?);
            before.iter().all(|id| ids.contains(id)).then_some(())
        },
    )
    .unwrap();

    // Load from four connections; SIGKILL once 200 calls of it were answered.
    let url = format!("{}/proxy/demo/items", rt.url);
    let load = Load::start(4, "load", move |client, _| client.get(&url));
    wait_for(
        "200 answered calls under load",
        Duration::from_secs(30),
        || (load.answered() >= 200).then_some(()),
    )
    .unwrap();
    rt.proc.signal(libc::SIGKILL);
    let answered_ids = load.stop();

    let ids = recorded_ids(read_audit(&audit).unwrap());
    for id in &before {
        assert!(ids.contains(id), "{id} was lost by the crash");
    }
    let load: HashSet<String> = answered_ids.into_iter().collect();
    let recorded_load = ids.iter().filter(|id| id.starts_with("load-")).count();
    let lost = load.iter().filter(|id| !ids.contains(*id)).count();
    eprintln!(
        "answered under load: {}, recorded: {recorded_load}, lost to the crash: {lost}",
        load.len()
    );
    // Every record is of a call that was made (a call in flight at the kill may be recorded
    // without its answer having reached the client).
    for id in ids.iter().filter(|id| id.starts_with("load-")) {
        let (w, i) = id["load-".len()..].split_once('-').unwrap();
        assert!(
            w.parse::<u32>().is_ok_and(|w| w < 4) && i.parse::<u64>().is_ok(),
            "record of an unknown call {id}"
        );
    }
    assert!(
        recorded_load > 0,
        "records written during the load reached the file before the crash"
    );
}
