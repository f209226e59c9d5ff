//! The runtime as an MCP server (`/mcp`, issue 19): the caller's effective view as MCP
//! tools, and `tools/call` through the one execution path of `/v1/tools/execute`.
//!
//! The protocol itself — streamable HTTP, the revisions `2024-11-05` to the stateless
//! `2026-07-28` side by side (`initialize` and sessions for the older ones, `server/discover`,
//! per-request `_meta` and the `Mcp-Method`/`Mcp-Name` header checks for the newest), JSON-RPC
//! framing, SSE, Host and Origin checks — is the MCP project's Rust SDK (`rmcp`): its
//! `StreamableHttpService` is driven by the gateway (`crate::gateway::mcp`), which
//! authenticates the request first and hands this module the caller in the HTTP request's
//! extensions ([`Call`]). Only the decisions are here, and they are the runtime's own:
//!
//! - `tools/list`: the view the query selects (`?agentProfile=`, `?mode=`, as
//!   `/v1/catalog/effective`), filtered by the same scope envelope
//!   (`Snapshot::envelope(..).allows`), in catalog order, one page; `cacheScope: private`
//!   when runtime auth is on (the list varies per token), `ttlMs` 0 (a refresh may change it
//!   any time). Recorded in the audit log as a catalog access, as `/v1/catalog/effective`.
//! - `tools/call`: the MCP arguments become the execute request `/v1/tools/execute` would get
//!   ([`tools::execute_request`]) and run through `crate::execute::handler::execute` with
//!   channel `mcp`: the same policy (managed deny → policy deny → scopes → curated view →
//!   approval), credentials, limits, rate limits and audit. Approval is `_meta`
//!   `{"io.open-cli/approval": true}` on the call.
//! - Outcomes: an upstream answer (any status) is a result (`isError` from 400 on, see
//!   [`tools::result`]); arguments that do not fit the tool are a tool error the model can
//!   correct; a refusal or failure of the runtime is a JSON-RPC error whose `data.code` is
//!   the runtime's error code (the `/v1` API's `code`), with code [`REFUSED`] (policy,
//!   rate limits), [`UPSTREAM_FAILED`] (the upstream could not be called) or the JSON-RPC
//!   codes for an unknown tool (-32602) and internal errors. An out-of-scope call never
//!   reaches here: the gateway answers it 403 `insufficient_scope` ([`scope_gate`]).
//! - Progress: a call with a `progressToken` gets a `notifications/progress` every second
//!   until the answer is there (an MCP server's own progress is not relayed: see
//!   [`call_tool`]).

pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock as Content,
    ErrorCode, ErrorData, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde_json::json;

use crate::auth::Caller;
use crate::execute::Error;
use crate::state::RuntimeState;
use tools::{McpCatalog, Naming};

/// JSON-RPC error code of a call the runtime refused (policy, approval, rate limits, a
/// request it cannot serve): `data.code` names why.
pub const REFUSED: i32 = -32001;
/// JSON-RPC error code of a call whose upstream could not be called or did not answer in
/// time: `data.code` names why.
pub const UPSTREAM_FAILED: i32 = -32002;

/// The `_meta` key of a call's approval.
pub const APPROVAL_META: &str = "io.open-cli/approval";

/// What the gateway established about one `/mcp` request, in its HTTP extensions.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: Caller,
    pub request_id: Arc<str>,
    pub agent_profile: Option<String>,
    pub mode: Option<String>,
    pub naming: Naming,
}

impl Call {
    fn view(&self) -> (Option<&str>, Option<&str>) {
        (self.agent_profile.as_deref(), self.mode.as_deref())
    }
}

/// The MCP server handler (one per rmcp session or stateless request; cheap to make).
#[derive(Debug, Clone)]
pub struct Server {
    state: Arc<RuntimeState>,
}

impl Server {
    pub fn new(state: Arc<RuntimeState>) -> Self {
        Self { state }
    }
}

/// The gateway's [`Call`] of the request `context` belongs to.
fn call_of(context: &RequestContext<RoleServer>) -> Result<Call, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Call>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("request without a caller", None))
}

