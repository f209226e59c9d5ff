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

/// A pass-through refused at admission (its credentials cannot be resolved) is held for its
/// record too: with the record unwritable, the caller gets `audit_unavailable`, not the 502.
#[test]
fn fail_closed_holds_a_pass_through_refusal_for_its_record() {
    let api = TestApi::start();
    let (_fx, rt) = runtime_with(
        &api,
        json!({"durability": "always", "failClosed": true}),
        &["--audit-path", "/dev/full"],
    );
    let refused = http()
        .get(format!("{}/proxy/demo/auth/api-key-header", rt.url))
        .send()
        .unwrap();
    expect_error(refused, 503, "audit_unavailable", "failClosed");
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

/// Every audit line of every file (rotated ones gunzipped), checked whole. Compression runs
/// beside the reading: a rotated file listed and then removed (its `.gz` is complete) means
/// the files are listed again.
fn all_audit_lines(live: &std::path::Path) -> Vec<Value> {
    for _ in 0..100 {
        if let Some(lines) = try_all_audit_lines(live) {
            return lines;
        }
    }
    panic!("the audit files kept changing while they were read");
}

/// `None` when a listed file is gone before it was read.
fn try_all_audit_lines(live: &std::path::Path) -> Option<Vec<Value>> {
    let dir = live.parent().unwrap();
    let name = live.file_name().unwrap().to_str().unwrap().to_string();
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n == name || (n.starts_with(&format!("{name}.")) && !n.ends_with(".tmp"))
        })
        .collect();
    // A rotated file caught between its compressed copy's rename and its own removal.
    let gz: HashSet<std::path::PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "gz"))
        .map(|f| f.with_extension(""))
        .collect();
    files.retain(|f| !gz.contains(f));
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let bytes = match std::fs::read(&f) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("{f:?}: {e}"),
        };
        let text = if f.extension().is_some_and(|e| e == "gz") {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut t)
                .unwrap();
            t
        } else {
            String::from_utf8(bytes).unwrap()
        };
        for l in text.lines() {
            lines.push(
                serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line in {f:?}: {e}: {l}")),
            );
        }
    }
    Some(lines)
}

/// Rotation by size under load: no line lost or torn across the rotations, rotated files are
/// gzip and 0600; SIGUSR1 after an operator moved the file starts a new one.
#[test]
fn rotation_under_load_loses_no_line_and_sigusr1_reopens() {
    let api = TestApi::start();
    let (fx, mut rt) = runtime_with(
        &api,
        json!({"rotation": {"maxBytes": 16384, "compress": true}}),
        &[],
    );
    let rj: Value =
        serde_json::from_str(&std::fs::read_to_string(&rt.runtime_json).unwrap()).unwrap();
    let live: std::path::PathBuf = rj["auditPath"].as_str().unwrap().into();
    let base = rt.url.clone();
    let load = Load::start(4, "rot", move |client, _| {
        client.get(format!("{base}/proxy/demo/items"))
    });
    wait_for(
        "600 answered calls under load",
        Duration::from_secs(60),
        || (load.answered() >= 600).then_some(()),
    )
    .unwrap();
    let answered = load.stop();
    // An operator's logrotate: move the live file away, then SIGUSR1.
    let moved = fx.path().join("moved-audit.log");
    wait_for("the last records written", Duration::from_secs(10), || {
        let ids: HashSet<String> = all_audit_lines(&live)
            .iter()
            .filter_map(|v| v["requestId"].as_str().map(str::to_string))
            .collect();
        answered.iter().all(|id| ids.contains(id)).then_some(())
    })
    .unwrap();
    std::fs::rename(&live, &moved).unwrap();
    rt.proc.signal(libc::SIGUSR1);
    wait_for("the runtime's reopen", Duration::from_secs(10), || {
        rt.proc
            .logs()
            .contains("SIGUSR1: reopening the audit log")
            .then_some(())
    })
    .unwrap();
    let after = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .header("x-request-id", "after-reopen")
        .send()
        .unwrap();
    assert_eq!(after.status(), 200);
    rt.stop();
    // Every answered call is in exactly one line of the rotated files and the moved one.
    let mut lines = all_audit_lines(&live);
    let moved_text = std::fs::read_to_string(&moved).unwrap();
    lines.extend(
        moved_text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()),
    );
    let ids: Vec<String> = lines
        .iter()
        .filter_map(|v| v["requestId"].as_str().map(str::to_string))
        .filter(|id| id.starts_with("rot-") || id == "after-reopen")
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "a record written twice");
    for id in &answered {
        assert!(unique.contains(id), "{id} lost in a rotation");
    }
    // The call after SIGUSR1 went to the new live file, not the moved one.
    let live_text = std::fs::read_to_string(&live).unwrap();
    assert!(live_text.contains("after-reopen"), "{live_text}");
    assert!(!moved_text.contains("after-reopen"));
    // Rotated files: several, gzip, owner-only.
    let dir = live.parent().unwrap();
    let rotated: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_str().unwrap().ends_with(".gz"))
        .collect();
    assert!(rotated.len() >= 2, "{rotated:?}");
    use std::os::unix::fs::PermissionsExt;
    for r in &rotated {
        assert_eq!(
            std::fs::metadata(r).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
