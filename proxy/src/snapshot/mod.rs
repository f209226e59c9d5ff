//! The immutable, pre-rendered state that requests read.
//!
//! A [`Snapshot`] is built once from a catalog and swapped atomically (`ArcSwap`) when the
//! catalog is rebuilt; a request loads the current snapshot once and uses it throughout, so
//! it never sees half of an old catalog and half of a new one. Response bodies that do not
//! depend on the caller are serialised here, once, instead of on every request.
//!
//! A snapshot also has a digest of what it serves ([`Snapshot::content`]): the rendered
//! catalog without its build and fetch times, the deny patterns that filter it per caller and
//! the build's identity (a hash of the runtime's sources, `build.rs`). The catalog's entity
//! tags are made of it, so every replica of one build on the same config and documents, and
//! the same runtime after a restart or a rebuild that changed nothing, tags a view alike: a
//! client's `If-None-Match` is answered 304 by any of them (a per-process tag made round-robin
//! replicas and restarts send every view again).

use std::collections::BTreeMap;

use bytes::Bytes;
use open_cli_config::model::ModeKind;
use open_cli_config::ntc::{Catalog, EffectiveView};
use open_cli_config::wire::CatalogSummary;

use crate::auth::Caller;
use crate::policy::scope::Envelope;
use index::ToolRef;

pub mod index;

/// Why a request's view choice cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// `agentProfile` names no curated profile.
    #[error("{0}")]
    UnknownProfile(String),
    /// `mode` is neither `discover` nor `curated`.
    #[error("{0}")]
    InvalidMode(String),
}

impl ViewError {
    /// The audit record's reason.
    pub fn reason(&self) -> crate::audit::Reason {
        match self {
            ViewError::UnknownProfile(_) => crate::audit::Reason::UnknownAgentProfile,
            ViewError::InvalidMode(_) => crate::audit::Reason::InvalidRequest,
        }
    }

    /// The contract's error code (the reason's name).
    pub fn code(&self) -> &'static str {
        self.reason().as_str()
    }
}

/// A scope set's [`Envelope`] in one snapshot, with the catalog bodies rendered for it per
/// view (see [`Snapshot::effective_for`]); shared by every caller with the same scopes.
#[derive(Debug)]
pub struct Scoped {
    pub envelope: Envelope,
    rendered: std::sync::Mutex<std::collections::HashMap<String, Rendered>>,
}

impl std::ops::Deref for Scoped {
    type Target = Envelope;
    fn deref(&self) -> &Envelope {
        &self.envelope
    }
}

/// A response body rendered once, plain and gzip-compressed.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub identity: Bytes,
    pub gzip: Bytes,
}

impl Rendered {
    pub fn new(identity: Vec<u8>) -> std::io::Result<Self> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(identity.len() / 8),
            flate2::Compression::default(),
        );
        enc.write_all(&identity)?;
        Ok(Self {
            gzip: Bytes::from(enc.finish()?),
            identity: Bytes::from(identity),
        })
    }
}

/// The compact effective body of `view` in `catalog`: each tool once (in the view), the
/// catalog's tool IDs beside it; `catalog.tools` empty and `catalog.effectiveViews` naming the
/// views without their tools.
fn compact_body(catalog: &Catalog, view: EffectiveView) -> open_cli_config::wire::EffectiveCatalog {
    open_cli_config::wire::EffectiveCatalog {
        catalog: Catalog {
            catalog_version: catalog.catalog_version.clone(),
            generated_at: catalog.generated_at.clone(),
            source_fingerprint: catalog.source_fingerprint.clone(),
            sources: catalog.sources.clone(),
            services: catalog.services.clone(),
            tools: Vec::new(),
            workflows: catalog.workflows.clone(),
            // The views by name and mode (the NTC requires at least one), their tools only in
            // `view`.
            effective_views: catalog
                .effective_views
                .iter()
                .map(|v| EffectiveView {
                    name: v.name.clone(),
                    mode: v.mode.clone(),
                    tools: Vec::new(),
                })
                .collect(),
        },
        view,
        compact: Some(open_cli_config::wire::Compact {
            tool_ids: catalog.tools.iter().map(|t| t.id.clone()).collect(),
        }),
    }
}

