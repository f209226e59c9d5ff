//! The runtime's own HTTP API (`/v1/...`, `/healthz`, `/readyz`), answered locally.
//!
//! Routing and handlers are plain functions of a [`Request`] and the [`RuntimeState`]; they
//! know nothing of Pingora, so they are unit-tested without a session. The gateway turns a
//! [`Reply`] into a response. Every error is `{"error":{"code","message","requestId"}}` with a
//! stable code from [`open_cli_config::wire::codes`].

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use open_cli_config::wire::{
    AuthInfo, AuthorizationEnvelope, BROWSER_CONFIG_ENDPOINT, BrowserLoginInfo, CONTRACT_VERSION,
    ErrorBody, ErrorDetail, Health, RuntimeInfo, SCOPE_PREFIXES, codes,
};
use serde::Serialize;

use crate::auth::Caller;
use crate::gateway::error::ApiError;
use crate::state::RuntimeState;

/// Capabilities this build implements; advertised in runtime info. Only what works is listed.
pub const CAPABILITIES: [&str; 6] = [
    "catalog",
    "refresh",
    "authorization-envelope",
    "execute",
    "pass-through",
    "audit",
];

/// The parts of an HTTP request the API looks at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The request body (read by the gateway up to [`MAX_API_BODY`]).
    pub body: &'a [u8],
    /// The client accepts `Content-Encoding: gzip`.
    pub accept_gzip: bool,
    /// `If-None-Match`, for the routes that answer with an entity tag.
    pub if_none_match: Option<&'a [u8]>,
    /// The `Authorization` header's value, as received (see `auth::Authenticator::remembered`).
    pub authorization: Option<&'a [u8]>,
    /// When the request arrived (its wall-clock time comes from [`crate::clock`]).
    pub received: std::time::Instant,
    /// The connection's verified client certificate ([`super::edge_tls`]).
    pub client_cert: Option<&'a Arc<str>>,
}

/// Whether an `Accept-Encoding` value admits gzip (`gzip` or `*`, without `q=0`).
pub fn accepts_gzip(header: Option<&str>) -> bool {
    let Some(h) = header else { return false };
    let mut gzip = None;
    let mut star = None;
    for item in h.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(!q_zero),
            "*" => star = Some(!q_zero),
            _ => {}
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// Largest request body the API accepts.
pub const MAX_API_BODY: usize = 1024 * 1024;

/// A complete response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// Put the request ID into an error body built before it was known.
    pub fn with_request_id(mut self, request_id: &str) -> Self {
        if let Ok(mut body) = serde_json::from_slice::<ErrorBody>(&self.body) {
            body.error.request_id = Some(request_id.to_string());
            if let Ok(b) = serde_json::to_vec(&body) {
                self.body = Bytes::from(b);
            }
        }
        self
    }

    fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::raw(status, Bytes::from(body)),
            Err(e) => Self::error(
                &ApiError::new(500, codes::INTERNAL, format!("cannot encode response: {e}")),
                "",
            ),
        }
    }

    fn raw(status: u16, body: Bytes) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn error(e: &ApiError, request_id: &str) -> Self {
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code.to_string(),
                message: e.message.clone(),
                request_id: (!request_id.is_empty()).then(|| request_id.to_string()),
            },
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut reply = Self::raw(e.status, Bytes::from(body));
        reply.headers.extend(e.headers.iter().cloned());
        // A scope refusal tells the client what to ask for (RFC 6750 §3.1).
        if e.code == codes::AUTHZ_DENIED {
            reply.headers.push((
                "www-authenticate",
                "Bearer realm=\"open-cli\", error=\"insufficient_scope\"".into(),
            ));
        }
        reply
    }
}

type SyncHandler = fn(&RuntimeState, &Request<'_>, &Caller) -> Result<Reply, ApiError>;

/// How a route is answered: most are plain functions of the current state.
#[derive(Clone, Copy)]
enum Handler {
    Sync(SyncHandler),
    Refresh,
    Execute,
    AuditEvents,
}

/// `(path, allowed methods, handler)`.
const ROUTES: &[(&str, &[&str], Handler)] = &[
    ("/healthz", &["GET"], Handler::Sync(healthz)),
    ("/readyz", &["GET"], Handler::Sync(readyz)),
    ("/v1/runtime/info", &["GET"], Handler::Sync(runtime_info)),
    (
        "/v1/catalog/effective",
        &["GET"],
        Handler::Sync(catalog_effective),
    ),
    (
        "/v1/auth/browser-config",
        &["GET"],
        Handler::Sync(browser_config),
    ),
    ("/v1/refresh", &["GET", "POST"], Handler::Refresh),
    ("/v1/tools/execute", &["POST"], Handler::Execute),
    ("/v1/workflows/run", &["POST"], Handler::Sync(workflows_run)),
    ("/v1/audit/events", &["GET"], Handler::AuditEvents),
    (
        "/v1/runtime/heartbeat",
        &["POST"],
        Handler::Sync(runtime_heartbeat),
    ),
    ("/v1/runtime/stop", &["POST"], Handler::Sync(runtime_stop)),
    (
        "/v1/runtime/session-close",
        &["POST"],
        Handler::Sync(runtime_session_close),
    ),
    ("/metrics", &["GET"], Handler::Sync(metrics)),
    ("/v1/openapi.json", &["GET"], Handler::Sync(openapi)),
];

/// Every route and its methods (for the API's description, `super::openapi`).
pub fn routes() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    ROUTES.iter().map(|(p, m, _)| (*p, *m))
}

