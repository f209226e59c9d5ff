//! The audit log: NDJSON, one event per line (contract §6).
//!
//! Requests never write the file themselves: an [`Event`] is serialised on the request's
//! thread into one whole line and appended to a [`Spool`], whose writer thread writes the
//! lines of each short window with one `write(2)`. Lines from concurrent requests therefore
//! never interleave, and audit adds no syscall or thread wake-up to the request path.
//! [`Audit::flush`] writes everything recorded before it (used by `GET /v1/audit/events` and
//! at shutdown), so nothing is lost on a clean exit; a crash loses at most the last
//! [`crate::spool::LINGER`]. The file is opened with `O_APPEND` and mode 0600.
//!
//! Events carry the contract's fields plus `requestId`, `channel`, `responseSize` and a
//! populated `authScheme` and `requestSize`; secret values never enter an event (only scheme
//! names do).

use std::path::{Path, PathBuf};

use std::borrow::Cow;

use serde::Serialize;

use crate::spool::Spool;

/// One audit record. Empty fields are omitted, as in the reference. Text fields borrow from
/// the catalog snapshot and the request where they can (an event is serialised as soon as it
/// is recorded), so an audited request copies no tool, service or principal strings.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    pub timestamp: String,
    pub event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_profile: Option<Cow<'a, str>>,
    pub tool_id: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_base_url: Option<Cow<'a, str>>,
    pub decision: &'static str,
    pub reason_code: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_scheme: Option<Cow<'a, str>>,
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
    pub request_id: Option<Cow<'a, str>>,
    /// `execute` or `passthrough` for tool events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'static str>,
    /// Why an execution failed (never a secret value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'a, str>>,
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

impl<'a> Event<'a> {
    pub fn new(event_type: &'static str, tool_id: impl Into<Cow<'a, str>>) -> Self {
        Self {
            timestamp: now_rfc3339(),
            event_type,
            tool_id: tool_id.into(),
            ..Self::default()
        }
    }
}

/// RFC 3339 with milliseconds, UTC (`2026-11-23T18:40:01.123Z`).
pub fn now_rfc3339() -> String {
    rfc3339_millis(time::OffsetDateTime::now_utc())
}

/// Written by hand: it runs for every audited request, and a format description costs about
/// ten times as much.
fn rfc3339_millis(t: time::OffsetDateTime) -> String {
    fn put(b: &mut [u8], at: usize, width: usize, mut v: u32) {
        for k in (at..at + width).rev() {
            b[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    put(&mut b, 0, 4, t.year().clamp(0, 9999) as u32);
    put(&mut b, 5, 2, u8::from(t.month()).into());
    put(&mut b, 8, 2, t.day().into());
    put(&mut b, 11, 2, t.hour().into());
    put(&mut b, 14, 2, t.minute().into());
    put(&mut b, 17, 2, t.second().into());
    put(&mut b, 20, 3, t.millisecond().into());
    String::from_utf8_lossy(&b).into_owned()
}

/// Handle to the audit log; cheap to share.
#[derive(Debug)]
pub struct Audit {
    spool: Spool,
    path: PathBuf,
}

thread_local! {
    /// Serialisation buffer, reused by every event of a thread.
    static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

impl Audit {
    /// Open (create) the log and start its writer.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        Ok(Self {
            spool: Spool::new("audit-writer", Box::new(file))?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record an event: serialised on this thread into one line and handed to the spool
    /// (no syscall, no wake-up in the common case; see [`crate::spool`]).
    pub fn record(&self, event: Event<'_>) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            match serde_json::to_writer(&mut *line, &event) {
                Ok(()) => {
                    line.push(b'\n');
                    self.spool.append(line);
                }
                Err(e) => tracing::error!(error = %e, "cannot serialise an audit event"),
            }
        });
    }

    /// Write every event recorded before this call; the file's result.
    pub fn flush(&self) -> std::io::Result<()> {
        self.spool.flush()
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
                        e.reason_code = "x".repeat(i * 7).into();
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
    fn timestamps_are_rfc3339_with_milliseconds() {
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        for t in [
            time::macros::datetime!(2026-11-23 18:40:01.123456 UTC),
            time::macros::datetime!(1999-01-02 03:04:05.006 UTC),
            time::macros::datetime!(2026-12-31 23:59:59.999 +02:00),
        ] {
            let utc = t.to_offset(time::UtcOffset::UTC);
            assert_eq!(rfc3339_millis(t), utc.format(&fmt).unwrap());
        }
        assert_eq!(now_rfc3339().len(), 24);
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
