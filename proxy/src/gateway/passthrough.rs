//! The sidecar route: `<prefix>/<service alias>/<upstream path>` streamed to the service's
//! upstream by Pingora, under exactly the governance of `POST /v1/tools/execute`.
//!
//! The decision is made in `request_filter` from method, path and headers only — the body is
//! never buffered, so bodies of any size stream both ways:
//!
//! 1. authenticate the runtime token (same authenticator as the API);
//! 2. match method + path to one catalog operation ([`crate::snapshot::index::ExecIndex::route`]);
//!    unsafe paths (`..`, encoded slashes) are refused and unmatched requests are refused;
//! 3. [`crate::execute::govern`]: managed deny, `policy.deny`, scopes, curated view, approval
//!    (`X-Open-Cli-Approval: true`, `X-Open-Cli-Mode`, `X-Open-Cli-Agent-Profile`);
//! 4. `Content-Length` over `maxRequestBytes` → 413 (a chunked body is cut off at the limit);
//! 5. resolve the upstream credentials; unresolvable → 502, nothing sent.
//!
//! `upstream_peer` then connects to the tool's server (host and port come only from the
//! catalog), and `upstream_request_filter` rewrites the request: the upstream path, the
//! caller's `Authorization`, `Cookie`, `Proxy-Authorization` and `X-Open-Cli-*` removed,
//! hop-by-hop headers removed, credentials added, `Host` and `X-Forwarded-*` set. Connect
//! failures are retried (bounded by `retries`) for idempotent operations. A 401 from the
//! upstream on an OAuth token drops that token so the next call fetches a fresh one (the
//! streamed request cannot be replayed). Every outcome is audited from `logging`.
//!
//! Caller header fields and query parameters named like an injected credential are removed
//! before the credentials are added, and injected secrets are redacted from the answer's
//! `Location`, `Content-Location`, `Link` and `Refresh` ([`crate::credentials::shadow`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use open_cli_config::wire::codes;
use pingora::http::RequestHeader;

use crate::auth::Caller;
use crate::credentials::Applied;
use crate::execute::Intent;
use crate::gateway::error::ApiError;
use crate::gateway::local::LocalSnapshot;
use crate::gateway::template::{
    FORWARDED, Template, X_FORWARDED_FOR, X_FORWARDED_HOST, X_REQUEST_ID,
};
use crate::snapshot::index::{RouteError, Target};
use crate::state::RuntimeState;

/// A request the pass-through admitted, carried from `request_filter` to `logging`.
#[derive(Debug)]
pub struct Admitted {
    pub snapshot: Arc<LocalSnapshot>,
    pub tool: crate::snapshot::index::ToolRef,
    pub caller: Caller,
    pub agent_profile: Option<String>,
    pub creds: Creds,
    pub addr: SocketAddr,
    /// Where the upstream path starts in the request's path (after `<prefix>/<alias>`);
    /// `None` for `/` (nothing after the alias). See [`Admitted::upstream_uri`].
    pub path_at: Option<usize>,
    /// When the request arrived (the gateway's clock reading; the audit record's latency).
    pub started: Instant,
    pub connect_retries: u32,
    pub upstream_status: u16,
    /// The answer's fields an injected secret was removed from (audited).
    pub redacted: crate::credentials::shadow::Redacted,
    /// `durability: always`: the call's record was written and synced before its answer
    /// went to the caller (`upstream_response_filter`); `logging` adds a record only if the
    /// answer then fails.
    pub recorded: bool,
    /// `durability: always` and `failClosed`: the record could not be made durable, so the
    /// answer is withheld (503 `audit_unavailable`).
    pub withheld: bool,
    /// The request announces a body (`Content-Length` > 0 or `Transfer-Encoding`).
    pub has_body: bool,
    /// The request's trace (when traces are exported), for its audit record.
    pub trace_id: Option<String>,
    /// The caller's header fields, moved out of the session's request header once the
    /// request is admitted ([`detach_headers`]); each attempt's upstream header is built from
    /// them ([`rewrite`]).
    pub headers: http::HeaderMap,
    /// The service's concurrency slot, held until the request is done
    /// (`runtime.server.limits.maxConcurrentPerService`).
    pub permit: crate::ratelimit::Permit,
}

