//! The audit log: NDJSON, one event per line (contract §6).
//!
//! Requests never write the file themselves: an [`Event`] is serialised on the request's
//! thread into one whole line and appended to a [`Spool`], whose writer thread writes the
//! lines of each short window with one `write(2)`. Lines from concurrent requests therefore
//! never interleave, and audit adds no syscall or thread wake-up to the request path.
//! [`Audit::flush`] writes everything recorded before it (used by `GET /v1/audit/events` and
//! at shutdown), so nothing is lost on a clean exit. How much a crash or a power cut loses is
//! `runtime.server.audit.durability`: with `always` a tool call's answer waits for its synced
//! record ([`Audit::record_durably`]); with `interval` and `none` a crash loses the records of
//! about the last [`crate::spool::LINGER`] of answered calls, more when the writer thread waits
//! for a core (see `docs/execution.md`, Audit). `failClosed` turns an unwritable log into
//! refused tool calls ([`Audit::refuses_calls`]). The file is opened with `O_APPEND` and mode
//! 0600.
//!
//! Events carry the contract's fields plus `requestId`, `channel`, `responseSize`,
//! `credentialsRedacted` and a populated `authScheme` and `requestSize`; secret values never
//! enter an event (only scheme names do).
//!
//! The vocabulary is typed ([`EventType`], [`Decision`], [`Channel`], [`Reason`]), and every
//! record is built by [`events`]: one function per kind of record and one per outcome, so a
//! surface (execute, the pass-through, the catalog, later MCP) cannot word a record its own way.

pub mod events;
pub mod file;
pub mod query;

use std::path::{Path, PathBuf};

use std::borrow::Cow;

use serde::Serialize;

use open_cli_config::model::{AuditDurability, AuditSettings};

use crate::spool::{Durability, NotDurable, Spool, Ticket};

/// Defines an enum of audit names (each a `&'static str` on the wire): `as_str`, and a
/// `Serialize` that writes the name.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum $name {
            #[default]
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

names! {
    /// `eventType` (contract §6).
    EventType {
        /// A tool call that ran (whatever the upstream answered).
        ToolExecution => "tool_execution",
        /// A tool call refused by policy or scope.
        AuthzDenial => "authz_denial",
        /// A tool call that failed in the runtime or on the way to the upstream.
        ExecutionError => "execution_error",
        /// A request with a missing or invalid runtime token.
        AuthnFailure => "authn_failure",
        /// An authenticated catalog fetch: who connected.
        AuthenticatedConnect => "authenticated_connect",
        /// An authenticated catalog fetch: the catalog was filtered by the token's scopes.
        CatalogFiltered => "catalog_filtered",
    }
}

names! {
    /// `decision`.
    Decision {
        Allowed => "allowed",
        Denied => "denied",
        Error => "error",
        /// Over a rate limit of `runtime.server.rateLimits`: refused, nothing sent.
        RateLimited => "rate_limited",
    }
}

names! {
    /// `reasonCode`: why the decision was made. A refusal's or failure's reason is the error
    /// code its answer carries (`open_cli_config::wire::codes`, held equal by a unit test); the
    /// error types of the layers name their reason ([`crate::execute::Error::reason`]).
    Reason {
        Allowed => "allowed",
        /// The runtime token is missing or invalid.
        AuthnFailed => "authn_failed",
        AuthenticatedConnect => "authenticated_connect",
        CatalogFiltered => "catalog_filtered",
        ManagedDeny => "managed_deny",
        PolicyDeny => "policy_deny",
        /// The token's scopes do not include the tool.
        AuthzDenied => "authz_denied",
        CuratedDeny => "curated_deny",
        ApprovalRequired => "approval_required",
        UnknownAgentProfile => "unknown_agent_profile",
        InvalidRequest => "invalid_request",
        PayloadTooLarge => "payload_too_large",
        ToolNotFound => "tool_not_found",
        RuntimeAttachMismatch => "runtime_attach_mismatch",
        CredentialsUnavailable => "credentials_unavailable",
        UpstreamUnreachable => "upstream_unreachable",
        UpstreamTimeout => "upstream_timeout",
        ResponseTooLarge => "response_too_large",
        Internal => "internal_error",
        /// The audit log cannot be written (`failClosed`).
        AuditUnavailable => "audit_unavailable",
        /// A rate limit of `runtime.server.rateLimits` is used up.
        RateLimited => "rate_limited",
        /// The service has `maxConcurrentPerService` calls in progress.
        ServiceBusy => "service_busy",
        /// The shared rate-limit store cannot be asked (`onStoreError: deny`).
        RateLimitUnavailable => "rate_limit_unavailable",
        /// The pass-through failed on the way to the upstream (Pingora's error in `error`).
        ExecutionError => "execution_error",
    }
}

