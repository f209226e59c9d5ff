//! `/mcp` on the runtime's listener (streamable HTTP), and its RFC 9728 protected resource
//! metadata.
//!
//! The HTTP side of the MCP server (`crate::mcp` has the decisions): each request is
//! authenticated here first, by the same authenticator as the `/v1` API, then handed to the MCP
//! SDK's `StreamableHttpService` (`rmcp`) as an `http::Request` carrying the caller
//! ([`crate::mcp::Call`]) in its extensions, and the SDK's answer (JSON, or an SSE stream
//! written chunk by chunk as it is produced) is written back. The service is process-wide, so
//! an older revision's session works whichever serving thread takes its next request.
//!
//! - **Authorization** (MCP authorization, RFC 9728): with runtime auth on, a request without
//!   a valid token is answered 401 with `WWW-Authenticate: Bearer …,
//!   resource_metadata="<base>/.well-known/oauth-protected-resource/mcp"`; that document
//!   (also at `/.well-known/oauth-protected-resource`) names this resource, the configured
//!   issuers as its authorization servers and the scopes a token may carry. A `tools/call` of
//!   a tool the token's scopes do not reach is answered 403 with `error="insufficient_scope",
//!   scope="tool:<id>"` (the narrowest scope that grants it) and audited as a denial. The
//!   caller's token is never sent upstream (credentials are injected per tool, as on every
//!   route).
//! - **Sessions** (revisions before `2026-07-28`) belong to the principal that opened them: a
//!   request with another principal's `Mcp-Session-Id` gets 404, as an unknown session.
//! - **DNS rebinding**: a request whose `Origin` is not the runtime's own origin (nor a
//!   loopback origin on a loopback listener) is refused 403, as is, on a loopback listener, a
//!   `Host` that is not a loopback name (the SDK's checks, configured here).
//! - The view: `?agentProfile=` and `?mode=` as on `/v1/catalog/effective`;
//!   `?toolNames=short` names tools by their operation (`crate::mcp::tools`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use pingora::Result;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use rmcp::model::{
    CallToolRequestParams, JsonRpcError, JsonRpcResponse, JsonRpcVersion2_0, RequestId,
    ServerJsonRpcMessage, ServerResult,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use super::api::{self, Reply};
use super::{Ctx, read_body, respond};
use crate::mcp::{Call, Server, tools::Naming};
use crate::state::RuntimeState;

/// The route of the MCP endpoint (and its metrics label).
pub const ROUTE: &str = "/mcp";
/// The protected resource metadata of `/mcp` (RFC 9728 §3.1: the well-known prefix before
/// the resource's path), and the same document at the root.
pub const METADATA: &str = "/.well-known/oauth-protected-resource/mcp";
pub const METADATA_ROOT: &str = "/.well-known/oauth-protected-resource";

/// Most MCP sessions (older revisions) remembered with their principal; past it, the oldest
/// go (their clients then get 404 and open a new one).
const MAX_SESSIONS: usize = 10_000;

/// The process-wide MCP endpoint.
pub struct Endpoint {
    service: StreamableHttpService<Server, LocalSessionManager>,
    /// The `Host` names served (empty: any), as the SDK's check has them.
    allowed_hosts: Vec<String>,
    /// Session ID → the subject that opened it.
    owners: parking_lot::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").finish_non_exhaustive()
    }
}

impl Endpoint {
    fn get(state: &Arc<RuntimeState>) -> &'static Endpoint {
        static ENDPOINT: OnceLock<Endpoint> = OnceLock::new();
        ENDPOINT.get_or_init(|| Endpoint::new(state))
    }

    fn new(state: &Arc<RuntimeState>) -> Self {
        let mut config = StreamableHttpServerConfig::default();
        let loopback = listener_is_loopback(&state.url);
        let (hosts, origins) = if loopback {
            (
                vec![
                    "localhost".into(),
                    "127.0.0.1".into(),
                    "[::1]".into(),
                    "::1".into(),
                ],
                vec![
                    "http://localhost:*".into(),
                    "http://127.0.0.1:*".into(),
                    "https://localhost:*".into(),
                    "https://127.0.0.1:*".into(),
                    "http://[::1]:*".into(),
                    "https://[::1]:*".into(),
                ],
            )
        } else {
            // Behind a load balancer the Host is the public name, which the runtime does not
            // know; the token check stands against rebinding, and a browser's Origin must
            // still be the runtime's own.
            (Vec::new(), vec![state.url.clone()])
        };
        config.allowed_hosts = hosts.clone();
        // A plain JSON answer when the call's first message is its result (no progress asked
        // for): an SSE stream per call costs a third of `/mcp`'s throughput (bench/mcp.sh).
        // The SDK falls back to SSE by itself when a notification comes first.
        config.json_response = true;
        config.allowed_origins = origins;
        config = config.enforce_origin_validation();
        let st = Arc::clone(state);
        let service = StreamableHttpService::new(
            move || Ok(Server::new(Arc::clone(&st))),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        Self {
            service,
            allowed_hosts: hosts,
            owners: parking_lot::Mutex::new(HashMap::new()),
        }
    }
}

