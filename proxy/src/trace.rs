//! Distributed tracing: whether it is on, and W3C trace context (`traceparent`, `tracestate`)
//! in from callers and out to upstreams.
//!
//! Tracing is OpenTelemetry through `tracing` spans and `tracing-opentelemetry`
//! (`crate::telemetry` installs the exporter when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set). **Free when off**: every span of the request path is
//! made by [`span!`](crate::span), which is `tracing::Span::none()` (no allocation, no
//! subscriber call) unless [`on`]; the only cost left is one relaxed atomic load per span site.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

static ON: AtomicBool = AtomicBool::new(false);

/// Spans are exported.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Called once the exporter is installed.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// `tracing::info_span!(…)` when tracing is [`on`](crate::trace::on), else a disabled span.
#[macro_export]
macro_rules! span {
    ($($arg:tt)+) => {
        if $crate::trace::on() {
            ::tracing::info_span!($($arg)+)
        } else {
            ::tracing::Span::none()
        }
    };
}

struct Extract<'a>(&'a http::HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Inject<'a>(&'a mut Vec<(&'static str, String)>);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The W3C propagator sets only these two.
        let key = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((key, value));
    }
}

/// Make `span` continue the caller's trace (its `traceparent`/`tracestate`), if it sent one.
/// Call before the span is first entered.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_none() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Extract(headers));
    let _ = span.set_parent(parent);
}

/// The 32-hex-digit trace ID of `span`, when tracing is on.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if span.is_none() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The trace ID of the span the caller is in.
pub fn current_trace_id() -> Option<String> {
    if !on() {
        return None;
    }
    trace_id(&tracing::Span::current())
}

/// The `traceparent` (and `tracestate`) that make `span` the parent of an outgoing request;
/// nothing when tracing is off.
pub fn outgoing(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !span.is_none() {
        TraceContextPropagator::new().inject_context(&span.context(), &mut Inject(&mut out));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_no_span_and_no_headers() {
        let s = crate::span!("x");
        assert!(s.is_none());
        assert!(outgoing(&s).is_empty());
        assert_eq!(trace_id(&s), None);
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        continue_trace(&s, &h);
        assert_eq!(current_trace_id(), None);
    }
}