names! {
    /// `channel` of a tool event: which route the call came in on.
    Channel {
        Execute => "execute",
        Passthrough => "passthrough",
        /// MCP's `tools/call` at `/mcp` (`crate::mcp`).
        Mcp => "mcp",
    }
}

/// One audit record. Empty fields are omitted, as in the reference. Text fields borrow from
/// the catalog snapshot and the request where they can (an event is serialised as soon as it
/// is recorded), so an audited request copies no tool, service or principal strings.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    pub timestamp: Timestamp,
    pub event_type: EventType,
    pub tool_id: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_base_url: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Cow<'a, str>>,
    /// The five tool fields above, pre-rendered once per tool and snapshot by
    /// [`tool_fragment`] (they are the same for every call of a tool); [`Event::write_json`]
    /// copies it instead of escaping each field. Must match the fields when set.
    #[serde(skip)]
    pub tool_json: Option<&'a str>,
    /// The path actually sent upstream (the server's base path and the request's path, no
    /// query: a query may carry credentials); `path` is the operation's template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_path: Option<UpstreamPath<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Cow<'a, str>>,
    /// The verified client certificate's subject (or SAN) on a mutual-TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_profile: Option<Cow<'a, str>>,
    pub decision: Decision,
    pub reason_code: Reason,
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
    /// `latency_ms` unrounded, for the metrics ([`Event::set_latency`]); not written.
    #[serde(skip)]
    pub took: Option<std::time::Duration>,
    #[serde(skip_serializing_if = "is_zero32")]
    pub retry_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Cow<'a, str>>,
    /// The call's trace (32 hex digits) when traces are exported (`crate::trace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Cow<'a, str>>,
    /// `execute` or `passthrough` for tool events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Why an execution failed (never a secret value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'a, str>>,
    /// The answer's fields an injected secret was removed from before the caller got it
    /// (`location,link`; see `crate::credentials::shadow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_redacted: Option<Cow<'a, str>>,
    /// The delegation a token carries (`{actor, delegatedBy, delegationId}`, the contract's
    /// audit `lineage`), from its `act`, `delegated_by` and `delegation_id` claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<&'a serde_json::Value>,
}

