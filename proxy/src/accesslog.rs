//! The request log line's sink: one line per request, formatted by the gateway and appended to
//! the process log's spool (installed by `crate::telemetry`).
//!
//! Why not a `tracing` event: the line is written for every request, and `tracing-subscriber`'s
//! formatter (timestamp, field visitors, writer) cost about 11,000 instructions per line, 12% of
//! a proxied request under callgrind; the line written by hand, in the same shape as the
//! subscriber's (`--log-format json`: `timestamp`, `level`, `message`, the fields, `target`),
//! costs a few hundred. Failures still log through `tracing` (they are rare, and carry an
//! error chain).

use std::sync::OnceLock;

use crate::spool::Spool;

/// Where request lines go, and how they look.
#[derive(Debug)]
pub struct Sink {
    spool: Spool,
    json: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Route request lines to `spool` (`json`: JSON lines, else text). Only when the log level
/// lets the gateway's info lines through; otherwise nothing is written.
pub fn install(spool: Spool, json: bool) {
    let _ = SINK.set(Sink { spool, json });
}

/// The sink, when request lines are written by hand ([`install`]).
pub fn sink() -> Option<&'static Sink> {
    SINK.get()
}

impl Sink {
    pub fn json(&self) -> bool {
        self.json
    }

    /// Append one whole line (newline included).
    pub fn write(&self, line: &[u8]) {
        self.spool.append(line);
    }
}
