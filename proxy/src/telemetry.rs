//! Logging: `tracing` to stderr, text or JSON lines; `RUST_LOG` overrides the level.
//! Pingora logs through the `log` crate, bridged into the same subscriber.
//!
//! Lines are formatted on the request's thread but written by a dedicated writer thread
//! (`tracing-appender`), so a slow or blocked stderr never stalls request handling. The queue
//! is not lossy: when it is full, logging waits rather than dropping lines. The returned guard
//! flushes the queue when dropped at exit.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}
