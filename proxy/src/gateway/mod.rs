//! The Pingora `ProxyHttp` service: every phase only delegates.
//!
//! Requests under the pass-through prefix are governed in `request_filter`
//! ([`crate::gateway::passthrough`]) and then proxied by Pingora (`upstream_peer`,
//! `upstream_request_filter`, streaming bodies, pooled upstream connections); everything else
//! is the runtime's own API, answered locally in `request_filter` ([`crate::gateway::api`]). The request
//! ID (an incoming `X-Request-ID` when it is sane, else a new UUID) is echoed on every
//! response, sent upstream, and carried in the access log line and audit records.

use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use open_cli_config::wire::codes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};

pub mod api;
pub mod conn;
pub mod edge_tls;
pub mod error;
pub mod local;
pub mod mcp;
pub mod openapi;
pub mod passthrough;
pub mod template;
pub mod tls;
pub mod wire;

use crate::state::{InflightCounter, InflightGuard, RuntimeState};
use api::Reply;
use local::LocalSnapshot;
use passthrough::Admitted;

/// One serving thread's proxy (each serving thread runs its own instance, see
/// `crate::server`): what it counts and holds per request is its own, so requests on
/// different cores write no shared cache line.
#[derive(Debug)]
pub struct Gateway {
    state: Arc<RuntimeState>,
    /// This thread's in-flight requests.
    inflight: Arc<InflightCounter>,
    /// This thread's handle on the current snapshot (only this thread locks it).
    snapshot: parking_lot::Mutex<Arc<LocalSnapshot>>,
    /// The `caFile` trust anchors, shared by every serving thread.
    ca_bundles: Arc<tls::CaBundles>,
}

impl Gateway {
    pub fn new(state: Arc<RuntimeState>, ca_bundles: Arc<tls::CaBundles>) -> Self {
        Self {
            ca_bundles,
            inflight: state.inflight_counter(),
            snapshot: parking_lot::Mutex::new(Arc::new(LocalSnapshot::new(state.snapshot()))),
            state,
        }
    }

    /// The current snapshot through this thread's handle, renewed when the snapshot was
    /// swapped since.
    fn snapshot(&self) -> Arc<LocalSnapshot> {
        let current = self.state.snapshot_guard();
        let mut mine = self.snapshot.lock();
        if !Arc::ptr_eq(mine.shared(), &current) {
            *mine = Arc::new(LocalSnapshot::new(Arc::clone(&current)));
        }
        Arc::clone(&mine)
    }
}

