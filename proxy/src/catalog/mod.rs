//! Building the Normalized Tool Catalog from a validated config.
//!
//! The runtime builds the catalog **once** at start-up (and later on an explicit refresh),
//! never per request: requests read an immutable [`crate::snapshot::Snapshot`]. A build
//! collects every problem of every source before failing, and names the source, file and
//! operation of each.

pub mod discovery;
pub mod guidance;
pub mod load;
pub mod mcp;
pub mod nesting;
pub mod openapi;
pub mod overlay;

use std::collections::BTreeMap;
use std::fmt;

use open_cli_config::LoadedConfig;
use open_cli_config::model::{Config, ModeKind, Service, SourceType, ToolSet};
use open_cli_config::ntc::{
    CATALOG_VERSION, Catalog, EffectiveView, Provenance, ServiceEntry, SourceEntry, Tool, Workflow,
};
use sha2::{Digest, Sha256};

use crate::policy::glob::Pattern;
use openapi::{DocSet, ServiceRef};

use crate::fetch::{DocumentRules, Fetcher, Policy, Referrer, resolve_location};

/// Every problem found while building; the build fails if there is at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub problems: Vec<String>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "catalog build failed with {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

/// Build the catalog for a loaded config, fetching documents through `fetcher`.
/// `credentials` serve MCP sources with transport `oauth` (the same token cache as tool calls).
pub async fn build(
    loaded: &LoadedConfig,
    fetcher: &Fetcher,
    credentials: &crate::credentials::Credentials,
) -> Result<Catalog, BuildError> {
    let cfg = &loaded.config;
    let now = crate::clock::now_rfc3339();
    let rules = DocumentRules::from_config(&loaded.base_dir, &cfg.document_access())
        .map_err(|problems| BuildError { problems })?;
    let fetcher = &fetcher.with_rules(rules);
    let mut problems = Vec::new();
    // JSON nodes of all tool schemas so far (`openapi::MAX_CATALOG_NODES`).
    let mut schema_nodes = 0usize;
    let mut hasher = Sha256::new();
    let mut sources = Vec::new();
    let mut services = Vec::new();
    let mut tools: Vec<Tool> = Vec::new();
    let mut workflows: Vec<Workflow> = Vec::new();

    for (source_id, source) in cfg.sources.iter().filter(|(_, s)| s.enabled) {
        let at = format!("sources.{source_id}");
        let (method, discovery_kind) = match source.kind {
            SourceType::OpenApi => ("explicit", None),
            SourceType::ServiceRoot => ("rfc8631", Some(SourceType::ServiceRoot)),
            SourceType::ApiCatalog => ("rfc9727", Some(SourceType::ApiCatalog)),
            SourceType::Mcp => {
                match mcp_source(
                    cfg,
                    source_id,
                    source,
                    fetcher,
                    credentials,
                    &loaded.base_dir,
                    &mut hasher,
                )
                .await
                {
                    Ok((entry, svc, mut t, mut w)) => {
                        sources.push(SourceEntry {
                            provenance: Provenance {
                                at: now.clone(),
                                ..entry.provenance
                            },
                            ..entry
                        });
                        services.push(svc);
                        tools.append(&mut t);
                        workflows.append(&mut w);
                    }
                    Err(mut e) => problems.append(&mut e),
                }
                continue;
            }
        };
        let uri = source.uri.clone().unwrap_or_default();
        let url = match resolve_location(&uri, &loaded.base_dir) {
            Ok(u) => u,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        let at = format!("{at} ({})", display_location(&url));
        let policy = Policy {
            max_age_seconds: source.refresh.as_ref().and_then(|r| r.max_age_seconds),
            manual_only: source.refresh.as_ref().is_some_and(|r| r.manual_only),
        };
        let mut disc = discovery::Discovery {
            fetcher,
            policy,
            fetches: Vec::new(),
            warnings: Vec::new(),
        };
        let apis = match discovery_kind {
            None => Ok(vec![discovery::Api::explicit(url.clone())]),
            Some(SourceType::ServiceRoot) => disc
                .service_root(&url, Referrer::Config)
                .await
                .map(|a| vec![a]),
            Some(_) => disc.api_catalog(&url).await,
        };
        for w in &disc.warnings {
            tracing::warn!(source = %source_id, "{w}");
        }
        let mut fetches = disc.fetches;
        let apis = match apis {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        let many = apis.len() > 1;
        let mut source_problems = Vec::new();
        let mut derived_ids: Vec<String> = Vec::new();
        hasher.update(source_id.as_bytes());
        for api in &apis {
            let from = api
                .desc_from
                .as_ref()
                .map_or(Referrer::Config, Referrer::Document);
            let docs = match load::load_openapi(fetcher, &api.desc, from, policy, method).await {
                Ok(d) => d,
                Err(e) => {
                    source_problems.push(e);
                    continue;
                }
            };
            for (u, bytes) in &docs.raw {
                hasher.update([0]);
                hasher.update(u.as_bytes());
                hasher.update([0]);
                hasher.update(bytes);
            }
            fetches.extend(docs.fetches.iter().cloned());
            let doc_servers = docs.docs.servers(&mut source_problems);
            let mut derived = derived_service_id(&docs.docs, &api.desc);
            if discovery_kind.is_some() {
                derived = unique(derived, &mut derived_ids);
            }
            for plan in service_plans(cfg, source_id, &derived, many, api) {
                let mut ctx = ServiceBuild {
                    fetcher,
                    base_dir: &loaded.base_dir,
                    policy,
                    fetches: &mut fetches,
                    problems: &mut source_problems,
                    hasher: &mut hasher,
                };
                let built = ctx.service(&docs.docs, &plan).await;
                services.push(ServiceEntry {
                    id: plan.id.clone(),
                    alias: plan.alias.clone(),
                    source_id: source_id.clone(),
                    title: docs.docs.title().unwrap_or(&plan.id).to_string(),
                    servers: doc_servers.clone(),
                });
                schema_nodes += built.0.iter().map(openapi::schema_nodes).sum::<usize>();
                if schema_nodes > openapi::MAX_CATALOG_NODES {
                    source_problems.push(format!(
                        "the tool schemas of the catalog exceed {} JSON nodes (the bound per catalog) with service `{}`",
                        openapi::MAX_CATALOG_NODES,
                        plan.id
                    ));
                }
                tools.extend(built.0);
                workflows.extend(built.1);
            }
        }
        sources.push(SourceEntry {
            id: source_id.clone(),
            kind: source.kind.to_string(),
            uri,
            provenance: Provenance {
                method: method.into(),
                at: now.clone(),
                fetches,
            },
        });
        source_problems.sort();
        source_problems.dedup();
        problems.extend(source_problems.into_iter().map(|p| format!("{at}: {p}")));
    }

    tools.sort_by(|a, b| a.id.cmp(&b.id));
    for pair in tools.windows(2) {
        if pair[0].id == pair[1].id {
            problems.push(format!(
                "duplicate tool ID `{}`: both {} {} and {} {} produce it; give one of them a distinct operationId",
                pair[0].id, pair[0].method, pair[0].path, pair[1].method, pair[1].path
            ));
        }
    }
    workflows.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
    for pair in workflows.windows(2) {
        if pair[0].workflow_id == pair[1].workflow_id {
            problems.push(format!("duplicate workflow ID `{}`", pair[0].workflow_id));
        }
    }
    // `policy.approvalRequired` is part of what calling a tool takes, so the published
    // catalog (and every view, help text and dry run built from it) says so, not only the
    // execute path (`snapshot::index`, which decides on the same patterns).
    let approval: Vec<Pattern> = cfg
        .policy
        .approval_required
        .iter()
        .filter_map(|p| Pattern::new(p).ok())
        .collect();
    for tool in &mut tools {
        if approval.iter().any(|p| p.matches(&tool.id)) {
            tool.safety.requires_approval = true;
        }
    }
    let views = match effective_views(cfg, &tools) {
        Ok(v) => v,
        Err(mut e) => {
            problems.append(&mut e);
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return Err(BuildError { problems });
    }
    services.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Catalog {
        catalog_version: CATALOG_VERSION.to_string(),
        generated_at: now,
        source_fingerprint: hex::encode(hasher.finalize()),
        sources,
        services,
        tools,
        workflows,
        effective_views: views,
    })
}

/// A location as people read it: a path for local files, the URL otherwise.
pub fn display_location(url: &url::Url) -> String {
    match url.to_file_path() {
        Ok(p) if url.scheme() == "file" => p.display().to_string(),
        _ => url.to_string(),
    }
}

/// List an MCP source's tools and build its service from the synthetic document.
async fn mcp_source(
    cfg: &Config,
    source_id: &str,
    source: &open_cli_config::model::Source,
    fetcher: &Fetcher,
    credentials: &crate::credentials::Credentials,
    base_dir: &std::path::Path,
    hasher: &mut Sha256,
) -> Result<(SourceEntry, ServiceEntry, Vec<Tool>, Vec<Workflow>), Vec<String>> {
    let at = format!("sources.{source_id} (mcp)");
    let (transport, issued) =
        mcp::authorized_transport(source_id, source, cfg, credentials, mcp::Identity::Listing)
            .await
            .map_err(|e| vec![format!("{at}: {e}")])?;
    let listed = match crate::upstream::mcp::list_tools(&transport).await {
        // A token the server refuses (revoked, or cached from before a restart): one fresh
        // token, one more try.
        Err(e) if e.is_unauthorized() && issued.is_some() => {
            if let Some(i) = &issued {
                credentials.tokens.invalidate(i).await;
            }
            let (transport, _) = mcp::authorized_transport(
                source_id,
                source,
                cfg,
                credentials,
                mcp::Identity::Listing,
            )
            .await
            .map_err(|e| vec![format!("{at}: {e}")])?;
            crate::upstream::mcp::list_tools(&transport).await
        }
        other => other,
    }
    .map_err(|e| vec![format!("{at}: {e}")])?;
    hasher.update(source_id.as_bytes());
    hasher.update(serde_json::to_vec(&listed).unwrap_or_default());
    let kind = source
        .transport
        .as_ref()
        .map(|t| t.kind)
        .unwrap_or(open_cli_config::model::McpTransportType::Stdio);
    let (doc, warnings) =
        mcp::synthetic_document(source_id, source_id, kind, &listed, &source.disabled_tools);
    for w in warnings {
        tracing::warn!(source = %source_id, "{w}");
    }
    let root = format!("mcp://{source_id}/tools.json");
    let docs = DocSet::single(&root, doc);
    let api =
        discovery::Api::explicit(url::Url::parse(&root).map_err(|e| vec![format!("{at}: {e}")])?);
    let plan = service_plans(cfg, source_id, source_id, false, &api)
        .into_iter()
        .next()
        .ok_or_else(|| vec![format!("{at}: no service")])?;
    let mut fetches = Vec::new();
    let mut problems = Vec::new();
    let mut ctx = ServiceBuild {
        fetcher,
        base_dir,
        policy: Policy::default(),
        fetches: &mut fetches,
        problems: &mut problems,
        hasher,
    };
    let (tools, workflows) = ctx.service(&docs, &plan).await;
    if !problems.is_empty() {
        return Err(problems.into_iter().map(|p| format!("{at}: {p}")).collect());
    }
    Ok((
        SourceEntry {
            id: source_id.to_string(),
            kind: "mcp".into(),
            uri: String::new(),
            provenance: Provenance {
                method: "explicit".into(),
                at: String::new(),
                fetches,
            },
        },
        ServiceEntry {
            id: plan.id.clone(),
            alias: plan.alias.clone(),
            source_id: source_id.to_string(),
            title: plan.id.clone(),
            servers: Vec::new(),
        },
        tools,
        workflows,
    ))
}

/// One service to build from a description.
#[derive(Debug)]
struct ServicePlan {
    id: String,
    /// The ID the description itself suggests (what its publisher's manifests use).
    derived: String,
    alias: String,
    overlays: Vec<String>,
    skills: Vec<String>,
    workflows: Vec<String>,
}

/// The services a description feeds: those naming its source in `services`, else one derived
/// service. When a discovered catalog yields several APIs, a service naming the catalog gets
/// one service per API, `<service>.<derived id>` (alias likewise), so the contract's
/// "apiCatalog sources must be expanded first" failure does not apply. Discovered overlays,
/// skills and workflows (service-meta) come after the configured ones.
fn service_plans(
    cfg: &Config,
    source_id: &str,
    derived: &str,
    many: bool,
    api: &discovery::Api,
) -> Vec<ServicePlan> {
    let named: Vec<(&String, &Service)> = cfg
        .services
        .iter()
        .filter(|(_, s)| s.source == source_id)
        .collect();
    let with = |id: String, alias: String, svc: Option<&Service>| {
        let cfg_list =
            |f: fn(&Service) -> &Vec<String>| svc.map(|s| f(s).clone()).unwrap_or_default();
        let mut overlays = cfg_list(|s| &s.overlays);
        let mut skills = cfg_list(|s| &s.skills);
        let mut workflows = cfg_list(|s| &s.workflows);
        overlays.extend(api.overlays.iter().cloned());
        skills.extend(api.skills.iter().cloned());
        workflows.extend(api.workflows.iter().cloned());
        ServicePlan {
            id,
            derived: derived.to_string(),
            alias,
            overlays,
            skills,
            workflows,
        }
    };
    if named.is_empty() {
        return vec![with(derived.to_string(), derived.to_string(), None)];
    }
    named
        .into_iter()
        .map(|(id, s)| {
            let alias = s.alias.clone().unwrap_or_else(|| id.clone());
            if many {
                with(
                    format!("{id}.{derived}"),
                    format!("{alias}.{derived}"),
                    Some(s),
                )
            } else {
                with(id.clone(), alias, Some(s))
            }
        })
        .collect()
}

/// `id`, or `id-2`, `id-3`, … when discovery already produced it.
fn unique(id: String, taken: &mut Vec<String>) -> String {
    let mut candidate = id.clone();
    let mut n = 1;
    while taken.contains(&candidate) {
        n += 1;
        candidate = format!("{id}-{n}");
    }
    taken.push(candidate.clone());
    candidate
}

/// Building one service's tools: overlays on its own copy of the document, then tools, then
/// skill guidance and workflows. Every document fetched is recorded and fingerprinted.
struct ServiceBuild<'a> {
    fetcher: &'a Fetcher,
    base_dir: &'a std::path::Path,
    policy: Policy,
    fetches: &'a mut Vec<open_cli_config::ntc::Fetch>,
    problems: &'a mut Vec<String>,
    hasher: &'a mut Sha256,
}

impl ServiceBuild<'_> {
    async fn service(&mut self, docs: &DocSet, plan: &ServicePlan) -> (Vec<Tool>, Vec<Workflow>) {
        let service_id = plan.id.as_str();
        let (overlays, skills, workflow_docs) = (&plan.overlays, &plan.skills, &plan.workflows);
        let mut overlaid = None;
        if !overlays.is_empty() {
            let mut root = docs.root_doc().clone();
            for location in overlays {
                if let Some((overlay, name)) = self.document(location).await
                    && let Err(mut e) = overlay::apply(&mut root, &overlay, &name)
                {
                    self.problems.append(&mut e);
                }
            }
            overlaid = Some(docs.with_root(root));
        }
        let doc = overlaid.as_ref().unwrap_or(docs);
        let mut tools = openapi::tools(doc, &ServiceRef { id: service_id }, self.problems);
        for location in skills {
            if let Some((manifest, name)) = self.document(location).await
                && let Err(mut e) =
                    guidance::apply_skill(&mut tools, service_id, &plan.derived, &manifest, &name)
            {
                self.problems.append(&mut e);
            }
        }
        let mut workflows = Vec::new();
        for location in workflow_docs {
            if let Some((wf, name)) = self.document(location).await {
                match guidance::bind_workflows(&tools, service_id, &wf, &name) {
                    Ok(mut w) => workflows.append(&mut w),
                    Err(mut e) => self.problems.append(&mut e),
                }
            }
        }
        (tools, workflows)
    }

    /// Fetch and parse a JSON or YAML document named in the config.
    async fn document(&mut self, location: &str) -> Option<(serde_json::Value, String)> {
        let url = match resolve_location(location, self.base_dir) {
            Ok(u) => u,
            Err(e) => {
                self.problems.push(e);
                return None;
            }
        };
        let name = display_location(&url);
        let fetched = match self
            .fetcher
            .get(
                &url,
                Referrer::Config,
                "application/json, application/yaml;q=0.9, */*;q=0.8",
                self.policy,
                "explicit",
            )
            .await
        {
            Ok(f) => f,
            Err(e) => {
                self.problems.push(e);
                return None;
            }
        };
        self.fetches.extend(fetched.record);
        self.hasher.update([0]);
        self.hasher.update(url.as_str().as_bytes());
        self.hasher.update(&fetched.body);
        let text = String::from_utf8_lossy(&fetched.body);
        match openapi::parse_document(&text, url.as_str()) {
            Ok(v) => Some((v, name)),
            Err(e) => {
                self.problems.push(format!("{name}: {e}"));
                None
            }
        }
    }
}

