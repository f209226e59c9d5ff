//! Where an instance keeps its files, and the `runtime.json` operators read.
//!
//! Layout (contract §7): state root = `--state-dir`, else `$XDG_STATE_HOME/open-cli`, else
//! `~/.local/state/open-cli`; instance dir `<root>/instances/<id>` holding `audit.log` and
//! `runtime.json`; HTTP cache under `<root>/cache/instances/<id>/http` when `--state-dir` is
//! given, else `$XDG_CACHE_HOME/open-cli/instances/<id>/http`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::slug::slug;

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub audit_path: PathBuf,
    pub runtime_json: PathBuf,
}

impl Instance {
    /// Resolve the instance's paths. Nothing is created.
    pub fn resolve(
        instance_id: Option<&str>,
        state_root: Option<&Path>,
        config_path: &Path,
    ) -> Result<Self, String> {
        let id = match instance_id {
            Some(raw) => {
                let s = slug(raw);
                if s.is_empty() {
                    return Err(format!(
                        "--instance-id `{raw}` has no letters or digits; use something like `team-api`"
                    ));
                }
                s
            }
            None => derived_id(config_path),
        };
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = || {
            env_dir("HOME")
                .ok_or("cannot locate a state directory: HOME is not set; pass --state-dir")
        };
        let (root, cache_root) = match state_root {
            Some(root) => (root.to_path_buf(), root.join("cache")),
            None => {
                let root = match env_dir("XDG_STATE_HOME") {
                    Some(d) => d.join("open-cli"),
                    None => home()?.join(".local/state/open-cli"),
                };
                let cache = match env_dir("XDG_CACHE_HOME") {
                    Some(d) => d.join("open-cli"),
                    None => home()?.join(".cache/open-cli"),
                };
                (root, cache)
            }
        };
        let state_dir = root.join("instances").join(&id);
        Ok(Self {
            audit_path: state_dir.join("audit.log"),
            runtime_json: state_dir.join("runtime.json"),
            cache_dir: cache_root.join("instances").join(&id).join("http"),
            state_dir,
            id,
        })
    }

    /// Create the instance directory, private to the user running the runtime.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.state_dir)
    }

    /// Write `runtime.json` atomically (temp file + rename).
    pub fn write_runtime_json(&self, url: &str) -> std::io::Result<()> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct RuntimeJson<'a> {
            instance_id: &'a str,
            url: &'a str,
            pid: u32,
            audit_path: &'a Path,
            cache_dir: &'a Path,
        }
        let body = serde_json::to_vec_pretty(&RuntimeJson {
            instance_id: &self.id,
            url,
            pid: std::process::id(),
            audit_path: &self.audit_path,
            cache_dir: &self.cache_dir,
        })?;
        let tmp = self.runtime_json.with_extension("json.tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &self.runtime_json)
    }

    /// Remove `runtime.json` if it is still this process's (after a binary upgrade it names
    /// the successor, which keeps it).
    pub fn remove_runtime_json(&self) {
        let pid = std::fs::read(&self.runtime_json)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["pid"].as_u64());
        if pid.is_some_and(|p| p != u64::from(std::process::id())) {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.runtime_json)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.runtime_json.display(), error = %e, "could not remove runtime.json");
        }
    }
}

/// `<slug of the config's directory>-<first 10 hex of sha256(absolute config path)>`.
fn derived_id(config_path: &Path) -> String {
    let dir = config_path
        .parent()
        .and_then(Path::file_name)
        .map(|n| slug(&n.to_string_lossy()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let digest = hex::encode(Sha256::digest(config_path.to_string_lossy().as_bytes()));
    format!("{dir}-{}", &digest[..10])
}

/// Replace `path` with `bytes`, owner-only and atomically: written to `tmp` (mode 0600),
/// synced, then renamed over `path`, so a reader or a crash sees the old file or the new one,
/// never a part. (Persisted OAuth tokens, the audit export's position.)
pub fn replace_private(path: &Path, tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_ids_are_slugged_and_paths_follow_the_state_root() {
        let i = Instance::resolve(
            Some("Team API"),
            Some(Path::new("/s")),
            Path::new("/p/.cli.json"),
        )
        .unwrap();
        assert_eq!(i.id, "team-api");
        assert_eq!(i.state_dir, Path::new("/s/instances/team-api"));
        assert_eq!(
            i.runtime_json,
            Path::new("/s/instances/team-api/runtime.json")
        );
        assert_eq!(i.audit_path, Path::new("/s/instances/team-api/audit.log"));
        assert_eq!(i.cache_dir, Path::new("/s/cache/instances/team-api/http"));
        assert!(Instance::resolve(Some("!!"), Some(Path::new("/s")), Path::new("/p/x")).is_err());
    }

    #[test]
    fn derived_ids_are_stable_per_config_path() {
        let a = derived_id(Path::new("/work/my-proj/.cli.json"));
        assert!(
            a.starts_with("my-proj-") && a.len() == "my-proj-".len() + 10,
            "{a}"
        );
        assert_eq!(a, derived_id(Path::new("/work/my-proj/.cli.json")));
        assert_ne!(a, derived_id(Path::new("/other/my-proj/.cli.json")));
    }
}