/// Per-request context.
#[derive(Debug)]
pub struct Ctx {
    pub request_id: RequestId,
    pub started: Instant,
    pub status: u16,
    /// Set when the request is admitted to the pass-through.
    pub pass: Option<Admitted>,
    /// The route's label in the metrics (`api::metrics_route`), set when the request is routed.
    pub route: &'static str,
    /// The request's span (`Span::none()` unless traces are exported, `crate::trace`).
    pub span: tracing::Span,
    /// The pass-through's upstream exchange, from the request head sent to the answer's head.
    pub upstream_span: tracing::Span,
    _inflight: InflightGuard,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            request_id: RequestId::default(),
            started: Instant::now(),
            status: 0,
            pass: None,
            route: "other",
            span: tracing::Span::none(),
            upstream_span: tracing::Span::none(),
            _inflight: InflightGuard::new(&self.inflight),
        }
    }

    /// The first hook after Pingora parsed a request head: from here on, answers are ours.
    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        crate::gateway::conn::Downstream::mark_received(session);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if let Err(e) = check_head(session) {
            ctx.request_id =
                RequestId::new(session.req_header().headers.get(template::X_REQUEST_ID));
            let reply = Reply::error(&e, &ctx.request_id);
            Box::pin(respond(session, ctx, reply)).await?;
            return Ok(true);
        }
        if crate::trace::on() {
            let h = session.req_header();
            ctx.span = tracing::info_span!(
                "request",
                otel.kind = "server",
                http.request.method = %h.method,
                url.path = %h.uri.path(),
                http.response.status_code = tracing::field::Empty,
                open_cli.request_id = tracing::field::Empty,
            );
            crate::trace::continue_trace(&ctx.span, &h.headers);
        }
        let snapshot = self.snapshot();
        if snapshot.pass_through.enabled
            && let Some(rest) = passthrough::strip_prefix(
                &snapshot.pass_through.prefix,
                session.req_header().uri.path(),
            )
        {
            ctx.route = api::PASSTHROUGH_ROUTE;
            // Where the rest starts, not a copy of it: the path is read again from the session.
            let at = session.req_header().uri.path().len() - rest.len();
            if ctx.span.is_none() {
                return self.pass_through(session, ctx, snapshot, at).await;
            }
            let span = ctx.span.clone();
            return tracing::Instrument::instrument(
                self.pass_through(session, ctx, snapshot, at),
                span,
            )
            .await;
        }
        drop(snapshot);
        ctx.route = api::metrics_route(session.req_header().uri.path());
        ctx.request_id = RequestId::new(session.req_header().headers.get(template::X_REQUEST_ID));
        match session.req_header().uri.path() {
            mcp::ROUTE => {
                ctx.route = mcp::ROUTE;
                let span = ctx.span.clone();
                Box::pin(tracing::Instrument::instrument(
                    mcp::serve(&self.state, session, ctx),
                    span,
                ))
                .await?;
                return Ok(true);
            }
            mcp::METADATA | mcp::METADATA_ROOT => {
                Box::pin(mcp::metadata(&self.state, session, ctx)).await?;
                return Ok(true);
            }
            _ => {}
        }
        // Boxed: the API's futures (execute holds HTTP client futures) are several KiB, and
        // this future is allocated for every request, pass-through ones included.
        if ctx.span.is_none() {
            return Box::pin(self.local_api(session, ctx)).await;
        }
        let span = ctx.span.clone();
        Box::pin(tracing::Instrument::instrument(
            self.local_api(session, ctx),
            span,
        ))
        .await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(a) = ctx.pass.as_ref() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no upstream route",
            ));
        };
        let up = &a.snapshot.exec.info(a.tool).upstream;
        let target = a.upstream()?;
        // The SNI matters only for TLS; plain peers go without (no copy of the host name per
        // request). Pooled connections are keyed by address either way; `Host` is ours.
        let sni = if target.tls {
            target.host.clone()
        } else {
            String::new()
        };
        // Boxed at once: the peer is large, and is otherwise copied once more into the box.
        let mut peer = Box::new(HttpPeer::new(a.addr, target.tls, sni));
        let o = &mut peer.options;
        // `passthrough::rewrite` builds the upstream request from the caller's headers and
        // drops every hop-by-hop field (`passthrough::DROP`, plus those the caller's
        // `Connection` names) itself. Pingora's own pass (the standard policy) would strip
        // the same fields from the copy the rewrite then discards, for nothing (measured:
        // `docs/execution.md`, Performance). Pingora still frames a body the rewrite left
        // unframed (chunked), whatever the policy.
        o.http_upstream_request_policy =
            pingora::upstreams::peer::HttpUpstreamRequestPolicy::preserve();
        o.connection_timeout = Some(Duration::from_millis(up.connect_timeout_ms));
        o.read_timeout = Some(Duration::from_millis(up.read_timeout_ms));
        // A write can only stall on a body: a request header goes into the (empty) socket
        // buffer of a fresh or pooled connection at once, and a silent upstream is then caught
        // by the read timeout. Each timeout costs a timer registration per write, so a
        // bodiless request (most tool calls) goes without.
        if a.has_body {
            o.write_timeout = Some(Duration::from_millis(up.read_timeout_ms));
        }
        // No `idle_timeout`: a pooled connection stays until the upstream closes it (Pingora's
        // pool watches every idle connection for EOF and drops it then; servers close idle
        // keep-alive connections themselves) or the pool evicts it. An idle timeout would
        // register a timer on every release, i.e. on every proxied request.
        if target.tls {
            o.alpn = pingora::protocols::ALPN::H2H1;
            o.max_h2_streams = 100;
            if let Some(ca) = &up.ca_file {
                o.ca = Some(
                    self.ca_bundles
                        .get(ca)
                        .map_err(|e| Error::explain(ErrorType::InternalError, e))?,
                );
            }
        } else if up.h2c {
            o.set_http_version(2, 2);
            o.max_h2_streams = 100;
        }
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(a) = ctx.pass.as_ref() {
            let client = session
                .client_addr()
                .and_then(|c| c.as_inet())
                .map(|c| c.ip());
            passthrough::rewrite(
                upstream_request,
                &a.headers,
                a.template()?,
                a.upstream_uri(&upstream_request.uri)?,
                a.creds()?,
                client,
                ctx.request_id.header(),
            )?;
            if !ctx.span.is_none() {
                // The upstream continues this trace: its parent is the upstream exchange.
                ctx.upstream_span = tracing::info_span!(
                    parent: &ctx.span,
                    "upstream",
                    otel.kind = "client",
                    http.request.method = %upstream_request.method,
                    http.response.status_code = tracing::field::Empty,
                );
                for (k, v) in crate::trace::outgoing(&ctx.upstream_span) {
                    upstream_request.insert_header(k, v)?;
                }
            }
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if body.is_none() && end_of_stream {
            // The end of a body (or of none: every bodiless request passes here once). No
            // more reads to time, no bytes to count: no clock reading.
            return Ok(());
        }
        crate::gateway::conn::body_progress(session, ctx.started)?;
        if let Some(a) = ctx.pass.as_ref() {
            let limit = a.snapshot.exec.info(a.tool).upstream.max_request_bytes;
            if session.body_bytes_read() as u64 > limit {
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    format!("request body exceeds maxRequestBytes ({limit})"),
                );
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(a) = ctx.pass.as_mut() {
            a.upstream_status = upstream_response.status.as_u16();
            if !ctx.upstream_span.is_none() {
                ctx.upstream_span
                    .record("http.response.status_code", a.upstream_status);
                ctx.upstream_span = tracing::Span::none();
            }
            // The cold paths' futures are boxed (here and below), so this hook's future,
            // allocated and moved for every proxied answer, stays small.
            if a.upstream_status == 401 {
                for issued in &a.creds()?.oauth {
                    Box::pin(self.state.credentials.tokens.invalidate(issued)).await;
                }
            }
            relay_response_header(upstream_response, ctx.request_id.header())?;
            // Injected secrets never reach the caller in a redirect or link (item 3).
            a.redacted = passthrough::redact_answer(upstream_response, &a.creds()?.shadow)?;
            // `durability: always`: the answer waits until its record is on disk.
            if self.state.audit.settings().durability
                == open_cli_config::model::AuditDurability::Always
            {
                let e = pass_through_event(session, None, a, &ctx.request_id);
                let written = Box::pin(crate::execute::record(&self.state, e)).await;
                a.recorded = true;
                if written.is_err() {
                    a.withheld = true;
                    return Err(Error::explain(
                        ErrorType::HTTPStatus(503),
                        "the call's audit record could not be written",
                    ));
                }
            }
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(a) = ctx.pass.as_mut() {
            let info = &a.snapshot.exec.info(a.tool);
            if info.idempotent && a.connect_retries < info.upstream.retries {
                a.connect_retries += 1;
                e.set_retry(true);
            } else {
                e.set_retry(false);
            }
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        // Upstream failures get the status and code execute gives them (`error::status`).
        let upstream = |e: crate::execute::Error| (error::status(&e), e.code());
        let withheld = ctx.pass.as_ref().is_some_and(|a| a.withheld);
        let (status, code) = match e.etype() {
            _ if withheld => upstream(crate::execute::Error::AuditUnavailable),
            ErrorType::HTTPStatus(413) => (413, codes::PAYLOAD_TOO_LARGE),
            // The client's body was too slow (`crate::gateway::conn::body_progress`).
            ErrorType::HTTPStatus(408) => (408, crate::gateway::conn::REQUEST_TIMEOUT),
            ErrorType::ReadTimedout if e.esource() == &ErrorSource::Downstream => {
                (408, crate::gateway::conn::REQUEST_TIMEOUT)
            }
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                upstream(crate::execute::Error::Timeout(String::new()))
            }
            _ => match e.esource() {
                ErrorSource::Upstream => {
                    upstream(crate::execute::Error::Unreachable(String::new()))
                }
                ErrorSource::Downstream if caller_gone(e) => (0, codes::INVALID_REQUEST),
                // The caller's body turned out invalid (a bad chunk, …) after the upstream
                // got the head: a clean 400 unless an answer has begun.
                ErrorSource::Downstream => (400, codes::INVALID_REQUEST),
                _ => (500, codes::INTERNAL),
            },
        };
        let tool = ctx
            .pass
            .as_ref()
            .map(|a| a.snapshot.tool(a.tool).id.clone())
            .unwrap_or_default();
        if status > 0 && session.response_written().is_none() {
            let message = if withheld {
                crate::execute::Error::AuditUnavailable.to_string()
            } else if status == 400 {
                format!(
                    "the request body is invalid ({}); the request was abandoned",
                    e.etype().as_str()
                )
            } else if tool.is_empty() {
                format!("proxying failed: {}", e.etype().as_str())
            } else {
                format!("tool `{tool}`: upstream failed: {}", e.etype().as_str())
            };
            let err = crate::gateway::error::ApiError::new(status, code, message);
            let _ = respond(session, ctx, Reply::error(&err, &ctx.request_id.clone())).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        let header = session.req_header();
        crate::metrics::request(
            ctx.route,
            api::route_channel(ctx.route),
            status,
            ctx.started.elapsed(),
        );
        let started = ctx.started;
        let latency_us = move || started.elapsed().as_micros() as u64;
        // Borrowed, not taken: the admitted request is large, and the context is dropped next.
        if let Some(a) = &ctx.pass {
            self.audit_pass_through(session, error, a, &ctx.request_id);
        }
        // The trace's ID joins the line to its spans and its audit record.
        let trace = crate::trace::trace_id(&ctx.span);
        if !ctx.span.is_none() {
            ctx.span.record("http.response.status_code", status);
            ctx.span
                .record("open_cli.request_id", ctx.request_id.as_str());
        }
        let trace_id = trace.as_deref().unwrap_or_default();
        // One line per request (item 7 of issue 17), tool calls included: the request ID and
        // trace ID join it to its audit record and its spans.
        if let Some(e) = error {
            tracing::warn!(request_id = %ctx.request_id, trace_id, method = %header.method, path = %header.uri.path(), status, latency_us = latency_us(), error = %e, "request failed");
            return;
        }
        match crate::accesslog::sink() {
            Some(sink) => access_line(
                sink,
                &ctx.request_id,
                trace.as_deref(),
                header.method.as_str(),
                header.uri.path(),
                status,
                latency_us(),
            ),
            None => tracing::info!(
                request_id = %ctx.request_id,
                trace_id,
                method = %header.method,
                path = %header.uri.path(),
                status,
                latency_us = latency_us(),
                "request"
            ),
        }
    }
}

/// The verified client certificate of the session's connection, on a TLS listener.
fn client_cert(session: &Session) -> Option<Arc<str>> {
    let ssl = session.digest()?.ssl_digest.as_deref()?;
    edge_tls::client_identity(Some(ssl)).map(|id| Arc::clone(&id.name))
}

impl Gateway {
    /// The runtime's own API (everything off the pass-through route), answered here.
    async fn local_api(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let body = match read_body(session, api::MAX_API_BODY, ctx).await? {
            Ok(b) => b,
            Err(reply) => {
                respond(session, ctx, reply).await?;
                return Ok(true);
            }
        };
        let cert = client_cert(session);
        let header = session.req_header();
        let (method, uri) = (header.method.clone(), header.uri.clone());
        let req = api::Request {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query(),
            body: &body,
            authorization: header
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
            received: ctx.started,
            client_cert: cert.as_ref(),
            accept_gzip: api::accepts_gzip(
                header
                    .headers
                    .get("accept-encoding")
                    .and_then(|v| v.to_str().ok()),
            ),
            if_none_match: header
                .headers
                .get(http::header::IF_NONE_MATCH)
                .map(|v| v.as_bytes()),
        };
        let reply = api::handle(&self.state, &req, &ctx.request_id).await;
        respond(session, ctx, reply).await?;
        Ok(true)
    }

    /// Authenticate, then admit or refuse a pass-through request (see [`crate::gateway::passthrough`]).
    async fn pass_through(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        snapshot: Arc<LocalSnapshot>,
        rest_at: usize,
    ) -> Result<bool> {
        let cert = client_cert(session);
        let header = session.req_header();
        let fields = passthrough::Fields::scan(&header.headers);
        ctx.request_id = RequestId::new(fields.request_id);
        let req = api::Request {
            method: header.method.as_str(),
            path: header.uri.path(),
            query: None,
            body: &[],
            authorization: fields.authorization.map(|v| v.as_bytes()),
            received: ctx.started,
            accept_gzip: false,
            if_none_match: None,
            client_cert: cert.as_ref(),
        };
        let caller = match api::authenticate(&self.state, &req).await {
            Ok(c) => c,
            Err(reply) => {
                api::audit_authn_failure(&self.state, &req, &ctx.request_id, &reply);
                let reply = reply.with_request_id(&ctx.request_id);
                Box::pin(respond(session, ctx, reply)).await?;
                return Ok(true);
            }
        };
        let admitted = passthrough::admit(
            &self.state,
            snapshot,
            caller,
            passthrough::Incoming {
                header,
                fields: &fields,
                rest: &header.uri.path()[rest_at..],
                request_id: &ctx.request_id,
                started: ctx.started,
            },
        )
        .await;
        match admitted {
            Ok(mut a) => {
                a.headers = passthrough::detach_headers(session.req_header_mut());
                ctx.pass = Some(a);
                Ok(false)
            }
            Err(e) => {
                let reply = Reply::error(&e, &ctx.request_id);
                Box::pin(respond(session, ctx, reply)).await?;
                Ok(true)
            }
        }
    }

    fn audit_pass_through(
        &self,
        session: &Session,
        error: Option<&Error>,
        a: &Admitted,
        request_id: &str,
    ) {
        // `durability: always` recorded the call before its answer; only a failure after
        // that gets a record of its own.
        if a.recorded && (error.is_none() || a.withheld) {
            return;
        }
        self.state
            .audit
            .record(pass_through_event(session, error, a, request_id));
    }
}

/// The record of an admitted pass-through call, as far as it got: `error` is how it failed.
fn pass_through_event<'a>(
    session: &'a Session,
    error: Option<&Error>,
    a: &'a Admitted,
    request_id: &'a str,
) -> crate::audit::Event<'a> {
    let tool = &a.snapshot.tool(a.tool);
    let info = &a.snapshot.exec.info(a.tool);
    let intent = crate::execute::Intent {
        agent_profile: a.agent_profile.as_deref(),
        ..Default::default()
    };
    // One clock reading for the record's latency and its timestamp.
    let end = Instant::now();
    let mut e = crate::execute::tool_event(
        tool,
        info,
        &a.caller,
        &intent,
        request_id,
        crate::audit::Channel::Passthrough,
        end,
    );
    e.auth_scheme = a
        .creds()
        .ok()
        .and_then(|c| c.scheme.as_deref())
        .map(Into::into);
    e.upstream_path = Some(forwarded_path(session, a));
    e.request_size = session.body_bytes_read() as u64;
    e.response_size = session.body_bytes_sent() as u64;
    e.set_latency(end.saturating_duration_since(a.started));
    e.trace_id = a.trace_id.as_deref().map(Into::into);
    e.retry_count = a.connect_retries;
    e.status_code = a.upstream_status;
    e.credentials_redacted = a.redacted.names().map(Into::into);
    use crate::audit::{Reason, events};
    match error {
        Some(err) if a.upstream_status == 0 => {
            let reason = match err.esource() {
                ErrorSource::Downstream if !caller_gone(err) => Reason::InvalidRequest,
                _ => Reason::ExecutionError,
            };
            events::failed(e, reason, err.etype().as_str())
        }
        _ => events::allowed(e),
    }
}

