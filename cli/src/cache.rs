//! The local catalog cache: the last effective view per runtime, view and token, with its
//! `ETag`, so a tool command, `--help` or completion revalidates (`If-None-Match`, one small
//! round trip answered 304) instead of downloading and decoding the whole catalog again, and
//! `--offline` can work without the network.
//!
//! Where: `$OPEN_CLI_CACHE_DIR`, else `$XDG_CACHE_HOME/open-cli`, else `~/.cache/open-cli`;
//! one file per runtime URL, `config` binding and view under `catalogs/` (directory 0700,
//! files 0600: a catalog says what a token may call). The token is not stored, only a hash of
//! it: a cached view is revalidated only by the token it was fetched with (another token may
//! see other tools), and replaced by the next answer.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Files not read for this long are removed when another is written.
const KEEP: Duration = Duration::from_secs(14 * 24 * 3600);

/// One cached view: a first line of JSON (`etag`, `identity`), then the body as the runtime
/// sent it (decoded). The file's modification time is when the runtime last confirmed it.
#[derive(Debug)]
pub struct Entry {
    pub etag: String,
    /// A hash of the token it was fetched with (`""` without a token).
    pub identity: String,
    pub body: Vec<u8>,
    /// How long ago the runtime last confirmed it (the file's modification time).
    pub age: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    etag: String,
    identity: String,
}

pub fn dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("OPEN_CLI_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("open-cli")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/open-cli")))
}

/// The file of a runtime URL and query (view selection and `config` binding).
pub fn path(base: &str, query: &[(&str, &str)]) -> Option<PathBuf> {
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    for (k, v) in query {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    Some(
        dir()?
            .join("catalogs")
            .join(format!("{}.json", hex::encode(&h.finalize()[..16]))),
    )
}

pub fn identity(token: Option<&str>) -> String {
    token
        .map(|t| hex::encode(&Sha256::digest(t.as_bytes())[..16]))
        .unwrap_or_default()
}

pub fn load(path: &PathBuf) -> Option<Entry> {
    let bytes = std::fs::read(path).ok()?;
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    let split = bytes.iter().position(|b| *b == b'\n')?;
    let header: Header = serde_json::from_slice(&bytes[..split]).ok()?;
    let mut body = bytes;
    body.drain(..=split);
    Some(Entry {
        etag: header.etag,
        identity: header.identity,
        body,
        age,
    })
}

/// Write a view (atomically: a temporary file renamed over the old one; a cache needs no
/// fsync). Failing to cache is not an error of the command: the catalog was fetched.
pub fn store(path: &PathBuf, etag: &str, identity: &str, body: &[u8]) {
    let Some(parent) = path.parent() else { return };
    let _ = create_private_dir(parent);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = private_file(&tmp)?;
        let header = serde_json::to_vec(&Header {
            etag: etag.to_string(),
            identity: identity.to_string(),
        })?;
        f.write_all(&header)?;
        f.write_all(b"\n")?;
        f.write_all(body)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    prune(parent);
}

/// The runtime confirmed the cached view (a 304): now is its new age zero.
pub fn touch(path: &PathBuf) {
    if let Ok(f) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn prune(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > KEEP);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// "3 min", "2 h", "5 days": an age as people say it.
pub fn human(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}