/// A runtime error as a JSON-RPC error: `data.code` is the runtime's code.
fn rpc_error(e: &Error) -> ErrorData {
    let code = match e {
        Error::UnknownTool(_) => ErrorCode::INVALID_PARAMS,
        Error::Internal(_) | Error::AuditUnavailable => ErrorCode::INTERNAL_ERROR,
        Error::Unreachable(_)
        | Error::Timeout(_)
        | Error::ResponseTooLarge(_)
        | Error::Credentials(_) => ErrorCode(UPSTREAM_FAILED),
        _ => ErrorCode(REFUSED),
    };
    let mut data = json!({"code": e.code()});
    if let Error::RateLimited { retry_after, .. } = e {
        data["retryAfterSeconds"] = crate::limit::retry_after_secs(*retry_after).into();
    }
    ErrorData::new(code, e.to_string(), Some(data))
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("open-cli-toolbox", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "The tools of the APIs and MCP servers behind this open-cli runtime that your token may call. \
             Calls are governed (scopes, deny rules, approval, rate limits) and audited; a tool that requires \
             approval is called with _meta {\"io.open-cli/approval\": true} once a human approved it."
                .into(),
        );
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let call = call_of(&context)?;
        let snapshot = self.state.snapshot();
        let (profile, mode) = call.view();
        let view = snapshot
            .select_view(profile, mode)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let faces = McpCatalog::of(&snapshot, call.naming);
        let listed = snapshot
            .catalog
            .effective_views
            .iter()
            .find(|v| v.name == view)
            .map(|v| v.tools.as_slice())
            .unwrap_or_default();
        let envelope = call
            .caller
            .principal
            .as_ref()
            .map(|p| snapshot.envelope(&p.scopes));
        let tools = listed
            .iter()
            .filter(|t| envelope.as_ref().is_none_or(|e| e.allows(&t.id)))
            .filter_map(|t| faces.tool_by_id(&t.id).cloned())
            .collect();
        let mut result = ListToolsResult::with_all_items(tools);
        result.ttl_ms = Some(0);
        result.cache_scope = Some(if envelope.is_some() {
            CacheScope::Private
        } else {
            CacheScope::Public
        });
        if let Some(p) = &call.caller.principal {
            for e in crate::audit::events::catalog_access(&p.subject, &call.request_id) {
                self.state.audit.record(e);
            }
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let call = call_of(&context)?;
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (token, context.peer.clone()));
        call_tool(&self.state, &call, request, progress).await
    }
}

/// `tools/call` of `call`'s caller: what rmcp's handler runs, and the gateway's direct answer
/// to a plain stateless call (`crate::gateway::mcp`, no progress asked for). With `progress`
/// (the caller's token and its peer), progress notifications go to the caller while it runs.
pub async fn call_tool(
    state: &Arc<RuntimeState>,
    call: &Call,
    request: CallToolRequestParams,
    progress: Option<(ProgressToken, rmcp::Peer<RoleServer>)>,
) -> Result<CallToolResponse, ErrorData> {
    let snapshot = state.snapshot();
    let faces = McpCatalog::of(&snapshot, call.naming);
    let Some(i) = faces.index_of(&request.name) else {
        return Err(ErrorData::invalid_params(
            format!(
                "unknown tool `{}`; tools/list shows the tools this token may call",
                crate::auth::shown(&request.name)
            ),
            Some(json!({"code": "tool_not_found"})),
        ));
    };
    let tool = &snapshot.catalog.tools[i];
    let approval = request
        .meta
        .as_ref()
        .and_then(|m| m.get(APPROVAL_META))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let req = match tools::execute_request(tool, request.arguments, approval, call.view()) {
        Ok(r) => r,
        Err(bad) => {
            // The policy speaks first: a refused tool is refused whatever its arguments.
            if let Some(r) = snapshot.exec.tool_index(&tool.id) {
                let intent = intent_of(call, approval);
                if let Err(e) = crate::execute::govern(&snapshot, &call.caller, r, &intent) {
                    audit_refusal(state, &snapshot, call, r, &intent, &e).await;
                    return Err(rpc_error(&e));
                }
            }
            return Ok(CallToolResult::error(vec![Content::text(bad.0)]).into());
        }
    };
    let run = crate::execute::handler::execute(
        state,
        &req,
        &call.caller,
        &call.request_id,
        crate::audit::Channel::Mcp,
    );
    let outcome = match progress {
        None => run.await,
        // A heartbeat every second while the upstream works (an MCP server's own progress is
        // not relayed: rmcp's client replaces a call's progress token with its own and routes
        // what comes back to no one we can name per call).
        Some((token, peer)) => {
            let mut run = std::pin::pin!(run);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut n = 0.0;
            loop {
                tokio::select! {
                    out = &mut run => break out,
                    _ = tick.tick() => {
                        n += 1.0;
                        let p = ProgressNotificationParam::new(token.clone(), n)
                            .with_message(format!("waiting for the upstream ({n} s)"));
                        let _ = peer.notify_progress(p).await;
                    }
                }
            }
        }
    };
    match outcome {
        Ok(env) => Ok(tools::result(tool, env).into()),
        // A request that does not fit the tool: the model can correct it.
        Err(e @ (Error::Invalid(_) | Error::TooLarge(_))) => {
            Ok(CallToolResult::error(vec![Content::text(e.to_string())]).into())
        }
        Err(e) => Err(rpc_error(&e)),
    }
}

