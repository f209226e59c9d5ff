//! The merged, effective configuration as people and programs read it: which scope files were
//! merged, the result (secrets redacted), and which file set each key.

use serde::Serialize;
use serde_json::Value;

use crate::load::LoadedConfig;
use crate::scopes::Layer;

#[derive(Debug, Serialize)]
pub struct EffectiveConfig<'a> {
    pub project: &'a std::path::Path,
    pub layers: &'a [Layer],
    /// The merged config, secrets redacted.
    pub config: Value,
    pub origins: &'a std::collections::BTreeMap<String, std::path::PathBuf>,
}

pub fn effective(loaded: &LoadedConfig) -> EffectiveConfig<'_> {
    EffectiveConfig {
        project: &loaded.path,
        layers: &loaded.layers,
        config: serde_json::to_value(&loaded.config).unwrap_or(Value::Null),
        origins: &loaded.origins,
    }
}

/// Text form: the scope files, the merged config as JSON, then key origins.
pub fn render_text(loaded: &LoadedConfig) -> String {
    let e = effective(loaded);
    let mut out = String::from("scopes (merged in this order):\n");
    for l in e.layers {
        out.push_str(&format!("  {:<8} {}\n", l.scope.as_str(), l.path.display()));
    }
    out.push_str("effective config (secrets redacted):\n");
    let json = serde_json::to_string_pretty(&e.config).unwrap_or_default();
    for line in json.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("origins:\n");
    let width = e.origins.keys().map(String::len).max().unwrap_or(0);
    for (key, file) in e.origins {
        out.push_str(&format!("  {key:<width$}  {}\n", file.display()));
    }
    out
}