/// Whether the runtime listens on a loopback address (its `http(s)://<address>` URL).
fn listener_is_loopback(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| match u.host()? {
            url::Host::Ipv4(a) => Some(a.is_loopback()),
            url::Host::Ipv6(a) => Some(a.is_loopback()),
            url::Host::Domain(d) => Some(d == "localhost"),
        })
        .unwrap_or(false)
}

/// The base URL a client reached the runtime at: the scheme of the listener and the
/// request's `Host`.
fn base_url(state: &RuntimeState, session: &Session) -> String {
    let scheme = if state.url.starts_with("https:") {
        "https"
    } else {
        "http"
    };
    let h = session.req_header();
    let host = h
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| h.uri.authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
    match host {
        Some(host) => format!("{scheme}://{host}"),
        None => state.url.trim_end_matches('/').to_string(),
    }
}

/// `GET /.well-known/oauth-protected-resource[/mcp]` (RFC 9728 §3.2).
pub async fn metadata(state: &RuntimeState, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
    let base = base_url(state, session);
    let config = state.config();
    let auth = config.config.server_auth();
    let mut issuers: Vec<String> = Vec::new();
    if let Some(a) = auth {
        issuers.extend(a.issuer.iter().cloned());
        issuers.extend(a.additional_issuers.iter().map(|i| i.issuer.clone()));
    }
    let snapshot = state.snapshot();
    let mut scopes: Vec<String> = snapshot
        .catalog
        .services
        .iter()
        .map(|s| format!("bundle:{}", s.id))
        .collect();
    scopes.extend(
        snapshot
            .catalog
            .effective_views
            .iter()
            .filter(|v| v.name != "discover")
            .map(|v| format!("profile:{}", v.name)),
    );
    let mut doc = json!({
        "resource": format!("{base}{ROUTE}"),
        "resource_name": "open-cli runtime",
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes,
    });
    if !issuers.is_empty() {
        doc["authorization_servers"] = json!(issuers);
    }
    let status = if session.req_header().method == http::Method::GET {
        200
    } else {
        405
    };
    let mut reply = Reply {
        status,
        body: Bytes::from(doc.to_string()),
        headers: Vec::new(),
    };
    if status == 405 {
        reply.headers.push(("allow", "GET".into()));
    }
    respond(session, ctx, reply).await
}

/// The `WWW-Authenticate` parameter that points a client at the metadata.
fn resource_metadata(base: &str) -> String {
    format!("resource_metadata=\"{base}{METADATA}\"")
}

