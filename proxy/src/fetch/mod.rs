//! Fetching the documents a catalog is built from: OpenAPI documents and their external
//! `$ref`s, overlays, skill manifests, workflows, linksets and service roots.
//!
//! Fetching is a trust boundary ([`DocumentRules`]): a remote document may reference only
//! documents of its own origin (plus `runtime.server.documents.allowedOrigins`) and never a
//! local file; local files are read only inside the config file's directory tree (plus
//! `runtime.server.documents.allowedDirectories`), only when they are regular files, and never
//! beyond [`MAX_DOCUMENT_BYTES`]; redirects are followed by hand, each hop checked against the
//! same origin rule. A refused fetch never falls back to a cached copy.
//!
//! `file://` URLs are read from disk. `http(s)://` URLs go through one shared HTTP client and
//! the on-disk [`cache`]: a fresh entry is served without a request (`fresh_hit`); otherwise a
//! conditional request revalidates it (`revalidated_hit` on 304, `refreshed` on 200, `miss`
//! the first time); when the network or the server fails and a copy exists it is served as
//! `stale_hit` (stale-on-error). `refresh.manualOnly` serves the cached copy until a forced
//! refresh (`POST /v1/refresh`, SIGHUP), which skips the freshness shortcuts but still
//! revalidates. Every HTTP fetch is recorded for the catalog's provenance.

pub mod cache;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use open_cli_config::model::DocumentAccess;
use open_cli_config::ntc::Fetch;
use url::{Origin, Url};

use cache::{Cache, Meta, now_secs};

use crate::error::error_chain;

/// Largest document accepted, to bound memory.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// Most redirects followed for one document.
pub const MAX_REDIRECTS: usize = 10;

/// Who names a document: the operator's config, or another (already fetched) document.
#[derive(Debug, Clone, Copy)]
pub enum Referrer<'a> {
    Config,
    Document(&'a Url),
}

/// What documents may reference (one decision for `$ref`s, discovery links and redirects).
#[derive(Debug, Clone, Default)]
pub struct DocumentRules {
    /// Origins any remote document may reference or redirect to, beyond its own.
    origins: Vec<Origin>,
    /// Canonical directories local documents are read from (the config file's directory
    /// first). Empty: no local file is read.
    dirs: Vec<PathBuf>,
}

