//! What execution needs to know about every tool, computed once per snapshot.
//!
//! Policy patterns (managed deny, `policy.deny`, `policy.approvalRequired`) are matched against
//! every tool when the catalog is built, so a request's policy decision is a few field reads;
//! views become membership sets; the pass-through route table maps `(alias, method, path)` to a
//! tool without scanning the catalog.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use open_cli_config::Config;
use open_cli_config::model::Upstream;
use open_cli_config::ntc::Catalog;

use crate::hash::Fnv;
use crate::policy::glob::Pattern;
use crate::policy::path::{UnsafePath, check_path, percent_decode};

/// One tool of one snapshot, obtained from that snapshot ([`ExecIndex::tool_index`],
/// [`ExecIndex::route`]) and used to reach its catalog entry ([`crate::snapshot::Snapshot::tool`]),
/// facts ([`ExecIndex::info`]), scope and view. Only the index makes one, so a tool is never
/// reached through an arbitrary number; it is valid for the snapshot it came from, which a
/// request holds throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolRef(u32);

impl ToolRef {
    /// The tool's position in its snapshot's `catalog.tools`.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// A reference to position `i`, for tests of code that takes one.
    #[cfg(test)]
    pub(crate) fn at(i: usize) -> Self {
        Self(i as u32)
    }
}

/// Per-tool facts, parallel to `catalog.tools`.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    pub managed_deny: bool,
    pub policy_deny: bool,
    /// `safety.requiresApproval` or a `policy.approvalRequired` match.
    pub approval: bool,
    /// The tool's first server (else its service's), when it is an absolute http(s) URL.
    pub base: Result<url::Url, String>,
    /// The pass-through's view of `base`, parsed once (`None` when `base` is an error).
    pub target: Option<Target>,
    /// Resolved upstream credentials, kept for the snapshot's life when they are fixed
    /// (literal and env secrets; see [`crate::credentials::Credentials::resolve_cached`]).
    pub creds: std::sync::OnceLock<Arc<crate::credentials::Applied>>,
    pub upstream: Arc<Upstream>,
    /// The tool's audit fields, pre-rendered ([`crate::audit::Event::tool_json`]).
    pub audit_json: String,
    /// Safe to send twice: GET/HEAD/OPTIONS/PUT/DELETE or `safety.idempotent`.
    pub idempotent: bool,
    pub mcp: bool,
}

/// Where a tool's upstream is, in the form the pass-through sends to: computed once per
/// snapshot so a proxied request formats and parses none of it.
#[derive(Debug, Clone)]
pub struct Target {
    pub tls: bool,
    /// Host name or IP literal (brackets removed), also the TLS server name.
    pub host: String,
    pub port: u16,
    /// Set when `host` is an IP literal (no resolution needed).
    pub ip: Option<std::net::IpAddr>,
    /// The upstream `Host` header: host, plus the port when it is not the scheme's default.
    pub authority: http::HeaderValue,
    /// The server URL's path without its trailing slash (`""` for `/`).
    pub base_path: String,
}

impl Target {
    fn new(base: &url::Url) -> Option<Self> {
        let tls = base.scheme() == "https";
        let host = base.host_str()?;
        let port = base.port_or_known_default()?;
        let authority = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Some(Self {
            tls,
            host: bare.to_string(),
            port,
            ip: bare.parse().ok(),
            authority: http::HeaderValue::from_str(&authority).ok()?,
            base_path: base.path().trim_end_matches('/').to_string(),
        })
    }
}

#[derive(Debug, Default)]
pub struct ExecIndex {
    // Looked up on every call with caller-chosen keys, never inserted into by a request:
    // FNV instead of SipHash (see `crate::hash`).
    by_id: HashMap<String, ToolRef, Fnv>,
    info: Vec<ToolInfo>,
    /// The tools of every view but `discover` (which holds every visible tool).
    views: HashMap<String, HashSet<ToolRef, Fnv>, Fnv>,
    routes: HashMap<String, Vec<Route>, Fnv>,
}

#[derive(Debug)]
struct Route {
    method: String,
    segments: Vec<Segment>,
    tool: ToolRef,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param,
}

/// Why a pass-through path cannot be matched.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Dot or empty segments, encoded slashes or backslashes, NUL: refused outright
    /// ([`check_path`]).
    Unsafe(UnsafePath),
    NoService,
    NoOperation,
}