/// `GET /v1/openapi.json`: this API's OpenAPI 3.1 description (`super::openapi`).
fn openapi(state: &RuntimeState, _: &Request<'_>, _: &Caller) -> Result<Reply, ApiError> {
    let auth = state.auth.load().is_some();
    let mut reply = Reply::raw(200, super::openapi::document(&state.url, auth));
    reply
        .headers
        .push(("content-type", "application/json".into()));
    Ok(reply)
}

/// The metrics' route label of the pass-through.
pub const PASSTHROUGH_ROUTE: &str = "/proxy";

/// A path's route label in the metrics: the route itself (a `'static` name from the route table),
/// or `other`, so a caller cannot make a series per path it invents.
pub fn metrics_route(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map_or("other", |(p, _, _)| p)
}

/// The channel label of a route: `execute`, `passthrough` or `api`.
pub fn route_channel(route: &str) -> &'static str {
    match route {
        "/v1/tools/execute" => "execute",
        PASSTHROUGH_ROUTE => "passthrough",
        super::mcp::ROUTE => "mcp",
        _ => "api",
    }
}

/// The scope `GET /metrics` needs when runtime auth is on (unless
/// `runtime.server.metrics.public`).
pub const METRICS_READ_SCOPE: &str = "metrics:read";

/// `GET /metrics`: every series, Prometheus text format.
fn metrics(state: &RuntimeState, _: &Request<'_>, caller: &Caller) -> Result<Reply, ApiError> {
    require_scope(caller, METRICS_READ_SCOPE, "`/metrics`")?;
    crate::metrics::set_inflight(state.inflight());
    let mut reply = Reply::raw(200, Bytes::from(crate::metrics::encode()));
    reply
        .headers
        .push(("content-type", crate::metrics::CONTENT_TYPE.into()));
    Ok(reply)
}

/// Answer one request.
pub async fn handle(state: &Arc<RuntimeState>, req: &Request<'_>, request_id: &str) -> Reply {
    let Some((_, methods, handler)) = ROUTES.iter().find(|(p, _, _)| *p == req.path) else {
        let e = ApiError::new(
            404,
            codes::NOT_FOUND,
            format!("no route for `{}`", req.path),
        );
        return Reply::error(&e, request_id);
    };
    if !methods.contains(&req.method) {
        let e = ApiError::new(
            405,
            codes::METHOD_NOT_ALLOWED,
            format!(
                "`{}` does not accept {}; use {}",
                req.path,
                req.method,
                methods.join(" or ")
            ),
        );
        let mut reply = Reply::error(&e, request_id);
        reply.headers.push(("allow", methods.join(", ")));
        return reply;
    }
    let caller = match authenticate(state, req).await {
        Ok(c) => c,
        Err(reply) => {
            audit_authn_failure(state, req, request_id, &reply);
            return reply.with_request_id(request_id);
        }
    };
    let result = match handler {
        Handler::Sync(f) => f(state, req, &caller),
        Handler::Refresh => refresh(state, req, &caller, request_id).await,
        Handler::AuditEvents => audit_events(state, req, &caller).await,
        Handler::Execute => crate::execute::handler::handle(state, req.body, &caller, request_id)
            .await
            .map_err(ApiError::from)
            .map(|env| Reply::json(200, &env)),
    };
    if result.is_ok()
        && req.path == "/v1/catalog/effective"
        && let Some(p) = &caller.principal
    {
        audit_catalog_access(state, p, request_id);
    }
    result.unwrap_or_else(|e| Reply::error(&e, request_id))
}

