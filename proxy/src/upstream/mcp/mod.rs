//! MCP client: list an MCP server's tools (`tools/list`, every page) and call them
//! ([`call_tool`]) over each transport the contract names (contract §8), through `rmcp`, the
//! MCP project's Rust SDK, wherever it has the transport.
//!
//! - `stdio` (`stdio.rs`): one supervised, long-lived server process per source, kept in a
//!   process-wide registry keyed by the source's transport settings (command, args, env) and
//!   shared by every catalog build and tool call; calls are multiplexed over its one rmcp
//!   client. A process that dies is started again, with backoff (100 ms doubling to 10 s); its
//!   stderr lines go to the runtime log (target `open_cli_proxy::mcp::stderr`, fields
//!   `command` and `pid`). The child gets `transport.env` on top of a minimal inherited
//!   environment (PATH, HOME, LANG, LC_ALL, TMPDIR, USER) — not the runtime's whole
//!   environment, which may hold secrets.
//! - `streamable-http` (`http.rs`): one rmcp session per source and set of header values
//!   (static ones, resolved `headerSecrets`, the OAuth `Authorization`), reused by every call
//!   that sends the same values: a caller with values of its own (`byPrincipal`) has a session
//!   of its own, and a renewed token starts a new session (unused ones are closed after 10
//!   minutes). rmcp re-initialises a session the server answers 404 for (stale session); a
//!   failed one is dropped so the next call starts afresh.
//! - `sse` (2024-11-05 HTTP+SSE, `sse.rs`): rmcp 3.x has no client for this transport, so the
//!   own code of before is kept for it alone: one short session per operation.
//!
//! rmcp negotiates the revision (2024-11-05 up to 2026-07-28): it probes with
//! `server/discover` and falls back to the `initialize` handshake for a server of the
//! handshake era (`ClientLifecycleMode::Auto`).
//!
//! Sessions live on an event loop of their own (thread `open-cli-mcp`), not on the caller's:
//! a catalog build runs on a short-lived event loop that ends with it, and a session's tasks
//! (the child's pipes, the HTTP streams) must outlive the build.
//!
//! **Tool list changes.** A long-lived session that receives `notifications/tools/list_changed`
//! logs it and signals [`tools_changed`] (a [`tokio::sync::Notify`]: one stored permit, so a
//! burst of notifications wakes a waiter once). `refresh::follow_mcp_tool_changes` waits on it
//! and rebuilds the whole catalog (normal cache rules; there is no per-source rebuild); the
//! server starts it once, when it listens (`server/mod.rs`).
//!
//! Every request has a deadline ([`REQUEST_TIMEOUT`]).

mod http;
mod sse;
mod stdio;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, NotificationContext, ServiceError};
use rmcp::{ClientHandler, Peer, RoleClient};
use serde_json::Value;
use tracing::Instrument;

use open_cli_config::secrets::SecretValue;

pub use sse::{MAX_SSE_EVENT_BYTES, SseParser};

/// How long one request (or starting a session) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_PAGES: usize = 100;

/// Header fields sent to an MCP server. Values are [`SecretValue`]s (redacted in `Debug`):
/// static headers and resolved `headerSecrets` travel together, and either may carry a
/// credential.
pub type Headers = Vec<(String, SecretValue)>;

/// The transport settings of an MCP source, with header secrets already resolved.
#[derive(Debug, Clone)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    StreamableHttp {
        url: String,
        headers: Headers,
    },
    Sse {
        url: String,
        headers: Headers,
    },
}

/// What went wrong talking to an MCP server: the message names the step and the server's
/// answer; an HTTP status the server answered with is kept as a value ([`Error::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    status: Option<u16>,
}

impl Error {
    /// The server answered `status`; `message` says to what.
    fn http(status: reqwest::StatusCode, message: String) -> Self {
        Self::with_status(Some(status.as_u16()), message)
    }

    fn with_status(status: Option<u16>, message: String) -> Self {
        Self { message, status }
    }

    /// This error with `prefix: ` in front of its message (its status kept).
    fn context(self, prefix: &str) -> Self {
        Self {
            message: format!("{prefix}: {}", self.message),
            ..self
        }
    }

