//! Secret values, resolved per call and failing closed: the one resolver of the runtime
//! ([`SecretStore`]), for upstream credentials, OAuth clients, MCP `headerSecrets` and the
//! introspection client.
//!
//! `literal` and `env` are read on every call (cheap; an env change needs a restart anyway).
//! `file` values are cached for [`FILE_TTL`] so a rotated file is picked up within seconds
//! without a read per request; `exec` values (only with `policy.allowExecSecrets`) run the
//! command with no shell, no stdin and a [`EXEC_TIMEOUT`], take trimmed stdout, and are cached
//! for [`EXEC_TTL`]. Errors name the secret key, never its value.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use open_cli_config::Config;
use open_cli_config::model::{Secret, SecretRef, SecretType};

pub const FILE_TTL: Duration = Duration::from_secs(5);
pub const EXEC_TTL: Duration = Duration::from_secs(60);
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(5);

/// The runtime's one secret resolver: upstream credentials, OAuth client IDs and secrets,
/// MCP `headerSecrets` and the introspection client's credentials all resolve here, with the
/// same rules. Its `Debug` shows how many values are cached, never a value.
#[derive(Default)]
pub struct SecretStore {
    cache: parking_lot::Mutex<HashMap<CacheKey, (Arc<str>, Instant)>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("cached", &self.cache.lock().len())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    kind: SecretType,
    value: Option<String>,
    command: Vec<String>,
}

impl SecretStore {
    /// The value of `secrets.<key>` (a plain reference, not an OAuth client) for the caller
    /// `principal` (the token's subject; `None` without runtime auth): a `byPrincipal` secret
    /// gives the caller's own entry, else its `default`, else an error naming the caller.
    pub async fn value(
        &self,
        config: &Config,
        key: &str,
        principal: Option<&str>,
    ) -> Result<Arc<str>, String> {
        let allow = config.policy.allow_exec_secrets;
        match config.secrets.get(key) {
            Some(Secret::Ref(r)) => self
                .resolve(r, allow)
                .await
                .map_err(|e| format!("secret `{key}`: {e}")),
            Some(Secret::ByPrincipal(b)) => {
                let Some(who) = principal else {
                    return Err(format!(
                        "secret `{key}` holds one value per principal, and this call has no authenticated caller"
                    ));
                };
                let r = b
                    .principals
                    .get(who)
                    .or(b.default.as_ref())
                    .ok_or_else(|| {
                        format!(
                            "secret `{key}` has no entry for principal `{who}` and no `default`"
                        )
                    })?;
                self.resolve(r, allow)
                    .await
                    .map_err(|e| format!("secret `{key}` (principal `{who}`): {e}"))
            }
            Some(Secret::OAuth2(_)) => {
                Err(format!("secret `{key}` is an oauth2 client, not a value"))
            }
            None => Err(format!("secret `{key}` is not defined")),
        }
    }

    /// Resolve one reference (also used for OAuth client IDs and secrets).
    pub async fn resolve(&self, r: &SecretRef, allow_exec: bool) -> Result<Arc<str>, String> {
        let ttl = match r.kind {
            SecretType::Literal | SecretType::Env => None,
            SecretType::File => Some(FILE_TTL),
            SecretType::Exec => Some(EXEC_TTL),
            SecretType::OsKeychain => {
                return Err("`osKeychain` secrets are not available to a server runtime; use `env`, `file` or `exec`".into());
            }
        };
        let Some(ttl) = ttl else {
            return open_cli_config::secrets::resolve(r, allow_exec).map(Arc::from);
        };
        let key = CacheKey {
            kind: r.kind,
            value: r.value.clone(),
            command: r.command.clone(),
        };
        if let Some((v, at)) = self.cache.lock().get(&key)
            && at.elapsed() < ttl
        {
            return Ok(Arc::clone(v));
        }
        let value: Arc<str> = match r.kind {
            SecretType::Exec => Arc::from(run_exec(r, allow_exec).await?),
            _ => Arc::from(open_cli_config::secrets::resolve(r, allow_exec)?),
        };
        self.cache
            .lock()
            .insert(key, (Arc::clone(&value), Instant::now()));
        Ok(value)
    }
}