/// `POST /v1/workflows/run`: check that a workflow may run (every step's tool exists and is
/// within the caller's scopes). Nothing is executed, as in the contract.
fn workflows_run(
    state: &RuntimeState,
    req: &Request<'_>,
    caller: &Caller,
) -> Result<Reply, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        config_path: Option<String>,
        mode: Option<String>,
        agent_profile: Option<String>,
        workflow_id: String,
        approval: Option<bool>,
    }
    let body: Body = serde_json::from_slice(req.body).map_err(|e| {
        ApiError::new(
            400,
            codes::INVALID_REQUEST,
            format!("invalid workflow run request: {e}"),
        )
    })?;
    state.check_binding(body.config_path.as_deref())?;
    let snapshot = state.snapshot();
    let wf = snapshot
        .catalog
        .workflows
        .iter()
        .find(|w| w.workflow_id == body.workflow_id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                codes::NOT_FOUND,
                format!("workflow `{}` not found", body.workflow_id),
            )
        })?;
    for step in &wf.steps {
        if snapshot.catalog.tool(&step.tool_id).is_none() {
            return Err(ApiError::new(
                400,
                codes::INVALID_REQUEST,
                format!(
                    "workflow step `{}` references unknown tool `{}`",
                    step.step_id, step.tool_id
                ),
            ));
        }
        // Each step as execute would decide it (the same policy function): deny lists,
        // scopes, the chosen view, approval.
        let intent = crate::execute::Intent {
            mode: body.mode.as_deref(),
            agent_profile: body.agent_profile.as_deref(),
            approval: body.approval.unwrap_or(false),
        };
        let decided = match snapshot.exec.tool_index(&step.tool_id) {
            Some(i) => crate::execute::govern(&snapshot, caller, i, &intent),
            None => Err(crate::execute::Error::Refused {
                refusal: crate::policy::Refusal::OutOfScope,
                message: crate::policy::Refusal::OutOfScope.message(&step.tool_id, ""),
            }),
        };
        if let Err(e) = decided {
            let mut err = ApiError::from(e);
            err.message = format!("workflow step `{}`: {}", step.step_id, err.message);
            return Err(err);
        }
    }
    Ok(Reply::json(
        200,
        &serde_json::json!({"workflowId": wf.workflow_id, "steps": wf.steps.iter().map(|s| &s.step_id).collect::<Vec<_>>()}),
    ))
}

/// Routes anyone may call even when runtime auth is on (a token, if sent, is still checked).
const PUBLIC: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/v1/runtime/info",
    "/v1/auth/browser-config",
    "/v1/openapi.json",
];

/// Authenticate before any other work: no catalog, refresh or upstream work happens for a
/// request whose token fails.
pub async fn authenticate(state: &RuntimeState, req: &Request<'_>) -> Result<Caller, Reply> {
    // A token this thread verified before is answered under a guard, without taking a
    // reference to the authenticator (a count every serving core would change per request).
    let auth = {
        let guard = state.auth.load();
        let anonymous = Caller {
            principal: None,
            client_cert: req.client_cert.cloned(),
        };
        let Some(auth) = guard.as_ref() else {
            return Ok(anonymous);
        };
        if req.authorization.is_none()
            && (PUBLIC.contains(&req.path)
                || (req.path == "/metrics" && state.metrics_settings().public))
        {
            return Ok(anonymous);
        }
        if auth.requires_client_cert() && req.client_cert.is_none() {
            crate::metrics::authn_failure("client_cert_missing");
            return Err(Reply::error(
                &ApiError::new(
                    401,
                    codes::AUTHN_FAILED,
                    "authentication failed: a verified client certificate is required (runtime.server.auth.requireClientCert); connect with a certificate issued by the runtime's client CA",
                ),
                "",
            ));
        }
        let now = crate::clock::wall_at(req.received).as_secs();
        if let Some(p) = auth.remembered(req.authorization, now) {
            crate::metrics::auth_cache("token", "hit");
            return Ok(Caller {
                principal: Some(p),
                client_cert: req.client_cert.cloned(),
            });
        }
        Arc::clone(auth)
    };
    let checked = tracing::Instrument::instrument(
        auth.authenticate(req.authorization),
        crate::span!("authenticate"),
    )
    .await;
    match checked {
        Ok(p) => Ok(Caller {
            principal: Some(p),
            client_cert: req.client_cert.cloned(),
        }),
        Err(crate::auth::AuthError::Throttled(secs)) => {
            let e = crate::auth::AuthError::Throttled(secs);
            crate::metrics::authn_failure(e.reason());
            let mut reply = Reply::error(
                &ApiError::new(503, codes::INTROSPECTION_THROTTLED, e.describe()),
                "",
            );
            reply.headers.push(("retry-after", secs.to_string()));
            Err(reply)
        }
        Err(e) => {
            crate::metrics::authn_failure(e.reason());
            let challenge = match &e {
                crate::auth::AuthError::Invalid(why) => format!(
                    "Bearer realm=\"open-cli\", error=\"invalid_token\", error_description=\"{}\"",
                    error_description(why)
                ),
                _ => "Bearer realm=\"open-cli\"".to_string(),
            };
            let mut reply = Reply::error(
                &ApiError::new(
                    401,
                    codes::AUTHN_FAILED,
                    format!("authentication failed: {}", e.describe()),
                ),
                "",
            );
            reply.headers.push(("www-authenticate", challenge));
            Err(reply)
        }
    }
}

/// Most characters of an `error_description`.
const DESCRIPTION_MAX: usize = 200;

/// A reason as an RFC 6750 `error_description`: only `%x20-21 / %x23-5B / %x5D-7E` (`"` becomes
/// `'`, any other character `?`), at most [`DESCRIPTION_MAX`] characters. Token-chosen text
/// in reasons is already escaped and bounded (`auth::shown`); this keeps the header valid
/// whatever a reason holds, so a refusal is always the 401 the audit records.
fn error_description(why: &str) -> String {
    why.chars()
        .take(DESCRIPTION_MAX)
        .map(|c| match c {
            '"' => '\'',
            ' '..='~' if c != '\\' => c,
            _ => '?',
        })
        .collect()
}