/// A `tools/call` the caller's token does not reach: the tool's ID and the scope that would
/// grant it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfScope {
    pub tool_id: String,
    pub scope: String,
    pub message: String,
}

/// Before a `tools/call` of `name` goes to the MCP server: the same policy decision as the
/// call itself ([`crate::execute::govern`]); when it is the token's scopes that refuse, the
/// refusal is audited (channel `mcp`) and returned, for the gateway to answer 403
/// `insufficient_scope` (MCP authorization, RFC 6750 §3.1). Every other outcome is the call's.
pub async fn scope_gate(
    state: &RuntimeState,
    call: &Call,
    name: &str,
) -> Result<(), Box<OutOfScope>> {
    let snapshot = state.snapshot();
    let faces = McpCatalog::of(&snapshot, call.naming);
    let Some(i) = faces.index_of(name) else {
        return Ok(());
    };
    let Some(r) = snapshot.exec.tool_index(&snapshot.catalog.tools[i].id) else {
        return Ok(());
    };
    let intent = intent_of(call, false);
    match crate::execute::govern(&snapshot, &call.caller, r, &intent) {
        Err(
            e @ Error::Refused {
                refusal: crate::policy::Refusal::OutOfScope,
                ..
            },
        ) => {
            audit_refusal(state, &snapshot, call, r, &intent, &e).await;
            let tool = snapshot.tool(r);
            Err(Box::new(OutOfScope {
                tool_id: tool.id.clone(),
                scope: format!("tool:{}", tool.id),
                message: e.to_string(),
            }))
        }
        _ => Ok(()),
    }
}

/// The call's view and approval as the policy sees them.
fn intent_of(call: &Call, approval: bool) -> crate::execute::Intent<'_> {
    let (agent_profile, mode) = call.view();
    crate::execute::Intent {
        mode,
        agent_profile,
        approval,
    }
}

/// Record the policy's refusal `e` of a call of tool `r` (channel `mcp`), as the execution
/// path records its own.
async fn audit_refusal(
    state: &RuntimeState,
    snapshot: &crate::snapshot::Snapshot,
    call: &Call,
    r: crate::snapshot::index::ToolRef,
    intent: &crate::execute::Intent<'_>,
    e: &Error,
) {
    let event = crate::execute::tool_event(
        snapshot.tool(r),
        snapshot.exec.info(r),
        &call.caller,
        intent,
        &call.request_id,
        crate::audit::Channel::Mcp,
        std::time::Instant::now(),
    );
    // A failed audit write refuses the call either way.
    let _ = crate::execute::record(state, crate::execute::denial_event(event, e)).await;
}
