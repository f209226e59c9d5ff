//! Prometheus metrics (`GET /metrics`, text format 0.0.4), with `prometheus-client`.
//!
//! One process-wide set ([`get`]); every floor records into it through the functions here,
//! so no layer needs another to count. Label values are bounded: routes are the API's own
//! (anything else is `other`), statuses are classes (`2xx`), services come from the config,
//! reasons and results from fixed lists. Tool IDs are a label only with
//! `runtime.server.metrics.toolLabels: true` ([`set_tool_labels`]), on a series of its own.
//!
//! Tool calls are counted from their audit record as it is written
//! ([`crate::audit::Audit::record`] calls [`tool_call`]): the metrics and the audit log
//! cannot disagree about what happened, and no surface counts its own way.
//!
//! Why the Prometheus text format and not OpenMetrics: `promtool check metrics` (2.42)
//! rejects this crate's OpenMetrics counters, and a histogram's `le` labels differ between
//! the two encoders (`1.0` against `1`), so switching later would split its series.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Every `reason` of `open_cli_authn_failures_total` (`crate::auth::AuthError::reason`); each
/// is exported from the start, at zero, so a rate or an alert on it exists before the first
/// failure.
pub const AUTHN_REASONS: [&str; 7] = [
    "missing",
    "malformed",
    "invalid",
    "expired",
    "inactive",
    "provider_unavailable",
    "throttled",
];
/// The `cache` and `result` labels of `open_cli_auth_cache_total`, all exported from the start.
const CACHES: [&str; 3] = ["token", "jwks", "introspection"];
const CACHE_RESULTS: [&str; 3] = ["hit", "miss", "fetch"];

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    channel: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolCallLabels {
    service: String,
    channel: &'static str,
    decision: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    service: String,
    channel: &'static str,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
    channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every series the runtime exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    inflight: Gauge,
    tool_calls_by_tool: Family<ToolLabels, Counter>,
    authn_failures: Family<ReasonLabels, Counter>,
    catalog_tools: Gauge,
    catalog_build: FloatGauge,
    catalog_last_refresh: FloatGauge,
    catalog_last_refresh_ok: Gauge,
    catalog_refreshes: Family<ResultLabels, Counter>,
    audit_lines: Counter,
    audit_write_errors: Counter,
    audit_sync: Histogram,
    audit_healthy: Gauge,
    audit_exported: Counter,
    audit_export_rejected: Counter,
    audit_export_failures: Family<ReasonLabels, Counter>,
    audit_export_pending: FloatGauge,
    edge_refusals: Family<ReasonLabels, Counter>,
    tls_reloads: Family<ResultLabels, Counter>,
    rate_limit_store_errors: Counter,
}

