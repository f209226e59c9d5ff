//! The `/v1` error answer, and the one place where the layers' typed errors get HTTP statuses.
//!
//! Below the gateway no code knows a status: the use cases and the domain return typed errors
//! ([`crate::execute::Error`], [`crate::snapshot::ViewError`], [`crate::state::NotBound`]),
//! and [`status`] maps every variant. The error code (`code`) is the contract's, chosen with
//! the error (it is also the audit record's reason code); the JSON body and the
//! `WWW-Authenticate` challenge of a scope refusal are written by `Reply::error`
//! ([`crate::gateway::api::Reply::error`]).

use open_cli_config::wire::codes;

use crate::audit::query::QueryError;
use crate::execute::Error;
use crate::snapshot::ViewError;
use crate::state::NotBound;

/// An error a route answers with (`{"error":{"code","message","requestId"}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Header fields the answer carries besides the error (`Retry-After`, `RateLimit-*`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }
}

/// The HTTP status of a use case's error: the one mapping.
pub fn status(e: &Error) -> u16 {
    match e {
        Error::Invalid(_) => 400,
        Error::TooLarge(_) => 413,
        Error::UnknownTool(_) => 404,
        Error::NotBound(_) => 409,
        Error::View(ViewError::UnknownProfile(_)) => 404,
        Error::View(ViewError::InvalidMode(_)) => 400,
        Error::Refused { .. } => 403,
        Error::Timeout(_) => 504,
        Error::Unreachable(_) | Error::ResponseTooLarge(_) | Error::Credentials(_) => 502,
        Error::Internal(_) => 500,
        Error::AuditUnavailable => 503,
        Error::RateLimited { .. } => 429,
        Error::Busy(_) | Error::RateLimitUnavailable(_) => 503,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let mut a = ApiError::new(status(&e), e.code(), e.to_string());
        match &e {
            // `Retry-After` (RFC 9110) and the `RateLimit-*` fields of the IETF draft
            // (draft-ietf-httpapi-ratelimit-headers-06): the limit that refused the call.
            Error::RateLimited {
                limit, retry_after, ..
            } => {
                let secs = crate::limit::retry_after_secs(*retry_after).to_string();
                a.headers = vec![
                    ("retry-after", secs.clone()),
                    ("ratelimit-limit", limit.requests.to_string()),
                    ("ratelimit-remaining", "0".into()),
                    ("ratelimit-reset", secs),
                    (
                        "ratelimit-policy",
                        format!(
                            "{};w={};burst={}",
                            limit.requests, limit.period_seconds, limit.burst
                        ),
                    ),
                ];
            }
            Error::Busy(_) => a.headers = vec![("retry-after", "1".into())],
            _ => {}
        }
        a
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        Error::View(e).into()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let (status, code) = match &e {
            QueryError::BadCursor | QueryError::CursorOrder(_) => (400, codes::INVALID_REQUEST),
            QueryError::CursorExpired => (410, codes::CURSOR_EXPIRED),
            QueryError::Io { .. } => (500, codes::INTERNAL),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<NotBound> for ApiError {
    fn from(e: NotBound) -> Self {
        Error::NotBound(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Refusal;

    /// Every variant's status and code as the `/v1` API has always answered them.
    #[test]
    fn each_error_keeps_its_status_and_code() {
        let s = || "m".to_string();
        let refused = |refusal| Error::Refused {
            refusal,
            message: s(),
        };
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::Invalid(s()), 400, "invalid_request"),
            (Error::TooLarge(s()), 413, "payload_too_large"),
            (Error::UnknownTool(s()), 404, "tool_not_found"),
            (
                Error::NotBound(NotBound { path: s() }),
                409,
                "runtime_attach_mismatch",
            ),
            (
                Error::View(ViewError::UnknownProfile(s())),
                404,
                "unknown_agent_profile",
            ),
            (
                Error::View(ViewError::InvalidMode(s())),
                400,
                "invalid_request",
            ),
            (refused(Refusal::ManagedDeny), 403, "managed_deny"),
            (refused(Refusal::PolicyDeny), 403, "policy_deny"),
            (refused(Refusal::OutOfScope), 403, "authz_denied"),
            (refused(Refusal::CuratedDeny), 403, "curated_deny"),
            (refused(Refusal::ApprovalRequired), 403, "approval_required"),
            (Error::Unreachable(s()), 502, "upstream_unreachable"),
            (Error::Timeout(s()), 504, "upstream_timeout"),
            (Error::ResponseTooLarge(s()), 502, "response_too_large"),
            (Error::Credentials(s()), 502, "credentials_unavailable"),
            (Error::Internal(s()), 500, "internal_error"),
            (Error::AuditUnavailable, 503, "audit_unavailable"),
            (
                Error::RateLimited {
                    message: s(),
                    limit: open_cli_config::model::RateLimit {
                        requests: 5,
                        period_seconds: 60,
                        burst: 5,
                    },
                    retry_after: std::time::Duration::from_millis(1500),
                },
                429,
                "rate_limited",
            ),
            (Error::Busy(s()), 503, "service_busy"),
            (
                Error::RateLimitUnavailable(s()),
                503,
                "rate_limit_unavailable",
            ),
        ];
        for (e, status, code) in cases {
            let a = ApiError::from(e.clone());
            assert_eq!((a.status, a.code), (status, code), "{e:?}");
            let retry = a.headers.iter().find(|(k, _)| *k == "retry-after");
            match status {
                429 => {
                    assert_eq!(retry.map(|(_, v)| v.as_str()), Some("2"));
                    assert!(
                        a.headers
                            .contains(&("ratelimit-policy", "5;w=60;burst=5".into()))
                    );
                }
                _ if code == "service_busy" => assert!(retry.is_some()),
                _ => assert!(retry.is_none(), "{e:?}"),
            }
        }
    }
}
