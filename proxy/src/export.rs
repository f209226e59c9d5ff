//! Shipping the audit log to a SIEM: every record as an OTLP log record over HTTP/protobuf
//! (`runtime.server.audit.export`, or `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`).
//!
//! **Nothing lost, nothing blocked.** The exporter reads the audit *file* (through
//! [`crate::audit::query`], oldest first, across rotated and compressed files) from a
//! persisted cursor, on a thread of its own: a request never waits for it, and a collector
//! outage only makes it fall behind. The cursor is written (to a temporary file, synced,
//! renamed) only after the receiver answered 2xx, so a crash or restart resends at most the
//! last batch: delivery is at least once, and every record carries `open_cli.audit.record_id`
//! (its position in the log, stable across rotation and compression) for de-duplication. A
//! cursor whose file retention deleted before it was shipped is reported (error log, metric)
//! and the exporter starts again at the oldest record left.
//!
//! **Retries.** Network errors, timeouts, 429, 502, 503 and 504 are retried with exponential
//! backoff from 1 s to 60 s (`Retry-After` honoured); any other status is also retried, at the
//! longest interval, with an error log each time, since skipping would lose records. A 2xx
//! whose body reports rejected records advances (the receiver decided; resending cannot change
//! it) and counts them.
//!
//! **The record.** Body: the audit line (JSON) as it is in the file. Attributes: the record's
//! top-level fields under their own names (`eventType`, `toolId`, `principal`, `decision`,
//! …; numbers as integers), and `open_cli.audit.record_id`. Time: the record's `timestamp`.
//! Resource: `service.name` (`OTEL_SERVICE_NAME`, else `open-cli-toolbox`) and
//! `service.instance.id` (the runtime instance).
//!
//! Why not the `opentelemetry-otlp` log exporter: its result is a string (no status code or
//! `Retry-After` to decide a retry on), it reports a partial success as success, and it wants
//! records made through a logger provider. The request is the OTLP protobuf message from
//! `opentelemetry-proto`, POSTed with the runtime's own HTTP client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as AnyV,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use open_cli_config::model::AuditExport;

use crate::audit::query::{Cursor, Filter, Order, QueryError, record_id};

/// Where and how to ship.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub interval: Duration,
    pub batch: usize,
    pub service_name: String,
    pub instance: String,
}

impl Target {
    /// From the config and the standard `OTEL_*` variables; `None` when export is off (no
    /// `runtime.server.audit.export` and no `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`).
    pub fn resolve(
        export: Option<&AuditExport>,
        env: impl Fn(&str) -> Option<String>,
        instance: &str,
    ) -> Result<Option<Self>, String> {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let logs_endpoint = var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT");
        if export.is_none() && logs_endpoint.is_none() {
            return Ok(None);
        }
        let defaults = AuditExport::default();
        let export = export.unwrap_or(&defaults);
        let endpoint = export
            .endpoint
            .clone()
            .or(logs_endpoint)
            .or_else(|| {
                var("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|base| format!("{}/v1/logs", base.trim_end_matches('/')))
            })
            .ok_or(
                "runtime.server.audit.export is set but no endpoint is: set its `endpoint`, \
                 OTEL_EXPORTER_OTLP_LOGS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT",
            )?;
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!(
                "the audit export endpoint must be an http:// or https:// URL, found `{endpoint}`"
            ));
        }
        let headers = var("OTEL_EXPORTER_OTLP_LOGS_HEADERS")
            .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|raw| parse_headers(&raw))
            .transpose()?
            .unwrap_or_default();
        let timeout = var("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .map(|t| {
                t.trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| {
                        format!("OTEL_EXPORTER_OTLP_TIMEOUT must be milliseconds, found `{t}`")
                    })
            })
            .transpose()?
            .unwrap_or(Duration::from_secs(10));
        Ok(Some(Self {
            endpoint,
            headers,
            timeout,
            interval: Duration::from_millis(export.interval_ms),
            batch: export.batch_size as usize,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "open-cli-toolbox".into()),
            instance: instance.to_string(),
        }))
    }
}

/// The endpoint as logs may show it: without a `user:password@` part.
fn shown(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(unparsable endpoint)".into(),
    }
}

/// `k1=v1,k2=v2`, values percent-decoded (the OTLP exporter convention). Never echoes a value
/// in an error: header values are credentials.
fn parse_headers(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, pair) in raw.split(',').enumerate() {
        if pair.trim().is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            format!(
                "OTEL_EXPORTER_OTLP_HEADERS: entry {} is not `name=value`",
                i + 1
            )
        })?;
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| {
                format!(
                    "OTEL_EXPORTER_OTLP_HEADERS: the value of `{}` is not UTF-8",
                    k.trim()
                )
            })?;
        out.push((k.trim().to_string(), v.into_owned()));
    }
    Ok(out)
}

/// The exporter's persisted position: `.<audit file name>.otlp-cursor` beside the log (not
/// `<name>.…`, which would read as a rotated file).
pub fn cursor_path(audit: &Path) -> PathBuf {
    let name = audit
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("audit.log");
    audit.with_file_name(format!(".{name}.otlp-cursor"))
}