/// Where an admitted request's upstream credentials are.
#[derive(Debug)]
pub enum Creds {
    /// Fixed for the snapshot's lifetime and kept in it (the tool's `creds` slot): read from
    /// there, so the request takes no reference count that other cores also change.
    Snapshot,
    /// Resolved for this request (OAuth tokens, `file` and `exec` secrets).
    Owned(Arc<Applied>),
}

impl Admitted {
    /// The upstream request's path and query: the server's base path, the caller's path
    /// after the alias, the caller's query, then query credentials. Built for each attempt
    /// from the request (`uri`, the request being forwarded) into one exactly sized buffer
    /// that the `Uri` takes over: one allocation, no copy.
    pub fn upstream_uri(&self, uri: &http::Uri) -> pingora::Result<http::Uri> {
        let path = match self.path_at {
            Some(at) => uri.path().get(at..).ok_or_else(|| {
                pingora::Error::explain(
                    pingora::ErrorType::InternalError,
                    "the request path changed after it was admitted",
                )
            })?,
            None => "/",
        };
        let base = &self.upstream()?.base_path;
        let creds = self.creds()?;
        // The caller's parameters named like an injected credential go (item 3, `shadow`).
        let query = uri.query().and_then(|q| creds.shadow.strip_query(q));
        target_uri(base, path, query.as_deref(), &creds.query).map_err(|e| {
            pingora::Error::explain(
                pingora::ErrorType::InternalError,
                format!("cannot build the upstream request (path): {e}"),
            )
        })
    }

    /// The credentials to inject.
    pub fn creds(&self) -> pingora::Result<&Applied> {
        match &self.creds {
            Creds::Owned(a) => Ok(a),
            Creds::Snapshot => self
                .snapshot
                .exec
                .info(self.tool)
                .creds
                .get()
                .map(|a| &**a)
                .ok_or_else(|| {
                    pingora::Error::explain(
                        pingora::ErrorType::InternalError,
                        "the tool's credentials are gone from the snapshot",
                    )
                }),
        }
    }

    /// The tool's upstream header template on this thread ([`Template`]).
    pub fn template(&self) -> pingora::Result<&Template> {
        let authority = &self.upstream()?.authority;
        self.snapshot
            .template(self.tool, || {
                // Credentials fixed for the snapshot go into it; without them (per-request
                // credentials) `rewrite` adds the request's own.
                let fixed = match &self.creds {
                    Creds::Snapshot => self.creds().ok(),
                    Creds::Owned(_) => None,
                };
                Template::new(authority, fixed).keeping(&self.snapshot.pass_through.forward_headers)
            })
            .ok_or_else(|| {
                pingora::Error::explain(
                    pingora::ErrorType::InternalError,
                    "the tool is gone from the snapshot",
                )
            })
    }

    /// The tool's upstream (always present: a request is admitted only when it is).
    pub fn upstream(&self) -> pingora::Result<&Target> {
        self.snapshot
            .exec
            .info(self.tool)
            .target
            .as_ref()
            .ok_or_else(|| {
                pingora::Error::explain(pingora::ErrorType::InternalError, "no upstream target")
            })
    }
}

/// The part after the prefix, when a path is on the pass-through route.
pub fn strip_prefix<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    let rest = path.strip_prefix(prefix)?;
    rest.starts_with('/').then_some(rest)
}

/// Headers that belong to one connection (RFC 9110 §7.6.1) and must not be forwarded, plus
/// the caller's own credentials and runtime controls. Standard names compare without string
/// comparisons.
static DROP: [HeaderName; 12] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    HeaderName::from_static("http2-settings"),
    http::header::PROXY_AUTHENTICATE,
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
];

pub const APPROVAL_HEADER: HeaderName = HeaderName::from_static("x-open-cli-approval");
pub const MODE_HEADER: HeaderName = HeaderName::from_static("x-open-cli-mode");
pub const PROFILE_HEADER: HeaderName = HeaderName::from_static("x-open-cli-agent-profile");