/// One `/mcp` request.
pub async fn serve(state: &Arc<RuntimeState>, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
    let body = match read_body(session, api::MAX_API_BODY, ctx).await? {
        Ok(b) => Bytes::from(b),
        Err(reply) => return respond(session, ctx, reply).await,
    };
    let base = base_url(state, session);
    let cert = super::client_cert(session);
    let header = session.req_header();
    let req = api::Request {
        method: header.method.as_str(),
        path: header.uri.path(),
        query: header.uri.query(),
        body: &body,
        authorization: header
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        received: ctx.started,
        client_cert: cert.as_ref(),
        accept_gzip: false,
        if_none_match: None,
    };
    let caller = match api::authenticate(state, &req).await {
        Ok(c) => c,
        Err(mut reply) => {
            api::audit_authn_failure(state, &req, &ctx.request_id, &reply);
            for (name, value) in &mut reply.headers {
                if *name == "www-authenticate" {
                    value.push_str(", ");
                    value.push_str(&resource_metadata(&base));
                }
            }
            let reply = reply.with_request_id(&ctx.request_id);
            return respond(session, ctx, reply).await;
        }
    };
    let call = match view_of(req.query) {
        Ok((agent_profile, mode, naming)) => Call {
            caller,
            request_id: Arc::from(&*ctx.request_id),
            agent_profile,
            mode,
            naming,
        },
        Err(message) => {
            let e = super::error::ApiError::new(
                400,
                open_cli_config::wire::codes::INVALID_REQUEST,
                message,
            );
            return respond(session, ctx, Reply::error(&e, &ctx.request_id)).await;
        }
    };
    let endpoint = Endpoint::get(state);
    let subject = call.caller.principal.as_ref().map(|p| p.subject.clone());
    let session_id = header
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let (Some(id), Some(sub)) = (&session_id, &subject) {
        let owner = endpoint.owners.lock().get(id).cloned();
        if owner.as_ref().is_some_and(|o| o != sub) {
            let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": "Session not found"}});
            let reply = Reply {
                status: 404,
                body: Bytes::from(body.to_string()),
                headers: Vec::new(),
            };
            return respond(session, ctx, reply).await;
        }
    }
    // A plain stateless call is answered here (parsed once, by the SDK's parser); any other
    // `tools/call` is read only for the scope gate.
    let direct = direct_call(endpoint, header, &body);
    let gated = match &direct {
        Some((id, params)) => Some((
            serde_json::to_value(id).unwrap_or_default(),
            params.name.to_string(),
        )),
        None if header.method == http::Method::POST => tool_call_of(&body),
        None => None,
    };
    if let Some((id, name)) = gated
        && let Err(out) = crate::mcp::scope_gate(state, &call, &name).await
    {
        let challenge = format!(
            "Bearer realm=\"open-cli\", error=\"insufficient_scope\", scope=\"{}\", {}",
            out.scope,
            resource_metadata(&base)
        );
        let body = json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": crate::mcp::REFUSED, "message": out.message,
            "data": {"code": open_cli_config::wire::codes::AUTHZ_DENIED, "scope": out.scope, "toolId": out.tool_id},
        }});
        let reply = Reply {
            status: 403,
            body: Bytes::from(body.to_string()),
            headers: vec![("www-authenticate", challenge)],
        };
        return respond(session, ctx, reply).await;
    }
    if let Some((id, params)) = direct {
        let message = match crate::mcp::call_tool(state, &call, params, None).await {
            Ok(result) => ServerJsonRpcMessage::Response(JsonRpcResponse {
                jsonrpc: JsonRpcVersion2_0,
                id,
                result: ServerResult::from(result),
            }),
            Err(e) => ServerJsonRpcMessage::Error(JsonRpcError::new(Some(id), e)),
        };
        let body = serde_json::to_vec(&message).unwrap_or_default();
        let reply = Reply {
            status: 200,
            body: Bytes::from(body),
            headers: Vec::new(),
        };
        return respond(session, ctx, reply).await;
    }
    let is_initialize = session_id.is_none();
    let mut request = http::Request::builder()
        .method(header.method.clone())
        .uri(header.uri.clone());
    for (name, value) in &header.headers {
        request = request.header(name, value);
    }
    let Ok(mut request) = request.body(http_body_util::Full::new(body)) else {
        let e = super::error::ApiError::new(
            400,
            open_cli_config::wire::codes::INVALID_REQUEST,
            "the request cannot be read as an MCP request",
        );
        return respond(session, ctx, Reply::error(&e, &ctx.request_id)).await;
    };
    request.extensions_mut().insert(call);
    let mut service = endpoint.service.clone();
    let response = match tower_service::Service::call(&mut service, request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, mut body) = response.into_parts();
    if is_initialize
        && let (Some(sub), Some(id)) = (
            subject,
            parts
                .headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok()),
        )
    {
        let mut owners = endpoint.owners.lock();
        if owners.len() >= MAX_SESSIONS {
            owners.clear();
        }
        owners.insert(id.to_string(), sub);
    }
    let mut resp = ResponseHeader::build(parts.status, Some(parts.headers.len() + 2))?;
    for (name, value) in &parts.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.insert_header("x-request-id", ctx.request_id.header().clone())?;
    if !parts.headers.contains_key(http::header::CACHE_CONTROL) {
        resp.insert_header("cache-control", "no-store")?;
    }
    ctx.status = parts.status.as_u16();
    session.write_response_header(Box::new(resp), false).await?;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame;
        if let Ok(data) = frame.into_data() {
            // A failed write ends the request; dropping the body cancels the call (the
            // 2026-07-28 rule: closing the stream is cancellation).
            session.write_response_body(Some(data), false).await?;
        }
    }
    session.write_response_body(None, true).await
}

