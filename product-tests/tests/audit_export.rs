//! Audit export to a SIEM (issue 17, item 4): every record reaches a real OTLP receiver as a
//! log record with the event's fields as attributes, through a receiver outage and a runtime
//! killed with SIGKILL and restarted, with a stable record ID for de-duplication.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use open_cli_product_tests::{
    Fixture, OtlpReceiver, Port, Runtime, TestApi, demo_config, http, otlp_attr, wait_for,
};
use serde_json::{Value, json};

fn call(rt: &Runtime, id: &str) {
    let r = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .header("x-request-id", id)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{id}");
}

/// The request IDs of the received audit records, with each one's record IDs.
fn received(logs: &[Value]) -> HashMap<String, HashSet<String>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for l in logs {
        if let (Some(rid), Some(id)) = (
            otlp_attr(l, "requestId"),
            otlp_attr(l, "open_cli.audit.record_id"),
        ) {
            out.entry(rid).or_default().insert(id);
        }
    }
    out
}

fn metric(rt: &Runtime, series: &str) -> f64 {
    let text = http()
        .get(format!("{}/metrics", rt.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn every_record_reaches_the_receiver_through_an_outage_and_a_restart() {
    let api = TestApi::start();
    let rx = OtlpReceiver::start();
    let port = rx.port;
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(
        ".cli.json",
        &demo_config(json!({"runtime": {"server": {"audit": {
            "export": {"intervalMs": 100, "batchSize": 7}}}}})),
    );
    let state = Fixture::new();
    let endpoint = format!("{}/v1/logs", rx.url());
    let env = [("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", endpoint.as_str())];
    let start = || {
        Runtime::try_start_env(&config, state.path(), &[], &env).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut rt = start();
    let ids = |prefix: &'static str| (0..12).map(move |i| format!("{prefix}-{i}"));
    for id in ids("a") {
        call(&rt, &id);
    }
    wait_for("the first calls exported", Duration::from_secs(20), || {
        let got = received(&rx.logs());
        ids("a").all(|id| got.contains_key(&id)).then_some(())
    })
    .unwrap();
    // The record as shipped: the event's fields as attributes, the line as the body.
    let first = rx
        .logs()
        .into_iter()
        .find(|l| otlp_attr(l, "requestId").as_deref() == Some("a-0"))
        .unwrap();
    assert_eq!(
        otlp_attr(&first, "eventType").as_deref(),
        Some("tool_execution")
    );
    assert_eq!(otlp_attr(&first, "channel").as_deref(), Some("passthrough"));
    assert_eq!(otlp_attr(&first, "statusCode").as_deref(), Some("200"));
    let body: Value = serde_json::from_str(first["body"]["stringValue"].as_str().unwrap()).unwrap();
    assert_eq!(body["requestId"], "a-0");
    assert!(first["timeUnixNano"].as_str().is_some_and(|t| t != "0"));
    let before_outage = rx.logs();

    // The receiver goes away: calls are answered as before, the export retries.
    drop(rx);
    for id in ids("b") {
        call(&rt, &id);
    }
    wait_for(
        "a failed export attempt counted",
        Duration::from_secs(20),
        || {
            (metric(
                &rt,
                r#"open_cli_audit_export_failures_total{reason="retry"}"#,
            ) >= 1.0)
                .then_some(())
        },
    )
    .unwrap();
    assert!(metric(&rt, "open_cli_audit_export_pending_seconds") > 0.0);

    // The runtime dies without a chance to save anything, and comes back.
    rt.proc.signal(libc::SIGKILL);
    rt.proc.wait_exit(Duration::from_secs(10)).unwrap();
    let rt = start();
    for id in ids("c") {
        call(&rt, &id);
    }
    // The receiver comes back on the same address.
    let rx = OtlpReceiver::start_on(Port::Fixed(port));
    wait_for("every record delivered", Duration::from_secs(60), || {
        let mut got = received(&before_outage);
        for (k, v) in received(&rx.logs()) {
            got.entry(k).or_default().extend(v);
        }
        ids("a")
            .chain(ids("b"))
            .chain(ids("c"))
            .all(|id| got.contains_key(&id))
            .then_some(got)
    })
    .map(|got| {
        // At least once, with one record ID per record: a receiver can drop repeats.
        for (rid, record_ids) in &got {
            assert_eq!(record_ids.len(), 1, "{rid}: {record_ids:?}");
        }
    })
    .unwrap();
    wait_for("the backlog drained", Duration::from_secs(10), || {
        (metric(&rt, "open_cli_audit_export_pending_seconds") == 0.0).then_some(())
    })
    .unwrap();
}
