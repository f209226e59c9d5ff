//! Logging: `tracing` to stderr, text or JSON lines; `RUST_LOG` overrides the level.
//! Pingora logs through the `log` crate, bridged into the same subscriber.
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

/// Flushes the log when dropped.
#[derive(Debug)]
pub struct LogGuard(Option<Spool>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            let _ = s.flush();
        }
    }
}

pub fn init(format: LogFormat) -> LogGuard {
    let spool = match Spool::new("log-writer", Box::new(std::io::stderr())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the log writer thread: {e}; logging to stderr directly");
            install(format, std::io::stderr);
            return LogGuard(None);
        }
    };
    let on_panic = spool.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        on_panic.try_flush();
        previous(info);
    }));
    install(format, spool.clone());
    LogGuard(Some(spool))
}

/// The global subscriber: `RUST_LOG` (default `info`), text or JSON lines, to `writer`.
fn install<W>(format: LogFormat, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry =
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::filter::filter_fn(|m| {
                !writes_the_wire(m.target(), m.level())
            }));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
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
