//! `streamable-http` sources: one rmcp session per source and set of header values, reused by
//! every call that brings the same values (see the module doc of [`super`]).
//!
//! Sessions are kept by URL and every header field, `Authorization` included: header values
//! per caller (`byPrincipal` `headerSecrets`, on any field) give each caller a session of its
//! own, never one started with another caller's values, and a renewed OAuth token starts a
//! session of its own too. A session no call has used for [`IDLE_SESSION`] is closed when
//! another session is started, and at most [`MAX_SESSIONS`] are kept (at the bound, every idle
//! one is closed). A call that fails drops its session, so the next one starts a new session.
//! rmcp itself re-initialises a session the server answers 404 for.
//!
//! rmcp's reqwest client is wrapped ([`Upstream`]) to keep the HTTP status the server answered
//! with ([`super::Error::status`]; callers retry once with a fresh OAuth token on 401) and, once
//! the server has refused the session's credentials, to send nothing more with them (no
//! event-stream reconnects, no closing `DELETE`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, ClientJsonRpcMessage};
use rmcp::service::{ClientServiceExt, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, StreamableHttpClient, StreamableHttpClientTransportConfig,
    StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use rmcp::{Peer, RoleClient, ServiceError};
use serde_json::Value;

use super::{Error, Handler, Headers, REQUEST_TIMEOUT};

pub(super) async fn list_tools(url: &str, headers: &Headers) -> Result<Vec<Value>, Error> {
    let live = session(url, headers).await?;
    let result = super::list_with(&live.peer).await;
    live.finish(url, "tools/list", result).await
}

pub(super) async fn call_tool(
    url: &str,
    headers: &Headers,
    params: CallToolRequestParams,
) -> Result<Value, Error> {
    let live = session(url, headers).await?;
    let result = super::call_with(&live.peer, params).await;
    live.finish(url, "tools/call", result).await
}

/// The HTTP client of MCP sessions: one per thread, made on first use. Building a client loads
/// and parses the system trust store, which a client per session did for every MCP tool call
/// (found while fuzzing: most of a session's time). Per thread rather than per process: a
/// client's pooled connections are tasks of the runtime that opened them (the 2024-11-05 SSE
/// transport runs on the caller's event loop; rmcp sessions all run on the MCP one).
pub(super) fn client() -> Result<reqwest::Client, String> {
    thread_local! {
        static CLIENT: std::cell::OnceCell<reqwest::Client> = const { std::cell::OnceCell::new() };
    }
    CLIENT.with(|cell| {
        if let Some(c) = cell.get() {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(cell.get_or_init(|| client).clone())
    })
}

/// What sessions are kept by: the URL and every header field (names in lower case).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    url: String,
    headers: Vec<(String, String)>,
}

type Session = RunningService<RoleClient, Handler>;

struct Live {
    generation: u64,
    session: Session,
    upstream: Upstream,
}

type Slot = Arc<tokio::sync::Mutex<Option<Live>>>;

/// One call's hold on a session.
struct InUse {
    peer: Peer<RoleClient>,
    upstream: Upstream,
    generation: u64,
    slot: Slot,
}

impl InUse {
    /// The call's outcome as the caller sees it; a failed call drops the session.
    async fn finish<T>(
        self,
        url: &str,
        what: &str,
        result: Result<T, ServiceError>,
    ) -> Result<T, Error> {
        let e = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if let ServiceError::McpError(_) = e {
            return Err(super::service_error_text(&e).into());
        }
        let mut slot = self.slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|l| l.generation == self.generation)
        {
            *slot = None;
        }
        Err(Error::with_status(
            self.upstream.status(),
            format!(
                "MCP {what} failed: POST {url}: {}",
                super::service_error_text(&e)
            ),
        ))
    }
}

/// Most sessions kept. Sources with per-caller header values (`byPrincipal` `headerSecrets`)
/// have a session per caller, so the count grows with the callers; at the bound, every session
/// no call is using is closed before another is started (each caller's next call starts its
/// session again).
const MAX_SESSIONS: usize = 1024;

/// A session unused this long is closed when another one is started (a caller gone, an
/// OAuth token renewed, a secret rotated).
const IDLE_SESSION: Duration = Duration::from_secs(600);

