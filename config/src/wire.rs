//! Bodies of the runtime's `/v1` HTTP API and its error codes.

use serde::{Deserialize, Serialize};

use crate::ntc::{Catalog, EffectiveView};

/// The contract version this implementation speaks (`GET /v1/runtime/info`).
pub const CONTRACT_VERSION: &str = "1.1";
/// Scope prefixes of the authorization envelope.
pub const SCOPE_PREFIXES: [&str; 3] = ["bundle:", "profile:", "tool:"];
pub const BROWSER_CONFIG_ENDPOINT: &str = "/v1/auth/browser-config";

/// Request headers (lower case) by which a client could state another client address,
/// host, scheme, port, prefix or URL to an upstream. The pass-through drops them unless
/// `runtime.server.passThrough.forwardHeaders` keeps them (`Forwarded` and `X-Forwarded-*`
/// are set by the runtime and cannot be kept); execute refuses header flags by these names
/// unless kept.
pub const IDENTITY_HEADERS: [&str; 20] = [
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-proxyuser-ip",
    "x-original-forwarded-for",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-host",
    "x-original-host",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-envoy-external-address",
    "x-envoy-original-path",
    "cf-connecting-ip",
    "fastly-client-ip",
];

/// Whether a lower-case header name is an identity header: one of [`IDENTITY_HEADERS`] or
/// `X-Forwarded-*`. `_` counts as `-` (`X_Forwarded_For`): CGI-style upstreams (and many
/// frameworks) read both spellings as the same variable.
pub fn is_identity_header(name: &str) -> bool {
    // Every identity name starts with one of these letters: most fields end here.
    matches!(name.as_bytes().first(), Some(b'x' | b'f' | b'c' | b't'))
        && (starts_with_folded(name, "x-forwarded-")
            || IDENTITY_HEADERS.iter().any(|h| eq_folded(name, h)))
}

/// Whether a lower-case header name asks an upstream to treat a request as another method
/// (`_` counts as `-`).
pub fn is_method_override_header(name: &str) -> bool {
    [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ]
    .iter()
    .any(|h| eq_folded(name, h))
}

/// Whether `forwardHeaders` may keep a header: an identity header the runtime does not set.
pub fn may_keep_header(name: &str) -> bool {
    is_identity_header(name)
        && !eq_folded(name, "forwarded")
        && !starts_with_folded(name, "x-forwarded-")
}

/// The rule for a header the caller chooses through execute (a header flag, lower case):
/// never a method override, and an identity header only when `keep` (the operator's
/// `forwardHeaders`) names it.
pub fn check_header_flag(name: &str, keep: &[String]) -> Result<(), String> {
    if is_method_override_header(name) {
        return Err(format!(
            "header `{name}` is not accepted: it would make the upstream run another method than the tool's"
        ));
    }
    if is_identity_header(name) && !keep.iter().any(|k| k == name) {
        return Err(format!(
            "header `{name}` states the client's identity or the original URL to the upstream: the runtime does not send it (runtime.server.passThrough.forwardHeaders can allow it)"
        ));
    }
    Ok(())
}

/// `a == b` with `_` in `a` read as `-` (`b` is a lower-case name spelt with `-`).
fn eq_folded(a: &str, b: &str) -> bool {
    a.len() == b.len() && starts_with_folded(a, b)
}

/// `a.starts_with(b)` with `_` in `a` read as `-`.
fn starts_with_folded(a: &str, b: &str) -> bool {
    a.len() >= b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'_' && y == b'-'))
}