fn healthz(_: &RuntimeState, _: &Request<'_>, _: &Caller) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        200,
        &Health {
            status: "ok".into(),
        },
    ))
}

/// Ready once a catalog is loaded (it is built before the listener serves) and until
/// shutdown begins, so load balancers stop sending new work while in-flight requests drain.
fn readyz(state: &RuntimeState, _: &Request<'_>, _: &Caller) -> Result<Reply, ApiError> {
    if state.is_draining() {
        return Err(ApiError::new(
            503,
            codes::NOT_READY,
            "the runtime is shutting down",
        ));
    }
    crate::execute::check_audit(state)?;
    Ok(Reply::json(
        200,
        &Health {
            status: "ready".into(),
        },
    ))
}

fn runtime_info(state: &RuntimeState, _: &Request<'_>, caller: &Caller) -> Result<Reply, ApiError> {
    let snapshot = state.snapshot();
    let prefixes: Vec<String> = SCOPE_PREFIXES.iter().map(|s| s.to_string()).collect();
    let server_auth = state.config().config.server_auth().cloned();
    let required = state.auth.load().is_some();
    // With auth on, anonymous callers do not learn host paths.
    let show_paths = !required || caller.principal.is_some();
    let path = |p: &std::path::Path| show_paths.then(|| p.display().to_string());
    let info = RuntimeInfo {
        contract_version: CONTRACT_VERSION.into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        build: Some(env!("OPEN_CLI_BUILD_ID").into()),
        capabilities: CAPABILITIES.iter().map(|s| s.to_string()).collect(),
        instance_id: state.instance.id.clone(),
        url: state.url.clone(),
        runtime_mode: "remote".into(),
        config_path: path(&state.bound.path),
        audit_path: path(&state.instance.audit_path),
        state_dir: path(&state.instance.state_dir),
        cache_dir: path(&state.instance.cache_dir),
        auth: AuthInfo {
            required,
            scope_prefixes: prefixes.clone(),
            token_validation_profiles: server_auth
                .as_ref()
                .map(|a| vec![a.validation_profile.to_string()])
                .unwrap_or_default(),
            browser_login: BrowserLoginInfo {
                configured: server_auth.as_ref().is_some_and(browser_login_configured),
                config_endpoint: BROWSER_CONFIG_ENDPOINT.into(),
            },
            authorization_envelope: AuthorizationEnvelope {
                version: "1.0".into(),
                scope_prefixes: prefixes,
            },
            audience: server_auth.as_ref().map(|a| a.audience.clone()),
            principal: caller.principal.as_ref().map(|p| p.subject.clone()),
        },
        catalog: Some(snapshot.summary.clone()),
        last_refresh: state.last_refresh.load_full().map(|s| (*s).clone()),
    };
    Ok(Reply::json(200, &info))
}

fn browser_login_configured(a: &open_cli_config::model::ServerAuth) -> bool {
    a.authorization_url.is_some() && a.token_url.is_some() && a.browser_client_id.is_some()
}

fn catalog_effective(
    state: &RuntimeState,
    req: &Request<'_>,
    caller: &Caller,
) -> Result<Reply, ApiError> {
    let q = Query::parse(req.query)?;
    state.check_binding(q.get("config"))?;
    let snapshot = state.snapshot();
    let view = snapshot.select_view(q.get("agentProfile"), q.get("mode"))?;
    let compact = match q.get("compact") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::new(
                400,
                codes::INVALID_REQUEST,
                format!("`compact` must be `true` or `false`, found `{other}`"),
            ));
        }
    };
    let etag = effective_etag(snapshot.content(), view, compact, caller);
    let revalidate = [
        ("etag", etag.clone()),
        ("vary", "accept-encoding, authorization".into()),
        // Cacheable by the caller only, and only after asking (a rebuild may change it).
        ("cache-control", "private, no-cache".into()),
    ];
    if req.if_none_match.is_some_and(|v| etag_matches(v, &etag)) {
        let mut reply = Reply::raw(304, Bytes::new());
        reply.headers.extend(revalidate);
        return Ok(reply);
    }
    let filtered;
    let render_error = |e: std::io::Error| {
        ApiError::new(
            500,
            codes::INTERNAL,
            format!("cannot render the catalog: {e}"),
        )
    };
    let body = match &caller.principal {
        Some(p) => {
            let envelope = snapshot.envelope(&p.scopes);
            filtered = snapshot
                .effective_for(&envelope, view, compact)
                .map_err(render_error)?;
            &filtered
        }
        None if compact => {
            filtered = snapshot
                .effective_compact(view)
                .ok_or_else(|| {
                    ApiError::new(
                        500,
                        codes::INTERNAL,
                        format!("view `{view}` has no rendered body"),
                    )
                })?
                .map_err(render_error)?;
            &filtered
        }
        None => snapshot.effective_body(view).ok_or_else(|| {
            ApiError::new(
                500,
                codes::INTERNAL,
                format!("view `{view}` has no rendered body"),
            )
        })?,
    };
    let mut reply = if req.accept_gzip {
        let mut r = Reply::raw(200, body.gzip.clone());
        r.headers.push(("content-encoding", "gzip".into()));
        r
    } else {
        Reply::raw(200, body.identity.clone())
    };
    reply.headers.extend(revalidate);
    Ok(reply)
}