impl DocumentRules {
    /// The rules of a config: its file's directory tree and `runtime.server.documents`.
    /// Problems name the setting (an origin that is not one, a directory that does not exist).
    pub fn from_config(base_dir: &Path, access: &DocumentAccess) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut origins = Vec::new();
        for (i, o) in access.allowed_origins.iter().enumerate() {
            match Url::parse(o) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => origins.push(u.origin()),
                _ => problems.push(format!(
                    "runtime.server.documents.allowedOrigins[{i}]: `{o}` is not an http(s) origin"
                )),
            }
        }
        let mut dirs = Vec::new();
        match std::fs::canonicalize(base_dir) {
            Ok(d) => dirs.push(d),
            Err(e) => problems.push(format!(
                "cannot resolve the config directory {}: {e}",
                base_dir.display()
            )),
        }
        for (i, d) in access.allowed_directories.iter().enumerate() {
            let path = base_dir.join(d);
            match std::fs::canonicalize(&path) {
                Ok(c) if c.is_dir() => dirs.push(c),
                Ok(_) => problems.push(format!(
                    "runtime.server.documents.allowedDirectories[{i}]: {} is not a directory",
                    path.display()
                )),
                Err(e) => problems.push(format!(
                    "runtime.server.documents.allowedDirectories[{i}]: cannot resolve {}: {e}",
                    path.display()
                )),
            }
        }
        if problems.is_empty() {
            Ok(Self { origins, dirs })
        } else {
            Err(problems)
        }
    }

    /// May `from` reference `target`? For a local file: the canonical path to read (symlinks
    /// resolved, so a link cannot lead out of the allowed directories).
    pub fn admit(&self, from: Referrer<'_>, target: &Url) -> Result<Option<PathBuf>, String> {
        let remote_from = match from {
            Referrer::Document(d) if is_remote(d) => Some(d),
            _ => None,
        };
        match target.scheme() {
            "file" => {
                if remote_from.is_some() {
                    return Err(
                        "refused: a remote document may not reference local files".to_string()
                    );
                }
                let path = target
                    .to_file_path()
                    .map_err(|()| format!("{target}: not a usable file path"))?;
                let canonical = std::fs::canonicalize(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if self.dirs.iter().any(|d| canonical.starts_with(d)) {
                    Ok(Some(canonical))
                } else {
                    Err(format!(
                        "refused: {} is outside the config file's directory{} and runtime.server.documents.allowedDirectories",
                        canonical.display(),
                        self.dirs
                            .first()
                            .map(|d| format!(" ({})", d.display()))
                            .unwrap_or_default()
                    ))
                }
            }
            "http" | "https" => match remote_from {
                Some(d) => self.check_origin(d, target).map(|()| None),
                None => Ok(None),
            },
            other => Err(format!("unsupported URL scheme `{other}`")),
        }
    }

    /// A remote document (or a redirect from `from`) may lead to its own origin or an allowed one.
    fn check_origin(&self, from: &Url, to: &Url) -> Result<(), String> {
        if !matches!(to.scheme(), "http" | "https") {
            return Err(format!(
                "refused: {to} is not an http(s) URL, and a remote document may lead only to http(s) documents"
            ));
        }
        let origin = to.origin();
        if origin == from.origin() || self.origins.contains(&origin) {
            Ok(())
        } else {
            Err(format!(
                "refused: origin {} differs from that of {from} and is not in runtime.server.documents.allowedOrigins",
                origin.ascii_serialization()
            ))
        }
    }
}

fn is_remote(u: &Url) -> bool {
    matches!(u.scheme(), "http" | "https")
}

/// Why a fetch failed: refused by the rules (never served from the cache instead) or failed.
enum Failure {
    Refused(String),
    Failed(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Self::Refused(m) | Self::Failed(m) => m,
        }
    }
}

/// Per-source refresh settings (`sources.<name>.refresh`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    pub max_age_seconds: Option<u64>,
    pub manual_only: bool,
}

/// A fetched document.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: Url,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// Raw `Link` header values.
    pub links: Vec<String>,
    /// Provenance of an HTTP fetch; `None` for local files.
    pub record: Option<Fetch>,
}

#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    /// Documents: redirects are not followed by the client but by [`Fetcher::send`].
    docs: reqwest::Client,
    cache: Option<Cache>,
    force: bool,
    rules: Arc<DocumentRules>,
}

impl Fetcher {
    /// The shared HTTP client (token endpoints, JWKS, MCP); documents use their own.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The same fetcher under a config's document rules.
    pub fn with_rules(&self, rules: DocumentRules) -> Self {
        Self {
            rules: Arc::new(rules),
            ..self.clone()
        }
    }

    pub fn rules(&self) -> &DocumentRules {
        &self.rules
    }

    /// `cache_dir`: where HTTP responses are cached; `None` keeps nothing between builds.
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("open-cli-toolbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let docs = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("open-cli-toolbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(Self {
            http,
            docs,
            cache: cache_dir.map(Cache::new),
            force: false,
            rules: Arc::new(DocumentRules::default()),
        })
    }

    /// The same fetcher, skipping freshness and manual-only shortcuts (still revalidating).
    pub fn forced(&self) -> Self {
        Self {
            force: true,
            ..self.clone()
        }
    }

