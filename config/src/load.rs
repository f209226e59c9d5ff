//! Reading a `.cli.json` file from disk.
//!
//! Scope discovery (managed, user, project, local files) and their merge build on this; a
//! single explicit file is the "project" scope.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::decode::decode;
use crate::diag::Diagnostics;
use crate::model::Config;

/// A validated config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Absolute path of the file (not resolved through symlinks).
    pub path: PathBuf,
    /// The directory relative document references (`sources.*.uri`, overlays, …) resolve from.
    pub base_dir: PathBuf,
    pub config: Config,
}

/// Why a config file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    Invalid(Diagnostics),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            Self::Syntax {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "{}:{line}:{column}: invalid JSON: {message}",
                path.display()
            ),
            Self::Invalid(d) => d.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Make a path absolute against the current directory, without touching the file system
/// beyond reading the current directory, and normalise `.` and `..` lexically.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    normalize(&joined)
}

/// Lexical normalisation: drop `.`, resolve `..` against the preceding component.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Load and validate one config file.
pub fn load_file(path: &Path) -> Result<LoadedConfig, LoadError> {
    let path = absolute(path);
    let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
        path: path.clone(),
        source,
    })?;
    let config = parse_str(&text, &path)?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedConfig {
        path,
        base_dir,
        config,
    })
}

/// Parse and validate config text; `path` is used in messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, LoadError> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| LoadError::Syntax {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    decode(&doc).map_err(|items| {
        LoadError::Invalid(Diagnostics {
            file: Some(path.to_path_buf()),
            items,
        })
    })
}

/// serde_json appends " at line X column Y"; we print the position up front instead.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