/// The entity tag of an effective view: what makes its body, without rendering it — what the
/// snapshot serves ([`crate::snapshot::Snapshot::content`]: the catalog without its build time,
/// the deny patterns, the build's identity), the view, the form and, for an authenticated
/// caller, the scopes that filter it. The same in every replica and across restarts while the
/// catalog is the same. Weak: the gzip and identity forms are the same view, and two builds of
/// one catalog differ in `generatedAt`.
fn effective_etag(content: &[u8; 32], view: &str, compact: bool, caller: &Caller) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(content);
    h.update(view.as_bytes());
    h.update([0, u8::from(compact)]);
    if let Some(p) = &caller.principal {
        let mut scopes: Vec<&str> = p.scopes.iter().map(String::as_str).collect();
        scopes.sort_unstable();
        scopes.dedup();
        for s in scopes {
            h.update([0]);
            h.update(s.as_bytes());
        }
    } else {
        h.update([1]);
    }
    let digest = h.finalize();
    format!("W/\"{}\"", hex::encode(&digest[..16]))
}

/// `If-None-Match` (RFC 9110 §13.1.2): `*`, or a list of tags compared weakly.
fn etag_matches(header: &[u8], etag: &str) -> bool {
    let Ok(text) = std::str::from_utf8(header) else {
        return false;
    };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let want = opaque(etag);
    text.trim() == "*" || text.split(',').any(|t| opaque(t) == want)
}

/// The scope that lets a token stop a runtime that is not a loopback-bound local one.
pub const STOP_SCOPE: &str = "runtime:stop";

/// `{"sessionId": "…"}` of the lifecycle routes: 1 to 128 visible ASCII characters.
fn session_id(req: &Request<'_>) -> Result<String, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        session_id: Option<String>,
    }
    let bad = |m: &str| ApiError::new(400, codes::INVALID_REQUEST, m.to_string());
    let body: Body = serde_json::from_slice(req.body)
        .map_err(|e| bad(&format!("the body must be {{\"sessionId\": \"…\"}}: {e}")))?;
    let id = body
        .session_id
        .ok_or_else(|| bad("sessionId is required"))?;
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("sessionId must be 1 to 128 visible ASCII characters"));
    }
    Ok(id)
}

/// `POST /v1/runtime/heartbeat`: renew a session's lease (a local runtime with an idle stop
/// stays up while one is held).
fn runtime_heartbeat(
    state: &RuntimeState,
    req: &Request<'_>,
    _: &Caller,
) -> Result<Reply, ApiError> {
    let id = session_id(req)?;
    let active = state.lifecycle.heartbeat(&id).ok_or_else(|| {
        ApiError::new(
            429,
            codes::INVALID_REQUEST,
            "too many sessions hold a lease on this runtime",
        )
    })?;
    Ok(Reply::json(
        200,
        &serde_json::json!({"renewed": true, "sessionId": id, "activeSessions": active,
            "leaseSeconds": crate::state::SESSION_LEASE.as_secs()}),
    ))
}

/// `POST /v1/runtime/session-close`: end the calling session's lease. Only that session's:
/// the runtime keeps no per-session tokens (upstream tokens belong to the configured
/// credentials, shared by every caller), so nothing else is dropped.
fn runtime_session_close(
    state: &RuntimeState,
    req: &Request<'_>,
    _: &Caller,
) -> Result<Reply, ApiError> {
    let id = session_id(req)?;
    let active = state.lifecycle.close(&id);
    Ok(Reply::json(
        200,
        &serde_json::json!({"closed": true, "sessionId": id, "activeSessions": active}),
    ))
}

/// `POST /v1/runtime/stop`: drain and exit as on SIGTERM. Allowed on a local runtime
/// (`--local`, loopback-bound), else only to a token with [`STOP_SCOPE`].
fn runtime_stop(state: &RuntimeState, _: &Request<'_>, caller: &Caller) -> Result<Reply, ApiError> {
    let scoped = caller
        .principal
        .as_ref()
        .is_some_and(|p| p.scopes.iter().any(|s| s == STOP_SCOPE));
    if !state.lifecycle.local && !scoped {
        return Err(ApiError::new(
            403,
            codes::AUTHZ_DENIED,
            format!(
                "only a local runtime (started with --local) can be stopped over HTTP, or a token with scope `{STOP_SCOPE}`; stop this one with SIGTERM"
            ),
        ));
    }
    tracing::info!(
        principal = caller
            .principal
            .as_ref()
            .map_or("-", |p| p.subject.as_str()),
        "POST /v1/runtime/stop: shutting down"
    );
    state.lifecycle.request_stop();
    Ok(Reply::json(200, &serde_json::json!({"stopped": true})))
}

