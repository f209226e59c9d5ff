//! The policy decision for one tool call, as a pure function of facts (issue 16, item 4).
//!
//! Both channels (`POST /v1/tools/execute` and the pass-through) gather the facts
//! (`crate::execute::govern`: from the snapshot's per-tool index, the caller's token and the
//! chosen view) and ask [`decide`]; the answer is an allow or one typed [`Refusal`]. Nothing
//! here knows HTTP: the status, error code and message of a refusal are chosen where the
//! answer is written. Checked in this order, so a denied tool is reported as denied, not as
//! out of scope:
//!
//! 1. the managed policy's deny list,
//! 2. the project's `policy.deny`,
//! 3. the token's scopes,
//! 4. the curated view,
//! 5. approval.
//!
//! - [`scope`]: the authorization envelope, which tools a token's scopes reach;
//! - [`glob`]: the `*` patterns of deny lists;
//! - [`path`]: the one path rule of both channels (no traversal, no encoded slashes).

pub mod glob;
pub mod path;
pub mod scope;

use crate::audit::Reason;

/// What is known about one call when it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The managed policy denies the tool.
    pub managed_deny: bool,
    /// The project's `policy.deny` names the tool.
    pub policy_deny: bool,
    /// The caller's token admits the tool (always true with runtime auth off).
    pub in_scope: bool,
    /// The chosen view (`discover` or a curated profile) contains the tool.
    pub in_view: bool,
    /// The tool requires approval (its safety, or `policy.approval`).
    pub needs_approval: bool,
    /// The caller gave approval for this call.
    pub approved: bool,
}

/// Why a call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ManagedDeny,
    PolicyDeny,
    OutOfScope,
    CuratedDeny,
    ApprovalRequired,
}

impl Refusal {
    /// The audit record's reason.
    pub fn reason(self) -> Reason {
        match self {
            Refusal::ManagedDeny => Reason::ManagedDeny,
            Refusal::PolicyDeny => Reason::PolicyDeny,
            Refusal::OutOfScope => Reason::AuthzDenied,
            Refusal::CuratedDeny => Reason::CuratedDeny,
            Refusal::ApprovalRequired => Reason::ApprovalRequired,
        }
    }

    /// The contract's error code (the reason's name).
    pub fn code(self) -> &'static str {
        self.reason().as_str()
    }

    /// The refusal in words, for tool `id` (and `view`, the curated view asked for).
    pub fn message(self, id: &str, view: &str) -> String {
        match self {
            Refusal::ManagedDeny => format!("tool `{id}` is denied by the managed policy"),
            Refusal::PolicyDeny => format!("tool `{id}` is denied by `policy.deny`"),
            Refusal::OutOfScope => format!("the token's scopes do not include tool `{id}`"),
            Refusal::CuratedDeny => format!("tool `{id}` is not in the curated view `{view}`"),
            Refusal::ApprovalRequired => format!(
                "tool `{id}` requires approval; repeat the call with approval (`\"approval\": true`, `--approval`, or the `X-Open-Cli-Approval: true` header)"
            ),
        }
    }
}

/// Allow the call, or the first refusal in the order of the module docs.
pub fn decide(f: &Facts) -> Result<(), Refusal> {
    if f.managed_deny {
        Err(Refusal::ManagedDeny)
    } else if f.policy_deny {
        Err(Refusal::PolicyDeny)
    } else if !f.in_scope {
        Err(Refusal::OutOfScope)
    } else if !f.in_view {
        Err(Refusal::CuratedDeny)
    } else if f.needs_approval && !f.approved {
        Err(Refusal::ApprovalRequired)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: Facts = Facts {
        managed_deny: false,
        policy_deny: false,
        in_scope: true,
        in_view: true,
        needs_approval: false,
        approved: false,
    };

    #[test]
    fn one_row_per_refusal_and_rows_that_pin_their_order() {
        use Refusal::*;
        let f = |change: fn(&mut Facts)| {
            let mut facts = ALLOWED;
            change(&mut facts);
            facts
        };
        let rows: &[(&str, Facts, Result<(), Refusal>)] = &[
            ("allowed", ALLOWED, Ok(())),
            (
                "managed deny",
                f(|f| f.managed_deny = true),
                Err(ManagedDeny),
            ),
            ("policy deny", f(|f| f.policy_deny = true), Err(PolicyDeny)),
            ("out of scope", f(|f| f.in_scope = false), Err(OutOfScope)),
            (
                "not in the view",
                f(|f| f.in_view = false),
                Err(CuratedDeny),
            ),
            (
                "approval missing",
                f(|f| f.needs_approval = true),
                Err(ApprovalRequired),
            ),
            (
                "approval given",
                f(|f| {
                    f.needs_approval = true;
                    f.approved = true;
                }),
                Ok(()),
            ),
            ("approval without need", f(|f| f.approved = true), Ok(())),
            // The order: each refusal wins over every later one.
            (
                "managed before policy",
                f(|f| {
                    f.managed_deny = true;
                    f.policy_deny = true;
                }),
                Err(ManagedDeny),
            ),
            (
                "denied, not out of scope",
                f(|f| {
                    f.policy_deny = true;
                    f.in_scope = false;
                }),
                Err(PolicyDeny),
            ),
            (
                "scope before view",
                f(|f| {
                    f.in_scope = false;
                    f.in_view = false;
                }),
                Err(OutOfScope),
            ),
            (
                "view before approval",
                f(|f| {
                    f.in_view = false;
                    f.needs_approval = true;
                }),
                Err(CuratedDeny),
            ),
            (
                "everything wrong",
                Facts {
                    managed_deny: true,
                    policy_deny: true,
                    in_scope: false,
                    in_view: false,
                    needs_approval: true,
                    approved: false,
                },
                Err(ManagedDeny),
            ),
        ];
        for (name, facts, want) in rows {
            assert_eq!(decide(facts), *want, "{name}");
        }
    }
}
