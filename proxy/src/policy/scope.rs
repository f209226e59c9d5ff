//! The authorization envelope (contract §3): which tools a token's scopes reach.
//!
//! One pure function, [`Envelope::compute`], decides; the catalog filter and the execution
//! check both ask [`Envelope::allows`], so what a caller sees and what it may run can never
//! disagree.
//!
//! - `bundle:<serviceId>` adds every tool of that service to the *union*;
//! - `profile:<name>` adds the tools of that agent profile's view to the union (every tool
//!   unless the profile is curated); an unknown profile adds nothing;
//! - `tool:<toolId>` adds that tool to the *explicit* set, if it exists;
//! - result: explicit ∩ union when both are present, else whichever is present, else nothing;
//! - minus every tool matching managed deny or `policy.deny`.
//!
//! Unknown scopes are ignored: a token with none of these scopes sees nothing.

use std::collections::BTreeSet;

use open_cli_config::ntc::{Catalog, EffectiveView};

use crate::policy::glob::Pattern;

#[derive(Debug)]
pub struct Envelope {
    allowed: BTreeSet<String>,
    /// `allowed` as one bit per catalog index (the catalog it was computed for): the
    /// execution paths know the tool's index and check it without comparing IDs.
    by_index: Box<[u64]>,
}

impl Envelope {
    pub fn compute(scopes: &[String], catalog: &Catalog, deny: &[Pattern]) -> Self {
        let mut union: Option<BTreeSet<&str>> = None;
        let mut explicit: Option<BTreeSet<&str>> = None;
        for scope in scopes {
            if let Some(service) = scope.strip_prefix("bundle:") {
                let u = union.get_or_insert_with(BTreeSet::new);
                u.extend(
                    catalog
                        .tools
                        .iter()
                        .filter(|t| t.service_id == service)
                        .map(|t| t.id.as_str()),
                );
            } else if let Some(profile) = scope.strip_prefix("profile:") {
                let u = union.get_or_insert_with(BTreeSet::new);
                if profile != "discover"
                    && let Some(view) = catalog.effective_views.iter().find(|v| v.name == profile)
                {
                    u.extend(view.tools.iter().map(|t| t.id.as_str()));
                }
            } else if let Some(tool) = scope.strip_prefix("tool:") {
                let e = explicit.get_or_insert_with(BTreeSet::new);
                if let Some(t) = catalog.tools.iter().find(|t| t.id == tool) {
                    e.insert(t.id.as_str());
                }
            }
        }
        let chosen: BTreeSet<&str> = match (explicit, union) {
            (Some(e), Some(u)) => e.intersection(&u).copied().collect(),
            (Some(e), None) => e,
            (None, Some(u)) => u,
            (None, None) => BTreeSet::new(),
        };
        let allowed: BTreeSet<String> = chosen
            .into_iter()
            .filter(|id| !deny.iter().any(|p| p.matches(id)))
            .map(str::to_string)
            .collect();
        let mut by_index = vec![0u64; catalog.tools.len().div_ceil(64)].into_boxed_slice();
        for (i, t) in catalog.tools.iter().enumerate() {
            if allowed.contains(t.id.as_str()) {
                by_index[i / 64] |= 1 << (i % 64);
            }
        }
        Self { allowed, by_index }
    }

    pub fn allows(&self, tool_id: &str) -> bool {
        self.allowed.contains(tool_id)
    }