/// The scope a token needs for `GET|POST /v1/refresh` when runtime auth is on.
pub const REFRESH_SCOPE: &str = "runtime:refresh";
/// The scope that lets `GET /v1/audit/events` return every principal's events.
pub const AUDIT_READ_SCOPE: &str = "audit:read";

/// A token's scope grant, or 403 `authz_denied` (with `error="insufficient_scope"`).
fn require_scope(caller: &Caller, scope: &str, what: &str) -> Result<(), ApiError> {
    match &caller.principal {
        Some(p) if !p.scopes.iter().any(|s| s == scope) => Err(ApiError::new(
            403,
            codes::AUTHZ_DENIED,
            format!("{what} needs a token with scope `{scope}` (insufficient_scope)"),
        )),
        _ => Ok(()),
    }
}

/// With runtime auth off, anyone can call `/v1/refresh`: one such refresh at a time, at most
/// [`REFRESH_BURST`] at once and one per second on average (per runtime process).
static OPEN_REFRESH_BUSY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
const REFRESH_BURST: u32 = 2;
static OPEN_REFRESH_RATE: std::sync::LazyLock<crate::limit::TokenBucket> =
    std::sync::LazyLock::new(|| crate::limit::TokenBucket::new(1.0, REFRESH_BURST));

/// Clears [`OPEN_REFRESH_BUSY`] when the refresh ends (or its caller goes away).
struct OpenRefresh;

