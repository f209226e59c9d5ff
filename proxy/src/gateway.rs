//! The Pingora `ProxyHttp` service: every phase only delegates.
//!
//! Today every request is answered locally in `request_filter` (the `/v1` API); pass-through
//! to upstreams plugs into `upstream_peer` / `upstream_request_filter` later. The request ID
//! (an incoming `X-Request-ID` when it is sane, else a new UUID) is echoed on every response
//! and carried in the access log line.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use crate::api::{self, Reply};
use crate::state::{InflightGuard, RuntimeState};

#[derive(Debug)]
pub struct Gateway {
    state: Arc<RuntimeState>,
}

impl Gateway {
    pub fn new(state: Arc<RuntimeState>) -> Self {
        Self { state }
    }
}

/// Per-request context.
#[derive(Debug)]
pub struct Ctx {
    pub request_id: String,
    pub started: Instant,
    pub status: u16,
    _inflight: InflightGuard,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            request_id: String::new(),
            started: Instant::now(),
            status: 0,
            _inflight: self.state.track(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.request_id = request_id(
            session
                .req_header()
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
        );
        let body = match read_body(session, api::MAX_API_BODY, &ctx.request_id).await? {
            Ok(b) => b,
            Err(reply) => {
                respond(session, ctx, reply).await?;
                return Ok(true);
            }
        };
        let header = session.req_header();
        let (method, uri) = (header.method.clone(), header.uri.clone());
        let req = api::Request {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query(),
            body: &body,
            authorization: header
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            accept_gzip: api::accepts_gzip(
                header
                    .headers
                    .get("accept-encoding")
                    .and_then(|v| v.to_str().ok()),
            ),
        };
        let reply = api::handle(&self.state, &req, &ctx.request_id).await;
        respond(session, ctx, reply).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // Unreachable: request_filter answers every request.
        Err(Error::explain(
            ErrorType::InternalError,
            "no upstream route",
        ))
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Ctx) {
        let header = session.req_header();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        tracing::info!(
            request_id = %ctx.request_id,
            method = %header.method,
            path = %header.uri.path(),
            status,
            latency_us = ctx.started.elapsed().as_micros() as u64,
            error = error.map(|e| e.to_string()),
            "request"
        );
    }
}

/// Read the whole request body, or answer 413 when it exceeds `limit`.
async fn read_body(
    session: &mut Session,
    limit: usize,
    request_id: &str,
) -> Result<std::result::Result<Vec<u8>, Reply>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            let e = crate::snapshot::ApiError::new(
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

/// Write a complete local response.
async fn respond(session: &mut Session, ctx: &mut Ctx, reply: Reply) -> Result<()> {
    let mut resp = ResponseHeader::build(reply.status, Some(4 + reply.headers.len()))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", reply.body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("x-request-id", ctx.request_id.as_str())?;
    for (name, value) in reply.headers {
        resp.insert_header(name, value)?;
    }
    ctx.status = reply.status;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(reply.body), true).await
}

/// Honour a caller's request ID when it is short and made of safe characters (it ends up in
/// logs and audit records); otherwise generate one.
pub fn request_id(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b)) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn request_ids_are_honoured_only_when_safe() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        for bad in ["", "has space", "new\nline", &"x".repeat(129)] {
            let id = request_id(Some(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        assert_eq!(request_id(None).len(), 32);
    }
}