impl Event<'_> {
    /// The call's duration: `latencyMs`, and unrounded for the metrics.
    pub fn set_latency(&mut self, took: std::time::Duration) {
        self.latency_ms = Some(took.as_millis() as u64);
        self.took = Some(took);
    }

    /// Append this event as one JSON object, exactly as its `Serialize` derive writes it
    /// (same field order, same omissions, same escaping; a unit test holds the two equal).
    /// Written by hand because it runs for every tool call: serde's map serialiser and
    /// per-character escaping showed in the profile (`docs/execution.md`, Performance).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(512);
        // `timestamp` always comes first, so every later key starts with a comma.
        out.extend_from_slice(b"{\"timestamp\":");
        out.push(b'"');
        out.extend_from_slice(&self.timestamp.0);
        out.push(b'"');
        let text = |out: &mut Vec<u8>, key: &[u8], v: &str| {
            out.extend_from_slice(key);
            json_str(out, v);
        };
        let opt = |out: &mut Vec<u8>, key: &[u8], v: Option<&str>| {
            if let Some(v) = v {
                text(out, key, v);
            }
        };
        let num = |out: &mut Vec<u8>, key: &[u8], v: u64| {
            if v != 0 {
                out.extend_from_slice(key);
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            }
        };
        // The `&'static str` fields are names from this crate (event types, decisions,
        // channels) that never need escaping: copied as they are.
        let name = |out: &mut Vec<u8>, key: &[u8], v: &'static str| {
            debug_assert!(!needs_escape(v.as_bytes()), "{v}");
            out.extend_from_slice(key);
            out.push(b'"');
            out.extend_from_slice(v.as_bytes());
            out.push(b'"');
        };
        name(out, b",\"eventType\":", self.event_type.as_str());
        match self.tool_json {
            Some(fragment) => out.extend_from_slice(fragment.as_bytes()),
            None => write_tool_fields(
                out,
                &self.tool_id,
                self.service_id.as_deref(),
                self.target_base_url.as_deref(),
                self.method.as_deref(),
                self.path.as_deref(),
            ),
        }
        if let Some(p) = &self.upstream_path {
            out.extend_from_slice(b",\"upstreamPath\":\"");
            json_str_body(out, &p.0);
            json_str_body(out, &p.1);
            out.push(b'"');
        }
        opt(out, b",\"principal\":", self.principal.as_deref());
        opt(out, b",\"clientCert\":", self.client_cert.as_deref());
        opt(out, b",\"agentProfile\":", self.agent_profile.as_deref());
        name(out, b",\"decision\":", self.decision.as_str());
        name(out, b",\"reasonCode\":", self.reason_code.as_str());
        opt(out, b",\"authScheme\":", self.auth_scheme.as_deref());
        num(out, b",\"requestSize\":", self.request_size);
        num(out, b",\"responseSize\":", self.response_size);
        num(out, b",\"statusCode\":", self.status_code.into());
        if let Some(ms) = self.latency_ms {
            out.extend_from_slice(b",\"latencyMs\":");
            out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
        }
        num(out, b",\"retryCount\":", self.retry_count.into());
        opt(out, b",\"requestId\":", self.request_id.as_deref());
        opt(out, b",\"traceId\":", self.trace_id.as_deref());
        if let Some(c) = self.channel {
            name(out, b",\"channel\":", c.as_str());
        }
        opt(out, b",\"error\":", self.error.as_deref());
        opt(
            out,
            b",\"credentialsRedacted\":",
            self.credentials_redacted.as_deref(),
        );
        if let Some(l) = self.lineage {
            out.extend_from_slice(b",\"lineage\":");
            // Claims from a verified token: serde_json escapes them.
            let _ = serde_json::to_writer(&mut *out, l);
        }
        out.push(b'}');
    }
}

fn write_tool_fields(
    out: &mut Vec<u8>,
    tool_id: &str,
    service_id: Option<&str>,
    target_base_url: Option<&str>,
    method: Option<&str>,
    path: Option<&str>,
) {
    out.extend_from_slice(b",\"toolId\":");
    json_str(out, tool_id);
    for (key, v) in [
        (&b",\"serviceId\":"[..], service_id),
        (b",\"targetBaseUrl\":", target_base_url),
        (b",\"method\":", method),
        (b",\"path\":", path),
    ] {
        if let Some(v) = v {
            out.extend_from_slice(key);
            json_str(out, v);
        }
    }
}

/// The pre-rendered tool fields of [`Event::tool_json`].
pub fn tool_fragment(
    tool_id: &str,
    service_id: Option<&str>,
    target_base_url: Option<&str>,
    method: Option<&str>,
    path: Option<&str>,
) -> String {
    let mut out = Vec::new();
    write_tool_fields(&mut out, tool_id, service_id, target_base_url, method, path);
    String::from_utf8(out).unwrap_or_default()
}

/// A path in two parts written one after the other (the upstream's base path, then the
/// request's path): the pass-through's record borrows both, with no copy joining them.
#[derive(Debug, Clone, Default)]
pub struct UpstreamPath<'a>(pub Cow<'a, str>, pub Cow<'a, str>);

impl Serialize for UpstreamPath<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}{}", self.0, self.1))
    }
}

/// A JSON string, escaped as serde_json escapes: `"` and `\\` backslashed, `\b \f \n \r \t`
/// by name, other control characters as `\u00XX`, everything else as is (UTF-8).
#[inline]
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    json_str_body(out, s);
    out.push(b'"');
}