fn load_cursor(path: &Path) -> Result<Option<Cursor>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Cursor::decode(text.trim())
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn store_cursor(path: &Path, cursor: &Cursor) -> std::io::Result<()> {
    crate::instance::replace_private(
        path,
        &path.with_extension("tmp"),
        cursor.encode().as_bytes(),
    )
}

/// Start the exporter thread; it runs until the process exits.
pub fn start(state: Arc<crate::state::RuntimeState>, target: Target) -> Result<(), String> {
    let path = cursor_path(state.audit.path());
    let cursor = load_cursor(&path)?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(target.timeout)
        .build()
        .map_err(|e| format!("cannot create the audit exporter's HTTP client: {e}"))?;
    tracing::info!(endpoint = %shown(&target.endpoint), resume = cursor.is_some(), "audit export to OTLP started");
    std::thread::Builder::new()
        .name("audit-export".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "the audit exporter cannot start its event loop; audit records are not exported");
                    return;
                }
            };
            rt.block_on(run(state, target, client, path, cursor));
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the audit exporter: {e}"))
}

/// Why a batch was not delivered.
#[derive(Debug)]
enum Failure {
    /// Try again later (network, timeout, 429, 502–504); the receiver's `Retry-After`.
    Retry(Option<Duration>, String),
    /// The receiver refused the request itself.
    Refused(u16, String),
}

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

async fn run(
    state: Arc<crate::state::RuntimeState>,
    target: Target,
    client: reqwest::Client,
    path: PathBuf,
    mut cursor: Option<Cursor>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let page = {
            let state = Arc::clone(&state);
            let batch = target.batch;
            tokio::task::spawn_blocking(move || {
                state
                    .audit
                    .query(&Filter::default(), Order::Oldest, batch, cursor)
            })
            .await
        };
        let page = match page {
            Ok(Ok(p)) => p,
            Ok(Err(QueryError::CursorExpired)) => {
                crate::metrics::audit_export_failed("expired");
                tracing::error!(
                    "audit export: the file the export had reached was deleted by retention before it was shipped; \
                     records in it are lost to the export; continuing with the oldest record left \
                     (keep rotated files longer than a collector outage can last)"
                );
                cursor = None;
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "audit export cannot read the audit log; retrying");
                tokio::time::sleep(target.interval).await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "audit export: reading the log failed");
                tokio::time::sleep(target.interval).await;
                continue;
            }
        };
        if page.lines.is_empty() {
            crate::metrics::audit_export_pending(0.0);
            if let Some(next) = page.next {
                cursor = Some(next);
            }
            tokio::time::sleep(target.interval).await;
            continue;
        }
        crate::metrics::audit_export_pending(age_of(&page.lines[0]));
        let body = encode(&target, &page.lines, &page.at);
        match send(&client, &target, body).await {
            Ok(rejected) => {
                backoff = BACKOFF_MIN;
                crate::metrics::audit_exported(page.lines.len() as u64, rejected);
                if rejected > 0 {
                    tracing::warn!(
                        rejected,
                        "the audit log receiver rejected records of an accepted batch"
                    );
                }
                if let Some(next) = page.next {
                    if let Err(e) = store_cursor(&path, &next) {
                        tracing::error!(file = %path.display(), error = %e, "cannot save the audit export position; a restart will send records again");
                    }
                    cursor = Some(next);
                }
                if page.lines.len() < target.batch {
                    crate::metrics::audit_export_pending(0.0);
                    tokio::time::sleep(target.interval).await;
                }
            }
            Err(Failure::Retry(after, why)) => {
                crate::metrics::audit_export_failed("retry");
                let wait = after.unwrap_or(backoff).min(BACKOFF_MAX);
                tracing::warn!(endpoint = %shown(&target.endpoint), error = %why, retry_in_ms = wait.as_millis() as u64, "audit export failed; retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(Failure::Refused(status, why)) => {
                crate::metrics::audit_export_failed("refused");
                tracing::error!(endpoint = %shown(&target.endpoint), status, error = %why, "the audit log receiver refused the export; retrying (records are kept until it accepts them)");
                tokio::time::sleep(BACKOFF_MAX).await;
            }
        }
    }
}

/// Seconds since the record's `timestamp` (0 when it cannot be read).
fn age_of(line: &[u8]) -> f64 {
    let ts = serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["timestamp"].as_str().map(str::to_string));
    ts.and_then(|t| {
        time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
    })
    .map_or(0.0, |t| {
        (time::OffsetDateTime::now_utc() - t)
            .as_seconds_f64()
            .max(0.0)
    })
}