/// The request header fields the pass-through decides on, found in one pass over the (few)
/// fields rather than one hash lookup each. A repeated field counts by its first value, as
/// `HeaderMap::get` would answer.
#[derive(Debug, Default)]
pub struct Fields<'h> {
    pub request_id: Option<&'h HeaderValue>,
    pub authorization: Option<&'h HeaderValue>,
    /// `Content-Length`: `Some(None)` when present but not text.
    length: Option<Option<&'h str>>,
    chunked: bool,
    mode: Option<Option<&'h str>>,
    profile: Option<Option<&'h str>>,
    approval: Option<Option<&'h str>>,
}

impl<'h> Fields<'h> {
    pub fn scan(headers: &'h http::HeaderMap) -> Self {
        let mut f = Fields::default();
        for (name, value) in headers {
            // Standard names compare by their tag; the custom ones by length, then bytes.
            let slot = if name == http::header::AUTHORIZATION {
                f.authorization.get_or_insert(value);
                continue;
            } else if name == http::header::CONTENT_LENGTH {
                &mut f.length
            } else if name == http::header::TRANSFER_ENCODING {
                f.chunked = true;
                continue;
            } else if name == X_REQUEST_ID {
                f.request_id.get_or_insert(value);
                continue;
            } else if name == MODE_HEADER {
                &mut f.mode
            } else if name == PROFILE_HEADER {
                &mut f.profile
            } else if name == APPROVAL_HEADER {
                &mut f.approval
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(value.to_str().ok());
            }
        }
        f
    }
}

/// A pass-through request as it arrived, for [`admit`].
#[derive(Debug)]
pub struct Incoming<'a> {
    pub header: &'a RequestHeader,
    pub fields: &'a Fields<'a>,
    /// The path after the pass-through prefix (`/<alias>/<upstream path>`).
    pub rest: &'a str,
    pub request_id: &'a str,
    pub started: Instant,
}