/// Issue 15 items 5 and 6, for every request before it is routed: an answer when the head's
/// framing, `Host` or method is ambiguous ([`crate::gateway::wire::check_request`]). (Pipelined
/// requests are served in order by the accept loop, `crate::gateway::conn`.)
fn check_head(session: &mut Session) -> std::result::Result<(), crate::gateway::error::ApiError> {
    crate::gateway::wire::check_request(session.req_header(), || {
        session.as_http1().map(|h1| h1.get_headers_raw_bytes())
    })
}

/// The path an admitted pass-through request was sent to: the server's base path, then the
/// request's path after the alias (as checked by `check_path`, forwarded as it is).
fn forwarded_path<'a>(session: &'a Session, a: &'a Admitted) -> crate::audit::UpstreamPath<'a> {
    let base = a.upstream().map_or("", |t| t.base_path.as_str());
    let rest = match a.path_at {
        Some(at) => session
            .req_header()
            .uri
            .path()
            .get(at..)
            .unwrap_or_default(),
        None => "/",
    };
    crate::audit::UpstreamPath(base.into(), rest.into())
}

/// The upstream's response header as it goes to the caller: `Connection` removed, our
/// `X-Request-ID` added, and without Pingora's case-preserving copy of the header names.
///
/// Why without the name map: every insert into Pingora's case-preserving header parses and
/// copies the name again (two allocations for `X-Request-ID`), and Pingora then clones both
/// maps to write the answer and inserts `Date` and `Connection` into both. The plain `http`
/// parts (moved out, not cloned) take one insert with a static name. Header names then go to
/// the caller in canonical case (`Content-Type`, … for the common standard names, lower case
/// for the rest), as HTTP/2 always does; names are case-insensitive (RFC 9110 §5.1). A
/// non-standard reason phrase is kept.
///
/// `Connection` is hop-by-hop (the downstream session writes its own). Removing it first also
/// keeps the header map below its capacity when Pingora's exactly-full copy gets `Date`
/// (the `http` map reserves room before every insert, even a replacing one, and would be
/// rehashed into one twice the size). A 101 keeps it, but the pass-through never asks for an
/// upgrade (`Upgrade` is not forwarded).
fn relay_response_header(resp: &mut ResponseHeader, request_id: &http::HeaderValue) -> Result<()> {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_string);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, empty).into();
    if parts.status != http::StatusCode::SWITCHING_PROTOCOLS {
        parts.headers.remove(http::header::CONNECTION);
    }
    parts
        .headers
        .insert(template::X_REQUEST_ID, request_id.clone());
    *resp = ResponseHeader::from(parts);
    if reason.is_some() {
        resp.set_reason_phrase(reason.as_deref())?;
    }
    Ok(())
}

