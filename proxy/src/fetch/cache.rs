//! On-disk HTTP document cache (contract §7).
//!
//! One entry per `GET <url> <accept>`: `<sha256(key)>.json` holds the metadata, `.body` the
//! bytes; both are written atomically (temp file + rename). A corrupt entry is deleted and
//! treated as absent.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub key: String,
    pub url: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// `Link` headers of the response (service roots advertise documents with them).
    #[serde(default)]
    pub links: Vec<String>,
    /// The URLs redirected to on the way to this answer, in order (re-checked on every use).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<String>,
    pub status_code: u16,
    /// Seconds since the Unix epoch.
    pub cached_at: u64,
    /// Fresh until (seconds since the epoch); `None` = always revalidate.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Cache {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let h = hex::encode(Sha256::digest(key.as_bytes()));
        (
            self.dir.join(format!("{h}.json")),
            self.dir.join(format!("{h}.body")),
        )
    }

    pub fn get(&self, key: &str) -> Option<(Meta, Vec<u8>)> {
        let (meta_path, body_path) = self.paths(key);
        let meta = std::fs::read(&meta_path).ok()?;
        let parsed = serde_json::from_slice::<Meta>(&meta)
            .ok()
            .filter(|m| m.key == key)
            .and_then(|m| std::fs::read(&body_path).ok().map(|b| (m, b)));
        if parsed.is_none() {
            tracing::warn!(path = %meta_path.display(), "dropping a corrupt cache entry");
            let _ = std::fs::remove_file(&meta_path);
            let _ = std::fs::remove_file(&body_path);
        }
        parsed
    }

    pub fn put(&self, meta: &Meta, body: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let (meta_path, body_path) = self.paths(&meta.key);
        write_atomic(&body_path, body)?;
        write_atomic(&meta_path, &serde_json::to_vec_pretty(meta)?)
    }

    pub fn put_meta(&self, meta: &Meta) -> std::io::Result<()> {
        let (meta_path, _) = self.paths(&meta.key);
        write_atomic(&meta_path, &serde_json::to_vec_pretty(meta)?)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// When a response stops being fresh: `Cache-Control: max-age` (`no-store`/`no-cache` mean
/// never fresh), else the source's `refresh.maxAgeSeconds`, else never (always revalidate).
pub fn expiry(cache_control: Option<&str>, max_age_config: Option<u64>, now: u64) -> Option<u64> {
    if let Some(cc) = cache_control {
        let directives: Vec<String> = cc
            .split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        if directives
            .iter()
            .any(|d| d == "no-store" || d == "no-cache")
        {
            return None;
        }
        if let Some(age) = directives.iter().find_map(|d| {
            d.strip_prefix("max-age=")
                .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
        }) {
            return Some(now + age);
        }
    }
    max_age_config.map(|a| now + a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_prefers_cache_control_then_config() {
        assert_eq!(expiry(Some("public, max-age=60"), Some(5), 100), Some(160));
        assert_eq!(expiry(Some("no-cache"), Some(5), 100), None);
        assert_eq!(expiry(Some("public"), Some(5), 100), Some(105));
        assert_eq!(expiry(None, None, 100), None);
    }

    #[test]
    fn entries_round_trip_and_corrupt_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let meta = Meta {
            key: "GET http://x/a".into(),
            url: "http://x/a".into(),
            etag: Some("\"1\"".into()),
            last_modified: None,
            cache_control: None,
            content_type: None,
            links: vec![],
            redirects: vec![],
            status_code: 200,
            cached_at: 1,
            expires_at: None,
        };
        cache.put(&meta, b"body").unwrap();
        assert_eq!(cache.get(&meta.key), Some((meta.clone(), b"body".to_vec())));
        let (meta_path, _) = cache.paths(&meta.key);
        std::fs::write(&meta_path, b"{not json").unwrap();
        assert_eq!(cache.get(&meta.key), None);
        assert!(!meta_path.exists());
    }
}