    /// GET a document that `from` names, if the [`DocumentRules`] admit it. `provenance` is
    /// the discovery method recorded with the fetch (`explicit`, `rfc8631`, `rfc9727`).
    pub async fn get(
        &self,
        url: &Url,
        from: Referrer<'_>,
        accept: &str,
        policy: Policy,
        provenance: &str,
    ) -> Result<Fetched, String> {
        let local = self.rules.admit(from, url)?;
        match (url.scheme(), local) {
            ("file", Some(path)) => read_file(url, &path),
            ("http" | "https", _) => self.get_http(url, accept, policy, provenance).await,
            (other, _) => Err(format!("{url}: unsupported URL scheme `{other}`")),
        }
    }

    /// Status and `Link` headers of a HEAD request (not cached: service roots are cheap to ask).
    pub async fn head_links(
        &self,
        url: &Url,
        from: Referrer<'_>,
    ) -> Result<(u16, Vec<String>), String> {
        self.rules.admit(from, url)?;
        if !is_remote(url) {
            return Err(format!("{url}: a service root must be an http(s) URL"));
        }
        let (resp, _) = self
            .send(reqwest::Method::HEAD, url, &[])
            .await
            .map_err(Failure::message)?;
        Ok((
            resp.status().as_u16(),
            header_values(resp.headers(), "link"),
        ))
    }

