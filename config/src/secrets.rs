//! Resolving secret references (`secrets.<key>`, `transport.headerSecrets`).
//!
//! Fail closed: an unset or empty environment variable, a missing file and an unknown key are
//! errors naming the key, never an empty value. A file's single trailing newline is dropped
//! (editors add one; it would corrupt a header). Values never appear in errors or logs.

use std::sync::Arc;

use crate::model::{Config, Secret, SecretRef, SecretType};

/// A secret value: a client secret, an access token, an API key. Its `Debug` never shows the
/// value, it has no `Serialize` (a value persisted on purpose goes through
/// [`SecretValue::expose`]), and the value comes out only through [`SecretValue::expose`],
/// where a header, a form or a comparison is built.
///
/// Why a type: as plain `String`s inside `#[derive(Debug)]` structs, secrets were one
/// `tracing::debug!(?state)` away from a log (issue 16, item 3).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Arc<str>);

impl SecretValue {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value itself: for building the header, form or comparison that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(REDACTED)")
    }
}

impl From<String> for SecretValue {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

/// Resolve `secrets.<key>` (a plain reference; OAuth secrets are not values).
pub fn resolve_key(config: &Config, key: &str) -> Result<String, String> {
    match config.secrets.get(key) {
        Some(Secret::Ref(r)) => {
            resolve(r, config.policy.allow_exec_secrets).map_err(|e| format!("secret `{key}`: {e}"))
        }
        Some(Secret::OAuth2(_)) => Err(format!("secret `{key}` is an oauth2 client, not a value")),
        Some(Secret::ByPrincipal(_)) => Err(format!(
            "secret `{key}` holds one value per principal; only the runtime resolves it, for the caller"
        )),
        None => Err(format!("secret `{key}` is not defined in `secrets`")),
    }
}

pub fn resolve(r: &SecretRef, allow_exec: bool) -> Result<String, String> {
    let value = r.value.as_deref().unwrap_or_default();
    let out = match r.kind {
        SecretType::Literal => value.to_string(),
        SecretType::Env => match std::env::var(value) {
            Ok(v) if !v.is_empty() => v,
            Ok(_) => return Err(format!("environment variable `{value}` is empty")),
            Err(_) => return Err(format!("environment variable `{value}` is not set")),
        },
        SecretType::File => {
            let text = crate::files::read_regular_text(
                std::path::Path::new(value),
                crate::files::MAX_SECRET_BYTES,
            )
            .map_err(|e| format!("cannot read `{value}`: {e}"))?;
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            text.to_string()
        }
        SecretType::Exec if !allow_exec => {
            return Err(
                "exec secrets are disabled; set `policy.allowExecSecrets: true` to allow them"
                    .into(),
            );
        }
        SecretType::Exec | SecretType::OsKeychain => {
            return Err(format!(
                "`{}` secrets are not supported by this version yet",
                r.kind
            ));
        }
    };
    if out.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_value_never_shows_in_debug_output() {
        let v = SecretValue::new("s3cret-value");
        assert_eq!(format!("{v:?}"), "SecretValue(REDACTED)");
        assert_eq!(format!("{:?}", Some(&v)), "Some(SecretValue(REDACTED))");
        assert_eq!(v.expose(), "s3cret-value");
    }

    fn r(kind: SecretType, value: &str) -> SecretRef {
        SecretRef {
            kind,
            value: Some(value.into()),
            command: vec![],
        }
    }

    #[test]
    fn fails_closed() {
        assert_eq!(resolve(&r(SecretType::Literal, "v"), false), Ok("v".into()));
        let e = resolve(&r(SecretType::Env, "OPEN_CLI_TEST_SURELY_UNSET_VAR"), false).unwrap_err();
        assert!(e.contains("is not set"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "token\n").unwrap();
        assert_eq!(
            resolve(&r(SecretType::File, f.to_str().unwrap()), false),
            Ok("token".into())
        );
        assert!(resolve(&r(SecretType::File, "/nonexistent/x"), false).is_err());
        assert!(
            resolve(&r(SecretType::Exec, "/bin/true"), false)
                .unwrap_err()
                .contains("disabled")
        );
    }
}