/// RFC 6265 `cookie-octet`: what a cookie value may hold as it is.
fn cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// A cookie value as the runtime sends it: bytes outside `cookie-octet`, and `%`,
/// percent-encoded, so no value can end its cookie or start another
/// (`x; session_key=…` stays one value). The CLI's `--dry-run` shows the same.
pub fn encode_cookie_value(v: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write;
    if v.bytes().all(|b| cookie_octet(b) && b != b'%') {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        if cookie_octet(b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A decimal numeral's exact value as (negative, significant digits, power of ten): `150`,
/// `1.5e2` and `1.50E+2` are equal; zero is `(false, "", 0)` whatever its sign or form.
/// `None` for anything but an optionally signed decimal with an optional exponent, or an
/// exponent out of range. Used wherever a number must be sent exactly as given (issue 15,
/// item 10): the runtime's MCP arguments and the CLI's MCP property flags.
pub fn decimal(n: &str) -> Option<(bool, String, i64)> {
    let (neg, n) = match n.as_bytes().first()? {
        b'-' => (true, &n[1..]),
        b'+' => (false, &n[1..]),
        _ => (false, n),
    };
    let (mantissa, exp) = match n.find(['e', 'E']) {
        Some(i) => (&n[..i], n[i + 1..].parse::<i64>().ok()?),
        None => (n, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mut exp = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    exp = exp.checked_add(i64::try_from(digits.len() - trimmed.len()).ok()?)?;
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((neg, trimmed.to_string(), exp))
}

/// Stable error codes of the JSON error body. Agents branch on these, never on messages.
pub mod codes {
    /// A request named a config file other than the one the runtime is bound to.
    pub const RUNTIME_ATTACH_MISMATCH: &str = "runtime_attach_mismatch";
    pub const AUTHN_FAILED: &str = "authn_failed";
    pub const AUTHZ_DENIED: &str = "authz_denied";
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const NOT_IMPLEMENTED: &str = "not_implemented";
    pub const NOT_READY: &str = "not_ready";
    /// A catalog rebuild failed; the previous catalog is still served.
    pub const REFRESH_FAILED: &str = "refresh_failed";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const UNKNOWN_AGENT_PROFILE: &str = "unknown_agent_profile";
    pub const INTERNAL: &str = "internal_error";
    /// Execution: no tool with that ID in the catalog.
    pub const TOOL_NOT_FOUND: &str = "tool_not_found";
    /// Policy refusals, in the order they are checked.
    pub const MANAGED_DENY: &str = "managed_deny";
    pub const POLICY_DENY: &str = "policy_deny";
    pub const CURATED_DENY: &str = "curated_deny";
    pub const APPROVAL_REQUIRED: &str = "approval_required";
    /// The tool's upstream credentials cannot be resolved; nothing was sent.
    pub const CREDENTIALS_UNAVAILABLE: &str = "credentials_unavailable";
    /// Connecting to or talking with the upstream failed.
    pub const UPSTREAM_UNREACHABLE: &str = "upstream_unreachable";
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    /// The upstream's answer exceeds `maxResponseBytes`.
    pub const RESPONSE_TOO_LARGE: &str = "response_too_large";
    /// Pass-through: method and path match no operation of the service.
    pub const NO_MATCHING_OPERATION: &str = "no_matching_operation";
    /// Token introspection for unknown tokens is over its rate; retry after `Retry-After`.
    pub const INTROSPECTION_THROTTLED: &str = "introspection_throttled";
    /// With runtime auth off: a refresh is already running.
    pub const REFRESH_IN_PROGRESS: &str = "refresh_in_progress";
    /// With runtime auth off: refreshes are over their rate; retry after `Retry-After`.
    pub const REFRESH_THROTTLED: &str = "refresh_throttled";
    /// `runtime.server.audit.failClosed`: the audit log cannot be written, so tool calls are
    /// refused rather than run unrecorded.
    pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";
    /// `GET /v1/audit/events`: the file a paging cursor points into has been deleted by
    /// retention; start again without a cursor.
    pub const CURSOR_EXPIRED: &str = "cursor_expired";
    /// `431`: the request's header fields exceed `runtime.server.limits` (bytes or count).
    pub const HEADERS_TOO_LARGE: &str = "request_header_fields_too_large";
    /// `414`: the request line exceeds `runtime.server.limits.maxRequestLineBytes`.
    pub const URI_TOO_LONG: &str = "uri_too_long";
    /// `503` with `Retry-After`: the service has `maxConcurrentPerService` requests in progress.
    pub const SERVICE_BUSY: &str = "service_busy";
    /// `429` with `Retry-After`: a rate limit of `runtime.server.rateLimits` is used up.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// `503`: the shared rate-limit store cannot be reached and `onStoreError` is `deny`.
    pub const RATE_LIMIT_UNAVAILABLE: &str = "rate_limit_unavailable";
}

/// `{"error": {...}}`: every error the runtime answers itself has this shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `GET /v1/catalog/effective`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectiveCatalog {
    pub catalog: Catalog,
    pub view: EffectiveView,
    /// Our extension, `?compact=true`: the body carries each tool once, in `view.tools`;
    /// `catalog.tools` is empty, `catalog.effectiveViews` names the views without their tools,
    /// and this names the catalog's tool IDs (so a client can still tell "not in this view"
    /// from "no such tool").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<Compact>,
}

/// See [`EffectiveCatalog::compact`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compact {
    pub tool_ids: Vec<String>,
}

impl EffectiveCatalog {
    /// Whether the catalog (any view) has a tool with this ID.
    pub fn catalog_has_tool(&self, id: &str) -> bool {
        self.catalog.tool(id).is_some()
            || self
                .compact
                .as_ref()
                .is_some_and(|c| c.tool_ids.iter().any(|t| t == id))
    }
}

/// `GET /v1/runtime/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeInfo {
    pub contract_version: String,
    /// Version of the runtime build (the reference never sends one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The build's identity (an extension): a hash of the runtime's sources and locked
    /// dependencies, equal for every binary built from the same tree. Replicas that report the
    /// same value render and tag the catalog alike (its `ETag`s include it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    pub capabilities: Vec<String>,
    pub instance_id: String,
    pub url: String,
    pub runtime_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
    pub auth: AuthInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<RefreshStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthInfo {
    pub required: bool,
    pub scope_prefixes: Vec<String>,
    pub token_validation_profiles: Vec<String>,
    pub browser_login: BrowserLoginInfo,
    pub authorization_envelope: AuthorizationEnvelope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserLoginInfo {
    pub configured: bool,
    pub config_endpoint: String,
}

/// `GET /v1/auth/browser-config`: how a person logs in to get a runtime token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserConfig {
    #[serde(rename = "authorizationURL")]
    pub authorization_url: String,
    #[serde(rename = "tokenURL")]
    pub token_url: String,
    pub client_id: String,
    pub audience: String,
    #[serde(default)]
    pub scope_prefixes: Vec<String>,
    /// Extension: the configured issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Extension: the RFC 8628 device authorization endpoint.
    #[serde(
        default,
        rename = "deviceAuthorizationURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_authorization_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationEnvelope {
    pub version: String,
    pub scope_prefixes: Vec<String>,
}

/// Our addition to runtime info: what the loaded catalog holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSummary {
    pub generated_at: String,
    pub source_fingerprint: String,
    pub services: usize,
    pub tools: usize,
    pub views: Vec<String>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// `GET|POST /v1/refresh` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    pub refreshed_at: String,
    pub sources: Vec<SourceRefresh>,
    /// Our addition: the catalog now served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogSummary>,
}

/// How one source's main document was obtained in a rebuild.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRefresh {
    pub id: String,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// Our addition to runtime info: how the last rebuild after start-up went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshStatus {
    pub at: String,
    /// `api` (`/v1/refresh`) or `sighup`.
    pub trigger: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/tools/execute` request (contract §2; see `docs/execution.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_profile: Option<String>,
    pub tool_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_args: Vec<String>,
    /// Keyed by flag `name` (or `originalName`); values are strings, or arrays of strings for
    /// a repeated parameter (numbers and booleans are accepted as an extension).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub flags: std::collections::BTreeMap<String, serde_json::Value>,
    /// Base64 of the raw request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approval: bool,
}

/// `POST /v1/tools/execute` answer whenever the upstream answered, whatever its status: the
/// upstream's JSON `body`, or its non-JSON `text` with its `contentType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResponse {
    pub status_code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_compared_by_their_exact_value() {
        let d = |s| decimal(s);
        assert_eq!(d("150"), d("1.5e2"));
        assert_eq!(d("1.50E+2"), d("+150.0"));
        assert_eq!(d("0"), Some((false, String::new(), 0)));
        assert_eq!(d("-0.0e9"), d("0"));
        assert_eq!(d("-2.5e-3"), Some((true, "25".into(), -4)));
        assert_ne!(d("0.1"), d("-0.1"));
        assert_ne!(d("12345678901234567890123"), d("1.2345678901234568e22"));
        for bad in [
            "",
            "-",
            ".",
            "1x",
            "e5",
            "1e",
            "1e99999999999999999999",
            "0x10",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_flags_follow_the_pass_through_rule() {
        assert!(check_header_flag("x-http-method-override", &[]).is_err());
        assert!(check_header_flag("x-real-ip", &[]).is_err());
        assert!(check_header_flag("x-real-ip", &["x-real-ip".into()]).is_ok());
        assert!(check_header_flag("x-trace", &[]).is_ok());
    }
}