/// A kept session and when a call last took it.
struct Entry {
    slot: Slot,
    used: std::time::Instant,
}

/// Close the sessions no call holds (the map's own reference is the only one) that have been
/// idle for [`IDLE_SESSION`], and, when the map is still at [`MAX_SESSIONS`], every one no call
/// holds.
fn evict_idle(sessions: &mut HashMap<Key, Entry>, now: std::time::Instant) {
    let before = sessions.len();
    let idle = |e: &Entry| Arc::strong_count(&e.slot) == 1;
    sessions.retain(|_, e| !idle(e) || now.saturating_duration_since(e.used) < IDLE_SESSION);
    if sessions.len() >= MAX_SESSIONS {
        sessions.retain(|_, e| !idle(e));
        tracing::info!(
            kept = sessions.len(),
            "MCP sessions at their bound ({MAX_SESSIONS}): every idle one closed"
        );
    }
    if sessions.len() < before {
        tracing::debug!(closed = before - sessions.len(), "idle MCP sessions closed");
    }
}

/// The live session for `url` with `headers`, started if there is none.
async fn session(url: &str, headers: &Headers) -> Result<InUse, Error> {
    static SESSIONS: LazyLock<Mutex<HashMap<Key, Entry>>> = LazyLock::new(Default::default);
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    let key = Key {
        url: url.to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.expose().to_string()))
            .collect(),
    };
    let slot = {
        let now = std::time::Instant::now();
        let mut sessions = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
        if !sessions.contains_key(&key) {
            evict_idle(&mut sessions, now);
        }
        let entry = sessions.entry(key).or_insert_with(|| Entry {
            slot: Slot::default(),
            used: now,
        });
        entry.used = now;
        Arc::clone(&entry.slot)
    };
    let mut live = slot.lock().await;
    if let Some(l) = live.as_ref()
        && !l.session.peer().is_transport_closed()
    {
        return Ok(InUse {
            peer: l.session.peer().clone(),
            upstream: l.upstream.clone(),
            generation: l.generation,
            slot: Arc::clone(&slot),
        });
    }
    // None yet, or the session ended: a new one is started.
    *live = None;
    let (session, upstream) = connect(url, headers).await?;
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    let peer = session.peer().clone();
    *live = Some(Live {
        generation,
        session,
        upstream: upstream.clone(),
    });
    Ok(InUse {
        peer,
        upstream,
        generation,
        slot: Arc::clone(&slot),
    })
}

async fn connect(url: &str, headers: &Headers) -> Result<(Session, Upstream), Error> {
    let mut fields = HashMap::new();
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header `{name}`: {e}"))?;
        let mut value =
            HeaderValue::from_str(value.expose()).map_err(|e| format!("header `{name}`: {e}"))?;
        value.set_sensitive(true);
        fields.insert(name, value);
    }
    let upstream = Upstream {
        client: client()?,
        status: Arc::default(),
    };
    let config = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(fields)
        .reinit_on_expired_session(true);
    let transport = StreamableHttpClientTransport::with_client(upstream.clone(), config);
    let handler = Handler { server: url.into() };
    let session = tokio::time::timeout(
        REQUEST_TIMEOUT,
        handler.serve_with_lifecycle(transport, super::lifecycle()),
    )
    .await
    .map_err(|_| {
        format!("MCP initialize failed: POST {url}: no answer within {REQUEST_TIMEOUT:?}")
    })?
    .map_err(|e| {
        Error::with_status(
            upstream.status(),
            format!(
                "MCP initialize failed: POST {url}: {}",
                crate::error::error_chain(&e)
            ),
        )
    })?;
    tracing::debug!(url, protocol = ?session.peer().peer_info().map(|i| i.protocol_version.to_string()),
        "MCP session started");
    Ok((session, upstream))
}

/// rmcp's reqwest client, keeping the HTTP status of the last refusal (module doc).
#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    /// The last HTTP error status the server answered with; 0 for none.
    status: Arc<AtomicU16>,
}