/// The reasons of `open_cli_edge_refusals_total`.
const EDGE_REASONS: [&str; 6] = [
    "tls_handshake",
    "header_fields_too_large",
    "request_line_too_long",
    "service_busy",
    "rate_limited",
    "rate_limit_store_error",
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
static TOOL_LABELS: AtomicBool = AtomicBool::new(false);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// `runtime.server.metrics.toolLabels`: also count tool calls by tool ID.
pub fn set_tool_labels(on: bool) {
    TOOL_LABELS.store(on, Ordering::Relaxed);
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("open_cli");
        // Requests, tool calls, their durations and the auth caches: per-thread shards
        // ([`Sharded`]), summed when scraped.
        r.register_collector(Box::new(Sharded));
        let inflight = Gauge::default();
        r.register(
            "inflight_requests",
            "Requests being answered now",
            inflight.clone(),
        );
        let tool_calls_by_tool = Family::default();
        r.register(
            "tool_calls_by_tool",
            "Tool calls by tool ID (only with runtime.server.metrics.toolLabels)",
            Family::clone(&tool_calls_by_tool),
        );
        let authn_failures = Family::default();
        r.register(
            "authn_failures",
            "Requests refused for their runtime token, by reason (missing, malformed, invalid, expired, inactive, provider_unavailable, throttled)",
            Family::clone(&authn_failures),
        );
        for reason in AUTHN_REASONS {
            drop(authn_failures.get_or_create(&ReasonLabels { reason }));
        }
        let catalog_tools = Gauge::default();
        r.register(
            "catalog_tools",
            "Tools in the catalog being served",
            catalog_tools.clone(),
        );
        let catalog_build = FloatGauge::default();
        r.register_with_unit(
            "catalog_build_duration",
            "How long the last catalog build took",
            Unit::Seconds,
            catalog_build.clone(),
        );
        let catalog_last_refresh = FloatGauge::default();
        r.register(
            "catalog_last_refresh_timestamp_seconds",
            "When the last catalog build ended (Unix time), successful or not",
            catalog_last_refresh.clone(),
        );
        let catalog_last_refresh_ok = Gauge::default();
        r.register(
            "catalog_last_refresh_success",
            "1 if the last catalog build succeeded, 0 if it failed (the previous catalog is then still served)",
            catalog_last_refresh_ok.clone(),
        );
        let catalog_refreshes: Family<ResultLabels, Counter> = Family::default();
        for result in ["ok", "failed"] {
            drop(catalog_refreshes.get_or_create(&ResultLabels { result }));
        }
        r.register(
            "catalog_refreshes",
            "Catalog builds by result (ok, failed)",
            Family::clone(&catalog_refreshes),
        );
        let audit_lines = Counter::default();
        r.register(
            "audit_lines",
            "Audit records written to the audit file",
            audit_lines.clone(),
        );
        let audit_write_errors = Counter::default();
        r.register(
            "audit_write_errors",
            "Failed writes or syncs of the audit file",
            audit_write_errors.clone(),
        );
        let audit_sync = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]);
        r.register_with_unit(
            "audit_sync_duration",
            "Duration of each fsync of the audit file",
            Unit::Seconds,
            audit_sync.clone(),
        );
        let audit_healthy = Gauge::default();
        audit_healthy.set(1);
        r.register(
            "audit_healthy",
            "1 while the last write and sync of the audit file succeeded",
            audit_healthy.clone(),
        );
        let audit_exported = Counter::default();
        r.register(
            "audit_exported",
            "Audit records delivered to the OTLP log receiver (runtime.server.audit.export)",
            audit_exported.clone(),
        );
        let audit_export_rejected = Counter::default();
        r.register(
            "audit_export_rejected",
            "Audit records the receiver accepted the request of but rejected (partial success)",
            audit_export_rejected.clone(),
        );
        let audit_export_failures: Family<ReasonLabels, Counter> = Family::default();
        for reason in ["retry", "refused", "expired"] {
            drop(audit_export_failures.get_or_create(&ReasonLabels { reason }));
        }
        r.register(
            "audit_export_failures",
            "Failed audit export attempts, by reason (retry: network or 429/502/503/504; refused: another status; expired: retention deleted records before they were shipped)",
            Family::clone(&audit_export_failures),
        );
        let audit_export_pending = FloatGauge::default();
        r.register_with_unit(
            "audit_export_pending",
            "Age of the oldest audit record not yet exported (0: caught up, or export off): the export backlog",
            Unit::Seconds,
            audit_export_pending.clone(),
        );
        let edge_refusals: Family<ReasonLabels, Counter> = Family::default();
        for reason in EDGE_REASONS {
            drop(edge_refusals.get_or_create(&ReasonLabels { reason }));
        }
        r.register(
            "edge_refusals",
            "Connections and requests refused at the edge, by reason (tls_handshake: a failed or late TLS handshake; header_fields_too_large: 431; request_line_too_long: 414; service_busy: 503 at maxConcurrentPerService; rate_limited: 429; rate_limit_store_error: the shared rate-limit store could not be asked)",
            Family::clone(&edge_refusals),
        );
        let tls_reloads: Family<ResultLabels, Counter> = Family::default();
        for result in ["ok", "failed"] {
            drop(tls_reloads.get_or_create(&ResultLabels { result }));
        }
        r.register(
            "tls_reloads",
            "Reloads of the listener's TLS certificate and key, by result (failed: the previous pair stays in use)",
            Family::clone(&tls_reloads),
        );
        let rate_limit_store_errors = Counter::default();
        r.register(
            "rate_limit_store_errors",
            "Rate-limit checks the shared store (runtime.server.rateLimits.store) could not answer in time; each was allowed or refused as onStoreError says",
            rate_limit_store_errors.clone(),
        );
        let build_info: Family<VersionLabels, Gauge> = Family::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("build_info", "The runtime's version", build_info);
        Self {
            registry: r,
            inflight,
            tool_calls_by_tool,
            authn_failures,
            catalog_tools,
            catalog_build,
            catalog_last_refresh,
            catalog_last_refresh_ok,
            catalog_refreshes,
            audit_lines,
            audit_write_errors,
            audit_sync,
            audit_healthy,
            audit_exported,
            audit_export_rejected,
            audit_export_failures,
            audit_export_pending,
            edge_refusals,
            tls_reloads,
            rate_limit_store_errors,
        }
    }
}

