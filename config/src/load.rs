//! Reading a `.cli.json` file from disk.
//!
//! Scope discovery (managed, user, project, local files) and their merge build on this; a
//! single explicit file is the "project" scope.

use std::fmt;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use crate::decode::decode;
use crate::diag::Diagnostics;
use crate::model::Config;
use crate::scopes::{Layer, ScopePaths, decode_merged, read_and_merge};

/// A validated, merged config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Absolute path of the project file (not resolved through symlinks).
    pub path: PathBuf,
    /// The directory relative document references (`sources.*.uri`, overlays, …) resolve from.
    pub base_dir: PathBuf,
    pub config: Config,
    /// The scope files merged, in order.
    pub layers: Vec<Layer>,
    /// Key path → the file that set it.
    pub origins: BTreeMap<String, PathBuf>,
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

/// Largest config (scope) file read: 4 MiB. A config is a few kilobytes; the bound keeps a
/// mistaken or hostile file (tens of megabytes of JSON take gigabytes once parsed) from
/// exhausting memory at start-up or on SIGHUP. Checked while reading, so a file that grows
/// or a device that never ends is refused too.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Read a config file as UTF-8 text: a regular file of at most [`MAX_CONFIG_BYTES`]
/// ([`crate::files::read_regular`]).
pub fn read_config_text(path: &Path) -> std::io::Result<String> {
    use crate::files::{ReadError, read_regular_text};
    read_regular_text(path, MAX_CONFIG_BYTES).map_err(|e| match e {
        ReadError::Io(e) => e,
        ReadError::TooLarge(_) => std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the file is larger than {MAX_CONFIG_BYTES} bytes (4 MiB, the bound for config files)"
            ),
        ),
        e @ ReadError::NotRegular(_) => {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        }
    })
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

/// Load a project config file merged with the managed, user and local scopes around it
/// (see [`crate::scopes`]), and validate the result.
pub fn load_file(path: &Path) -> Result<LoadedConfig, LoadError> {
    let paths = ScopePaths::for_project(path);
    let merged = read_and_merge(&paths)?;
    let config = decode_merged(&merged, &paths.project)?;
    let base_dir = paths
        .project
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok(LoadedConfig {
        path: paths.project,
        base_dir,
        config,
        layers: merged.layers,
        origins: merged.origins,
    })
}

/// Parse JSON, reporting syntax errors with line and column.
pub fn parse_json(text: &str, path: &Path) -> Result<serde_json::Value, LoadError> {
    serde_json::from_str(text).map_err(|e| LoadError::Syntax {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// Parse and validate the text of a single file, without other scopes.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, LoadError> {
    let doc = parse_json(text, path)?;
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
