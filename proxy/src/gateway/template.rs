//! The fixed part of a tool's upstream header, built once per serving thread and tool, and
//! the names of the header fields the pass-through sets.

use http::{HeaderName, HeaderValue};

use crate::credentials::Applied;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const FORWARDED: HeaderName = http::header::FORWARDED;

/// The fixed part of one tool's upstream header, which each request's header starts as a
/// clone of: `Host`, `X-Forwarded-Proto`, slots for the request's `X-Forwarded-For`,
/// `X-Forwarded-Host`, `X-Request-ID` and `Forwarded`, and the tool's credentials when they are fixed
/// for the snapshot ([`crate::gateway::passthrough::Creds::Snapshot`]).
///
/// Why: cloning a built header map copies its table; building it costs a hash and a probe
/// for every field (measured: `docs/execution.md`, Performance). And every serving thread keeps
/// its own template ([`crate::gateway::local::LocalSnapshot::template`]) with its own copies of the names and
/// values: a clone changes the reference counts of what it copies, and counts in the shared
/// snapshot would be written by every serving core on every request.
#[derive(Debug)]
pub struct Template {
    pub headers: http::HeaderMap,
    /// The credentials are in `headers` (otherwise they are added per request).
    pub with_creds: bool,
    /// Identity headers the operator lets callers send (`forwardHeaders`).
    pub keep: Vec<HeaderName>,
}

impl Template {
    pub fn new(authority: &HeaderValue, fixed: Option<&Applied>) -> Self {
        // Copies owned by this thread; bytes that were valid once stay valid.
        let value = |v: &HeaderValue| {
            let mut own = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
            own.set_sensitive(v.is_sensitive());
            own
        };
        let name = |n: &HeaderName| {
            HeaderName::from_bytes(n.as_str().as_bytes()).unwrap_or_else(|_| n.clone())
        };
        let creds = fixed.map_or(&[][..], |a| &a.wire[..]);
        // Room for the caller's usual fields: a clone keeps the index table's size, so
        // appending them never rehashes (only the entries' vector grows).
        let mut headers = http::HeaderMap::with_capacity(6 + creds.len() + 8);
        headers.append(http::header::HOST, value(authority));
        headers.append(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        for slot in [X_FORWARDED_FOR, X_FORWARDED_HOST, X_REQUEST_ID, FORWARDED] {
            headers.append(slot, HeaderValue::from_static(""));
        }
        for (n, v) in creds {
            headers.insert(name(n), value(v));
        }
        Self {
            headers,
            with_creds: fixed.is_some(),
            keep: Vec::new(),
        }
    }

    /// The template with the identity headers callers may send ([`crate::gateway::wire::is_identity`],
    /// lower case, validated by the config reader).
    pub fn keeping(mut self, names: &[String]) -> Self {
        self.keep = names
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        self
    }
}
