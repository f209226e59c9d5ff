//! Logging: `tracing` to stderr, text or JSON lines; `RUST_LOG` overrides the level.
//! Pingora logs through the `log` crate, bridged into the same subscriber.
//!
//! Traces: when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (and `OTEL_SDK_DISABLED` is not `true`), an OpenTelemetry layer beside the log exports the
//! request path's spans over OTLP/HTTP (protobuf) with a batch processor on its own thread; the
//! SDK reads the other standard variables itself (`OTEL_TRACES_SAMPLER`, `_ARG`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_*_HEADERS`, `_TIMEOUT`,
//! `OTEL_BSP_*`). `RUST_LOG` filters the log only, never the spans.
//!
//! Lines are formatted on the request's thread and handed to a [`Spool`]: its writer thread
//! writes each short window of lines with one `write(2)`, so a busy proxy pays neither a
//! syscall nor a thread wake-up per access-log line, and a slow or blocked stderr never
//! stalls request handling. It is not lossy: when the spool is full, logging waits rather
//! than dropping lines. The returned guard flushes at exit, and a panic flushes before the
//! panic message is printed, so the lines leading up to it are not lost.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::spool::Spool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flushes the spans and the log when dropped.
#[derive(Debug)]
pub struct LogGuard(
    Option<Spool>,
    Option<opentelemetry_sdk::trace::SdkTracerProvider>,
);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(p) = self.1.take()
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "the trace exporter did not flush at exit");
        }
        if let Some(s) = &self.0 {
            let _ = s.flush();
        }
    }
}

/// Whether the standard variables ask for trace export.
fn traces_wanted(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The tracer provider the standard variables describe (see the module docs).
fn tracer_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| format!("cannot build the OTLP trace exporter: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if !named {
        resource = resource.with_service_name("open-cli-toolbox");
    }
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

pub fn init(format: LogFormat) -> LogGuard {
    let provider = if traces_wanted(|k| std::env::var(k).ok()) {
        match tracer_provider() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}; traces are not exported");
                None
            }
        }
    } else {
        None
    };
    let spool = match Spool::new("log-writer", Box::new(std::io::stderr())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the log writer thread: {e}; logging to stderr directly");
            install(format, std::io::stderr, provider.as_ref());
            return LogGuard(None, provider);
        }
    };
    let on_panic = spool.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        on_panic.try_flush();
        previous(info);
    }));
    install(format, spool.clone(), provider.as_ref());
    // Request lines are written by hand into the same spool, when the level lets them through.
    if tracing::enabled!(target: "open_cli_proxy::gateway", tracing::Level::INFO) {
        crate::accesslog::install(spool.clone(), format == LogFormat::Json);
    }
    if provider.is_some() {
        crate::trace::enable();
        tracing::info!("traces are exported over OTLP (OTEL_EXPORTER_OTLP_* variables)");
    }
    LogGuard(Some(spool), provider)
}

/// The global subscriber: the log (`RUST_LOG`, default `info`, text or JSON lines, to
/// `writer`) and, with `provider`, the OpenTelemetry layer. Each has its own filter.
fn install<W>(
    format: LogFormat,
    writer: W,
    provider: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
) where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    // The MCP SDK (rmcp) logs every MCP session and stateless request at info (created,
    // initialized, stream ended) with Debug dumps of the peer: per-request noise that cost /mcp
    // a log write per call. Its warnings and errors stay; the gateway's access line covers the
    // request. `RUST_LOG` overrides all of it.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let quiet_wire =
        || tracing_subscriber::filter::filter_fn(|m| !writes_the_wire(m.target(), m.level()));
    let ansi = std::io::stderr().is_terminal();
    let Some(provider) = provider else {
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer);
        // No traces: the filters apply to the whole subscriber, as cheap as `tracing` gets
        // (a disabled call site is never asked again).
        let registry = tracing_subscriber::registry()
            .with(filter)
            .with(quiet_wire());
        let _ = match format {
            LogFormat::Text => registry.with(fmt).try_init(),
            LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
        };
        return;
    };
    // Traces: `RUST_LOG` filters the log only (a per-layer filter), never the spans. The wire
    // filter's level hint is the log level's: without a hint the subscriber's would be TRACE,
    // and Pingora's `log` calls at every level would become events (formatted, then dropped):
    // a third more instructions per proxied request, measured with callgrind.
    let hint = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let quiet_wire = quiet_wire().with_max_level_hint(hint);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    // Only the runtime's own spans; never the exporter's HTTP stack (a span per export would
    // feed itself).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("open-cli-toolbox"))
        .with_filter(
            Targets::new()
                .with_default(LevelFilter::OFF)
                .with_target("open_cli_proxy", LevelFilter::INFO),
        );
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter).with_filter(quiet_wire))
        .with(otel)
        .try_init();
}

/// Crates (and their `_`-suffixed siblings: `pingora_core`, `hyper_util`) whose debug and
/// trace events print request and response heads as they are on the wire (Pingora writes
/// `x-api-key: <secret>` at trace level), injected credentials and callers' tokens included.
const WIRE_LOGGERS: [&str; 6] = [
    "pingora",
    "hyper",
    "h2",
    "reqwest",
    "rustls",
    "tokio_rustls",
];

/// Whether an event is one of [`WIRE_LOGGERS`]' below `info`: never logged, whatever
/// `RUST_LOG` says, so no log level can put a secret in the log. (Their warnings and errors
/// are kept; the runtime's own events at every level carry no secret.)
fn writes_the_wire(target: &str, level: &tracing::Level) -> bool {
    let krate = target.split("::").next().unwrap_or_default();
    *level > tracing::Level::INFO
        && WIRE_LOGGERS.iter().any(|w| {
            krate
                .strip_prefix(w)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn traces_are_exported_only_when_an_endpoint_is_set_and_not_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!traces_wanted(env(&[])));
        assert!(traces_wanted(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:4318"
        )])));
        assert!(traces_wanted(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )])));
        assert!(!traces_wanted(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true")
        ])));
        assert!(!traces_wanted(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
    }

    #[test]
    fn wire_loggers_are_quiet_below_info_and_nobody_else_is() {
        for (target, level, quiet) in [
            (
                "pingora_core::protocols::http::v1::client",
                Level::TRACE,
                true,
            ),
            ("pingora_proxy", Level::DEBUG, true),
            ("hyper::proto::h1::io", Level::TRACE, true),
            ("h2::codec", Level::DEBUG, true),
            ("reqwest::connect", Level::DEBUG, true),
            ("pingora_core::server", Level::INFO, false),
            ("hyper", Level::WARN, false),
            ("open_cli_proxy::gateway", Level::TRACE, false),
            ("h2o_lookalike", Level::TRACE, false),
        ] {
            assert_eq!(
                writes_the_wire(target, &level),
                quiet,
                "{target} at {level}"
            );
        }
    }
}