/// A stateless `tools/call` the runtime answers itself: its ID and parameters.
///
/// rmcp serves every request, but a stateless (`2026-07-28`) request costs it a service
/// instance, a spawned task, channels and cancellation tokens per call — two thirds of
/// `/mcp`'s throughput against the same call on `/v1/tools/execute` (`bench/mcp.sh`). The
/// commonest call of all, a plain `tools/call` with everything in order, is therefore
/// answered here with the same handler function ([`crate::mcp::call_tool`]) and the SDK's
/// own message types, so the answer is the one rmcp would give. Anything else — another
/// method, a session, progress asked for, an `Origin` header, a `Host` the SDK would refuse,
/// headers that do not match the body, `Mcp-Param-*` headers, incomplete `_meta`, a body the
/// SDK's parser does not take as a `tools/call` — goes to rmcp, which answers or refuses it
/// as the protocol says.
fn direct_call(
    endpoint: &Endpoint,
    header: &pingora::http::RequestHeader,
    body: &[u8],
) -> Option<(RequestId, CallToolRequestParams)> {
    direct_call_with(&endpoint.allowed_hosts, header, body)
}

fn direct_call_with(
    allowed_hosts: &[String],
    header: &pingora::http::RequestHeader,
    body: &[u8],
) -> Option<(RequestId, CallToolRequestParams)> {
    use rmcp::model::{
        ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, ProtocolVersion, RequestMetaObject,
    };
    let h = &header.headers;
    let one = |name: &str| {
        let mut all = h.get_all(name).iter();
        let v = all.next()?;
        all.next().is_none().then_some(v.as_bytes())
    };
    let stateless = header.method == http::Method::POST
        && one("mcp-protocol-version") == Some(ProtocolVersion::V_2026_07_28.as_str().as_bytes())
        && one("mcp-method") == Some(b"tools/call".as_slice())
        && !h.contains_key("mcp-session-id")
        && !h.contains_key(http::header::ORIGIN)
        && !h.keys().any(|k| k.as_str().starts_with("mcp-param-"))
        && one("content-type").is_some_and(|v| v.starts_with(b"application/json"))
        && one("accept").is_some_and(|v| {
            let v = String::from_utf8_lossy(v);
            v.contains("application/json") && v.contains("text/event-stream")
        })
        && host_allowed(allowed_hosts, header);
    if !stateless {
        return None;
    }
    let name = one("mcp-name")?;
    let JsonRpcMessage::Request(request) =
        serde_json::from_slice::<ClientJsonRpcMessage>(body).ok()?
    else {
        return None;
    };
    let ClientRequest::CallToolRequest(call) = request.request else {
        return None;
    };
    // rmcp's parser keeps `_meta` in the request's extensions; its handler hands it over in
    // the parameters, as is done here.
    let mut params = call.params;
    if params.meta.is_none() {
        params.meta = call.extensions.get::<RequestMetaObject>().cloned();
    }
    let meta = params.meta.as_ref()?;
    let complete = name == params.name.as_bytes()
        && meta.protocol_version().as_ref() == Some(&ProtocolVersion::V_2026_07_28)
        && meta
            .missing_required_keys(&ProtocolVersion::V_2026_07_28)
            .is_empty()
        && meta.get_progress_token().is_none();
    complete.then_some((request.id, params))
}

/// Whether the SDK's DNS-rebinding check would let this `Host` through (a name of the list,
/// any port; every host when the list is empty).
fn host_allowed(allowed: &[String], header: &pingora::http::RequestHeader) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let authority = match header.headers.get(http::header::HOST) {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| http::uri::Authority::try_from(s).ok()),
        None => header.uri.authority().cloned(),
    };
    let Some(authority) = authority else {
        return false;
    };
    let host = authority
        .host()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    allowed
        .iter()
        .any(|a| a.trim_matches(['[', ']']).eq_ignore_ascii_case(&host))
}

