//! Traces (issue 17, item 6): OpenTelemetry spans exported to a real OTLP receiver, the
//! caller's W3C trace continued, `traceparent` sent upstream on both channels, and the trace
//! ID in the audit record and the log line.

use std::time::Duration;

use open_cli_product_tests::{
    Fixture, OtlpReceiver, Runtime, TestApi, demo_config, http, wait_for,
};
use serde_json::{Value, json};

const TRACE_P: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_P: &str = "00f067aa0ba902b7";
const TRACE_X: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_X: &str = "b7ad6b7169203331";

fn span<'a>(spans: &'a [Value], trace: &str, name: &str) -> Option<&'a Value> {
    spans
        .iter()
        .find(|s| s["traceId"] == trace && s["name"] == name)
}

/// The span `name` of `trace` whose parent is `parent`; its span ID.
fn child(spans: &[Value], trace: &str, name: &str, parent: &str) -> String {
    let s = span(spans, trace, name).unwrap_or_else(|| panic!("no `{name}` span in {spans:#?}"));
    assert_eq!(s["parentSpanId"], parent, "{name}: {s}");
    s["spanId"].as_str().unwrap().to_string()
}

/// `traceparent` as the upstream received it on the call with this request ID.
fn upstream_traceparent(api: &TestApi, request_id: &str) -> String {
    let req = api
        .requests_for("/items")
        .into_iter()
        .find(|r| r["headers"]["x-request-id"] == request_id)
        .unwrap_or_else(|| panic!("the upstream got no call {request_id}"));
    req["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {req}"))
        .to_string()
}

#[test]
fn spans_continue_the_callers_trace_upstream_and_into_the_audit_record() {
    let api = TestApi::start();
    let rx = OtlpReceiver::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(".cli.json", &demo_config(json!({})));
    let state = Fixture::new();
    let endpoint = format!("{}/v1/traces", rx.url());
    let rt = Runtime::try_start_env(
        &config,
        state.path(),
        &["--log-format", "json"],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "runtime-under-test"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pass = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .header("traceparent", format!("00-{TRACE_P}-{CALLER_P}-01"))
        .header("x-request-id", "tp-1")
        .send()
        .unwrap();
    assert_eq!(pass.status(), 200);
    let exec = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .header("traceparent", format!("00-{TRACE_X}-{CALLER_X}-01"))
        .header("x-request-id", "tx-1")
        .body(json!({"toolId": "demo:listItems"}).to_string())
        .send()
        .unwrap();
    assert_eq!(exec.status(), 200);

    let spans = wait_for("both traces exported", Duration::from_secs(20), || {
        let spans = rx.spans();
        let done = ["request", "upstream"]
            .iter()
            .all(|n| span(&spans, TRACE_P, n).is_some())
            && ["request", "policy", "credentials", "upstream"]
                .iter()
                .all(|n| span(&spans, TRACE_X, n).is_some());
        done.then_some(spans)
    })
    .unwrap();
    // The pass-through: request (the caller's child) → upstream, the upstream's parent.
    let request = child(&spans, TRACE_P, "request", CALLER_P);
    let policy = child(&spans, TRACE_P, "policy", &request);
    assert!(!policy.is_empty());
    let upstream = child(&spans, TRACE_P, "upstream", &request);
    assert_eq!(
        upstream_traceparent(&api, "tp-1"),
        format!("00-{TRACE_P}-{upstream}-01")
    );
    // Execute: request → policy, credentials, upstream.
    let request = child(&spans, TRACE_X, "request", CALLER_X);
    for name in ["policy", "credentials"] {
        child(&spans, TRACE_X, name, &request);
    }
    let upstream = child(&spans, TRACE_X, "upstream", &request);
    assert_eq!(
        upstream_traceparent(&api, "tx-1"),
        format!("00-{TRACE_X}-{upstream}-01")
    );
    let req_span = span(&spans, TRACE_X, "request").unwrap();
    assert_eq!(req_span["kind"], 2, "server span: {req_span}");

    // The audit records and the log lines carry the trace IDs.
    let rj: Value =
        serde_json::from_str(&std::fs::read_to_string(&rt.runtime_json).unwrap()).unwrap();
    let audit_path = rj["auditPath"].as_str().unwrap().to_string();
    let audit: Vec<Value> = http()
        .get(format!("{}/v1/audit/events?order=oldest", rt.url))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["events"]
        .as_array()
        .unwrap()
        .clone();
    let trace_of = |rid: &str| {
        audit
            .iter()
            .find(|e| e["requestId"] == rid)
            .unwrap_or_else(|| panic!("no record {rid} in {audit_path}"))["traceId"]
            .clone()
    };
    assert_eq!(trace_of("tp-1"), TRACE_P);
    assert_eq!(trace_of("tx-1"), TRACE_X);
    let logs = rt.proc.stderr();
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["request_id"] == "tp-1")
        .unwrap_or_else(|| panic!("no log line for tp-1:\n{logs}"));
    assert_eq!(line["trace_id"], TRACE_P, "{line}");
}

/// Without the variables nothing is exported and execute sends no `traceparent`; the
/// pass-through forwards the caller's own unchanged.
#[test]
fn without_an_endpoint_there_are_no_spans_and_the_callers_context_passes_through() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(".cli.json", &demo_config(json!({})));
    let rt = Runtime::start(&config);
    let theirs = format!("00-{TRACE_P}-{CALLER_P}-01");
    let pass = http()
        .get(format!("{}/proxy/demo/items", rt.url))
        .header("traceparent", &theirs)
        .header("x-request-id", "off-1")
        .send()
        .unwrap();
    assert_eq!(pass.status(), 200);
    assert_eq!(upstream_traceparent(&api, "off-1"), theirs);
    let exec = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .header("traceparent", &theirs)
        .header("x-request-id", "off-2")
        .body(json!({"toolId": "demo:listItems"}).to_string())
        .send()
        .unwrap();
    assert_eq!(exec.status(), 200);
    let req = api
        .requests_for("/items")
        .into_iter()
        .find(|r| r["headers"]["x-request-id"] == "off-2")
        .unwrap();
    assert!(req["headers"].get("traceparent").is_none(), "{req}");
}
