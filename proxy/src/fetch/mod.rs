//! Fetching the documents a catalog is built from: OpenAPI documents and their external
//! `$ref`s, overlays, skill manifests, workflows, linksets and service roots.
//!
//! `file://` URLs are read from disk. `http(s)://` URLs go through one shared HTTP client and
//! the on-disk [`cache`]: a fresh entry is served without a request (`fresh_hit`); otherwise a
//! conditional request revalidates it (`revalidated_hit` on 304, `refreshed` on 200, `miss`
//! the first time); when the network or the server fails and a copy exists it is served as
//! `stale_hit` (stale-on-error). `refresh.manualOnly` serves the cached copy until a forced
//! refresh (`POST /v1/refresh`, SIGHUP), which skips the freshness shortcuts but still
//! revalidates. Every HTTP fetch is recorded for the catalog's provenance.

pub mod cache;

use std::path::Path;
use std::time::Duration;

use open_cli_config::ntc::Fetch;
use url::Url;

use cache::{Cache, Meta, now_secs};

/// Largest document accepted, to bound memory.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

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
    cache: Option<Cache>,
    force: bool,
}

impl Fetcher {
    /// The shared HTTP client (documents, token endpoints, discovery).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `cache_dir`: where HTTP responses are cached; `None` keeps nothing between builds.
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("open-cli-toolbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(Self {
            http,
            cache: cache_dir.map(Cache::new),
            force: false,
        })
    }

    /// The same fetcher, skipping freshness and manual-only shortcuts (still revalidating).
    pub fn forced(&self) -> Self {
        Self {
            force: true,
            ..self.clone()
        }
    }

    /// GET a document. `provenance` is the discovery method recorded with the fetch
    /// (`explicit`, `rfc8631`, `rfc9727`).
    pub async fn get(
        &self,
        url: &Url,
        accept: &str,
        policy: Policy,
        provenance: &str,
    ) -> Result<Fetched, String> {
        match url.scheme() {
            "file" => read_file(url),
            "http" | "https" => self.get_http(url, accept, policy, provenance).await,
            other => Err(format!("{url}: unsupported URL scheme `{other}`")),
        }
    }

    /// Status and `Link` headers of a HEAD request (not cached: service roots are cheap to ask).
    pub async fn head_links(&self, url: &Url) -> Result<(u16, Vec<String>), String> {
        let resp = self
            .http
            .head(url.clone())
            .send()
            .await
            .map_err(|e| format!("HEAD {url}: {}", error_chain(&e)))?;
        Ok((
            resp.status().as_u16(),
            header_values(resp.headers(), "link"),
        ))
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
        let mut req = self.http.get(url.clone()).header("accept", accept);
        if let Some((meta, _)) = &cached {
            if let Some(etag) = &meta.etag {
                req = req.header("if-none-match", etag);
            }
            if let Some(lm) = &meta.last_modified {
                req = req.header("if-modified-since", lm);
            }
        }
        let result = match req.send().await {
            Ok(resp) => {
                self.handle_response(url, &key, resp, cached.as_ref(), policy, provenance)
                    .await
            }
            Err(e) => Err(format!("GET {url}: {}", error_chain(&e))),
        };
        match (result, cached) {
            (Ok(f), _) => Ok(f),
            (Err(e), Some((meta, body))) => {
                tracing::warn!(url = %url, error = %e, "serving a stale cached copy");
                Ok(from_cache(url, &meta, body, "stale_hit", true, provenance))
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn handle_response(
        &self,
        url: &Url,
        key: &str,
        mut resp: reqwest::Response,
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
            fetched_at: crate::catalog::now_rfc3339(),
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

fn read_file(url: &Url) -> Result<Fetched, String> {
    let path = url
        .to_file_path()
        .map_err(|()| format!("{url}: not a usable file path"))?;
    let meta =
        std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_DOCUMENT_BYTES as u64 {
        return Err(format!(
            "{}: the document is larger than {MAX_DOCUMENT_BYTES} bytes",
            path.display()
        ));
    }
    let body = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
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

/// `a: b: c` from an error and its sources, without repeats.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
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