/// Service ID for an unreferenced source: first non-parameter segment of the first path,
/// else the slug of `info.title`, else the slug of the file name.
fn derived_service_id(doc: &DocSet, url: &url::Url) -> String {
    let first_path = doc
        .root_doc()
        .get("paths")
        .and_then(|p| p.as_object())
        .and_then(|p| p.keys().min().cloned());
    first_path
        .and_then(|p| {
            p.split('/')
                .find(|s| !s.is_empty() && !s.starts_with('{'))
                .map(crate::slug::slug)
        })
        .filter(|s| !s.is_empty())
        .or_else(|| doc.title().map(crate::slug::slug).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| {
            let name = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default();
            crate::slug::slug(name.split('.').next().unwrap_or_default())
        })
}

/// A compiled tool set.
#[derive(Debug, Clone)]
pub struct CompiledToolSet {
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
}

impl CompiledToolSet {
    pub fn compile(name: &str, set: &ToolSet) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut compile = |list: &[String], key: &str| {
            list.iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    Pattern::new(p)
                        .map_err(|e| {
                            problems.push(format!("curation.toolSets.{name}.{key}[{i}]: {e}"))
                        })
                        .ok()
                })
                .collect::<Vec<_>>()
        };
        let allow = compile(&set.allow, "allow");
        let deny = compile(&set.deny, "deny");
        if problems.is_empty() {
            Ok(Self { allow, deny })
        } else {
            Err(problems)
        }
    }

    /// Allowed when no `allow` list is given or a pattern matches, and no `deny` matches.
    /// A `deny` of `**` next to a non-empty `allow` is skipped, so `allow: [...]` plus
    /// `deny: ["**"]` reads as an allowlist (contract §5).
    pub fn admits(&self, tool_id: &str) -> bool {
        let allowed = self.allow.is_empty() || self.allow.iter().any(|p| p.matches(tool_id));
        let denied = self
            .deny
            .iter()
            .any(|p| (self.allow.is_empty() || p.as_str() != "**") && p.matches(tool_id));
        allowed && !denied
    }
}

/// `discover` (every tool) and one view per agent profile, sorted by name.
fn effective_views(cfg: &Config, tools: &[Tool]) -> Result<Vec<EffectiveView>, Vec<String>> {
    let mut problems = Vec::new();
    let mut sets = BTreeMap::new();
    for (name, set) in &cfg.curation.tool_sets {
        match CompiledToolSet::compile(name, set) {
            Ok(c) => {
                sets.insert(name.as_str(), c);
            }
            Err(mut e) => problems.append(&mut e),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut views = vec![EffectiveView {
        name: "discover".into(),
        mode: ModeKind::Discover.to_string(),
        tools: tools.to_vec(),
    }];
    for (name, profile) in &cfg.agents.profiles {
        let mode = profile.mode.unwrap_or(cfg.mode.default);
        let set = profile.tool_set.as_deref().and_then(|s| sets.get(s));
        let tools = match (mode, set) {
            (ModeKind::Curated, Some(set)) => tools
                .iter()
                .filter(|t| set.admits(&t.id))
                .cloned()
                .collect(),
            _ => tools.to_vec(),
        };
        views.push(EffectiveView {
            name: name.clone(),
            mode: mode.to_string(),
            tools,
        });
    }
    Ok(views)
}
