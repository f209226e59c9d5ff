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
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
