//! Tool execution: `POST /v1/tools/execute` and the pass-through share every decision here.
//!
//! Order for one call (both channels): find the tool → [`govern`] (managed deny, project
//! `policy.deny`, the token's scopes, the curated view, approval: [`crate::policy::decide`]) →
//! resolve credentials ([`crate::credentials`]) → call the upstream ([`crate::upstream`]) →
//! audit. A refusal at any step is audited and nothing is sent upstream. See
//! `docs/execution.md` for the wire shapes and settings.
//!
//! - [`handler`]: the `/v1/tools/execute` handler (HTTP and MCP tools);
//! - [`govern`], [`tool_event`], [`denial_event`]: the decision and the audit records both
//!   channels share (the pass-through's admission is `crate::gateway::passthrough`).

pub mod handler;

use open_cli_config::ntc::Tool;

use crate::audit::events::{self, ToolCall};
use crate::audit::{Channel, Event, Reason};
use crate::auth::Caller;
use crate::policy::Refusal;
use crate::snapshot::index::{ToolInfo, ToolRef};
use crate::snapshot::{Snapshot, ViewError};
use crate::state::NotBound;

/// Why a tool call was refused or failed. No HTTP here: the gateway gives each variant its
/// status (`crate::gateway::error`, one function); [`Error::code`] is the contract's error
/// code, which is also the audit record's reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed or does not fit the tool.
    #[error("{0}")]
    Invalid(String),
    /// The request body is over the tool's `maxRequestBytes`.
    #[error("{0}")]
    TooLarge(String),
    /// No tool has this ID.
    #[error("tool `{0}` is not in the catalog; `open-cli catalog list` shows the tools")]
    UnknownTool(String),
    #[error(transparent)]
    NotBound(#[from] NotBound),
    #[error(transparent)]
    View(#[from] ViewError),
    /// The policy refused the call ([`crate::policy::decide`]).
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
    /// The upstream could not be reached or failed to answer.
    #[error("{0}")]
    Unreachable(String),
    /// The upstream did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The upstream's answer is over `maxResponseBytes`.
    #[error("{0}")]
    ResponseTooLarge(String),
    /// The upstream credentials cannot be resolved: nothing was sent.
    #[error("{0}")]
    Credentials(String),
    #[error("{0}")]
    Internal(String),
    /// `failClosed`: the audit log cannot be written, so the call is not run (or, with
    /// `durability: always`, its answer is withheld).
    #[error(
        "the audit log cannot be written and `runtime.server.audit.failClosed` is set: tool calls are refused until it can"
    )]
    AuditUnavailable,
    /// Over a rate limit (`runtime.server.rateLimits`): nothing was sent.
    #[error("{message}")]
    RateLimited {
        message: String,
        limit: open_cli_config::model::RateLimit,
        retry_after: std::time::Duration,
    },
    /// The service has `maxConcurrentPerService` calls in progress: nothing was sent.
    #[error("{0}")]
    Busy(String),
    /// The shared rate-limit store cannot be asked and `onStoreError` is `deny`.
    #[error("{0}")]
    RateLimitUnavailable(String),
}

impl Error {
    /// The audit record's reason; its name is the contract's error code ([`Error::code`]).
    pub fn reason(&self) -> Reason {
        match self {
            Error::Invalid(_) => Reason::InvalidRequest,
            Error::TooLarge(_) => Reason::PayloadTooLarge,
            Error::UnknownTool(_) => Reason::ToolNotFound,
            Error::NotBound(_) => Reason::RuntimeAttachMismatch,
            Error::View(e) => e.reason(),
            Error::Refused { refusal, .. } => refusal.reason(),
            Error::Unreachable(_) => Reason::UpstreamUnreachable,
            Error::Timeout(_) => Reason::UpstreamTimeout,
            Error::ResponseTooLarge(_) => Reason::ResponseTooLarge,
            Error::Credentials(_) => Reason::CredentialsUnavailable,
            Error::Internal(_) => Reason::Internal,
            Error::AuditUnavailable => Reason::AuditUnavailable,
            Error::RateLimited { .. } => Reason::RateLimited,
            Error::Busy(_) => Reason::ServiceBusy,
            Error::RateLimitUnavailable(_) => Reason::RateLimitUnavailable,
        }
    }

