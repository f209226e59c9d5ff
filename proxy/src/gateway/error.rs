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
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
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
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::new(status(&e), e.code(), e.to_string())
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
        ];
        for (e, status, code) in cases {
            let a = ApiError::from(e.clone());
            assert_eq!((a.status, a.code), (status, code), "{e:?}");
        }
    }
}