/// Steps 2–5 of the module docs for an authenticated caller.
pub async fn admit(
    state: &RuntimeState,
    snapshot: Arc<LocalSnapshot>,
    caller: Caller,
    incoming: Incoming<'_>,
) -> Result<Admitted, ApiError> {
    let Incoming {
        header: req,
        fields,
        rest,
        request_id,
        started,
    } = incoming;
    let after = &rest[1..];
    let (alias, path, path_at) = match after.bytes().position(|c| c == b'/') {
        Some(k) => (
            &after[..k],
            &after[k..],
            // `rest` (hence `after[k..]`) is a suffix of the request's path.
            Some(req.uri.path().len() - (after.len() - k)),
        ),
        None => (after, "/", None),
    };
    let method = req.method.as_str();
    let i = snapshot.exec.route(alias, method, path).map_err(|e| match e {
        RouteError::Unsafe(why) => {
            ApiError::new(400, codes::INVALID_REQUEST, format!("unsafe path: {why}"))
        }
        RouteError::NoService => ApiError::new(
            404,
            codes::NOT_FOUND,
            format!("no service with alias `{alias}` (pass-through paths are `<prefix>/<alias>/<path>`)"),
        ),
        RouteError::NoOperation => ApiError::new(
            404,
            codes::NO_MATCHING_OPERATION,
            format!("`{method} {path}` matches no operation of service `{alias}`; only catalog operations are forwarded"),
        ),
    })?;
    let intent = Intent {
        mode: fields.mode.flatten(),
        agent_profile: fields.profile.flatten(),
        approval: fields
            .approval
            .flatten()
            .is_some_and(|v: &str| v.eq_ignore_ascii_case("true") || v == "1"),
    };
    let tool = snapshot.tool(i);
    let info = snapshot.exec.info(i);
    let event = || {
        crate::execute::tool_event(
            tool,
            info,
            &caller,
            &intent,
            request_id,
            crate::audit::Channel::Passthrough,
            started,
        )
    };
    crate::execute::check_audit(state)?;
    let permit = match crate::execute::admit(state, &snapshot, &caller, i, &intent).await {
        Ok(p) => p,
        Err(e) => {
            // Boxed, as the failures below: the record's future would otherwise be part of
            // every admitted request's future, which Pingora moves per request.
            Box::pin(crate::execute::record(
                state,
                crate::execute::denial_event(event(), &e),
            ))
            .await?;
            return Err(e.into());
        }
    };
    let limit = info.upstream.max_request_bytes;
    let length = fields.length.flatten().and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = length
        && len > limit
    {
        return Err(crate::execute::Error::TooLarge(format!(
            "the request body is {len} bytes; tool `{}` accepts at most {limit} (maxRequestBytes)",
            tool.id
        ))
        .into());
    }
    use crate::execute::Error::{Credentials, Unreachable};
    // Recorded like execute's failures (held for the record with `durability: always`).
    let fail = |err: crate::execute::Error| {
        Box::pin(async {
            match crate::execute::record(state, crate::execute::failure_event(event(), &err)).await
            {
                Err(unavailable) => ApiError::from(unavailable),
                Ok(()) => ApiError::from(err),
            }
        })
    };
    let up = match (&info.base, &info.target) {
        (Ok(_), Some(t)) => t,
        (Err(m), _) => return Err(fail(Unreachable(m.clone())).await),
        (Ok(b), None) => {
            let m = format!("tool `{}`: server URL `{b}` cannot be proxied to", tool.id);
            return Err(fail(Unreachable(m)).await);
        }
    };
    let creds = match info.creds.get() {
        Some(_) => Creds::Snapshot,
        None => {
            let owned = match state
                .credentials
                .resolve_cached(
                    &snapshot.config,
                    tool,
                    &info.creds,
                    caller
                        .principal
                        .as_deref()
                        .map(crate::auth::Principal::on_behalf),
                )
                .instrument(crate::span!("credentials", open_cli.service = %tool.service_id))
                .await
            {
                Ok(c) => c,
                Err(u) => return Err(fail(Credentials(u.message(&tool.id))).await),
            };
            Creds::Owned(owned)
        }
    };
    let addr = match up.ip {
        Some(ip) => SocketAddr::new(ip, up.port),
        None => match Box::pin(state.resolver.resolve(&up.host, up.port)).await {
            Ok(a) => a,
            Err(m) => return Err(fail(Unreachable(format!("tool `{}`: {m}", tool.id))).await),
        },
    };
    Ok(Admitted {
        agent_profile: intent.agent_profile.map(str::to_string),
        snapshot,
        tool: i,
        caller,
        creds,
        addr,
        path_at,
        started,
        connect_retries: 0,
        upstream_status: 0,
        redacted: Default::default(),
        recorded: false,
        withheld: false,
        has_body: fields.chunked || length.is_some_and(|n| n > 0),
        trace_id: crate::trace::current_trace_id(),
        headers: http::HeaderMap::new(),
        permit,
    })
}

/// Fields of the caller's request that Pingora's downstream session still reads after the
/// request filter: body framing, keep-alive, upgrade and `Expect: 100-continue`.
pub const SESSION_FIELDS: [HeaderName; 5] = [
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
    http::header::UPGRADE,
    http::header::EXPECT,
];

/// Moves an admitted request's header fields out of the session's request header and
/// returns them; the session keeps its request line and copies of the [`SESSION_FIELDS`]
/// the caller sent.
///
/// Why: Pingora clones the session's request header for every attempt before
/// `upstream_request_filter` sees it, with the case-preserving copy of every name, and
/// [`rewrite`] then builds the upstream header afresh and drops that clone. Once the fields
/// are out, the clone is of a request line and (usually) one field, and the rewrite reads the
/// caller's fields from [`Admitted::headers`], which outlive every attempt (a retried attempt
/// builds its header again from them). The replacement header is built from plain parts, so
/// it has no name map either (Pingora only uses that map to write a header out, and the
/// session's request header is never written). Measured: `docs/execution.md`, Performance.
pub fn detach_headers(req: &mut RequestHeader) -> http::HeaderMap {
    let empty = || RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, empty()));
    let caller = std::mem::take(&mut parts.headers);
    for (name, value) in &caller {
        if SESSION_FIELDS.contains(name) {
            parts.headers.append(name.clone(), value.clone());
        }
    }
    *req = RequestHeader::from(parts);
    caller
}