fn kv(key: &str, v: AnyV) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// The OTLP request for these records.
fn encode(target: &Target, lines: &[Vec<u8>], at: &[(u64, u64)]) -> Vec<u8> {
    let observed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let records = lines
        .iter()
        .zip(at)
        .map(|(line, at)| {
            let text = String::from_utf8_lossy(line).into_owned();
            let mut attributes = vec![kv(
                "open_cli.audit.record_id",
                AnyV::StringValue(record_id(*at)),
            )];
            let mut time = 0;
            if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(line) {
                for (k, v) in fields {
                    let value = match v {
                        serde_json::Value::String(s) => {
                            if k == "timestamp" {
                                time = time::OffsetDateTime::parse(
                                    &s,
                                    &time::format_description::well_known::Rfc3339,
                                )
                                .map_or(0, |t| t.unix_timestamp_nanos() as u64);
                            }
                            AnyV::StringValue(s)
                        }
                        serde_json::Value::Number(n) => match n.as_i64() {
                            Some(i) => AnyV::IntValue(i),
                            None => AnyV::DoubleValue(n.as_f64().unwrap_or_default()),
                        },
                        serde_json::Value::Bool(b) => AnyV::BoolValue(b),
                        other => AnyV::StringValue(other.to_string()),
                    };
                    attributes.push(kv(&k, value));
                }
            }
            LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: observed,
                severity_number: SeverityNumber::Info as i32,
                severity_text: "INFO".into(),
                event_name: "open_cli.audit".into(),
                body: Some(AnyValue {
                    value: Some(AnyV::StringValue(text)),
                }),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        AnyV::StringValue(target.service_name.clone()),
                    ),
                    kv(
                        "service.instance.id",
                        AnyV::StringValue(target.instance.clone()),
                    ),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "open-cli-audit".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// POST one batch; `Ok(rejected records)` after a 2xx.
async fn send(client: &reqwest::Client, target: &Target, body: Vec<u8>) -> Result<i64, Failure> {
    let started = Instant::now();
    let mut req = client
        .post(&target.endpoint)
        .header("content-type", "application/x-protobuf")
        .body(body);
    for (k, v) in &target.headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Failure::Retry(None, crate::error::error_chain(&e.without_url())))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Failure::Retry(None, crate::error::error_chain(&e.without_url())))?;
    tracing::debug!(
        status,
        took_ms = started.elapsed().as_millis() as u64,
        "audit export request"
    );
    if (200..300).contains(&status) {
        let rejected = ExportLogsServiceResponse::decode(bytes.as_ref())
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| p.rejected_log_records);
        return Ok(rejected);
    }
    let detail = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
    match status {
        429 | 502 | 503 | 504 => Err(Failure::Retry(retry_after, format!("{status}: {detail}"))),
        _ => Err(Failure::Refused(status, detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_endpoint_comes_from_the_config_then_the_standard_variables() {
        assert!(Target::resolve(None, env(&[]), "i").unwrap().is_none());
        // The general endpoint alone (also the traces') does not turn audit export on.
        assert!(
            Target::resolve(
                None,
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]),
                "i"
            )
            .unwrap()
            .is_none()
        );
        let on = AuditExport::default();
        let t = Target::resolve(
            Some(&on),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
            "i",
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.endpoint, "http://c:4318/v1/logs");
        let t = Target::resolve(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:1/logs"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20abc, x-tenant=t1",
                ),
                ("OTEL_SERVICE_NAME", "edge-runtime"),
            ]),
            "i",
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.endpoint, "http://l:1/logs");
        assert_eq!(
            t.headers,
            [
                ("authorization".to_string(), "Bearer abc".to_string()),
                ("x-tenant".into(), "t1".into())
            ]
        );
        assert_eq!(t.service_name, "edge-runtime");
        let e = Target::resolve(Some(&on), env(&[]), "i").unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"), "{e}");
        let e = Target::resolve(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:1/logs"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "authorization"),
            ]),
            "i",
        )
        .unwrap_err();
        assert!(e.contains("entry 1"), "{e}");
    }

    #[test]
    fn logs_show_the_endpoint_without_its_credentials() {
        assert_eq!(
            shown("https://tenant:s3cret@collector.example:4318/v1/logs"),
            "https://collector.example:4318/v1/logs"
        );
    }

    #[test]
    fn a_record_carries_its_fields_its_id_and_its_time() {
        let target = Target::resolve(
            None,
            env(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:1/logs")]),
            "inst",
        )
        .unwrap()
        .unwrap();
        let line = br#"{"timestamp":"2026-12-06T10:00:00.123Z","eventType":"tool_execution","toolId":"demo:listItems","statusCode":200}"#;
        let body = encode(&target, &[line.to_vec()], &[(0xabc, 42)]);
        let req = ExportLogsServiceRequest::decode(&body[..]).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        let attr = |k: &str| {
            rec.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            attr("open_cli.audit.record_id"),
            Some(AnyV::StringValue("0000000000000abc-42".into()))
        );
        assert_eq!(
            attr("toolId"),
            Some(AnyV::StringValue("demo:listItems".into()))
        );
        assert_eq!(attr("statusCode"), Some(AnyV::IntValue(200)));
        assert_eq!(rec.time_unix_nano, 1_796_551_200_123_000_000);
        assert_eq!(
            rec.body.clone().and_then(|b| b.value),
            Some(AnyV::StringValue(String::from_utf8(line.to_vec()).unwrap()))
        );
    }
}