    /// The contract's error code, which is also the audit record's reason code.
    pub fn code(&self) -> &'static str {
        self.reason().as_str()
    }

    /// A failure of the call itself (upstream, credentials, the runtime), as opposed to a
    /// request that was refused or malformed: audited as an execution error.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Error::Unreachable(_)
                | Error::Timeout(_)
                | Error::ResponseTooLarge(_)
                | Error::Credentials(_)
                | Error::Internal(_)
                | Error::Busy(_)
                | Error::RateLimitUnavailable(_)
        )
    }
}

/// The caller's choice of view and approval, from the execute body or pass-through headers.
#[derive(Debug, Clone, Default)]
pub struct Intent<'a> {
    pub mode: Option<&'a str>,
    pub agent_profile: Option<&'a str>,
    pub approval: bool,
}

/// Decide whether `caller` may run tool `i` now: gather the facts and ask
/// [`crate::policy::decide`] (managed deny, project `policy.deny`, the token's scopes, the
/// curated view, approval, in that order), then word a refusal. An unknown agent profile or
/// an invalid mode is the request's error; it is reported after the deny and scope refusals
/// (a denied tool is reported as denied whatever view was asked for) and before the rest.
pub fn govern(
    snapshot: &Snapshot,
    caller: &Caller,
    i: ToolRef,
    intent: &Intent<'_>,
) -> Result<(), Error> {
    use crate::policy::{Facts, decide};
    let _span = crate::span!("policy", open_cli.tool = %snapshot.tool(i).id).entered();
    let info = snapshot.exec.info(i);
    let view = snapshot.select_view(intent.agent_profile, intent.mode);
    let facts = Facts {
        managed_deny: info.managed_deny,
        policy_deny: info.policy_deny,
        in_scope: snapshot.in_scope(caller, i),
        // Without a view, no view refusal (the view's error is reported instead).
        in_view: view
            .as_ref()
            .map_or(true, |v| snapshot.exec.view_admits(v, i)),
        needs_approval: info.approval,
        approved: intent.approval,
    };
    let decision = decide(&facts);
    let word = |refusal: Refusal, view: &str| Error::Refused {
        refusal,
        message: refusal.message(&snapshot.tool(i).id, view),
    };
    if let Err(r @ (Refusal::ManagedDeny | Refusal::PolicyDeny | Refusal::OutOfScope)) = decision {
        return Err(word(r, ""));
    }
    let view = view?;
    decision.map_err(|r| word(r, view))
}

/// The audit record of a call of `tool` at `at` ([`events::tool_call`]), with no outcome yet.
pub fn tool_event<'a>(
    tool: &'a Tool,
    info: &'a ToolInfo,
    caller: &'a Caller,
    intent: &Intent<'a>,
    request_id: &'a str,
    channel: Channel,
    at: std::time::Instant,
) -> Event<'a> {
    let mut e = events::tool_call(&ToolCall {
        tool,
        target_base_url: info.base.as_ref().ok().map(|u| u.as_str()),
        tool_json: &info.audit_json,
        principal: caller.principal.as_ref().map(|p| p.subject.as_str()),
        agent_profile: intent.agent_profile,
        request_id,
        channel,
        at,
    });
    e.trace_id = crate::trace::current_trace_id().map(Into::into);
    e.client_cert = caller.client_cert.as_deref().map(Into::into);
    e.lineage = caller.principal.as_ref().and_then(|p| p.lineage.as_ref());
    e
}

