//! Every audit record is built here: one function per kind of record, one per outcome.
//!
//! A request records once, at its end: the catalog route after its answer, a tool call when
//! it is refused, fails or is answered (the pass-through from Pingora's `logging` phase, after
//! the last byte). The surfaces give the facts; the field names, event types, decisions and
//! reasons are chosen here.

use std::borrow::Cow;
use std::time::Instant;

use open_cli_config::ntc::Tool;

use super::{Channel, Decision, Event, EventType, Reason};

/// `authn_failure` (contract §6): a protected route was called without a valid token.
pub fn authn_failure<'a>(
    method: &'a str,
    path: &'a str,
    request_id: &'a str,
    status: u16,
) -> Event<'a> {
    let mut e = Event::new(EventType::AuthnFailure, "runtime.authn_failure");
    e.decision = Decision::Denied;
    e.reason_code = Reason::AuthnFailed;
    e.status_code = status;
    e.method = Some(method.into());
    e.path = Some(path.into());
    e.request_id = Some(request_id.into());
    e
}

/// `authenticated_connect` and `catalog_filtered` for an authenticated catalog fetch.
pub fn catalog_access<'a>(subject: &'a str, request_id: &'a str) -> [Event<'a>; 2] {
    let one = |kind, tool: &'static str, reason| {
        let mut e = Event::new(kind, tool);
        e.decision = Decision::Allowed;
        e.reason_code = reason;
        e.principal = Some(subject.into());
        e.status_code = 200;
        e.request_id = Some(request_id.into());
        e
    };
    [
        one(
            EventType::AuthenticatedConnect,
            "runtime.authenticated_connect",
            Reason::AuthenticatedConnect,
        ),
        one(
            EventType::CatalogFiltered,
            "catalog.effective",
            Reason::CatalogFiltered,
        ),
    ]
}

/// Who called a tool, how, and on which route: the facts of a tool record that are known
/// before its outcome.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    pub tool: &'a Tool,
    /// The tool's upstream base URL, when it has a valid one.
    pub target_base_url: Option<&'a str>,
    /// The tool fields pre-rendered once per snapshot ([`super::tool_fragment`]).
    pub tool_json: &'a str,
    pub principal: Option<&'a str>,
    pub agent_profile: Option<&'a str>,
    pub request_id: &'a str,
    pub channel: Channel,
    /// When the call arrived.
    pub at: Instant,
}

/// A `tool_execution` record of `call` with no outcome yet (see [`allowed`], [`denied`],
/// [`failed`]).
pub fn tool_call<'a>(call: &ToolCall<'a>) -> Event<'a> {
    let tool = call.tool;
    let mut e = Event::new_at(EventType::ToolExecution, tool.id.as_str(), call.at);
    e.principal = call.principal.map(Into::into);
    e.agent_profile = call.agent_profile.map(Into::into);
    e.service_id = Some(tool.service_id.as_str().into());
    e.target_base_url = call.target_base_url.map(Into::into);
    e.method = Some(tool.method.as_str().into());
    e.path = Some(tool.path.as_str().into());
    e.tool_json = Some(call.tool_json);
    e.request_id = Some(call.request_id.into());
    e.channel = Some(call.channel);
    e
}

/// The call ran (whatever the upstream answered).
pub fn allowed(mut e: Event<'_>) -> Event<'_> {
    e.event_type = EventType::ToolExecution;
    e.decision = Decision::Allowed;
    e.reason_code = Reason::Allowed;
    e
}

/// The call was refused before anything was sent (policy, scope, view).
pub fn denied(mut e: Event<'_>, reason: Reason) -> Event<'_> {
    e.event_type = EventType::AuthzDenial;
    e.decision = Decision::Denied;
    e.reason_code = reason;
    e
}

/// The call was refused for a rate limit (`runtime.server.rateLimits`): nothing was sent.
pub fn rate_limited(mut e: Event<'_>) -> Event<'_> {
    e.event_type = EventType::AuthzDenial;
    e.decision = Decision::RateLimited;
    e.reason_code = Reason::RateLimited;
    e
}

/// The call failed in the runtime or on the way to the upstream; `error` says why (never a
/// secret value).
pub fn failed<'a>(mut e: Event<'a>, reason: Reason, error: impl Into<Cow<'a, str>>) -> Event<'a> {
    e.event_type = EventType::ExecutionError;
    e.decision = Decision::Error;
    e.reason_code = reason;
    e.error = Some(error.into());
    e
}