/// The digest of a catalog as rendered (`catalog_json`), without what only says when and how
/// this build read its documents: `generatedAt` and each source's provenance time and fetches
/// (the documents' content is in `sourceFingerprint`, and what was made of them follows). With
/// the build's identity (`OPEN_CLI_BUILD_ID`, from `build.rs`: another build may render or
/// filter the same catalog differently). Those volatile fields all come before `services` (the catalog's
/// fields are rendered in order: version, time, fingerprint, sources, services, tools, …), so
/// the rendering is hashed from the catalog's own `"services"` key on — the first occurrence of
/// that key, as no source entry has one — after the head's lasting parts. Were the key ever not
/// found, the whole rendering is hashed: a tag per build, never a tag shared by different
/// catalogs.
fn catalog_digest(catalog: &Catalog, catalog_json: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(env!("OPEN_CLI_BUILD_ID"));
    field(&catalog.catalog_version);
    field(&catalog.source_fingerprint);
    for source in &catalog.sources {
        field(&source.id);
        field(&source.kind);
        field(&source.uri);
        field(&source.provenance.method);
    }
    match memchr::memmem::find(catalog_json, b",\"services\":") {
        Some(at) => h.update(&catalog_json[at..]),
        None => h.update(catalog_json),
    }
    h.finalize().into()
}

/// `content` with the deny patterns mixed in (they filter every caller's view).
fn with_deny<'a>(content: &[u8; 32], deny: impl Iterator<Item = &'a String>) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(content);
    for pattern in deny {
        h.update([0]);
        h.update(pattern.as_bytes());
    }
    h.finalize().into()
}

/// Most per-caller renderings kept (distinct scope envelopes × views); the cache is cleared
/// when full.
const MAX_FILTERED: usize = 256;

#[derive(Debug)]
pub struct Snapshot {
    /// Unique per snapshot object, never reused: the key of per-thread caches.
    id: u64,
    /// What the snapshot serves, as a digest (see the module docs and [`Snapshot::content`]).
    content: [u8; 32],
    pub catalog: Catalog,
    /// Managed deny and `policy.deny`: subtracted from every authorization envelope.
    pub deny: Vec<crate::policy::glob::Pattern>,
    /// Envelopes computed per scope set (callers with the same scopes share one).
    envelopes: std::sync::Mutex<std::collections::HashMap<Vec<String>, std::sync::Arc<Scoped>>>,
    /// `GET /v1/catalog/effective` body per view name: `{"catalog":…,"view":…}`.
    effective: BTreeMap<String, Rendered>,
    /// The compact form of each (`?compact=true`), rendered on first use.
    compact: BTreeMap<String, std::sync::OnceLock<Rendered>>,
    mode_default: ModeKind,
    default_profile: Option<String>,
    pub summary: CatalogSummary,
    /// Per-tool execution facts and the pass-through routes.
    pub exec: crate::snapshot::index::ExecIndex,
    /// The config this snapshot was built from (secrets, sources, policy for execution).
    pub config: std::sync::Arc<open_cli_config::Config>,
    /// `runtime.server.passThrough`.
    pub pass_through: open_cli_config::model::PassThrough,
}

impl Snapshot {
    /// The snapshot of a catalog built from `config`.
    pub fn for_config(catalog: Catalog, config: &open_cli_config::Config) -> std::io::Result<Self> {
        let mut s = Self::new(
            catalog,
            config.mode.default,
            config.agents.default_profile.clone(),
        )?;
        s.deny = config
            .managed_deny
            .iter()
            .chain(&config.policy.deny)
            .filter_map(|p| crate::policy::glob::Pattern::new(p).ok())
            .collect();
        s.content = with_deny(
            &s.content,
            config.managed_deny.iter().chain(&config.policy.deny),
        );
        s.exec = crate::snapshot::index::ExecIndex::build(&s.catalog, config);
        s.config = std::sync::Arc::new(config.clone());
        s.pass_through = config.pass_through();
        Ok(s)
    }