/// The escaped text of a JSON string, without its quotes ([`json_str`]).
#[inline]
fn json_str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any byte is a control character, `"` or `\\`: eight bytes per step (the usual
/// answer is no, and this runs over every string of every audit record).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Sets a byte's high bit when that byte is zero (exact for the lowest flagged byte, and
    // never misses: a false positive only sends the string to the careful path).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        if control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
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
    pub fn new(event_type: EventType, tool_id: impl Into<Cow<'a, str>>) -> Self {
        Self::stamped(event_type, tool_id, Timestamp::now())
    }

    /// An event that happened at `at`, a monotonic reading the caller already took (no
    /// clock read here; see [`crate::clock`]).
    pub fn new_at(
        event_type: EventType,
        tool_id: impl Into<Cow<'a, str>>,
        at: std::time::Instant,
    ) -> Self {
        let wall = crate::clock::wall_at(at);
        Self::stamped(
            event_type,
            tool_id,
            Timestamp::at(wall.as_secs(), wall.subsec_millis()),
        )
    }

    fn stamped(
        event_type: EventType,
        tool_id: impl Into<Cow<'a, str>>,
        timestamp: Timestamp,
    ) -> Self {
        Self {
            timestamp,
            event_type,
            tool_id: tool_id.into(),
            ..Self::default()
        }
    }
}

/// RFC 3339 with milliseconds, UTC (`2026-11-23T18:40:01.123Z`).
pub fn now_rfc3339() -> String {
    Timestamp::now().as_str().to_string()
}

/// An RFC 3339 UTC time with milliseconds, as its 24 ASCII bytes (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timestamp([u8; 24]);

thread_local! {
    /// The last timestamp this thread formatted, by (seconds, milliseconds): under load many
    /// events share a millisecond.
    static LAST: std::cell::Cell<(u64, u32, Timestamp)> =
        const { std::cell::Cell::new((0, 0, Timestamp(*b"1970-01-01T00:00:00.000Z"))) };
}