    /// [`Envelope::allows`] for the tool at catalog index `i` of the catalog this envelope
    /// was computed for.
    pub fn allows_index(&self, i: usize) -> bool {
        self.by_index
            .get(i / 64)
            .is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    pub fn len(&self) -> usize {
        self.allowed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// A stable key for caching what this envelope renders to.
    pub fn key(&self) -> String {
        self.allowed
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The catalog as this envelope sees it: tools, services left without tools, workflows
    /// with any step outside, and every view, all filtered.
    pub fn filter(&self, catalog: &Catalog) -> Catalog {
        let keep = |v: &EffectiveView| EffectiveView {
            name: v.name.clone(),
            mode: v.mode.clone(),
            tools: v
                .tools
                .iter()
                .filter(|t| self.allows(&t.id))
                .cloned()
                .collect(),
        };
        let tools: Vec<_> = catalog
            .tools
            .iter()
            .filter(|t| self.allows(&t.id))
            .cloned()
            .collect();
        let services = catalog
            .services
            .iter()
            .filter(|s| tools.iter().any(|t| t.service_id == s.id))
            .cloned()
            .collect();
        Catalog {
            catalog_version: catalog.catalog_version.clone(),
            generated_at: catalog.generated_at.clone(),
            source_fingerprint: catalog.source_fingerprint.clone(),
            sources: catalog.sources.clone(),
            services,
            tools,
            workflows: catalog
                .workflows
                .iter()
                .filter(|w| w.steps.iter().all(|s| self.allows(&s.tool_id)))
                .cloned()
                .collect(),
            effective_views: catalog.effective_views.iter().map(keep).collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use open_cli_config::ntc::{Safety, Tool};

    pub(crate) fn tool(id: &str) -> Tool {
        let (svc, _) = id.split_once(':').unwrap();
        Tool {
            id: id.into(),
            service_id: svc.into(),
            operation_id: None,
            unstable_id: false,
            method: "GET".into(),
            path: "/".into(),
            group: "g".into(),
            command: "c".into(),
            aliases: vec![],
            summary: None,
            description: None,
            hidden: false,
            path_params: vec![],
            flags: vec![],
            request_body: None,
            auth_alternatives: vec![],
            auth: vec![],
            safety: Safety {
                destructive: false,
                read_only: true,
                requires_approval: false,
                idempotent: true,
            },
            output: None,
            pagination: None,
            retry: None,
            guidance: None,
            servers: vec![],
            backend: None,
        }
    }

    /// Tools `t:list`, `t:get`, `t:delete`, `p:list`, `p:create`; curated views.
    pub(crate) fn catalog() -> Catalog {
        let tools: Vec<Tool> = ["t:list", "t:get", "t:delete", "p:list", "p:create"]
            .iter()
            .map(|i| tool(i))
            .collect();
        let view = |name: &str, ids: &[&str]| EffectiveView {
            name: name.into(),
            mode: "curated".into(),
            tools: tools
                .iter()
                .filter(|t| ids.contains(&t.id.as_str()))
                .cloned()
                .collect(),
        };
        Catalog {
            catalog_version: "1.0.0".into(),
            generated_at: "t".into(),
            source_fingerprint: "f".into(),
            sources: vec![],
            services: vec![],
            effective_views: vec![
                view(
                    "discover",
                    &["t:list", "t:get", "t:delete", "p:list", "p:create"],
                ),
                view("readers", &["t:list", "p:list"]),
            ],
            tools,
            workflows: vec![],
        }
    }

    #[test]
    fn the_envelope_table() {
        let c = catalog();
        let deny = [Pattern::new("*:delete").unwrap()];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: Vec<(Vec<String>, &[Pattern], Vec<&str>)> = vec![
            (s(&[]), &[], vec![]),
            (s(&["openid", "tools:read"]), &[], vec![]),
            (s(&["bundle:t"]), &[], vec!["t:delete", "t:get", "t:list"]),
            (s(&["bundle:t"]), &deny, vec!["t:get", "t:list"]),
            (
                s(&["bundle:t", "bundle:p"]),
                &deny,
                vec!["p:create", "p:list", "t:get", "t:list"],
            ),
            (s(&["bundle:nope"]), &[], vec![]),
            (s(&["profile:readers"]), &[], vec!["p:list", "t:list"]),
            (s(&["profile:ghost"]), &[], vec![]),
            (s(&["profile:discover"]), &[], vec![]),
            (s(&["tool:t:get"]), &[], vec!["t:get"]),
            (s(&["tool:t:get", "tool:ghost:x"]), &[], vec!["t:get"]),
            (s(&["tool:t:delete"]), &deny, vec![]),
            // explicit ∩ union
            (
                s(&["bundle:t", "tool:t:get", "tool:p:list"]),
                &[],
                vec!["t:get"],
            ),
            (s(&["profile:readers", "tool:t:get"]), &[], vec![]),
            (
                s(&["profile:readers", "tool:t:list", "bundle:p"]),
                &[],
                vec!["t:list"],
            ),
        ];
        for (scopes, deny, want) in cases {
            let e = Envelope::compute(&scopes, &c, deny);
            let got: Vec<&str> = c
                .tools
                .iter()
                .map(|t| t.id.as_str())
                .filter(|id| e.allows(id))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(got, want, "scopes {scopes:?}");
        }
    }

    #[test]
    fn filtering_removes_tools_from_every_view_and_whole_workflows() {
        let mut c = catalog();
        c.workflows = vec![open_cli_config::ntc::Workflow {
            workflow_id: "w".into(),
            steps: vec![
                open_cli_config::ntc::WorkflowStep {
                    step_id: "a".into(),
                    tool_id: "t:list".into(),
                },
                open_cli_config::ntc::WorkflowStep {
                    step_id: "b".into(),
                    tool_id: "t:delete".into(),
                },
            ],
        }];
        let e = Envelope::compute(&["tool:t:list".to_string()], &c, &[]);
        let f = e.filter(&c);
        assert_eq!(f.tools.len(), 1);
        assert!(
            f.effective_views
                .iter()
                .all(|v| v.tools.iter().all(|t| t.id == "t:list"))
        );
        assert!(
            f.workflows.is_empty(),
            "a workflow with a hidden step is hidden"
        );
    }
}
