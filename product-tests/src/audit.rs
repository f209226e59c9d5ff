//! The runtime's audit file (NDJSON, one record a line) read back as typed rows.

use std::path::Path;

use serde_json::Value;

/// One line of an audit file: the fields tests read, and the line as written (for byte-level
/// comparisons and for the fields not typed here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// `eventType`: `tool_execution`, `authz_denial`, `execution_error`, `authn_failure`,
    /// `authenticated_connect` or `catalog_filtered`.
    pub event_type: String,
    /// `toolId` (`demo:listItems`, or `runtime.authn_failure` and the like).
    pub tool_id: String,
    /// `decision`: `allowed`, `denied` or `error`.
    pub decision: String,
    /// `reasonCode`.
    pub reason_code: String,
    pub principal: Option<String>,
    /// `execute` or `passthrough` (tool events only).
    pub channel: Option<String>,
    pub status_code: Option<u16>,
    pub request_id: Option<String>,
    /// The line itself, without its newline.
    pub line: String,
}

impl AuditRow {
    /// Parse one audit line; an error if it is not a whole JSON object with the fields every
    /// record has (`eventType`, `toolId`, `decision`, `reasonCode`).
    pub fn parse(line: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let required = |key: &str| {
            v[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("no `{key}`"))
        };
        let optional = |key: &str| v[key].as_str().map(str::to_string);
        Ok(Self {
            event_type: required("eventType")?,
            tool_id: required("toolId")?,
            decision: required("decision")?,
            reason_code: required("reasonCode")?,
            principal: optional("principal"),
            channel: optional("channel"),
            status_code: v["statusCode"].as_u64().and_then(|c| c.try_into().ok()),
            request_id: optional("requestId"),
            line: line.to_string(),
        })
    }
}

/// The rows of an audit file's text, in file order. Panics on a torn last line (text that
/// does not end in a newline) or a line that is not a whole record.
pub fn parse_audit(text: &str) -> Vec<AuditRow> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the audit file ends in a torn line: {:?}",
        &text[text.len().saturating_sub(200)..]
    );
    text.lines()
        .map(|line| {
            AuditRow::parse(line)
                .unwrap_or_else(|e| panic!("torn or invalid audit line ({e}): {line:?}"))
        })
        .collect()
}

/// [`parse_audit`] of the file at `path`; an error only if the file cannot be read (e.g. it
/// does not exist yet).
pub fn read_audit(path: &Path) -> std::io::Result<Vec<AuditRow>> {
    std::fs::read_to_string(path).map(|text| parse_audit(&text))
}

/// Calls made by worker threads, each with its own request ID, until [`Load::stop`]: the load
/// under which the crash tests kill the runtime. A worker stops at its first call that is not
/// answered 200 (the runtime is gone).
#[derive(Debug)]
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `workers` threads; worker `w`'s `i`-th call is `call(client, w)` with the request ID
    /// `<prefix>-<w>-<i>`.
    pub fn start(
        workers: usize,
        prefix: &str,
        call: impl Fn(&reqwest::blocking::Client, usize) -> reqwest::blocking::RequestBuilder
        + Send
        + Sync
        + 'static,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let call = std::sync::Arc::new(call);
        let workers = (0..workers)
            .map(|w| {
                let (stop, answered, call) = (stop.clone(), answered.clone(), call.clone());
                let prefix = prefix.to_string();
                std::thread::spawn(move || {
                    let client = crate::process::http();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("{prefix}-{w}-{i}");
                        i += 1;
                        let ok = call(&client, w)
                            .header("x-request-id", &id)
                            .timeout(std::time::Duration::from_secs(5))
                            .send()
                            .is_ok_and(|r| r.status() == 200);
                        if !ok {
                            return;
                        }
                        answered.lock().unwrap().push(id);
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            workers,
        }
    }

    /// Calls answered 200 so far.
    pub fn answered(&self) -> usize {
        self.answered.lock().unwrap().len()
    }

    /// Stop the workers; the request IDs of every call answered 200.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        std::mem::take(&mut *self.answered.lock().unwrap())
    }
}