    /// This snapshot's identity (unique in the process): what caches keyed by snapshot use.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The digest of what this snapshot serves: equal for snapshots that serve the same
    /// catalog under the same deny patterns, in any process (see the module docs).
    pub fn content(&self) -> &[u8; 32] {
        &self.content
    }

    /// The authorization envelope of a scope set (computed once per snapshot and scope set).
    pub fn envelope(&self, scopes: &[String]) -> std::sync::Arc<Scoped> {
        let mut cache = self.envelopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = cache.get(scopes) {
            return std::sync::Arc::clone(e);
        }
        let e = std::sync::Arc::new(Scoped {
            envelope: Envelope::compute(scopes, &self.catalog, &self.deny),
            rendered: Default::default(),
        });
        if cache.len() >= MAX_FILTERED {
            cache.clear();
        }
        cache.insert(scopes.to_vec(), std::sync::Arc::clone(&e));
        e
    }

    /// Whether the caller's scopes reach the tool at catalog index `tool`: the one scope check
    /// of every execution path and of workflow runs (the catalog filter asks the same
    /// [`Envelope`]). Anyone when runtime auth is off (no principal).
    ///
    /// The serving thread remembers the envelope of the last principal it asked about (a
    /// principal is thread-private when it comes from the thread's token cache), so a caller's
    /// repeated calls skip the shared, locked envelope map and the hashing of its scopes. (An
    /// idle thread keeps that one envelope, and the renderings cached in it, until its next
    /// authorization.)
    pub fn in_scope(&self, caller: &Caller, tool: ToolRef) -> bool {
        match &caller.principal {
            None => true,
            Some(principal) => self.allowed_by(principal, |e| e.allows_index(tool.index())),
        }
    }

    /// A tool's catalog entry.
    pub fn tool(&self, tool: ToolRef) -> &open_cli_config::ntc::Tool {
        &self.catalog.tools[tool.index()]
    }

    fn allowed_by(
        &self,
        principal: &std::sync::Arc<crate::auth::Principal>,
        check: impl FnOnce(&Envelope) -> bool,
    ) -> bool {
        type Last = Option<(
            u64,
            std::sync::Arc<crate::auth::Principal>,
            std::sync::Arc<Scoped>,
        )>;
        thread_local! {
            static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
        }
        LAST.with_borrow_mut(|last| {
            if let Some((id, p, e)) = last.as_ref()
                && *id == self.id
                && std::sync::Arc::ptr_eq(p, principal)
            {
                return check(e);
            }
            let e = self.envelope(&principal.scopes);
            let allowed = check(&e);
            *last = Some((self.id, std::sync::Arc::clone(principal), e));
            allowed
        })
    }

    /// The `{catalog, view}` body as an authorization envelope sees it, rendered once per
    /// envelope and view (the envelope is shared by every caller with the same scopes).
    pub fn effective_for(
        &self,
        envelope: &Scoped,
        view: &str,
        compact: bool,
    ) -> std::io::Result<Rendered> {
        let key = if compact {
            format!("{view}\0compact")
        } else {
            view.to_string()
        };
        let mut cache = envelope.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = cache.get(&key) {
            return Ok(r.clone());
        }
        let catalog = envelope.filter(&self.catalog);
        let view_doc = catalog
            .effective_views
            .iter()
            .find(|v| v.name == view)
            .cloned()
            .unwrap_or(open_cli_config::ntc::EffectiveView {
                name: view.to_string(),
                mode: "discover".into(),
                tools: Vec::new(),
            });
        let body = if compact {
            serde_json::to_vec(&compact_body(&catalog, view_doc))?
        } else {
            serde_json::to_vec(&open_cli_config::wire::EffectiveCatalog {
                catalog,
                view: view_doc,
                compact: None,
            })?
        };
        let rendered = Rendered::new(body)?;
        cache.insert(key, rendered.clone());
        Ok(rendered)
    }

    /// The compact `{catalog, view, compact}` body of a view for every caller (no envelope),
    /// rendered on first use.
    pub fn effective_compact(&self, view: &str) -> Option<std::io::Result<Rendered>> {
        let doc = self
            .catalog
            .effective_views
            .iter()
            .find(|v| v.name == view)?;
        let cell = self.compact.get(view)?;
        if let Some(r) = cell.get() {
            return Some(Ok(r.clone()));
        }
        let rendered = serde_json::to_vec(&compact_body(&self.catalog, doc.clone()))
            .map_err(std::io::Error::other)
            .and_then(Rendered::new);
        Some(rendered.map(|r| cell.get_or_init(|| r).clone()))
    }