impl Drop for OpenRefresh {
    fn drop(&mut self) {
        OPEN_REFRESH_BUSY.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Admit an unauthenticated refresh: 409 `refresh_in_progress` while one runs, 429
/// `refresh_throttled` (with `Retry-After`) beyond the rate.
fn admit_open_refresh(state: &RuntimeState) -> Result<OpenRefresh, Reply> {
    use std::sync::atomic::Ordering;
    let busy = || {
        Reply::error(
            &ApiError::new(
                409,
                codes::REFRESH_IN_PROGRESS,
                "a catalog refresh is already running; retry when it has finished",
            ),
            "",
        )
    };
    if OPEN_REFRESH_BUSY
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(busy());
    }
    let guard = OpenRefresh;
    // A rebuild still running without a waiting caller (or a SIGHUP rebuild) counts too.
    if state.rebuild_lock.try_lock().is_err() {
        return Err(busy());
    }
    OPEN_REFRESH_RATE.take().map_err(|wait| {
        let secs = crate::limit::retry_after_secs(wait);
        let mut r = Reply::error(
            &ApiError::new(
                429,
                codes::REFRESH_THROTTLED,
                format!("too many catalog refreshes; retry in {secs} s"),
            ),
            "",
        );
        r.headers.push(("retry-after", secs.to_string()));
        r
    })?;
    Ok(guard)
}

/// Rebuild the catalog now (forcing revalidation of cached documents) and swap it in.
async fn refresh(
    state: &Arc<RuntimeState>,
    req: &Request<'_>,
    caller: &Caller,
    request_id: &str,
) -> Result<Reply, ApiError> {
    require_scope(caller, REFRESH_SCOPE, "`/v1/refresh`")?;
    let q = Query::parse(req.query)?;
    state.check_binding(q.get("config"))?;
    if !req.body.is_empty() {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Body {
            config_path: Option<String>,
        }
        let body: Body = serde_json::from_slice(req.body).map_err(|e| {
            ApiError::new(
                400,
                codes::INVALID_REQUEST,
                format!("refresh body must be {{\"configPath\": \"...\"}} or empty: {e}"),
            )
        })?;
        state.check_binding(body.config_path.as_deref())?;
    }
    let _open = match &caller.principal {
        None => match admit_open_refresh(state) {
            Ok(guard) => Some(guard),
            Err(reply) => return Ok(reply.with_request_id(request_id)),
        },
        Some(_) => None,
    };
    match crate::refresh::rebuild(Arc::clone(state), crate::refresh::Trigger::Api).await {
        Ok(report) => Ok(Reply::json(200, &report)),
        Err(e) => Err(ApiError::new(
            502,
            codes::REFRESH_FAILED,
            format!("the catalog was not rebuilt; the previous catalog is still served: {e}"),
        )),
    }
}

/// How a browser (or CLI) logs in to get a runtime token.
fn browser_config(state: &RuntimeState, _: &Request<'_>, _: &Caller) -> Result<Reply, ApiError> {
    let config = state.config();
    let auth = config
        .config
        .server_auth()
        .filter(|a| browser_login_configured(a))
        .ok_or_else(|| {
            ApiError::new(
                404,
                codes::NOT_FOUND,
                "browser login is not configured on this runtime",
            )
        })?;
    let prefixes: Vec<&str> = SCOPE_PREFIXES.to_vec();
    let mut body = serde_json::json!({
            "authorizationURL": auth.authorization_url,
            "tokenURL": auth.token_url,
            "clientId": auth.browser_client_id,
            "audience": auth.audience,
            "required": true,
            "scopePrefixes": prefixes,
            "tokenValidationProfiles": [auth.validation_profile.to_string()],
            "authorizationEnvelope": {"version": "1.0", "scopePrefixes": prefixes},
    });
    // Extensions for `open-cli auth login --device`: where the device grant starts, and the
    // issuer whose metadata names it otherwise.
    for (key, value) in [
        ("issuer", &auth.issuer),
        ("deviceAuthorizationURL", &auth.device_authorization_url),
    ] {
        if let Some(v) = value {
            body[key] = v.as_str().into();
        }
    }
    Ok(Reply::json(200, &body))
}

/// `GET /v1/audit/events` without a paging parameter (only `limit`, `toolId`, `eventType`):
/// the contract's JSON array, oldest first by `timestamp`. At most this many events: beyond
/// it the answer is 400 asking for pages (a whole-log dump is unbounded memory).
pub const AUDIT_ARRAY_MAX: usize = 10_000;
/// The page size when `limit` is not given.
const AUDIT_PAGE_DEFAULT: usize = 100;

/// `GET /v1/audit/events` (README, API): the contract's array, or with any of `since`,
/// `until`, `principal`, `decision`, `requestId`, `channel`, `order`, `cursor` one page
/// `{"events", "next", "order", "unreadableLines"}` of the log across its rotated files.
/// Requires a token when runtime auth is on; a token without scope `audit:read` sees only its
/// own principal's events, on every page and whatever the filters.
async fn audit_events(
    state: &Arc<RuntimeState>,
    req: &Request<'_>,
    caller: &Caller,
) -> Result<Reply, ApiError> {
    use crate::audit::query::{Cursor, EXACT_FIELDS, Filter, MAX_LIMIT, Order};
    const LEGACY: [&str; 4] = ["config", "limit", "toolId", "eventType"];
    const PAGING: [&str; 3] = ["since", "until", "order"];
    let q = Query::parse(req.query)?;
    state.check_binding(q.get("config"))?;
    let invalid = |m: String| ApiError::new(400, codes::INVALID_REQUEST, m);
    let mut paged = false;
    for (k, _) in &q.pairs {
        let k = k.as_ref();
        if PAGING.contains(&k)
            || k == "cursor"
            || (EXACT_FIELDS.contains(&k) && !LEGACY.contains(&k))
        {
            paged = true;
        } else if !LEGACY.contains(&k) {
            return Err(invalid(format!(
                "`{k}` is not a parameter of /v1/audit/events; it takes since, until, eventType, \
                 toolId, principal, decision, requestId, channel, order, limit, cursor"
            )));
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let time_param = |key: &str| -> Result<Option<String>, ApiError> {
        q.get(key)
            .map(|v| {
                crate::audit::query::parse_time(v, now)
                    .map_err(|m| invalid(format!("`{key}`: {m}")))
            })
            .transpose()
    };
    let mut filter = Filter {
        since: time_param("since")?,
        until: time_param("until")?,
        exact: EXACT_FIELDS
            .iter()
            .filter_map(|f| q.get(f).map(|v| (*f, v.to_string())))
            .collect(),
    };
    if let Some(p) = &caller.principal
        && !p.scopes.iter().any(|s| s == AUDIT_READ_SCOPE)
    {
        match q.get("principal") {
            Some(other) if other != p.subject => {
                return Err(ApiError::new(
                    403,
                    codes::AUTHZ_DENIED,
                    format!(
                        "reading another principal's audit events needs a token with scope \
                         `{AUDIT_READ_SCOPE}` (insufficient_scope)"
                    ),
                ));
            }
            Some(_) => {}
            None => filter.exact.push(("principal", p.subject.clone())),
        }
    }
    let order = match q.get("order") {
        None | Some("oldest") => Order::Oldest,
        Some("newest") => Order::Newest,
        Some(o) => {
            return Err(invalid(format!(
                "`order` is `oldest` or `newest`, not `{o}`"
            )));
        }
    };
    let max = if paged { MAX_LIMIT } else { AUDIT_ARRAY_MAX };
    let limit = match q.get("limit") {
        None => None,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                return Err(invalid(format!(
                    "`limit` must be an integer from 1 to {max}, found `{l}`"
                )));
            }
        },
    };
    let cursor = q
        .get("cursor")
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| invalid(format!("`cursor`: {e}")))?;
    let state = Arc::clone(state);
    let result = tokio::task::spawn_blocking(move || {
        if paged {
            let page =
                state
                    .audit
                    .query(&filter, order, limit.unwrap_or(AUDIT_PAGE_DEFAULT), cursor)?;
            Ok(page_reply(page, order))
        } else {
            array_reply(&state.audit, &filter, limit)
        }
    })
    .await
    .map_err(|e| ApiError::new(500, codes::INTERNAL, format!("the audit query failed: {e}")))?;
    result.map_err(ApiError::from)
}