impl ExecIndex {
    pub fn build(catalog: &Catalog, config: &Config) -> Self {
        let compile = |patterns: &[String]| -> Vec<Pattern> {
            patterns
                .iter()
                .filter_map(|p| Pattern::new(p).ok())
                .collect()
        };
        let managed = compile(&config.managed_deny);
        let deny = compile(&config.policy.deny);
        let approval = compile(&config.policy.approval_required);
        let mut upstreams: HashMap<&str, Arc<Upstream>> = HashMap::new();
        let mut index = Self::default();
        for (i, tool) in catalog.tools.iter().enumerate() {
            index.by_id.insert(tool.id.clone(), ToolRef(i as u32));
            let upstream = Arc::clone(
                upstreams
                    .entry(tool.service_id.as_str())
                    .or_insert_with(|| Arc::new(config.upstream(&tool.service_id))),
            );
            let service = catalog.services.iter().find(|s| s.id == tool.service_id);
            let server = tool
                .servers
                .first()
                .or_else(|| service.and_then(|s| s.servers.first()));
            let base = match server {
                None => Err(format!("tool `{}` has no server URL", tool.id)),
                Some(s) => match url::Url::parse(s) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
                    _ => Err(format!(
                        "tool `{}` has no absolute http(s) server URL (found `{s}`)",
                        tool.id
                    )),
                },
            };
            let mcp = tool.backend.as_ref().is_some_and(|b| b.kind == "mcp");
            let target = base.as_ref().ok().and_then(Target::new);
            let audit_json = crate::audit::tool_fragment(
                &tool.id,
                Some(&tool.service_id),
                base.as_ref().ok().map(url::Url::as_str),
                Some(&tool.method),
                Some(&tool.path),
            );
            index.info.push(ToolInfo {
                managed_deny: managed.iter().any(|p| p.matches(&tool.id)),
                policy_deny: deny.iter().any(|p| p.matches(&tool.id)),
                approval: tool.safety.requires_approval
                    || approval.iter().any(|p| p.matches(&tool.id)),
                base,
                target,
                creds: std::sync::OnceLock::new(),
                upstream,
                audit_json,
                idempotent: tool.safety.idempotent
                    || matches!(
                        tool.method.as_str(),
                        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"
                    ),
                mcp,
            });
            if !mcp && let Some(svc) = service {
                index
                    .routes
                    .entry(svc.alias.clone())
                    .or_default()
                    .push(Route {
                        method: tool.method.clone(),
                        segments: template(&tool.path),
                        tool: ToolRef(i as u32),
                    });
            }
        }
        for routes in index.routes.values_mut() {
            order_routes(routes);
        }
        for view in &catalog.effective_views {
            if view.name == "discover" {
                continue;
            }
            let members = view
                .tools
                .iter()
                .filter_map(|t| index.by_id.get(&t.id).copied())
                .collect();
            index.views.insert(view.name.clone(), members);
        }
        index
    }

    /// The tool with this ID.
    pub fn tool_index(&self, id: &str) -> Option<ToolRef> {
        self.by_id.get(id).copied()
    }

    /// The facts of a tool.
    pub fn info(&self, tool: ToolRef) -> &ToolInfo {
        &self.info[tool.index()]
    }

    /// Whether a view admits a tool (`discover` admits every tool).
    pub fn view_admits(&self, view: &str, tool: ToolRef) -> bool {
        self.views.get(view).is_none_or(|m| m.contains(&tool))
    }

    /// The tool a pass-through request names: `path` is the upstream path (after the alias),
    /// raw (percent-encoded) as received.
    pub fn route(&self, alias: &str, method: &str, path: &str) -> Result<ToolRef, RouteError> {
        check_path(path).map_err(RouteError::Unsafe)?;
        let routes = self.routes.get(alias).ok_or(RouteError::NoService)?;
        // Split lazily per candidate (no allocation; few routes share method and length), as
        // bytes: segments are short, and a `str` searcher costs more to set up than it scans.
        // `check_path` refused empty segments, so there is one leading `/` at most: what is
        // matched is exactly what is forwarded.
        let rest = path.strip_prefix('/').unwrap_or(path).as_bytes();
        let count = rest.iter().filter(|&&c| c == b'/').count() + 1;
        routes
            .iter()
            .find(|r| {
                r.method == method
                    && r.segments.len() == count
                    && r.segments
                        .iter()
                        .zip(rest.split(|&c| c == b'/'))
                        .all(|(t, s)| match t {
                            Segment::Param => !s.is_empty(),
                            Segment::Literal(l) if !s.contains(&b'%') => s == l.as_bytes(),
                            // Split at ASCII `/`, so each segment of the `str` is one too.
                            Segment::Literal(l) => {
                                std::str::from_utf8(s)
                                    .ok()
                                    .and_then(percent_decode)
                                    .as_deref()
                                    == Some(l.as_str())
                            }
                        })
            })
            .map(|r| r.tool)
            .ok_or(RouteError::NoOperation)
    }
}