    pub fn new(
        catalog: Catalog,
        mode_default: ModeKind,
        default_profile: Option<String>,
    ) -> std::io::Result<Self> {
        let catalog_json = serde_json::to_vec(&catalog)?;
        let content = catalog_digest(&catalog, &catalog_json);
        let mut effective = BTreeMap::new();
        for view in &catalog.effective_views {
            let view_json = serde_json::to_vec(view)?;
            let mut body = Vec::with_capacity(catalog_json.len() + view_json.len() + 24);
            body.extend_from_slice(b"{\"catalog\":");
            body.extend_from_slice(&catalog_json);
            body.extend_from_slice(b",\"view\":");
            body.extend_from_slice(&view_json);
            body.push(b'}');
            effective.insert(view.name.clone(), Rendered::new(body)?);
        }
        let summary = CatalogSummary {
            generated_at: catalog.generated_at.clone(),
            source_fingerprint: catalog.source_fingerprint.clone(),
            services: catalog.services.len(),
            tools: catalog.tools.len(),
            views: catalog
                .effective_views
                .iter()
                .map(|v| v.name.clone())
                .collect(),
        };
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            content,
            catalog,
            deny: Vec::new(),
            envelopes: std::sync::Mutex::new(std::collections::HashMap::new()),
            compact: effective
                .keys()
                .map(|k| (k.clone(), std::sync::OnceLock::new()))
                .collect(),
            effective,
            mode_default,
            default_profile,
            summary,
            exec: crate::snapshot::index::ExecIndex::default(),
            config: std::sync::Arc::new(empty_config()),
            pass_through: Default::default(),
        })
    }

    /// Pick the view a request asks for (contract §2): an explicit `agentProfile` names its
    /// view; otherwise the mode (`mode` parameter, else `mode.default`) decides, and `curated`
    /// uses `agents.defaultProfile` when it has a view; else `discover`.
    ///
    /// Unlike the reference, an unknown profile or mode is an error rather than a silent
    /// fall-back to `discover`: an agent that asked for a narrow view must not get a wide one.
    pub fn select_view(
        &self,
        agent_profile: Option<&str>,
        mode: Option<&str>,
    ) -> Result<&str, ViewError> {
        if let Some(p) = agent_profile.filter(|p| !p.is_empty()) {
            return match self.effective.get_key_value(p) {
                Some((name, _)) if name != "discover" => Ok(name),
                _ => Err(ViewError::UnknownProfile(format!(
                    "agent profile `{p}` is not defined{}",
                    self.known_profiles()
                ))),
            };
        }
        let mode = match mode.filter(|m| !m.is_empty()) {
            None => self.mode_default,
            Some(m) => ModeKind::parse(m).ok_or_else(|| {
                ViewError::InvalidMode(format!("mode must be `discover` or `curated`, found `{m}`"))
            })?,
        };
        if mode == ModeKind::Curated
            && let Some(p) = &self.default_profile
            && let Some((name, _)) = self.effective.get_key_value(p.as_str())
        {
            return Ok(name);
        }
        Ok("discover")
    }

    pub fn effective_body(&self, view: &str) -> Option<&Rendered> {
        self.effective.get(view)
    }

    fn known_profiles(&self) -> String {
        let names: Vec<&str> = self
            .effective
            .keys()
            .map(String::as_str)
            .filter(|n| *n != "discover")
            .collect();
        if names.is_empty() {
            " (this runtime defines no agent profiles)".into()
        } else {
            format!(" (defined: {})", names.join(", "))
        }
    }
}