/// Record `event`; with `durability: always` the answer waits until its line is synced.
/// When it cannot be written or synced and `failClosed` is set, the answer is withheld:
/// `Err(AuditUnavailable)`; without `failClosed` the failure is logged and the call answered.
pub async fn record(state: &crate::state::RuntimeState, event: Event<'_>) -> Result<(), Error> {
    match state.audit.record_durably(event).await {
        Ok(()) => Ok(()),
        Err(_) if state.audit.settings().fail_closed => Err(Error::AuditUnavailable),
        Err(e) => {
            tracing::warn!(error = %e, "an audit record could not be made durable");
            Ok(())
        }
    }
}

/// Refuse a call before any work when `failClosed` is set and the audit log cannot be
/// written.
pub fn check_audit(state: &crate::state::RuntimeState) -> Result<(), Error> {
    if state.audit.refuses_calls() {
        Err(Error::AuditUnavailable)
    } else {
        Ok(())
    }
}

/// The audit record of a refusal by [`admit`] (or [`govern`]): a denial, a rate limit, or
/// (a busy service, an unreachable rate-limit store) an execution error.
pub fn denial_event<'a>(e: Event<'a>, err: &Error) -> Event<'a> {
    match err {
        Error::RateLimited { .. } => events::rate_limited(e),
        err if err.is_failure() => failure_event(e, err),
        err => events::denied(e, err.reason()),
    }
}

/// Whether `caller` may run tool `i` now, on every surface: the policy ([`govern`]), then the
/// call's budgets (rate limits and the service's concurrency, [`crate::ratelimit`]). A call
/// the policy refuses costs no budget. The permit holds the service's slot until dropped
/// (when the call's answer is done).
pub async fn admit(
    state: &crate::state::RuntimeState,
    snapshot: &Snapshot,
    caller: &Caller,
    i: ToolRef,
    intent: &Intent<'_>,
) -> Result<crate::ratelimit::Permit, Error> {
    govern(snapshot, caller, i, intent)?;
    let tool = snapshot.tool(i);
    let call = crate::ratelimit::Call {
        principal: caller.principal.as_ref().map(|p| p.subject.as_str()),
        tool: &tool.id,
        service: &tool.service_id,
    };
    let budgets = state.budgets();
    budgets.admit(call).await.map_err(|over| {
        use crate::ratelimit::Over;
        match over {
            Over::Rate {
                scope,
                limit,
                retry_after,
            } => {
                crate::metrics::edge_refusal("rate_limited");
                let per = match limit.period_seconds {
                    1 => "second",
                    60 => "minute",
                    _ => "hour",
                };
                let whose = match scope {
                    crate::ratelimit::Scope::Principal => "the caller's".to_string(),
                    crate::ratelimit::Scope::Tool => format!("tool `{}`'s", tool.id),
                    crate::ratelimit::Scope::Service => {
                        format!("service `{}`'s", tool.service_id)
                    }
                };
                Error::RateLimited {
                    message: format!(
                        "rate limited: {whose} limit of {} requests per {per} (burst {}) is used up; retry in {} s",
                        limit.requests,
                        limit.burst,
                        crate::limit::retry_after_secs(retry_after)
                    ),
                    limit,
                    retry_after,
                }
            }
            Over::Busy { max } => {
                crate::metrics::edge_refusal("service_busy");
                Error::Busy(format!(
                    "service `{}` has {max} calls in progress (runtime.server.limits.maxConcurrentPerService); retry shortly",
                    tool.service_id
                ))
            }
            Over::StoreDown(why) => {
                crate::metrics::edge_refusal("rate_limit_store_error");
                Error::RateLimitUnavailable(format!(
                    "the rate-limit store cannot be asked ({why}) and runtime.server.rateLimits.onStoreError is `deny`"
                ))
            }
        }
    })
}

/// The audit record of a call that failed ([`Error::is_failure`]).
pub fn failure_event<'a>(e: Event<'a>, err: &Error) -> Event<'a> {
    events::failed(e, err.reason(), err.to_string())
}
