//! Reading a `.cli.json` file from disk.
//!
//! Scope discovery (managed, user, project, local files) and their merge build on this; a
//! single explicit file is the "project" scope.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::decode::decode;
use crate::diag::Diagnostics;
use crate::model::Config;
use crate::scopes::{Layer, ScopePaths, decode_merged, read_and_merge};
use crate::text::parse_json;
pub use crate::text::{LoadError, absolute, normalize};

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