/// `base` + `path`, then `query` and `extra` (form-encoded) after `?`, joined by `&`.
pub fn target_uri(
    base: &str,
    path: &str,
    query: Option<&str>,
    extra: &[(String, String)],
) -> Result<http::Uri, http::uri::InvalidUri> {
    let extra = (!extra.is_empty()).then(|| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in extra {
            s.append_pair(k, v);
        }
        s.finish()
    });
    let len = base.len()
        + path.len()
        + query.map_or(0, |q| q.len() + 1)
        + extra.as_ref().map_or(0, |e| e.len() + 1);
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(base.as_bytes());
    t.extend_from_slice(path.as_bytes());
    let mut sep = b'?';
    if let Some(q) = query {
        t.push(sep);
        t.extend_from_slice(q.as_bytes());
        sep = b'&';
    }
    if let Some(e) = extra {
        t.push(sep);
        t.extend_from_slice(e.as_bytes());
    }
    // Exactly sized, so `Bytes` takes the buffer over without allocating.
    http::Uri::from_maybe_shared(Bytes::from(t))
}

/// Rewrite the request for the upstream (see the module docs).
///
/// The upstream header is built as plain `http` parts, starting from a clone of the tool's
/// [`Template`] (the fixed fields first, then the caller's), rather than edited through
/// Pingora's case-preserving header API: that API parses and copies every header name twice
/// per insert and grows maps sized for the incoming headers, which measured about a tenth of
/// the pass-through's cost. Header names therefore go upstream in canonical case (`Host`,
/// `Accept`, … for standard names, lower case for the rest), as most proxies send them; HTTP
/// header names are case-insensitive (RFC 9110 §5.1). Everything per tool (the `Host` value,
/// credential headers) was parsed and validated once per snapshot and is only cloned here
/// (reference-counted). `creds` are the request's credentials: already in the template when
/// fixed for the snapshot, added here otherwise.
pub fn rewrite(
    req: &mut RequestHeader,
    caller: &http::HeaderMap,
    template: &Template,
    uri: http::Uri,
    creds: &Applied,
    client: Option<std::net::IpAddr>,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        pingora::Error::explain(
            pingora::ErrorType::InternalError,
            format!("cannot build the upstream request ({what}): {e}"),
        )
    };
    // One pass for the two headers the rewrite reads (no hash lookups): the caller's `Host`
    // (forwarded as `X-Forwarded-Host`) and whether there is a `Connection` header, whose
    // listed names are hop-by-hop too (rare: only then is anything allocated).
    let mut original_host = None;
    let mut has_connection = false;
    for (name, value) in caller {
        if name == http::header::HOST {
            original_host.get_or_insert(value);
        } else if name == http::header::CONNECTION {
            has_connection = true;
        }
    }
    let listed: Vec<String> = if has_connection {
        caller
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        Vec::new()
    };
    let mut forwarded_for = match client {
        Some(ip) => Some(client_header(ip).map_err(|e| bad("client", &e))?),
        None => None,
    };
    let mut forwarded_host = original_host
        .cloned()
        .or_else(|| req.uri.authority().and_then(|a| a.as_str().parse().ok()));
    let mut forwarded = client.and_then(|ip| forwarded_header(ip, forwarded_host.as_ref()));
    let mut headers = template.headers.clone();
    let (mut no_for, mut no_host, mut no_forwarded) = (false, false, false);
    for (name, value) in headers.iter_mut() {
        if name == X_FORWARDED_FOR {
            match forwarded_for.take() {
                Some(v) => *value = v,
                None => no_for = true,
            }
        } else if name == X_FORWARDED_HOST {
            match forwarded_host.take() {
                Some(v) => *value = v,
                None => no_host = true,
            }
        } else if name == X_REQUEST_ID {
            *value = request_id.clone();
        } else if name == FORWARDED {
            match forwarded.take() {
                Some(v) => *value = v,
                None => no_forwarded = true,
            }
        }
    }
    if no_forwarded {
        headers.remove(FORWARDED);
    }
    // Rare: no client address (not TCP) or no host at all (HTTP/1.0 without `Host`).
    if no_for {
        headers.remove(X_FORWARDED_FOR);
    }
    if no_host {
        headers.remove(X_FORWARDED_HOST);
    }
    for (name, value) in caller {
        let n = name.as_str();
        let dropped = DROP.contains(name)
            || name == http::header::HOST
            || name == X_REQUEST_ID
            || n.starts_with("x-open-cli-")
            || n.starts_with("x-forwarded-")
            // `Forwarded`, `X-Real-IP`, `X-Original-URL`, …: only those the operator keeps.
            || (crate::gateway::wire::is_identity(n) && !template.keep.contains(name))
            || (!listed.is_empty() && listed.iter().any(|l| l == n))
            // Credentials replace anything the caller sent under the same name, in any
            // case and with `_` for `-` (`X_API_Key` for `x-api-key`).
            || creds.shadow.shadows_header(n.as_bytes());
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    if !template.with_creds {
        for (name, value) in &creds.wire {
            headers.insert(name.clone(), value.clone());
        }
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = req.method.clone();
    parts.uri = uri;
    parts.version = req.version;
    parts.headers = headers;
    *req = RequestHeader::from(parts);
    Ok(())
}

/// `Forwarded` for a client and host: the value made for the thread's previous request when
/// both are the same (as [`client_header`]), so the common request formats nothing.
fn forwarded_header(ip: std::net::IpAddr, host: Option<&HeaderValue>) -> Option<HeaderValue> {
    crate::gateway::local::memo(|m| {
        let last = &mut *m.forwarded.borrow_mut();
        if let Some((seen, seen_host, value)) = last
            && *seen == ip
            && seen_host.as_ref() == host
        {
            return Some(value.clone());
        }
        let value = crate::gateway::wire::forwarded_value(ip, host, "http")?;
        // A copy of the host, not a share of the request's header buffer.
        let host = host.and_then(|h| HeaderValue::from_bytes(h.as_bytes()).ok());
        *last = Some((ip, host, value.clone()));
        Some(value)
    })
}

/// `X-Forwarded-For` for a client: the value made for the thread's previous client when it is
/// the same address (a sidecar's callers are few: usually one), so the common request formats
/// and allocates nothing; the remembered value is shared by reference count.
fn client_header(ip: std::net::IpAddr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    crate::gateway::local::memo(|m| {
        let last = &mut *m.client.borrow_mut();
        if let Some((seen, value)) = last
            && *seen == ip
        {
            return Ok(value.clone());
        }
        let value = ip_header(ip)?;
        *last = Some((ip, value.clone()));
        Ok(value)
    })
}

/// An IP address as a header value, IPv4 formatted by hand (this runs for every proxied
/// request; `Display` costs several times as much).
fn ip_header(ip: std::net::IpAddr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            HeaderValue::from_bytes(&buf[..n])
        }
        std::net::IpAddr::V6(_) => HeaderValue::from_str(&ip.to_string()),
    }
}