impl Timestamp {
    pub fn now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self::at(now.as_secs(), now.subsec_millis())
    }

    /// The time `secs` + `millis` after the epoch, through the thread's last formatted one.
    fn at(secs: u64, millis: u32) -> Self {
        LAST.with(|last| {
            let (s, m, mut t) = last.get();
            if (s, m) == (secs, millis) {
                return t;
            }
            if s == secs {
                // Same second: only the milliseconds change.
                let mut v = millis;
                for k in (20..23).rev() {
                    t.0[k] = b'0' + (v % 10) as u8;
                    v /= 10;
                }
            } else {
                t = Timestamp(format_millis(secs as i64, millis as u16));
            }
            last.set((secs, millis, t));
            t
        })
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII digits and separators.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Self(format_millis(0, 0))
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// [`format_millis`] of a date-time (for tests against the `time` crate's formatting).
#[cfg(test)]
fn rfc3339_millis(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let secs = t.unix_timestamp();
    let millis = t.millisecond();
    String::from_utf8_lossy(&format_millis(secs, millis)).into_owned()
}

/// `secs` since the Unix epoch (UTC) and a millisecond, as RFC 3339; years outside 0–9999
/// are clamped. Written by hand: it runs for every audited request, and a format description
/// costs about ten times as much. The civil date comes from Howard Hinnant's `civil_from_days`.
fn format_millis(secs: i64, millis: u16) -> [u8; 24] {
    fn put(b: &mut [u8], at: usize, width: usize, mut v: u64) {
        for k in (at..at + width).rev() {
            b[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    put(&mut b, 0, 4, year.clamp(0, 9999) as u64);
    put(&mut b, 5, 2, month as u64);
    put(&mut b, 8, 2, day as u64);
    put(&mut b, 11, 2, sod / 3600);
    put(&mut b, 14, 2, sod / 60 % 60);
    put(&mut b, 17, 2, sod % 60);
    put(&mut b, 20, 3, u64::from(millis));
    b
}

/// Handle to the audit log; cheap to share.
#[derive(Debug)]
pub struct Audit {
    spool: Spool,
    path: PathBuf,
    settings: AuditSettings,
    reopen: file::Reopen,
    /// `,"instanceId":"<id>"`, added to every line ([`Audit::for_instance`]): which runtime
    /// wrote it, when several replicas' logs are read together.
    instance: Option<Box<[u8]>>,
}

thread_local! {
    /// Serialisation buffer, reused by every event of a thread.
    static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

impl Audit {
    /// Open (create) the log and start its writer, durable as `settings` say
    /// (`runtime.server.audit`; read at start-up only).
    pub fn open(path: &Path, settings: &AuditSettings) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let (file, reopen) = file::AuditFile::open(path, &settings.rotation)?;
        let durability = match settings.durability {
            AuditDurability::Always => Durability::Always,
            AuditDurability::Interval => {
                Durability::Interval(std::time::Duration::from_millis(settings.interval_ms))
            }
            AuditDurability::None => Durability::None,
        };
        Ok(Self {
            spool: Spool::durable_as(
                "audit-writer",
                Box::new(file),
                durability,
                Some(crate::spool::Meter {
                    written: crate::metrics::audit_written,
                    synced: crate::metrics::audit_synced,
                    health: crate::metrics::audit_health,
                }),
            )?,
            path: path.to_path_buf(),
            settings: settings.clone(),
            reopen,
            instance: None,
        })
    }

    /// Every line names this runtime instance (`instanceId`, an extension of the contract's
    /// audit event), so the logs of replicas can be merged and each line attributed.
    pub fn for_instance(mut self, id: &str) -> Self {
        let mut fragment = b",\"instanceId\":".to_vec();
        json_str(&mut fragment, id);
        self.instance = Some(fragment.into_boxed_slice());
        self
    }

    /// Reopen the file after the current batch (SIGUSR1: an operator's `logrotate` moved it).
    pub fn reopen(&self) {
        self.reopen.request();
        let _ = self.spool.flush();
    }

    /// Record an event and, with `durability: always`, wait until its line is synced. `Err`
    /// when it could not be written or synced; [`Audit::refuses_calls`] then says whether
    /// the call must be refused.
    pub async fn record_durably(&self, event: Event<'_>) -> Result<(), NotDurable> {
        let ticket = self.record(event);
        if self.settings.durability == AuditDurability::Always {
            self.spool.durable(ticket).await?;
        }
        Ok(())
    }

    /// The last write (and sync) of the log succeeded.
    pub fn healthy(&self) -> bool {
        self.spool.healthy()
    }

    /// `failClosed` is set and the log cannot be written now: tool calls are refused.
    pub fn refuses_calls(&self) -> bool {
        self.settings.fail_closed && !self.spool.healthy()
    }

    /// `runtime.server.audit` as the log was opened with.
    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// Syncs of the log so far.
    pub fn syncs(&self) -> u64 {
        self.spool.syncs()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record an event: serialised on this thread into one line and handed to the spool
    /// (no syscall, no wake-up in the common case; see [`crate::spool`]).
    pub fn record(&self, event: Event<'_>) -> Ticket {
        if let Some(channel) = event.channel {
            crate::metrics::tool_call(
                &event.tool_id,
                event.service_id.as_deref().unwrap_or(""),
                channel.as_str(),
                event.decision.as_str(),
                event.status_code,
                event.took.filter(|_| event.status_code != 0),
            );
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            event.write_json(line);
            if let Some(fragment) = &self.instance {
                line.pop(); // the object's closing brace
                line.extend_from_slice(fragment);
                line.push(b'}');
            }
            line.push(b'\n');
            self.spool.append(line)
        })
    }

    /// Write every event recorded before this call; the file's result.
    pub fn flush(&self) -> std::io::Result<()> {
        self.spool.flush()
    }

    /// One page of events ([`query::query`]), after writing everything recorded before it.
    /// Blocking file reads: call it off the serving threads.
    pub fn query(
        &self,
        filter: &query::Filter,
        order: query::Order,
        limit: usize,
        cursor: Option<query::Cursor>,
    ) -> Result<query::Page, query::QueryError> {
        self.flush().map_err(|error| query::QueryError::Io {
            file: self.path.display().to_string(),
            error,
        })?;
        query::query(&self.path, filter, order, limit, cursor)
    }

    /// Every event in the live file, oldest first (by `timestamp`: the file groups the lines of
    /// each serving thread within one write window, so its order is per thread only; the
    /// sort is stable, so equal timestamps keep the file's order). A line that is not JSON
    /// is an error naming it.
    #[cfg(test)]
    pub fn read_all(&self) -> Result<Vec<serde_json::Value>, String> {
        self.flush()
            .map_err(|e| format!("cannot flush the audit log: {e}"))?;
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read the audit log: {e}")),
        };
        let mut events = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| format!("audit log line {} is not JSON: {e}", i + 1))
            })
            .collect::<Result<Vec<serde_json::Value>, String>>()?;
        // RFC 3339 UTC with a fixed number of digits: text order is time order.
        events.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_in_time_order_whatever_the_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(
            &path,
            concat!(
                r#"{"timestamp":"2026-12-05T10:00:00.002Z","requestId":"b"}"#,
                "\n",
                r#"{"timestamp":"2026-12-05T10:00:00.001Z","requestId":"a"}"#,
                "\n",
                r#"{"timestamp":"2026-12-05T10:00:00.002Z","requestId":"c"}"#,
                "\n",
            ),
        )
        .unwrap();
        let ids: Vec<String> = Audit::open(&path, &Default::default())
            .unwrap()
            .read_all()
            .unwrap()
            .iter()
            .map(|e| e["requestId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn concurrent_events_are_whole_lines_and_flush_makes_them_visible() {
        let dir = tempfile::tempdir().unwrap();
        let audit = std::sync::Arc::new(
            Audit::open(&dir.path().join("a/audit.log"), &Default::default()).unwrap(),
        );
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let a = std::sync::Arc::clone(&audit);
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let mut e = Event::new(EventType::ToolExecution, format!("svc:t{t}-{i}"));
                        e.decision = Decision::Allowed;
                        e.error = Some("x".repeat(i * 7).into());
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
            time::macros::datetime!(2024-02-29 12:00:00.5 UTC),
            time::macros::datetime!(2000-03-01 00:00:00 UTC),
            time::macros::datetime!(1970-01-01 00:00:00 UTC),
            time::macros::datetime!(2100-02-28 23:59:59.999 UTC),
            time::macros::datetime!(1900-03-01 00:00:00 UTC),
        ] {
            let utc = t.to_offset(time::UtcOffset::UTC);
            assert_eq!(rfc3339_millis(t), utc.format(&fmt).unwrap());
        }
        assert_eq!(now_rfc3339().len(), 24);
        // Through the thread's cache: same millisecond, same second, next second, back.
        let s = 1_795_000_000;
        for (secs, millis) in [
            (s, 5),
            (s, 5),
            (s, 123),
            (s, 999),
            (s + 1, 0),
            (s, 7),
            (s + 86_400, 42),
        ] {
            assert_eq!(
                Timestamp::at(secs, millis).0,
                format_millis(secs as i64, millis as u16),
                "{secs}.{millis}"
            );
        }
    }

    #[test]
    fn escape_scan_finds_every_special_byte_at_every_position() {
        for len in 0..20 {
            assert!(!needs_escape("a".repeat(len).as_bytes()));
            for at in 0..len {
                for special in [0u8, 0x1f, b'"', b'\\', b'\n'] {
                    let mut v = vec![b'~'; len];
                    v[at] = special;
                    assert!(needs_escape(&v), "{len} {at} {special}");
                }
                let mut v = vec![b'a'; len];
                v[at] = 0xc3; // UTF-8 lead bytes and DEL need no escaping
                assert!(!needs_escape(&v));
                v[at] = 0x7f;
                assert!(!needs_escape(&v));
            }
        }
    }

    #[test]
    fn hand_written_json_equals_the_serde_derive() {
        let lineage =
            serde_json::json!({"actor": {"sub": "sub-agent \"1\""}, "delegationId": "d-1"});
        let mut full = Event::new(EventType::ToolExecution, "svc:t\"q\\b\u{1}é");
        full.lineage = Some(&lineage);
        full.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        full.principal = Some("sub\n".into());
        full.client_cert = Some("CN=agent \"7\", O=Acme".into());
        full.agent_profile = Some("p".into());
        full.service_id = Some("svc".into());
        full.target_base_url = Some("http://127.0.0.1:9/base".into());
        full.decision = Decision::Allowed;
        full.reason_code = Reason::Allowed;
        full.method = Some("GET".into());
        full.path = Some("/items/{id}".into());
        full.upstream_path = Some(UpstreamPath("/base".into(), "/items/\"7\"\u{1}".into()));
        full.auth_scheme = Some("apiKey+basic".into());
        full.request_size = 1;
        full.response_size = u64::MAX;
        full.status_code = 503;
        full.latency_ms = Some(0);
        full.retry_count = 2;
        full.request_id = Some("rid".into());
        full.channel = Some(Channel::Passthrough);
        full.error = Some("tab\there \u{7f} \u{2028} \u{8}\u{c}\r\u{1f}\u{0}".into());
        full.credentials_redacted = Some("location,link".into());
        let mut denied = Event::new(EventType::AuthzDenial, "svc:x");
        denied.decision = Decision::Denied;
        denied.reason_code = Reason::ManagedDeny;
        let mut fast = full.clone();
        let fragment = tool_fragment(
            &fast.tool_id,
            fast.service_id.as_deref(),
            fast.target_base_url.as_deref(),
            fast.method.as_deref(),
            fast.path.as_deref(),
        );
        fast.tool_json = Some(&fragment);
        for e in [full, fast, denied, Event::default()] {
            let mut mine = Vec::new();
            e.write_json(&mut mine);
            assert_eq!(
                String::from_utf8(mine).unwrap(),
                serde_json::to_string(&e).unwrap()
            );
        }
    }

    /// Every reason a refusal or failure gives is the error code its answer carries.
    #[test]
    fn reasons_are_the_contracts_error_codes() {
        use open_cli_config::wire::codes;
        for (reason, code) in [
            (Reason::AuthnFailed, codes::AUTHN_FAILED),
            (Reason::ManagedDeny, codes::MANAGED_DENY),
            (Reason::PolicyDeny, codes::POLICY_DENY),
            (Reason::AuthzDenied, codes::AUTHZ_DENIED),
            (Reason::CuratedDeny, codes::CURATED_DENY),
            (Reason::ApprovalRequired, codes::APPROVAL_REQUIRED),
            (Reason::UnknownAgentProfile, codes::UNKNOWN_AGENT_PROFILE),
            (Reason::InvalidRequest, codes::INVALID_REQUEST),
            (Reason::PayloadTooLarge, codes::PAYLOAD_TOO_LARGE),
            (Reason::ToolNotFound, codes::TOOL_NOT_FOUND),
            (
                Reason::RuntimeAttachMismatch,
                codes::RUNTIME_ATTACH_MISMATCH,
            ),
            (
                Reason::CredentialsUnavailable,
                codes::CREDENTIALS_UNAVAILABLE,
            ),
            (Reason::UpstreamUnreachable, codes::UPSTREAM_UNREACHABLE),
            (Reason::UpstreamTimeout, codes::UPSTREAM_TIMEOUT),
            (Reason::ResponseTooLarge, codes::RESPONSE_TOO_LARGE),
            (Reason::Internal, codes::INTERNAL),
            (Reason::AuditUnavailable, codes::AUDIT_UNAVAILABLE),
            (Reason::RateLimited, codes::RATE_LIMITED),
            (Reason::ServiceBusy, codes::SERVICE_BUSY),
            (Reason::RateLimitUnavailable, codes::RATE_LIMIT_UNAVAILABLE),
        ] {
            assert_eq!(reason.as_str(), code);
        }
    }

    #[test]
    fn empty_fields_are_omitted() {
        let mut e = Event::new(EventType::AuthzDenial, "svc:x");
        e.decision = Decision::Denied;
        e.reason_code = Reason::ManagedDeny;
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("statusCode").is_none());
        assert!(v.get("principal").is_none());
        assert_eq!(v["toolId"], "svc:x");
    }
}