/// Whether a downstream error means the caller's connection is gone (nothing can be
/// answered), rather than that what it sent was invalid.
fn caller_gone(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectionClosed
            | ErrorType::ReadError
            | ErrorType::WriteError
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
    )
}

/// Read the whole request body, or answer 413 when it exceeds `limit`.
async fn read_body(
    session: &mut Session,
    limit: usize,
    ctx: &Ctx,
) -> Result<std::result::Result<Vec<u8>, Reply>> {
    let request_id: &str = &ctx.request_id;
    let mut body = Vec::new();
    // A read timeout here is the client's (`crate::gateway::conn::body_progress`), as on the
    // pass-through, where Pingora marks it so.
    let downstream = |mut e: Box<Error>| {
        if e.etype() == &ErrorType::ReadTimedout {
            e.as_down();
        }
        e
    };
    while let Some(chunk) = session.read_request_body().await.map_err(downstream)? {
        crate::gateway::conn::body_progress(session, ctx.started)?;
        if body.len() + chunk.len() > limit {
            let e = crate::gateway::error::ApiError::new(
                413,
                open_cli_config::wire::codes::PAYLOAD_TOO_LARGE,
                format!("request bodies are limited to {limit} bytes"),
            );
            return Ok(Err(Reply::error(&e, request_id)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

/// The request's log line, in the shape `tracing-subscriber` gives the other lines (see
/// [`crate::accesslog`] for why it is written by hand).
fn access_line(
    sink: &crate::accesslog::Sink,
    request_id: &RequestId,
    trace_id: Option<&str>,
    method: &str,
    path: &str,
    status: u16,
    latency_us: u64,
) {
    thread_local! {
        static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
    }
    let at = crate::audit::Timestamp::now();
    let mut num = itoa::Buffer::new();
    LINE.with_borrow_mut(|out| {
        out.clear();
        let rid = request_id.as_str();
        if sink.json() {
            use crate::audit::json_str;
            out.extend_from_slice(b"{\"timestamp\":\"");
            out.extend_from_slice(at.as_str().as_bytes());
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":");
            json_str(out, rid);
            if let Some(t) = trace_id {
                out.extend_from_slice(b",\"trace_id\":");
                json_str(out, t);
            }
            out.extend_from_slice(b",\"method\":");
            json_str(out, method);
            out.extend_from_slice(b",\"path\":");
            json_str(out, path);
            out.extend_from_slice(b",\"status\":");
            out.extend_from_slice(num.format(status).as_bytes());
            out.extend_from_slice(b",\"latency_us\":");
            out.extend_from_slice(num.format(latency_us).as_bytes());
            out.extend_from_slice(b",\"target\":\"open_cli_proxy::gateway\"}\n");
        } else {
            out.extend_from_slice(at.as_str().as_bytes());
            out.extend_from_slice(b"  INFO open_cli_proxy::gateway: request request_id=");
            out.extend_from_slice(rid.as_bytes());
            if let Some(t) = trace_id {
                out.extend_from_slice(b" trace_id=");
                out.extend_from_slice(t.as_bytes());
            }
            out.extend_from_slice(b" method=");
            out.extend_from_slice(method.as_bytes());
            out.extend_from_slice(b" path=");
            // A path is printable ASCII after Pingora's parse; anything else is escaped.
            for c in path.chars() {
                if c.is_ascii_graphic() {
                    out.push(c as u8);
                } else {
                    out.extend_from_slice(c.escape_default().to_string().as_bytes());
                }
            }
            out.extend_from_slice(b" status=");
            out.extend_from_slice(num.format(status).as_bytes());
            out.extend_from_slice(b" latency_us=");
            out.extend_from_slice(num.format(latency_us).as_bytes());
            out.push(b'\n');
        }
        sink.write(out);
    });
}

/// Write a complete local response.
async fn respond(session: &mut Session, ctx: &mut Ctx, reply: Reply) -> Result<()> {
    let mut resp = ResponseHeader::build(reply.status, Some(4 + reply.headers.len()))?;
    if reply.status != 304 {
        // A 304 has no content, and its headers describe the content it stands for.
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", reply.body.len().to_string())?;
    }
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("x-request-id", ctx.request_id.header().clone())?;
    for (name, value) in reply.headers {
        resp.insert_header(name, value)?;
    }
    ctx.status = reply.status;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(reply.body), true).await
}

/// A request's ID: the caller's `X-Request-ID` when it is short and made of safe characters
/// (it ends up in logs and audit records), otherwise a generated one (32 hex digits).
///
/// Kept as a header value, validated once: the upstream request and the answer carry it by
/// reference count, the audit record and error bodies read it as text. A caller's ID is
/// not copied at all (it shares the request's header buffer); a generated one is one
/// allocation for the whole request, where a `String` copied into two header values was
/// three.
#[derive(Debug, Clone)]
pub struct RequestId(http::HeaderValue);

impl RequestId {
    pub fn new(incoming: Option<&http::HeaderValue>) -> Self {
        match incoming {
            Some(v) if is_safe_id(v.as_bytes()) => Self(v.clone()),
            _ => {
                // Hex digits are always a valid header value.
                Self(
                    http::HeaderValue::from_maybe_shared(Bytes::from_owner(generated_id()))
                        .unwrap_or_else(|_| http::HeaderValue::from_static("unavailable")),
                )
            }
        }
    }

    pub fn as_str(&self) -> &str {
        // Only safe ASCII gets in (see `new`), so this never fails.
        self.0.to_str().unwrap_or_default()
    }

    pub fn header(&self) -> &http::HeaderValue {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self(http::HeaderValue::from_static(""))
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A generated request ID, 32 lower-case hex digits: a random 64-bit prefix drawn once per
/// thread, then a per-thread counter that starts at a random value. Unique within the
/// process (one counter per prefix) and, with overwhelming probability, across threads and
/// restarts, without drawing randomness for every request (a v4 UUID per request showed in
/// the pass-through's profile: `docs/execution.md`, Performance). The thread keeps its next ID as
/// text and counts in hex digits ([`next_id`]), so nothing is formatted per request.
fn generated_id() -> [u8; 32] {
    local::memo(|m| {
        let id = m.next_id.get();
        m.next_id.set(next_id(id));
        id
    })
}

/// A thread's first request ID: random prefix and counter start.
fn first_id() -> [u8; 32] {
    hex32(uuid::Uuid::new_v4().as_u128())
}

fn hex32(v: u128) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, d) in out.iter_mut().enumerate() {
        *d = HEX[((v >> (124 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// The ID after `id`: its last 16 hex digits (the counter) plus one, wrapping to zero; the
/// prefix is never touched.
fn next_id(mut id: [u8; 32]) -> [u8; 32] {
    for d in id[16..].iter_mut().rev() {
        let (digit, carry) = match *d {
            b'9' => (b'a', false),
            b'f' => (b'0', true),
            x => (x + 1, false),
        };
        *d = digit;
        if !carry {
            break;
        }
    }
    id
}

fn is_safe_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

#[cfg(test)]
mod tests {
    use super::{RequestId, hex32, next_id, relay_response_header};
    use http::HeaderValue;
    use pingora::http::ResponseHeader;

    #[test]
    fn relayed_answers_lose_connection_gain_the_request_id_and_keep_the_rest() {
        let upstream = |status: u16, reason: Option<&str>| {
            let mut r = ResponseHeader::build(status, Some(4)).unwrap();
            for (k, v) in [
                ("Server", "nginx"),
                ("X-Custom-Case", "v"),
                ("Connection", "keep-alive"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ] {
                r.append_header(k, v).unwrap();
            }
            r.set_reason_phrase(reason).unwrap();
            r
        };
        let id = HeaderValue::from_static("rid-1");
        let mut r = upstream(200, Some("Fine"));
        relay_response_header(&mut r, &id).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.get_reason_phrase(), Some("Fine"));
        assert!(r.headers.get("connection").is_none());
        assert_eq!(r.headers["x-request-id"], "rid-1");
        assert_eq!(r.headers["x-custom-case"], "v");
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("Server: nginx\r\n"), "{wire}");
        assert!(wire.contains("x-request-id: rid-1\r\n"), "{wire}");
        // The canonical reason is not stored; a 101 keeps its `Connection`.
        let mut r = upstream(404, None);
        relay_response_header(&mut r, &id).unwrap();
        assert_eq!(r.get_reason_phrase(), Some("Not Found"));
        let mut r = upstream(101, None);
        relay_response_header(&mut r, &id).unwrap();
        assert_eq!(r.headers["connection"], "keep-alive");
    }

    #[test]
    fn generated_ids_count_in_hex_after_a_fixed_prefix() {
        let text = |v: u128| String::from_utf8(hex32(v).to_vec()).unwrap();
        assert_eq!(
            text(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            "0123456789abcdeffedcba9876543210"
        );
        for v in [
            0u128,
            9,
            0xf,
            0x19,
            0xff,
            0x0fff_ffff,
            (7 << 64) | u128::from(u64::MAX - 1),
            u128::MAX >> 1,
        ] {
            let next = (v & !u128::from(u64::MAX)) | u128::from((v as u64).wrapping_add(1));
            assert_eq!(next_id(hex32(v)), hex32(next), "after {v:x}");
        }
        // The counter wraps without carrying into the prefix.
        assert_eq!(next_id(hex32(u128::MAX)), hex32(u128::MAX << 64));
    }

    #[test]
    fn request_ids_are_honoured_only_when_safe() {
        let id = |v: &[u8]| RequestId::new(Some(&HeaderValue::from_bytes(v).unwrap()));
        assert_eq!(id(b"abc-123").as_str(), "abc-123");
        assert_eq!(id(b"a.b:c/d+e=f@g_h").as_str(), "a.b:c/d+e=f@g_h");
        let long = "x".repeat(129);
        for bad in [
            &b""[..],
            b"has space",
            b"quote\"",
            b"back\\slash",
            b"caf\xc3\xa9",
            long.as_bytes(),
        ] {
            let got = id(bad);
            assert_ne!(got.as_bytes(), bad);
            assert_eq!(got.len(), 32);
            assert!(got.bytes().all(|b| b.is_ascii_hexdigit()), "{got}");
            assert_eq!(got.header().as_bytes(), got.as_bytes());
        }
        let (a, b) = (RequestId::new(None), RequestId::new(None));
        assert_eq!(a.len(), 32);
        assert_ne!(a.as_str(), b.as_str(), "generated IDs differ");
        // Unique across many IDs and across threads (each thread has its own prefix).
        let many = |n: usize| -> Vec<String> {
            (0..n).map(|_| RequestId::new(None).to_string()).collect()
        };
        let mut all = many(10_000);
        let other = std::thread::spawn(move || many(10_000)).join().unwrap();
        assert_ne!(all[0][..16], other[0][..16], "per-thread prefixes");
        all.extend(other);
        assert!(all.iter().all(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate generated IDs");
    }
}