/// The upstream's answer with every injected secret removed from its `Location`,
/// `Content-Location`, `Link` and `Refresh` fields; which fields changed (for the audit).
/// Costs a pass over the field names when there is nothing to remove.
pub fn redact_answer(
    resp: &mut pingora::http::ResponseHeader,
    shadow: &crate::credentials::shadow::Shadow,
) -> pingora::Result<crate::credentials::shadow::Redacted> {
    let (changed, fields) = shadow.redact_response(&resp.headers);
    let mut last: Option<HeaderName> = None;
    for (name, value) in fields {
        if last.as_ref() != Some(&name) {
            resp.remove_header(&name);
            last = Some(name.clone());
        }
        resp.append_header(name, value)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_must_be_followed_by_a_slash() {
        assert_eq!(
            strip_prefix("/proxy", "/proxy/demo/items"),
            Some("/demo/items")
        );
        assert_eq!(strip_prefix("/proxy", "/proxyx/demo"), None);
        assert_eq!(strip_prefix("/proxy", "/proxy"), None);
        assert_eq!(strip_prefix("/proxy", "/v1/catalog/effective"), None);
    }

    #[test]
    fn one_pass_finds_the_fields_the_decision_needs_first_value_first() {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            ("host", "runtime"),
            ("x-request-id", "rid-1"),
            ("authorization", "Bearer a"),
            ("x-open-cli-approval", "true"),
            ("x-open-cli-mode", "discover"),
            ("x-open-cli-agent-profile", "ops"),
            ("x-open-cli-other", "ignored"),
            ("content-length", "12"),
            ("x-request-id", "rid-2"),
            ("authorization", "Bearer b"),
            ("x-open-cli-mode", "curated"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let f = Fields::scan(&h);
        assert_eq!(f.request_id.unwrap(), "rid-1");
        assert_eq!(f.authorization.unwrap(), "Bearer a");
        assert_eq!(f.approval, Some(Some("true")));
        assert_eq!(f.mode, Some(Some("discover")));
        assert_eq!(f.profile, Some(Some("ops")));
        assert_eq!(f.length, Some(Some("12")));
        assert!(!f.chunked);
        h.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        h.append(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let f = Fields::scan(&h);
        assert_eq!(f.length, Some(None), "present but not text");
        assert!(f.chunked);
        let empty = http::HeaderMap::new();
        let f = Fields::scan(&empty);
        assert!(f.request_id.is_none() && f.authorization.is_none() && f.length.is_none());
    }

    #[test]
    fn callers_credentials_and_hop_by_hop_headers_are_dropped() {
        let creds = crate::credentials::tests::complete(Applied {
            headers: vec![("x-api-key".into(), "k".into())],
            cookies: vec![("session_key".into(), "c".into())],
            ..Applied::default()
        });
        let mut req = RequestHeader::build("GET", b"/proxy/demo/items/1?x=1", None).unwrap();
        for (k, v) in [
            ("authorization", "Bearer caller"),
            ("cookie", "mine=1"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("http2-settings", "AAMAAABkAAQAAP__"),
            ("proxy-authorization", "Basic eDp5"),
            ("x-open-cli-approval", "true"),
            ("x-forwarded-for", "6.6.6.6"),
            ("host", "runtime:8765"),
            ("accept", "application/json"),
            ("x-api-key", "callers-own"),
            ("X_API_Key", "callers-own"),
            ("Session-Key", "callers-own"),
            ("X-Custom-Case", "kept"),
        ] {
            req.append_header(k, v).unwrap();
        }
        // As in the gateway: the fields leave the session's header on admission, and each
        // attempt's upstream header starts as Pingora's clone of what the session kept.
        let caller = detach_headers(&mut req);
        let kept = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            kept("connection").as_deref(),
            Some("keep-alive, x-secret-hop")
        );
        assert_eq!(kept("transfer-encoding").as_deref(), Some("chunked"));
        assert_eq!(kept("upgrade").as_deref(), Some("websocket"));
        assert_eq!(req.headers.len(), 3, "{:?}", req.headers);
        assert!(!req.has_case());
        assert_eq!(req.uri.to_string(), "/proxy/demo/items/1?x=1");
        assert_eq!(req.method, "GET");
        assert_eq!(caller.len(), 20);
        let session = req;
        let authority = HeaderValue::from_static("127.0.0.1:9");
        let client = Some("10.0.0.1".parse().unwrap());
        // Credentials fixed for the snapshot (in the template) and per request (added).
        for fixed in [Some(&creds), None] {
            let template = Template::new(&authority, fixed);
            let mut req = session.clone();
            rewrite(
                &mut req,
                &caller,
                &template,
                "/base/items/1?x=1".parse().unwrap(),
                &creds,
                client,
                &HeaderValue::from_static("rid"),
            )
            .unwrap();
            let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(req.uri.to_string(), "/base/items/1?x=1");
            assert_eq!(h("authorization"), None);
            assert_eq!(h("cookie").as_deref(), Some("session_key=c"));
            assert_eq!(h("x-secret-hop"), None);
            for hop in [
                "keep-alive",
                "proxy-connection",
                "te",
                "trailer",
                "transfer-encoding",
                "upgrade",
                "http2-settings",
                "proxy-authorization",
            ] {
                assert_eq!(h(hop), None, "{hop} forwarded");
            }
            assert_eq!(h("connection"), None);
            assert_eq!(h("x-open-cli-approval"), None);
            assert_eq!(h("x-forwarded-for").as_deref(), Some("10.0.0.1"));
            assert_eq!(h("x-forwarded-host").as_deref(), Some("runtime:8765"));
            assert_eq!(h("host").as_deref(), Some("127.0.0.1:9"));
            assert_eq!(h("x-api-key").as_deref(), Some("k"));
            assert_eq!(h("accept").as_deref(), Some("application/json"));
            assert_eq!(h("x-request-id").as_deref(), Some("rid"));
            assert_eq!(h("x-custom-case").as_deref(), Some("kept"));
            assert_eq!(req.headers.get_all("x-api-key").iter().count(), 1);
            assert!(
                req.headers.values().all(|v| v != "callers-own"),
                "shadowed: {:?}",
                req.headers
            );
            assert!(req.headers.get("x-api-key").unwrap().is_sensitive());
            assert_eq!(req.method, "GET");
            let mut wire = Vec::new();
            req.header_to_h1_wire(&mut wire);
            let wire = String::from_utf8(wire).unwrap();
            assert!(wire.contains("x-custom-case: kept\r\n"), "{wire}");
            let hosts = wire
                .lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("host:"));
            assert_eq!(hosts.count(), 1, "{wire}");
            assert_eq!(wire.matches("6.6.6.6").count(), 0, "{wire}");
            // The template's slots are all filled, and the template itself is unchanged.
            assert!(req.headers.values().all(|v| !v.is_empty()), "{wire}");
            assert_eq!(template.headers.get("x-request-id").unwrap(), "");
        }
        // No client address and no host at all: the slots go, nothing is sent empty.
        let mut bare = RequestHeader::build("GET", b"/proxy/demo/items", None).unwrap();
        bare.set_version(http::Version::HTTP_10);
        let template = Template::new(&authority, Some(&creds));
        rewrite(
            &mut bare,
            &http::HeaderMap::new(),
            &template,
            "/items".parse().unwrap(),
            &creds,
            None,
            &HeaderValue::from_static("rid"),
        )
        .unwrap();
        assert!(bare.headers.get("x-forwarded-for").is_none());
        assert!(bare.headers.get("x-forwarded-host").is_none());
        assert_eq!(bare.headers.len(), 5, "{:?}", bare.headers);
    }
}

#[cfg(test)]
mod uri_tests {
    use super::target_uri;

    #[test]
    fn upstream_targets_join_base_path_query_and_query_credentials() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        for (base, path, query, extra, want) in [
            ("", "/items", None, vec![], "/items"),
            (
                "/v1",
                "/items/1",
                Some("a=1&b=2"),
                vec![],
                "/v1/items/1?a=1&b=2",
            ),
            (
                "",
                "/",
                None,
                vec![kv("api_key", "k 1&x")],
                "/?api_key=k+1%26x",
            ),
            (
                "/base",
                "/x",
                Some("q=1"),
                vec![kv("k", "v"), kv("t", "w")],
                "/base/x?q=1&k=v&t=w",
            ),
        ] {
            let uri = target_uri(base, path, query, &extra).unwrap();
            assert_eq!(uri.to_string(), want);
            assert_eq!(uri.path_and_query().unwrap().as_str(), want);
        }
        assert!(
            target_uri("", "/a b", None, &[]).is_err(),
            "checked, not copied blindly"
        );
    }
}

#[cfg(test)]
mod ip_tests {
    #[test]
    fn client_addresses_are_formatted_like_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.9.199",
            "::1",
            "fe80::1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(
                super::ip_header(ip).unwrap().to_str().unwrap(),
                ip.to_string()
            );
        }
    }

    #[test]
    fn the_remembered_client_header_is_for_that_client_only() {
        for ip in [
            "10.0.0.1", "10.0.0.1", "10.0.0.2", "::1", "10.0.0.1", "::2", "::2",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(
                super::client_header(ip).unwrap().to_str().unwrap(),
                ip.to_string()
            );
        }
    }
}