/// A config with nothing in it (snapshots built without one, in tests).
fn empty_config() -> open_cli_config::Config {
    open_cli_config::Config {
        cli: "1.0.0".into(),
        mode: open_cli_config::model::Mode {
            default: ModeKind::Discover,
        },
        runtime: None,
        sources: BTreeMap::new(),
        services: BTreeMap::new(),
        curation: Default::default(),
        agents: Default::default(),
        policy: Default::default(),
        secrets: BTreeMap::new(),
        managed_deny: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use open_cli_config::ntc::EffectiveView;

    fn snap(mode: ModeKind, default_profile: Option<&str>) -> Snapshot {
        let view = |name: &str| EffectiveView {
            name: name.into(),
            mode: "discover".into(),
            tools: vec![],
        };
        let catalog = Catalog {
            catalog_version: "1.0.0".into(),
            generated_at: "t".into(),
            source_fingerprint: "f".into(),
            sources: vec![],
            services: vec![],
            tools: vec![],
            workflows: vec![],
            effective_views: vec![view("discover"), view("sandbox")],
        };
        Snapshot::new(catalog, mode, default_profile.map(str::to_string)).unwrap()
    }

    #[test]
    fn selects_views_like_the_contract() {
        let s = snap(ModeKind::Discover, Some("sandbox"));
        assert_eq!(s.select_view(None, None), Ok("discover"));
        assert_eq!(s.select_view(Some("sandbox"), None), Ok("sandbox"));
        assert_eq!(s.select_view(None, Some("curated")), Ok("sandbox"));
        assert_eq!(s.select_view(None, Some("discover")), Ok("discover"));
        let curated = snap(ModeKind::Curated, Some("sandbox"));
        assert_eq!(curated.select_view(None, None), Ok("sandbox"));
        let no_default = snap(ModeKind::Curated, None);
        assert_eq!(no_default.select_view(None, None), Ok("discover"));
    }

    #[test]
    fn unknown_profiles_and_modes_are_errors() {
        let s = snap(ModeKind::Discover, None);
        let e = s.select_view(Some("nope"), None).unwrap_err();
        assert!(matches!(e, ViewError::UnknownProfile(_)), "{e:?}");
        assert_eq!(e.code(), "unknown_agent_profile");
        assert!(e.to_string().contains("defined: sandbox"), "{e}");
        assert!(matches!(
            s.select_view(Some("discover"), None),
            Err(ViewError::UnknownProfile(_))
        ));
        let e = s.select_view(None, Some("wide")).unwrap_err();
        assert!(matches!(e, ViewError::InvalidMode(_)), "{e:?}");
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn effective_bodies_are_the_wire_shape() {
        let s = snap(ModeKind::Discover, None);
        let body = s.effective_body("sandbox").unwrap();
        let v: open_cli_config::wire::EffectiveCatalog =
            serde_json::from_slice(&body.identity).unwrap();
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&body.gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, body.identity);
        assert_eq!(v.view.name, "sandbox");
        assert_eq!(v.catalog.effective_views.len(), 2);
    }

    #[test]
    fn the_content_digest_ignores_only_when_and_how_documents_were_read() {
        use crate::policy::scope::tests::catalog;
        use open_cli_config::ntc::{Fetch, Provenance, SourceEntry};
        // A catalog built at `at` from one fetched document, with the document's checksum.
        let built = |at: &str, fingerprint: &str| {
            let mut c = catalog();
            c.generated_at = at.into();
            c.source_fingerprint = fingerprint.into();
            c.sources = vec![SourceEntry {
                id: "demo".into(),
                kind: "openapi".into(),
                uri: "https://api.example/openapi.json".into(),
                provenance: Provenance {
                    method: "explicit".into(),
                    at: at.into(),
                    fetches: vec![Fetch {
                        url: "https://api.example/openapi.json".into(),
                        fetched_at: at.into(),
                        method: "explicit".into(),
                        request_method: Some("GET".into()),
                        status_code: Some(304),
                        cache_outcome: Some(format!("revalidated at {at}")),
                        etag: Some(format!("\"{at}\"")),
                        last_modified: None,
                        cache_control: None,
                        expires_at: Some(at.into()),
                        stale: false,
                    }],
                },
            }];
            c
        };
        let snap = |c: Catalog| Snapshot::new(c, ModeKind::Discover, None).unwrap();
        let a = snap(built("2026-12-06T10:00:00Z", "f1"));
        let b = snap(built("2026-12-06T11:30:00Z", "f1"));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.content(), b.content(), "a rebuild of the same catalog");
        assert_ne!(
            snap(built("2026-12-06T10:00:00Z", "f2")).content(),
            a.content(),
            "another document"
        );
        let mut c = built("2026-12-06T10:00:00Z", "f1");
        c.sources[0].uri = "https://api.example/v2/openapi.json".into();
        assert_ne!(snap(c).content(), a.content(), "another source");
        let mut c = built("2026-12-06T10:00:00Z", "f1");
        c.tools[0].summary = Some("changed".into());
        assert_ne!(snap(c).content(), a.content(), "a changed tool");
        let mut c = built("2026-12-06T10:00:00Z", "f1");
        c.effective_views.pop();
        assert_ne!(snap(c).content(), a.content(), "a view less");
        // Deny patterns filter every caller's view, so they are part of it: snapshots of
        // configs that differ only in `policy.deny` differ.
        let with_policy = |deny: &[&str]| {
            let doc = serde_json::json!({
                "cli": "1.0.0",
                "mode": {"default": "discover"},
                "runtime": {"mode": "remote"},
                "policy": {"deny": deny},
            });
            let cfg = open_cli_config::load::parse_str(
                &doc.to_string(),
                std::path::Path::new("t.cli.json"),
            )
            .unwrap();
            *Snapshot::for_config(built("2026-12-06T10:00:00Z", "f1"), &cfg)
                .unwrap()
                .content()
        };
        assert_eq!(with_policy(&["t:get"]), with_policy(&["t:get"]));
        assert_ne!(with_policy(&["t:get"]), with_policy(&[]));
        assert_ne!(with_policy(&["t:get"]), with_policy(&["t:list"]));
    }

    #[test]
    fn a_threads_remembered_envelope_is_per_caller_and_per_snapshot() {
        use crate::policy::scope::tests::catalog;
        let a = Snapshot::new(catalog(), ModeKind::Discover, None).unwrap();
        let mut b = Snapshot::new(catalog(), ModeKind::Discover, None).unwrap();
        b.deny = vec![crate::policy::glob::Pattern::new("t:get").unwrap()];
        let caller = |scopes: &[&str]| Caller {
            principal: Some(std::sync::Arc::new(crate::auth::Principal {
                subject: "s".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                lineage: None,
                token: None,
                issuer: None,
            })),
            client_cert: None,
        };
        let index = |snap: &Snapshot, id: &str| {
            ToolRef::at(snap.catalog.tools.iter().position(|x| x.id == id).unwrap())
        };
        let (t, p) = (caller(&["bundle:t"]), caller(&["bundle:p"]));
        // Twice: the second round is answered from the thread's remembered envelope.
        for _ in 0..2 {
            // The same answers as the envelope computed afresh, for every tool.
            for (snap, who) in [(&a, &t), (&a, &p), (&b, &t), (&b, &p)] {
                let scopes = &who.principal.as_ref().unwrap().scopes;
                let fresh = Envelope::compute(scopes, &snap.catalog, &snap.deny);
                for (i, tool) in snap.catalog.tools.iter().enumerate() {
                    assert_eq!(
                        snap.in_scope(who, ToolRef::at(i)),
                        fresh.allows(&tool.id),
                        "{} for {scopes:?}",
                        tool.id,
                    );
                }
                assert!(!snap.in_scope(who, ToolRef::at(snap.catalog.tools.len())));
            }
            assert!(a.in_scope(&t, index(&a, "t:get")));
            assert!(
                !a.in_scope(&p, index(&a, "t:get")),
                "another caller, other scopes"
            );
            assert!(a.in_scope(&p, index(&a, "p:list")));
            assert!(!a.in_scope(&t, index(&a, "p:list")));
            assert!(
                !b.in_scope(&t, index(&b, "t:get")),
                "another snapshot, its own deny list"
            );
            assert!(b.in_scope(&t, index(&b, "t:list")));
            assert!(a.in_scope(&t, index(&a, "t:get")));
            assert!(
                a.in_scope(&Caller::default(), index(&a, "t:get")),
                "auth off"
            );
        }
    }
}
