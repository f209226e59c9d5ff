//! The audit log: NDJSON, one event per line (contract §6).
//!
//! Requests never write the file themselves: they hand an [`Event`] to one writer thread over
//! a channel (a few hundred nanoseconds), so audit adds no syscall to the request path. The
//! writer serialises each event into one whole line and appends batches through a buffer,
//! flushing whenever the queue runs dry; lines from concurrent requests therefore never
//! interleave. [`Audit::flush`] waits until everything sent before it is on disk (used by
//! `GET /v1/audit/events` and at shutdown), so nothing acknowledged is lost on a clean exit.
//! The file is opened with `O_APPEND` and mode 0600.
//!
//! Events carry the contract's fields plus `requestId`, `channel`, `responseSize` and a
//! populated `authScheme` and `requestSize`; secret values never enter an event (only scheme
//! names do).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

/// One audit record. Empty fields are omitted, as in the reference.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub timestamp: String,
    pub event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_profile: Option<String>,
    pub tool_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_base_url: Option<String>,
    pub decision: &'static str,
    pub reason_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_scheme: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub request_size: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub response_size: u64,
    #[serde(skip_serializing_if = "is_zero16")]
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "is_zero32")]
    pub retry_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `execute` or `passthrough` for tool events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'static str>,
    /// Why an execution failed (never a secret value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero16(v: &u16) -> bool {
    *v == 0
}
fn is_zero32(v: &u32) -> bool {
    *v == 0
}

impl Event {
    pub fn new(event_type: &'static str, tool_id: impl Into<String>) -> Self {
        Self {
            timestamp: now_rfc3339(),
            event_type,
            tool_id: tool_id.into(),
            ..Self::default()
        }
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt).unwrap_or_default()
}

enum Msg {
    Event(Box<Event>),
    Flush(mpsc::SyncSender<std::io::Result<()>>),
}

/// Handle to the writer thread; cheap to share.
#[derive(Debug)]
pub struct Audit {
    tx: mpsc::Sender<Msg>,
    path: PathBuf,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit::Msg")
    }
}

impl Audit {
    /// Open (create) the log and start the writer thread.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let shown = path.display().to_string();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(file, rx, &shown))?;
        Ok(Self {
            tx,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue an event (never blocks on I/O).
    pub fn record(&self, event: Event) {
        if self.tx.send(Msg::Event(Box::new(event))).is_err() {
            tracing::error!("audit writer has stopped; an audit event was lost");
        }
    }

    /// Wait until every event queued before this call is written.
    pub fn flush(&self) -> std::io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Flush(tx))
            .map_err(|_| std::io::Error::other("audit writer has stopped"))?;
        rx.recv()
            .map_err(|_| std::io::Error::other("audit writer has stopped"))?
    }

    /// Every event in the file, oldest first. A line that is not JSON is an error naming it.
    pub fn read_all(&self) -> Result<Vec<serde_json::Value>, String> {
        self.flush()
            .map_err(|e| format!("cannot flush the audit log: {e}"))?;
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read the audit log: {e}")),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| format!("audit log line {} is not JSON: {e}", i + 1))
            })
            .collect()
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn writer(file: std::fs::File, rx: mpsc::Receiver<Msg>, shown: &str) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
    let mut line = Vec::with_capacity(512);
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => {
                    line.clear();
                    if serde_json::to_writer(&mut line, &e).is_ok() {
                        line.push(b'\n');
                        // BufWriter writes a line larger than its buffer in one call, and
                        // flushes whole lines otherwise: a line is never split between writes
                        // of different batches.
                        if out.buffer().len() + line.len() > out.capacity() {
                            report(out.flush(), shown, &mut failed);
                        }
                        report(out.write_all(&line), shown, &mut failed);
                    }
                }
                Msg::Flush(reply) => {
                    let _ = reply.send(out.flush());
                }
            }
            next = rx.try_recv().ok();
        }
        report(out.flush(), shown, &mut failed);
    }
    let _ = out.flush();
}

fn report(r: std::io::Result<()>, shown: &str, failed: &mut bool) {
    match r {
        Err(e) if !*failed => {
            *failed = true;
            tracing::error!(path = shown, error = %e, "cannot write the audit log");
        }
        Ok(()) => *failed = false,
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_events_are_whole_lines_and_flush_makes_them_visible() {
        let dir = tempfile::tempdir().unwrap();
        let audit = std::sync::Arc::new(Audit::open(&dir.path().join("a/audit.log")).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let a = std::sync::Arc::clone(&audit);
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let mut e = Event::new("tool_execution", format!("svc:t{t}-{i}"));
                        e.decision = "allowed";
                        e.reason_code = "x".repeat(i * 7);
                        a.record(e);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let events = audit.read_all().unwrap();
        assert_eq!(events.len(), 2000);
        assert!(events.iter().all(|e| e["eventType"] == "tool_execution"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(audit.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn empty_fields_are_omitted() {
        let mut e = Event::new("authz_denial", "svc:x");
        e.decision = "denied";
        e.reason_code = "managed_deny".into();
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("statusCode").is_none());
        assert!(v.get("principal").is_none());
        assert_eq!(v["toolId"], "svc:x");
    }
}