fn template(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Param
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

/// The order in which a service's routes are tried: more literal segments first, so
/// `/items/search` beats `/items/{id}` (stable: otherwise document order). The test of route
/// matching calls this very function, so it fails if the order breaks.
fn order_routes(routes: &mut [Route]) {
    routes.sort_by_key(|r| {
        std::cmp::Reverse(
            r.segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count(),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(paths: &[(&str, &str)]) -> ExecIndex {
        let mut ix = ExecIndex::default();
        let routes = paths
            .iter()
            .enumerate()
            .map(|(i, (m, p))| Route {
                method: m.to_string(),
                segments: template(p),
                tool: ToolRef(i as u32),
            })
            .collect::<Vec<_>>();
        ix.routes.insert("demo".into(), routes);
        for r in ix.routes.values_mut() {
            order_routes(r);
        }
        ix
    }

    #[test]
    fn routes_match_templates_with_literals_first() {
        let ix = index(&[
            ("GET", "/items/{id}"),
            ("GET", "/items/search"),
            ("GET", "/items"),
            ("DELETE", "/items/{id}"),
        ]);
        assert_eq!(ix.route("demo", "GET", "/items/42"), Ok(ToolRef(0)));
        assert_eq!(ix.route("demo", "GET", "/items/search"), Ok(ToolRef(1)));
        assert_eq!(ix.route("demo", "GET", "/items"), Ok(ToolRef(2)));
        assert_eq!(ix.route("demo", "DELETE", "/items/7"), Ok(ToolRef(3)));
        assert_eq!(
            ix.route("demo", "POST", "/items/7"),
            Err(RouteError::NoOperation)
        );
        assert_eq!(
            ix.route("demo", "GET", "/items/"),
            Err(RouteError::NoOperation)
        );
        assert_eq!(
            ix.route("demo", "GET", "/other"),
            Err(RouteError::NoOperation)
        );
        assert_eq!(
            ix.route("nope", "GET", "/items"),
            Err(RouteError::NoService)
        );
        assert_eq!(ix.route("demo", "GET", "/%69tems"), Ok(ToolRef(2)));
    }

    #[test]
    fn a_trailing_slash_is_matched_as_it_is_forwarded() {
        let ix = index(&[("GET", "/items"), ("GET", "/files/")]);
        assert_eq!(ix.route("demo", "GET", "/items"), Ok(ToolRef(0)));
        assert_eq!(
            ix.route("demo", "GET", "/items/"),
            Err(RouteError::NoOperation)
        );
        assert_eq!(ix.route("demo", "GET", "/files/"), Ok(ToolRef(1)));
        assert_eq!(ix.route("demo", "GET", "/"), Err(RouteError::NoOperation));
    }

    #[test]
    fn traversal_is_refused() {
        let ix = index(&[("GET", "/items/{id}")]);
        for bad in [
            "/items/..",
            "/items/%2e%2e",
            "/items/%2E.",
            "/items/a%2Fb",
            "/items/a%5Cb",
            "/items/.",
            "/items/%zz",
            "/items/%00",
            "/items/a\\b",
            "/items/a\0b",
            "/../items/1",
            "..",
            // Dot segments with parameters, in any case of encoding, and look-alikes.
            "/items/..;",
            "/items/..;/admin",
            "/items/..;x=1",
            "/items/%2e%2e;",
            "/items/%2E%2e%3Bx",
            "/items/.;x",
            "/items/%EF%BC%8E%EF%BC%8E",
            "/items/%ef%bc%8e",
            "/items/\u{ff0e}\u{ff0e}",
            "/items/\u{2024}\u{2024}",
            "/items/\u{2025}",
            "/items/.\u{fe52}",
            "/items/\u{fe30};p",
            "/items/..\u{ff1b}x",
            // Look-alike slashes and backslashes.
            "/items/a%EF%BC%8Fb",
            "/items/a\u{ff0f}b",
            "/items/a\u{ff3c}b",
            "/items/c\u{2105}",
            // Empty segments, also disguised by parameters.
            "//items",
            "/items//1",
            "/items/;x",
            "/items/%3Bx",
        ] {
            assert!(
                matches!(ix.route("demo", "GET", bad), Err(RouteError::Unsafe(_))),
                "{bad}"
            );
        }
        // Dots inside or at the start of a longer segment are ordinary characters.
        for good in [
            "/items/a.b",
            "/items/.well-known",
            "/items/..x",
            "/items/x..",
            "/items/a;b",
            "/items/...",
            "/items/\u{2026}",
            "/items/\u{e9}t\u{e9}",
            "/items/%C3%A9",
            "/items/\u{2488}",
            "/items/a\u{2215}b",
        ] {
            assert!(ix.route("demo", "GET", good).is_ok(), "{good}");
        }
    }
}