/// The text of every series (Prometheus text format 0.0.4).
pub fn encode() -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &get().registry);
    out
}

/// `2xx` … `5xx` (`other` outside 100–599).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// Latency bucket bounds, seconds: 0.5 ms to 30 s (and `+Inf`).
const LATENCY_BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram's per-bucket counts (the last: above every bound), count and sum.
#[derive(Debug, Default, Clone)]
struct Hist {
    buckets: [u64; LATENCY_BOUNDS.len() + 1],
    count: u64,
    sum: f64,
}

impl Hist {
    fn observe(&mut self, v: f64) {
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += v;
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum += o.sum;
    }

    fn encode(&self, e: &mut prometheus_client::encoding::MetricEncoder<'_>) -> std::fmt::Result {
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.buckets.iter().copied())
            .collect();
        e.encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }
}

/// One tool call outcome of a service, on one thread.
#[derive(Debug)]
struct ToolCalls {
    channel: &'static str,
    decision: &'static str,
    status_class: &'static str,
    count: u64,
}

/// One service's tool calls on one thread: its outcomes, and its upstream durations by channel.
type ServiceCalls = (Vec<ToolCalls>, Vec<(&'static str, Hist)>);

/// What one thread recorded. Only its own thread writes it; the scrape reads it. The lock is
/// therefore uncontended on the request path (one atomic operation on a line no other core
/// touches), where shared counters and histograms cost a cache-line transfer per update
/// between the serving cores (measured: 8% more CPU per pass-through request with
/// `prometheus-client`'s shared series, `docs/execution.md`, Metrics).
#[derive(Debug, Default)]
struct ShardData {
    /// `(route, channel, status class)` → durations (their count is the request count).
    requests: Vec<((&'static str, &'static str, &'static str), Hist)>,
    /// Service → outcomes, and `(channel, upstream durations)`.
    tools: HashMap<Box<str>, ServiceCalls, crate::hash::Fnv>,
    /// `[cache][result]` ([`CACHES`], [`CACHE_RESULTS`]).
    auth: [[u64; 3]; 3],
}

#[derive(Debug, Default)]
struct Shard(std::sync::Mutex<ShardData>);

/// Every thread's shard, for the scrape.
static SHARDS: std::sync::Mutex<Vec<std::sync::Arc<Shard>>> = std::sync::Mutex::new(Vec::new());

thread_local! {
    static SHARD: std::sync::Arc<Shard> = {
        let shard = std::sync::Arc::new(Shard::default());
        SHARDS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(std::sync::Arc::clone(&shard));
        shard
    };
}

fn with_shard(f: impl FnOnce(&mut ShardData)) {
    SHARD.with(|s| f(&mut s.0.lock().unwrap_or_else(|p| p.into_inner())));
}

/// The sharded series, summed over the threads when scraped.
#[derive(Debug)]
struct Sharded;

impl prometheus_client::collector::Collector for Sharded {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use std::collections::BTreeMap;
        type Names = &'static str;
        let mut requests: BTreeMap<(Names, Names, Names), u64> = BTreeMap::new();
        let mut durations: BTreeMap<Names, Hist> = BTreeMap::new();
        let mut tools: BTreeMap<(String, Names, Names, Names), u64> = BTreeMap::new();
        let mut upstream: BTreeMap<(String, Names), Hist> = BTreeMap::new();
        let mut auth = [[0u64; 3]; 3];
        let shards = SHARDS.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for shard in shards {
            let d = shard.0.lock().unwrap_or_else(|p| p.into_inner());
            for ((route, channel, class), h) in &d.requests {
                *requests.entry((*route, *channel, *class)).or_default() += h.count;
                durations.entry(*channel).or_default().merge(h);
            }
            for (service, (calls, durs)) in &d.tools {
                for c in calls {
                    *tools
                        .entry((service.to_string(), c.channel, c.decision, c.status_class))
                        .or_default() += c.count;
                }
                for (channel, h) in durs {
                    upstream
                        .entry((service.to_string(), *channel))
                        .or_default()
                        .merge(h);
                }
            }
            for (a, row) in auth.iter_mut().zip(&d.auth) {
                for (x, y) in a.iter_mut().zip(row) {
                    *x += y;
                }
            }
        }
        let mut e = encoder.encode_descriptor(
            "requests",
            "Requests answered, by route (the API's own paths, /proxy for the pass-through, other), channel (api, execute, passthrough) and status class",
            None,
            MetricType::Counter,
        )?;
        for ((route, channel, status_class), n) in &requests {
            let labels = RequestLabels {
                route,
                channel,
                status_class,
            };
            e.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        let mut e = encoder.encode_descriptor(
            "request_duration",
            "Time from a request's head to its last answer byte, by channel",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (channel, h) in &durations {
            h.encode(&mut e.encode_family(&ChannelLabels { channel })?)?;
        }
        let mut e = encoder.encode_descriptor(
            "tool_calls",
            "Tool calls by service, channel, decision (allowed, denied, error) and upstream status class (none: nothing was sent), counted from their audit records",
            None,
            MetricType::Counter,
        )?;
        for ((service, channel, decision, status_class), n) in &tools {
            let labels = ToolCallLabels {
                service: service.clone(),
                channel,
                decision,
                status_class,
            };
            e.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        let mut e = encoder.encode_descriptor(
            "upstream_duration",
            "Duration of the tool calls that reached their upstream, by service and channel",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for ((service, channel), h) in &upstream {
            let labels = ServiceLabels {
                service: service.clone(),
                channel,
            };
            h.encode(&mut e.encode_family(&labels)?)?;
        }
        let mut e = encoder.encode_descriptor(
            "auth_cache",
            "Lookups in the verified-token, JWKS and introspection caches (hit, miss) and calls to the provider (fetch)",
            None,
            MetricType::Counter,
        )?;
        for (cache, row) in CACHES.iter().zip(&auth) {
            for (result, n) in CACHE_RESULTS.iter().zip(row) {
                e.encode_family(&CacheLabels { cache, result })?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        Ok(())
    }
}

/// One request answered (any route).
pub fn request(route: &'static str, channel: &'static str, status: u16, took: Duration) {
    let class = status_class(status);
    let secs = took.as_secs_f64();
    with_shard(|d| {
        // Few entries, compared by address: all three are `'static` names.
        let same = |a: &str, b: &str| std::ptr::eq(a, b);
        match d
            .requests
            .iter_mut()
            .find(|((r, c, s), _)| same(r, route) && same(c, channel) && same(s, class))
        {
            Some((_, h)) => h.observe(secs),
            None => {
                let mut h = Hist::default();
                h.observe(secs);
                d.requests.push(((route, channel, class), h));
            }
        }
    });
}

/// How many requests are being answered now (read when `/metrics` is answered).
pub fn set_inflight(n: usize) {
    get().inflight.set(n as i64);
}

/// A tool call's audit record: counted by service, channel, decision and status class, and
/// its duration observed when it reached the upstream (`took`).
pub fn tool_call(
    tool: &str,
    service: &str,
    channel: &'static str,
    decision: &'static str,
    status: u16,
    took: Option<Duration>,
) {
    let class = if status == 0 {
        "none"
    } else {
        status_class(status)
    };
    with_shard(|d| {
        if !d.tools.contains_key(service) {
            d.tools.insert(service.into(), Default::default());
        }
        let Some((calls, durations)) = d.tools.get_mut(service) else {
            return;
        };
        match calls
            .iter_mut()
            .find(|c| c.channel == channel && c.decision == decision && c.status_class == class)
        {
            Some(c) => c.count += 1,
            None => calls.push(ToolCalls {
                channel,
                decision,
                status_class: class,
                count: 1,
            }),
        }
        if let Some(took) = took {
            let secs = took.as_secs_f64();
            match durations.iter_mut().find(|(c, _)| *c == channel) {
                Some((_, h)) => h.observe(secs),
                None => {
                    let mut h = Hist::default();
                    h.observe(secs);
                    durations.push((channel, h));
                }
            }
        }
    });
    if TOOL_LABELS.load(Ordering::Relaxed) {
        get()
            .tool_calls_by_tool
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
                service: service.to_string(),
                channel,
                decision,
            })
            .inc();
    }
}

/// A request refused for its runtime token.
pub fn authn_failure(reason: &'static str) {
    get()
        .authn_failures
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// A lookup in an authentication cache (`token`, `jwks`, `introspection`): `hit`, `miss`,
/// or `fetch` (the provider was asked).
pub fn auth_cache(cache: &'static str, result: &'static str) {
    let (Some(c), Some(r)) = (
        CACHES.iter().position(|x| *x == cache),
        CACHE_RESULTS.iter().position(|x| *x == result),
    ) else {
        debug_assert!(false, "unknown cache label {cache}/{result}");
        return;
    };
    with_shard(|d| d.auth[c][r] += 1);
}

/// A catalog build ended: `tools` is set when it was swapped in.
pub fn catalog_built(ok: bool, tools: Option<usize>, took: Duration) {
    let m = get();
    m.catalog_refreshes
        .get_or_create(&ResultLabels {
            result: if ok { "ok" } else { "failed" },
        })
        .inc();
    m.catalog_last_refresh_ok.set(i64::from(ok));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    m.catalog_last_refresh.set(now.as_secs_f64());
    m.catalog_build.set(took.as_secs_f64());
    if let Some(n) = tools {
        m.catalog_tools.set(n as i64);
    }
}

/// The audit writer wrote `lines` records in one batch.
pub fn audit_written(lines: u64) {
    get().audit_lines.inc_by(lines);
}

/// One fsync of the audit file.
pub fn audit_synced(took: Duration) {
    get().audit_sync.observe(took.as_secs_f64());
}

/// The audit file's health after a write or sync.
pub fn audit_health(ok: bool) {
    let m = get();
    if !ok {
        m.audit_write_errors.inc();
    }
    m.audit_healthy.set(i64::from(ok));
}

/// A batch of `n` audit records was delivered, `rejected` of them refused by the receiver.
pub fn audit_exported(n: u64, rejected: i64) {
    let m = get();
    m.audit_exported.inc_by(n);
    if rejected > 0 {
        m.audit_export_rejected.inc_by(rejected as u64);
    }
}

/// An export attempt failed: `retry`, `refused` or `expired`.
pub fn audit_export_failed(reason: &'static str) {
    get()
        .audit_export_failures
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// The age of the oldest record not yet exported.
pub fn audit_export_pending(secs: f64) {
    get().audit_export_pending.set(secs);
}

/// A connection or request refused at the edge (`reason`: one of the `EDGE_REASONS`).
pub fn edge_refusal(reason: &'static str) {
    debug_assert!(EDGE_REASONS.contains(&reason), "{reason}");
    get()
        .edge_refusals
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// The rate-limit store could not answer a check.
pub fn rate_limit_store_error() {
    get().rate_limit_store_errors.inc();
}

/// A TLS handshake on the listener failed or did not finish in time.
pub fn tls_handshake_failed() {
    edge_refusal("tls_handshake");
}

/// A request head over a bound: `431` or `414`.
pub fn head_refused(status: &str) {
    edge_refusal(if status == "414" {
        "request_line_too_long"
    } else {
        "header_fields_too_large"
    });
}

/// A reload of the listener's certificate.
pub fn tls_reloaded(ok: bool) {
    get()
        .tls_reloads
        .get_or_create(&ResultLabels {
            result: if ok { "ok" } else { "failed" },
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_series_with_help_and_type() {
        request(
            "/v1/tools/execute",
            "execute",
            200,
            Duration::from_millis(3),
        );
        tool_call(
            "demo:listItems",
            "demo",
            "execute",
            "allowed",
            200,
            Some(Duration::from_millis(2)),
        );
        authn_failure("expired");
        auth_cache("token", "hit");
        catalog_built(true, Some(17), Duration::from_millis(140));
        audit_written(3);
        audit_synced(Duration::from_micros(300));
        let text = encode();
        for series in [
            "open_cli_requests_total{route=\"/v1/tools/execute\",channel=\"execute\",status_class=\"2xx\"}",
            "open_cli_request_duration_seconds_bucket{",
            "open_cli_tool_calls_total{service=\"demo\",channel=\"execute\",decision=\"allowed\",status_class=\"2xx\"}",
            "open_cli_upstream_duration_seconds_count{service=\"demo\",channel=\"execute\"}",
            "open_cli_authn_failures_total{reason=\"expired\"}",
            "open_cli_auth_cache_total{cache=\"token\",result=\"hit\"}",
            "open_cli_catalog_tools 17",
            "open_cli_catalog_last_refresh_success 1",
            "open_cli_audit_lines_total",
            "open_cli_audit_sync_duration_seconds_bucket{le=",
            "open_cli_build_info{version=",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        assert!(
            text.contains("# TYPE open_cli_requests_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "other");
    }
}