impl Upstream {
    fn status(&self) -> Option<u16> {
        Some(self.status.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }

    /// The server refused the session's credentials.
    fn refused(&self) -> bool {
        self.status() == Some(401)
    }

    fn note<T>(&self, result: &Result<T, StreamableHttpError<reqwest::Error>>) {
        if let Err(e) = result
            && let Some(status) = status_of(e)
        {
            self.status.store(status, Ordering::Relaxed);
        }
    }
}

/// The HTTP status a failed request was answered with. An unchallenged 401 or 403 reaches us
/// only as rmcp's `HTTP <status>: <body>` text, whose prefix rmcp writes from the status.
fn status_of(e: &StreamableHttpError<reqwest::Error>) -> Option<u16> {
    match e {
        StreamableHttpError::AuthRequired(_) => Some(401),
        StreamableHttpError::InsufficientScope(_) => Some(403),
        StreamableHttpError::HttpStatus(h) => Some(h.status),
        StreamableHttpError::Client(e) => e.status().map(|s| s.as_u16()),
        StreamableHttpError::UnexpectedServerResponse(text) => text
            .strip_prefix("HTTP ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok()),
        _ => None,
    }
}

fn refusal<T>() -> Result<T, StreamableHttpError<reqwest::Error>> {
    Err(StreamableHttpError::AuthRequired(AuthRequiredError::new(
        String::new(),
    )))
}

impl StreamableHttpClient for Upstream {
    type Error = reqwest::Error;

    fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>>>
    + Send
    + '_ {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        if self.refused() {
            return refusal();
        }
        let result = self
            .client
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await;
        self.note(&result);
        result
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        // Credentials the server refused are not sent again, not even to close.
        if self.refused() {
            return Ok(());
        }
        self.client
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<BoxedSseResponse, StreamableHttpError<Self::Error>>> + Send + '_
    {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default().max_sse_event_size,
        )
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxedSseResponse, StreamableHttpError<Self::Error>> {
        if self.refused() {
            return refusal();
        }
        let result = self
            .client
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await;
        self.note(&result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_are_closed_and_held_ones_kept() {
        let key = |i: usize| Key {
            url: "http://127.0.0.1:9/mcp".into(),
            headers: vec![("x-api-key".into(), format!("key-{i}"))],
        };
        let t0 = std::time::Instant::now();
        let later = t0 + IDLE_SESSION + Duration::from_secs(1);
        let entry = |used| Entry {
            slot: Slot::default(),
            used,
        };
        // Idle long enough: closed unless a call holds it; recently used: kept.
        let mut sessions: HashMap<Key, Entry> = HashMap::new();
        sessions.insert(key(0), entry(t0));
        sessions.insert(key(1), entry(t0));
        sessions.insert(key(2), entry(later));
        let held = Arc::clone(&sessions[&key(1)].slot);
        evict_idle(&mut sessions, later);
        let mut kept: Vec<_> = sessions.keys().map(|k| k.headers[0].1.clone()).collect();
        kept.sort();
        assert_eq!(kept, ["key-1", "key-2"]);
        // At the bound every session no call holds goes, however recent.
        let mut sessions: HashMap<Key, Entry> =
            (0..MAX_SESSIONS).map(|i| (key(i), entry(t0))).collect();
        let held = [held, Arc::clone(&sessions[&key(7)].slot)];
        evict_idle(&mut sessions, t0);
        assert_eq!(sessions.len(), 1);
        assert!(Arc::ptr_eq(&sessions[&key(7)].slot, &held[1]));
    }

    #[test]
    fn the_status_of_a_refusal_is_kept() {
        // The process's TLS provider, as the binary installs it at start (run alone, no other
        // test has).
        let _ = rustls::crypto::ring::default_provider().install_default();
        type E = StreamableHttpError<reqwest::Error>;
        let unchallenged = E::UnexpectedServerResponse("HTTP 401 Unauthorized: no".into());
        assert_eq!(status_of(&unchallenged), Some(401));
        assert_eq!(
            status_of(&E::AuthRequired(AuthRequiredError::new("Bearer".into()))),
            Some(401)
        );
        assert_eq!(
            status_of(&E::UnexpectedServerResponse("not JSON".into())),
            None
        );
        let upstream = Upstream {
            client: reqwest::Client::new(),
            status: Arc::default(),
        };
        assert!(!upstream.refused());
        upstream.note::<()>(&Err(unchallenged));
        assert!(upstream.refused());
    }
}