    /// The HTTP status the server answered with, if that is what failed.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The server refused the credentials (HTTP 401).
    pub fn is_unauthorized(&self) -> bool {
        self.status == Some(401)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self {
            message,
            status: None,
        }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// List every tool of an MCP server.
pub async fn list_tools(transport: &Transport) -> Result<Vec<Value>, Error> {
    match transport {
        Transport::Sse { url, headers } => sse::list_tools(url, headers).await,
        Transport::Stdio { .. } => {
            let key = stdio::Key::of(transport);
            on_mcp_runtime(async move { stdio::list_tools(&key).await }).await
        }
        Transport::StreamableHttp { url, headers } => {
            let (url, headers) = (url.clone(), headers.clone());
            on_mcp_runtime(async move { http::list_tools(&url, &headers).await }).await
        }
    }
}

/// Call one tool (`tools/call`) and return its result object (`content`, `structuredContent`,
/// `isError`). A JSON-RPC error is an `Err`.
pub async fn call_tool(
    transport: &Transport,
    name: &str,
    arguments: Value,
) -> Result<Value, Error> {
    if let Transport::Sse { url, headers } = transport {
        return sse::call_tool(url, headers, name, arguments).await;
    }
    let params = call_params(name, arguments)?;
    match transport {
        Transport::Stdio { .. } => {
            let key = stdio::Key::of(transport);
            on_mcp_runtime(async move { stdio::call_tool(&key, params).await }).await
        }
        Transport::StreamableHttp { url, headers } => {
            let (url, headers) = (url.clone(), headers.clone());
            on_mcp_runtime(async move { http::call_tool(&url, &headers, params).await }).await
        }
        Transport::Sse { .. } => unreachable!("handled above"),
    }
}

/// Signalled when a long-lived MCP session receives `notifications/tools/list_changed`. One
/// stored permit: notifications that arrive while nobody waits wake the next waiter once.
/// The session that received it is named in the log line written with it.
pub fn tools_changed() -> &'static tokio::sync::Notify {
    static CHANGED: OnceLock<tokio::sync::Notify> = OnceLock::new();
    CHANGED.get_or_init(tokio::sync::Notify::new)
}

fn call_params(name: &str, arguments: Value) -> Result<CallToolRequestParams, Error> {
    let arguments = match arguments {
        Value::Object(map) => Some(map),
        Value::Null => None,
        other => {
            return Err(format!("tool arguments must be a JSON object, not `{other}`").into());
        }
    };
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = arguments;
    Ok(params)
}

/// Run `work` on the MCP event loop (see the module doc) and wait for it. The caller's span is
/// kept; a caller that goes away cancels the work (rmcp then cancels the request upstream).
async fn on_mcp_runtime<T: Send + 'static>(
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(runtime()?.spawn(work.in_current_span()));
    (&mut task.0)
        .await
        .map_err(|e| Error::from(format!("the MCP client task failed: {e}")))?
}

/// The process-wide event loop of MCP sessions: one worker thread, made on first use.
fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("open-cli-mcp")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the MCP client's event loop: {e}"))
        })
        .as_ref()
        .map_err(|e| Error::from(e.clone()))
}

/// How rmcp starts a session: `server/discover` first (2026-07-28), the `initialize`
/// handshake (up to 2025-11-25, whatever the server offers) for a server that does not know it.
fn lifecycle() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::LATEST],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    }
}

/// The client side of a session: says who we are and passes tool list changes on.
#[derive(Clone)]
struct Handler {
    /// What the log says the session is (`command` or URL; no secrets).
    server: std::sync::Arc<str>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("open-cli", env!("CARGO_PKG_VERSION")),
        )
    }

    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        tracing::info!(server = %self.server, "the MCP server's tool list changed");
        tools_changed().notify_one();
        std::future::ready(())
    }
}

/// Every tool `peer` lists, as JSON.
async fn list_with(peer: &Peer<RoleClient>) -> Result<Vec<Value>, ServiceError> {
    let tools = within(peer.list_all_tools()).await?;
    Ok(tools
        .into_iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect())
}

/// Call a tool on `peer`; its result as JSON.
async fn call_with(
    peer: &Peer<RoleClient>,
    params: CallToolRequestParams,
) -> Result<Value, ServiceError> {
    let result = within(peer.call_tool(params)).await?;
    serde_json::to_value(result).map_err(|_| ServiceError::UnexpectedResponse)
}

async fn within<T>(
    request: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .unwrap_or(Err(ServiceError::Timeout {
            timeout: REQUEST_TIMEOUT,
        }))
}

/// The text of an rmcp request error; a JSON-RPC error reads as before rmcp.
fn service_error_text(e: &ServiceError) -> String {
    match e {
        ServiceError::McpError(err) => {
            format!("the server answered error {}: {}", err.code.0, err.message)
        }
        other => crate::error::error_chain(other),
    }
}

/// Whether a request that failed with `e` never reached the server, so that sending it again
/// cannot run it twice.
fn never_sent(e: &ServiceError) -> bool {
    matches!(e, ServiceError::TransportSend(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 401 is found from the status the server answered with, however the message was
    /// worded or prefixed on the way up, and a 401 in a message's text is not one.
    #[test]
    fn an_http_status_is_a_value_that_survives_context() {
        let e = Error::http(
            reqwest::StatusCode::UNAUTHORIZED,
            "POST http://127.0.0.1:1/mcp: HTTP 401 Unauthorized: no".into(),
        )
        .context("MCP initialize failed");
        assert!(e.is_unauthorized());
        assert_eq!(e.status(), Some(401));
        assert!(
            e.to_string().starts_with("MCP initialize failed: POST "),
            "{e}"
        );
        let text = Error::from("the server answered error -32000: HTTP 401 Unauthorized");
        assert!(!text.is_unauthorized());
        let other = Error::http(reqwest::StatusCode::FORBIDDEN, "POST x: HTTP 403".into());
        assert!(!other.is_unauthorized());
    }

    #[test]
    fn header_values_never_show_in_debug_output() {
        let t = Transport::StreamableHttp {
            url: "http://127.0.0.1:1/mcp".into(),
            headers: vec![(
                "authorization".into(),
                SecretValue::new("Bearer mcp-s3cret"),
            )],
        };
        let debug = format!("{t:?}");
        assert!(!debug.contains("mcp-s3cret"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
    }

    #[test]
    fn tool_arguments_are_an_object() {
        let p = call_params("echo", serde_json::json!({"text": "hi"})).unwrap();
        assert_eq!(p.arguments.unwrap()["text"], "hi");
        assert!(
            call_params("echo", Value::Null)
                .unwrap()
                .arguments
                .is_none()
        );
        assert!(call_params("echo", serde_json::json!([1])).is_err());
    }
}