    /// Send a request, following redirects by hand: each hop must stay on the origin of the
    /// hop before it or lead to an allowed origin, and there are at most [`MAX_REDIRECTS`].
    async fn send(
        &self,
        method: reqwest::Method,
        url: &Url,
        headers: &[(&str, String)],
    ) -> Result<(reqwest::Response, Vec<String>), Failure> {
        let mut current = url.clone();
        let mut hops = Vec::new();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.docs.request(method.clone(), current.clone());
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| Failure::Failed(format!("{method} {current}: {}", error_chain(&e))))?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let (true, Some(location)) = (
                status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED,
                location,
            ) else {
                return Ok((resp, hops));
            };
            let next = current.join(location).map_err(|e| {
                Failure::Failed(format!(
                    "{method} {url}: {current} redirects to `{location}`, which is not a URL: {e}"
                ))
            })?;
            self.rules.check_origin(&current, &next).map_err(|e| {
                Failure::Refused(format!(
                    "{method} {url}: the redirect from {current} to {next} is {e}"
                ))
            })?;
            hops.push(next.to_string());
            current = next;
        }
        Err(Failure::Failed(format!(
            "{method} {url}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    async fn get_http(
        &self,
        url: &Url,
        accept: &str,
        policy: Policy,
        provenance: &str,
    ) -> Result<Fetched, String> {
        let key = format!("GET {url} {accept}");
        let cached = self.cache.as_ref().and_then(|c| c.get(&key));
        // A copy reached through redirects is served only while every hop is still allowed
        // (the rules may have narrowed since it was cached).
        if let Some((meta, _)) = &cached {
            let mut prev = url.clone();
            for hop in &meta.redirects {
                let next = Url::parse(hop)
                    .map_err(|e| format!("GET {url}: cached redirect to `{hop}`: {e}"))?;
                self.rules.check_origin(&prev, &next).map_err(|e| {
                    format!("GET {url}: the (cached) redirect from {prev} to {next} is {e}")
                })?;
                prev = next;
            }
        }
        let now = now_secs();
        if let Some((meta, body)) = &cached
            && !self.force
        {
            let fresh = meta.expires_at.is_some_and(|e| e > now);
            if fresh || policy.manual_only {
                let outcome = if fresh { "fresh_hit" } else { "stale_hit" };
                return Ok(from_cache(
                    url,
                    meta,
                    body.clone(),
                    outcome,
                    !fresh,
                    provenance,
                ));
            }
        }
        let mut headers = vec![("accept", accept.to_string())];
        if let Some((meta, _)) = &cached {
            if let Some(etag) = &meta.etag {
                headers.push(("if-none-match", etag.clone()));
            }
            if let Some(lm) = &meta.last_modified {
                headers.push(("if-modified-since", lm.clone()));
            }
        }
        let result = match self.send(reqwest::Method::GET, url, &headers).await {
            Ok(answer) => self
                .handle_response(url, &key, answer, cached.as_ref(), policy, provenance)
                .await
                .map_err(Failure::Failed),
            Err(e) => Err(e),
        };
        match (result, cached) {
            (Ok(f), _) => Ok(f),
            (Err(Failure::Refused(e)), _) => Err(e),
            (Err(Failure::Failed(e)), Some((meta, body))) => {
                tracing::warn!(url = %url, error = %e, "serving a stale cached copy");
                Ok(from_cache(url, &meta, body, "stale_hit", true, provenance))
            }
            (Err(e), None) => Err(e.message()),
        }
    }

    async fn handle_response(
        &self,
        url: &Url,
        key: &str,
        (mut resp, redirects): (reqwest::Response, Vec<String>),
        cached: Option<&(Meta, Vec<u8>)>,
        policy: Policy,
        provenance: &str,
    ) -> Result<Fetched, String> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let now = now_secs();
        if status == 304
            && let Some((old, body)) = cached
        {
            let mut meta = old.clone();
            meta.redirects = redirects;
            meta.cache_control = header("cache-control").or(meta.cache_control);
            meta.etag = header("etag").or(meta.etag);
            meta.expires_at =
                cache::expiry(meta.cache_control.as_deref(), policy.max_age_seconds, now);
            if let Some(c) = &self.cache
                && let Err(e) = c.put_meta(&meta)
            {
                tracing::warn!(url = %url, error = %e, "cannot update the cache entry");
            }
            return Ok(from_cache(
                url,
                &meta,
                body.clone(),
                "revalidated_hit",
                false,
                provenance,
            ));
        }
        if !(200..300).contains(&status) {
            return Err(format!("GET {url}: the server answered HTTP {status}"));
        }
        // Counted while streaming; a declared length only lets an oversized answer fail early.
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!(
                "GET {url}: the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: the document is larger than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let cache_control = header("cache-control");
        let meta = Meta {
            key: key.to_string(),
            url: url.to_string(),
            etag: header("etag"),
            last_modified: header("last-modified"),
            expires_at: cache::expiry(cache_control.as_deref(), policy.max_age_seconds, now),
            cache_control,
            content_type: header("content-type"),
            links: header_values(&headers, "link"),
            redirects,
            status_code: status,
            cached_at: now,
        };
        if let Some(c) = &self.cache
            && let Err(e) = c.put(&meta, &body)
        {
            tracing::warn!(url = %url, error = %e, "cannot write the cache entry");
        }
        let outcome = if cached.is_some() {
            "refreshed"
        } else {
            "miss"
        };
        Ok(from_cache(url, &meta, body, outcome, false, provenance))
    }
}

fn from_cache(
    url: &Url,
    meta: &Meta,
    body: Vec<u8>,
    outcome: &str,
    stale: bool,
    provenance: &str,
) -> Fetched {
    Fetched {
        url: url.clone(),
        body,
        content_type: meta.content_type.clone(),
        links: meta.links.clone(),
        record: Some(Fetch {
            url: url.to_string(),
            fetched_at: crate::clock::now_rfc3339(),
            method: provenance.to_string(),
            request_method: Some("GET".into()),
            status_code: Some(meta.status_code),
            cache_outcome: Some(outcome.to_string()),
            etag: meta.etag.clone(),
            last_modified: meta.last_modified.clone(),
            cache_control: meta.cache_control.clone(),
            expires_at: meta.expires_at.map(rfc3339),
            stale,
        }),
    }
}

/// Read a local document: only a regular file, never more than [`MAX_DOCUMENT_BYTES`]
/// ([`open_cli_config::files::read_regular`]: opened non-blocking so a FIFO cannot hold the
/// open, the bound enforced while reading, so a file that grows or a device cannot exceed it).
fn read_file(url: &Url, path: &Path) -> Result<Fetched, String> {
    use open_cli_config::files::{ReadError, read_regular};
    let body = read_regular(path, MAX_DOCUMENT_BYTES as u64).map_err(|e| match e {
        ReadError::TooLarge(_) => format!(
            "{}: the document is larger than {MAX_DOCUMENT_BYTES} bytes",
            path.display()
        ),
        e => format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(Fetched {
        url: url.clone(),
        body,
        content_type: None,
        links: Vec::new(),
        record: None,
    })
}

fn header_values(headers: &reqwest::header::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Resolve a document reference from the config: `http(s)://` and `file://` URLs as they are,
/// anything else as a path relative to `base_dir`.
pub fn resolve_location(uri: &str, base_dir: &Path) -> Result<Url, String> {
    if uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file://") {
        return Url::parse(uri).map_err(|e| format!("`{uri}` is not a valid URL: {e}"));
    }
    let p = Path::new(uri);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    };
    let abs = open_cli_config::load::normalize(&abs);
    Url::from_file_path(&abs).map_err(|()| format!("`{}` is not a usable file path", abs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn remote_documents_reach_only_their_origin_and_allowed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let rules = DocumentRules::from_config(
            dir.path(),
            &DocumentAccess {
                allowed_origins: vec!["http://specs.example:8080/".into()],
                allowed_directories: vec![],
            },
        )
        .unwrap();
        let doc = u("http://a.example/api/openapi.yaml");
        let from = Referrer::Document(&doc);
        assert!(rules.admit(from, &u("http://a.example:80/x.yaml")).is_ok());
        assert!(rules.admit(from, &u("http://specs.example:8080/s")).is_ok());
        for refused in [
            "http://127.0.0.1:9000/internal",
            "https://a.example/x.yaml",
            "http://specs.example/s",
        ] {
            let e = rules.admit(from, &u(refused)).unwrap_err();
            assert!(e.contains("allowedOrigins"), "{refused}: {e}");
        }
        let e = rules.admit(from, &u("file:///etc/passwd")).unwrap_err();
        assert!(e.contains("may not reference local files"), "{e}");
        // The config names any origin; redirects follow the origin rule.
        assert!(
            rules
                .admit(Referrer::Config, &u("http://127.0.0.1:1/x"))
                .is_ok()
        );
        assert!(
            rules
                .check_origin(&doc, &u("ftp://a.example/x"))
                .unwrap_err()
                .contains("not an http(s) URL")
        );
    }

    #[test]
    fn local_files_only_inside_the_allowed_directories_and_only_regular_ones() {
        let cfg = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(cfg.path().join("in.yaml"), "a: 1").unwrap();
        std::fs::write(other.path().join("out.yaml"), "a: 2").unwrap();
        std::os::unix::fs::symlink(other.path().join("out.yaml"), cfg.path().join("link.yaml"))
            .unwrap();
        let rules = DocumentRules::from_config(cfg.path(), &DocumentAccess::default()).unwrap();
        let file = |p: &Path| Url::from_file_path(p).unwrap();
        let inside = file(&cfg.path().join("in.yaml"));
        let path = rules.admit(Referrer::Config, &inside).unwrap().unwrap();
        assert_eq!(read_file(&inside, &path).unwrap().body, b"a: 1");
        for outside in [other.path().join("out.yaml"), cfg.path().join("link.yaml")] {
            let e = rules
                .admit(Referrer::Document(&inside), &file(&outside))
                .unwrap_err();
            assert!(e.contains("outside the config file's directory"), "{e}");
        }
        let e = read_file(&file(Path::new("/dev/zero")), Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("it is a device"), "{e}");
        let e = read_file(&inside, cfg.path()).unwrap_err();
        assert!(e.contains("it is a directory"), "{e}");
        let e = DocumentRules::from_config(
            cfg.path(),
            &DocumentAccess {
                allowed_origins: vec![],
                allowed_directories: vec!["missing".into()],
            },
        )
        .unwrap_err();
        assert!(
            e[0].starts_with("runtime.server.documents.allowedDirectories[0]: cannot resolve"),
            "{e:?}"
        );
    }
}