async fn run_exec(r: &SecretRef, allow_exec: bool) -> Result<String, String> {
    if !allow_exec {
        return Err(
            "exec secrets are disabled; set `policy.allowExecSecrets: true` to allow them".into(),
        );
    }
    let argv: Vec<String> = if r.command.is_empty() {
        r.value.iter().cloned().collect()
    } else {
        r.command.clone()
    };
    let Some((program, args)) = argv.split_first() else {
        return Err("exec secret has no `command`".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let out = tokio::time::timeout(EXEC_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("`{program}` did not finish within {EXEC_TIMEOUT:?}"))?
        .map_err(|e| format!("`{program}` failed: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{program}` exited with {}", out.status));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| format!("`{program}` printed something that is not UTF-8"))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(format!("`{program}` printed nothing"));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &[&str]) -> SecretRef {
        SecretRef {
            kind: SecretType::Exec,
            value: None,
            command: command.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A `byPrincipal` secret gives each caller its own value, else `default`, else an
    /// error naming the caller; never another caller's value.
    #[tokio::test]
    async fn by_principal_secrets_are_each_callers_own() {
        let config = |default: bool| {
            let mut v = serde_json::json!({"cli": "1", "mode": {"default": "discover"}, "runtime": {},
                "secrets": {"k": {"type": "byPrincipal", "principals": {
                    "alice": {"type": "literal", "value": "key-a"},
                    "bob": {"type": "literal", "value": "key-b"}}}}});
            if default {
                v["secrets"]["k"]["default"] =
                    serde_json::json!({"type": "literal", "value": "key-d"});
            }
            open_cli_config::load::parse_str(&v.to_string(), std::path::Path::new("/x/.cli.json"))
                .unwrap()
        };
        let store = SecretStore::default();
        let (plain, with_default) = (config(false), config(true));
        assert_eq!(
            &*store.value(&plain, "k", Some("alice")).await.unwrap(),
            "key-a"
        );
        assert_eq!(
            &*store.value(&plain, "k", Some("bob")).await.unwrap(),
            "key-b"
        );
        let e = store.value(&plain, "k", Some("carol")).await.unwrap_err();
        assert_eq!(
            e,
            "secret `k` has no entry for principal `carol` and no `default`"
        );
        let e = store.value(&plain, "k", None).await.unwrap_err();
        assert!(e.contains("no authenticated caller"), "{e}");
        assert_eq!(
            &*store
                .value(&with_default, "k", Some("carol"))
                .await
                .unwrap(),
            "key-d"
        );
        assert_eq!(
            &*store.value(&with_default, "k", Some("bob")).await.unwrap(),
            "key-b"
        );
    }

    #[tokio::test]
    async fn exec_secrets_run_trimmed_bounded_and_opt_in() {
        let store = SecretStore::default();
        let v = store
            .resolve(&exec(&["/bin/echo", "  s3cret  "]), true)
            .await
            .unwrap();
        assert_eq!(&*v, "s3cret");
        let e = store
            .resolve(&exec(&["/bin/echo", "x"]), false)
            .await
            .unwrap_err();
        assert!(e.contains("allowExecSecrets"), "{e}");
        let e = store
            .resolve(&exec(&["/bin/false"]), true)
            .await
            .unwrap_err();
        assert!(e.contains("exited"), "{e}");
        let e = store
            .resolve(&exec(&["/bin/true"]), true)
            .await
            .unwrap_err();
        assert!(e.contains("printed nothing"), "{e}");
    }

    #[tokio::test]
    async fn cached_values_never_show_in_debug_output() {
        let store = SecretStore::default();
        let v = store
            .resolve(&exec(&["/bin/echo", "cached-s3cret"]), true)
            .await
            .unwrap();
        assert_eq!(&*v, "cached-s3cret");
        let debug = format!("{store:?}");
        assert!(!debug.contains("cached-s3cret"), "{debug}");
        assert!(debug.contains("cached: 1"), "{debug}");
    }

    #[tokio::test]
    async fn exec_secrets_time_out() {
        let store = SecretStore::default();
        let started = Instant::now();
        let e = store
            .resolve(&exec(&["/bin/sleep", "30"]), true)
            .await
            .unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