/// The paged answer: the events' lines copied as they are in the file.
fn page_reply(page: crate::audit::query::Page, order: crate::audit::query::Order) -> Reply {
    let mut body = Vec::with_capacity(page.lines.iter().map(|l| l.len() + 1).sum::<usize>() + 128);
    body.extend_from_slice(b"{\"events\":[");
    for (i, l) in page.lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(l);
    }
    body.extend_from_slice(b"],\"next\":");
    match &page.next {
        Some(c) => {
            body.push(b'"');
            body.extend_from_slice(c.encode().as_bytes());
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    let order = match order {
        crate::audit::query::Order::Oldest => "oldest",
        crate::audit::query::Order::Newest => "newest",
    };
    body.extend_from_slice(
        format!(
            ",\"order\":\"{order}\",\"unreadableLines\":{}}}",
            page.unreadable
        )
        .as_bytes(),
    );
    Reply::raw(200, Bytes::from(body))
}

/// The contract's array: every matching event (or the newest `limit`), oldest first by
/// `timestamp`, at most [`AUDIT_ARRAY_MAX`].
fn array_reply(
    audit: &crate::audit::Audit,
    filter: &crate::audit::query::Filter,
    limit: Option<usize>,
) -> Result<Reply, crate::audit::query::QueryError> {
    use crate::audit::query::{MAX_LIMIT, Order};
    let (order, want) = match limit {
        Some(n) => (Order::Newest, n),
        None => (Order::Oldest, AUDIT_ARRAY_MAX + 1),
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut cursor = None;
    let mut unreadable = 0;
    while lines.len() < want {
        let page = audit.query(filter, order, (want - lines.len()).min(MAX_LIMIT), cursor)?;
        unreadable += page.unreadable;
        let done = page.lines.is_empty() || page.next.is_none();
        lines.extend(page.lines);
        if done {
            break;
        }
        cursor = page.next;
    }
    if limit.is_none() && lines.len() > AUDIT_ARRAY_MAX {
        return Ok(Reply::error(
            &ApiError::new(
                400,
                codes::INVALID_REQUEST,
                format!(
                    "more than {AUDIT_ARRAY_MAX} events match; ask for pages instead \
                     (`order=oldest&limit=1000`, then `cursor=<next>`), or narrow with `since`"
                ),
            ),
            "",
        ));
    }
    if unreadable > 0 {
        tracing::warn!(
            lines = unreadable,
            "audit log lines that are not JSON were skipped"
        );
    }
    // RFC 3339 UTC with a fixed number of digits: text order is time order. Stable, so
    // equal timestamps keep the file's order.
    let mut events: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    events.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    Ok(Reply::json(200, &events))
}

/// `authn_failure` (contract §6), for every protected route.
pub fn audit_authn_failure(
    state: &RuntimeState,
    req: &Request<'_>,
    request_id: &str,
    reply: &Reply,
) {
    let mut e = crate::audit::events::authn_failure(req.method, req.path, request_id, reply.status);
    e.client_cert = req.client_cert.map(|c| Cow::Borrowed(&**c));
    state.audit.record(e);
}

/// `authenticated_connect` and `catalog_filtered` for an authenticated catalog fetch.
fn audit_catalog_access(state: &RuntimeState, p: &crate::auth::Principal, request_id: &str) {
    for e in crate::audit::events::catalog_access(&p.subject, request_id) {
        state.audit.record(e);
    }
}

/// Decoded query parameters. A parameter given twice with different values is an error:
/// silently picking one could widen what a caller sees.
#[derive(Debug, Default)]
struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Query<'a> {
    fn parse(raw: Option<&'a str>) -> Result<Self, ApiError> {
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if let Some((_, prev)) = pairs.iter().find(|(pk, _)| *pk == k) {
                if *prev != v {
                    return Err(ApiError::new(
                        400,
                        codes::INVALID_REQUEST,
                        format!(
                            "query parameter `{k}` is given more than once with different values"
                        ),
                    ));
                }
                continue;
            }
            pairs.push((k, v));
        }
        Ok(Self { pairs })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation_honours_q_values() {
        for (h, want) in [
            (None, false),
            (Some("gzip"), true),
            (Some("br, gzip;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("identity"), false),
            (Some("*"), true),
            (Some("*;q=0, gzip"), true),
            (Some("gzip;q=0, *"), false),
        ] {
            assert_eq!(accepts_gzip(h), want, "{h:?}");
        }
    }

    #[test]
    fn query_rejects_conflicting_duplicates() {
        let q = Query::parse(Some("mode=curated&agentProfile=a%20b")).unwrap();
        assert_eq!(q.get("mode"), Some("curated"));
        assert_eq!(q.get("agentProfile"), Some("a b"));
        assert!(Query::parse(Some("mode=a&mode=a")).is_ok());
        let e = Query::parse(Some("mode=a&mode=b")).unwrap_err();
        assert_eq!(e.code, codes::INVALID_REQUEST);
    }

    #[test]
    fn error_replies_carry_code_and_request_id() {
        let r = Reply::error(
            &ApiError::new(409, codes::RUNTIME_ATTACH_MISMATCH, "m"),
            "req-1",
        );
        let v: ErrorBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.status, 409);
        assert_eq!(v.error.code, "runtime_attach_mismatch");
        assert_eq!(v.error.request_id.as_deref(), Some("req-1"));
    }
}