/// The view and naming a `/mcp` URL's query asks for.
fn view_of(
    query: Option<&str>,
) -> std::result::Result<(Option<String>, Option<String>, Naming), String> {
    let mut profile = None;
    let mut mode = None;
    let mut naming = Naming::Qualified;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "agentProfile" => profile = Some(v.into_owned()),
            "mode" => mode = Some(v.into_owned()),
            "toolNames" => {
                naming = match &*v {
                    "short" => Naming::Short,
                    "qualified" => Naming::Qualified,
                    other => {
                        return Err(format!(
                            "`toolNames` must be `short` or `qualified`, found `{}`",
                            crate::auth::shown(other)
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown query parameter `{}` on /mcp; allowed: agentProfile, mode, toolNames",
                    crate::auth::shown(other)
                ));
            }
        }
    }
    Ok((profile, mode, naming))
}

/// The JSON-RPC ID and tool name of a `tools/call` request body.
fn tool_call_of(body: &[u8]) -> Option<(serde_json::Value, String)> {
    #[derive(serde::Deserialize)]
    struct Params {
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct Msg {
        #[serde(default)]
        id: serde_json::Value,
        method: String,
        params: Option<Params>,
    }
    let m: Msg = serde_json::from_slice(body).ok()?;
    (m.method == "tools/call").then_some(())?;
    Some((m.id, m.params?.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_names_its_tool() {
        let b = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"demo__x","arguments":{}}}"#;
        assert_eq!(tool_call_of(b), Some((json!(7), "demo__x".into())));
        assert_eq!(
            tool_call_of(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            None
        );
        assert_eq!(tool_call_of(b"not json"), None);
    }

    fn stateless_call(
        extra: &[(&str, &str)],
        meta: &str,
    ) -> (pingora::http::RequestHeader, Vec<u8>) {
        let mut h = pingora::http::RequestHeader::build("POST", b"/mcp", None).unwrap();
        for (k, v) in [
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "bench__hello"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            h.append_header(k.to_string(), v).unwrap();
        }
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"bench__hello","arguments":{{}},"_meta":{{{meta}}}}}}}"#
        );
        (h, body.into_bytes())
    }

    #[test]
    fn only_a_plain_stateless_call_is_answered_directly() {
        let hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        let ok = r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}"#;
        let direct = |extra: &[(&str, &str)], meta: &str| {
            let (h, b) = stateless_call(extra, meta);
            direct_call_with(&hosts, &h, &b).map(|(id, p)| (id, p.name.to_string()))
        };
        assert_eq!(
            direct(&[], ok),
            Some((RequestId::Number(1), "bench__hello".into()))
        );
        // Everything else goes to the SDK.
        assert!(direct(&[("origin", "http://127.0.0.1:1")], ok).is_none());
        assert!(direct(&[("mcp-session-id", "s")], ok).is_none());
        assert!(direct(&[("mcp-param-x", "1")], ok).is_none());
        assert!(direct(&[("mcp-method", "tools/list")], ok).is_none());
        assert!(
            direct(
                &[],
                r#""io.modelcontextprotocol/protocolVersion":"2026-07-28""#
            )
            .is_none()
        );
        assert!(direct(&[], &format!(r#"{ok},"progressToken":"p""#)).is_none());
        let (mut h, b) = stateless_call(&[], ok);
        h.insert_header("host", "evil.example").unwrap();
        assert!(direct_call_with(&hosts, &h, &b).is_none());
        let (mut h, b) = stateless_call(&[], ok);
        h.insert_header("mcp-name", "other").unwrap();
        assert!(direct_call_with(&hosts, &h, &b).is_none());
    }

    #[test]
    fn the_view_comes_from_the_query() {
        assert_eq!(
            view_of(Some("agentProfile=ops&toolNames=short")).unwrap(),
            (Some("ops".into()), None, Naming::Short)
        );
        assert!(view_of(Some("toolNames=long")).is_err());
        assert!(view_of(Some("agentprofile=ops")).is_err());
        assert!(listener_is_loopback("http://127.0.0.1:8080"));
        assert!(!listener_is_loopback("https://0.0.0.0:443"));
    }
}
