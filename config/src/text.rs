//! One config file as text: reading it (bounded, regular files only), parsing its JSON with
//! positions, the paths it names, and the error of a load. [`crate::scopes`] and
//! [`crate::load`] build on this.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostics;

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

/// Parse JSON, reporting syntax errors with line and column.
pub fn parse_json(text: &str, path: &Path) -> Result<serde_json::Value, LoadError> {
    serde_json::from_str(text).map_err(|e| LoadError::Syntax {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// serde_json appends " at line X column Y"; we print the position up front instead.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
