//! Config scopes (contract §1.4): managed → user → project → local, merged per field.
//!
//! | scope | file |
//! |---|---|
//! | managed | `$OPEN_CLI_MANAGED_CONFIG`, else `/etc/open-cli/.cli.json` |
//! | user | `$XDG_CONFIG_HOME/open-cli/.cli.json`, else `~/.config/open-cli/.cli.json` |
//! | project | the explicit file (`--config`), else `./.cli.json` |
//! | local | `.cli.local.json` next to the project file |
//!
//! Each present file is checked on its own with relaxed rules (no required keys, no
//! cross-references); the merged document is then checked strictly, and each problem is
//! attributed to the file that set the offending key. Merge rules: `cli`, `mode.default`:
//! last non-empty wins; `runtime`: field by field; `sources`, `services`, agent `profiles`:
//! per entry, field by field, lists replaced (a source changing `type` drops the fields of its
//! old type); tool-set `allow`/`deny`, `policy.deny`, `policy.approvalRequired`: appended
//! without duplicates; `secrets`: per key, replaced whole. `policy.deny` of the managed file is
//! also kept as *managed deny*, which no other scope can lift.
//!
//! Relative document paths (`sources.*.uri`, `services.*.{overlays,skills,workflows}`) of the
//! managed and user files are resolved against *their own* directory, so a platform team's
//! `/etc/open-cli/.cli.json` can ship its overlays next to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::decode::{check_relaxed, decode};
use crate::diag::{Diagnostic, Diagnostics};
use crate::text::{LoadError, absolute, parse_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Managed,
    User,
    Project,
    Local,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "managed",
            Self::User => "user",
            Self::Project => "project",
            Self::Local => "local",
        }
    }
}

/// Where each scope's file is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePaths {
    pub managed: PathBuf,
    pub user: Option<PathBuf>,
    pub project: PathBuf,
    pub local: PathBuf,
}

impl ScopePaths {
    /// The scopes around an explicit project file.
    pub fn for_project(project: &Path) -> Self {
        let project = absolute(project);
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let managed = env("OPEN_CLI_MANAGED_CONFIG")
            .unwrap_or_else(|| PathBuf::from("/etc/open-cli/.cli.json"));
        let user = env("XDG_CONFIG_HOME")
            .map(|d| d.join("open-cli/.cli.json"))
            .or_else(|| env("HOME").map(|h| h.join(".config/open-cli/.cli.json")));
        let local = project.with_file_name(".cli.local.json");
        Self {
            managed,
            user,
            project,
            local,
        }
    }

    fn candidates(&self) -> Vec<(Scope, &Path)> {
        let mut v = vec![(Scope::Managed, self.managed.as_path())];
        if let Some(u) = &self.user {
            v.push((Scope::User, u.as_path()));
        }
        v.push((Scope::Project, self.project.as_path()));
        v.push((Scope::Local, self.local.as_path()));
        v
    }
}

/// One scope file that took part in a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub scope: Scope,
    pub path: PathBuf,
}

/// The merged document and where each part came from.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub value: Value,
    pub layers: Vec<Layer>,
    /// Key path → the file that last set it (`sources.tickets.uri`, `policy.deny[0]`).
    pub origins: BTreeMap<String, PathBuf>,
    pub managed_deny: Vec<String>,
    /// Problems of the individual files (relaxed checks), each with its file.
    pub file_problems: Vec<Diagnostic>,
}

/// Read every present scope file, check each one relaxed, and merge them.
pub fn read_and_merge(paths: &ScopePaths) -> Result<Merged, LoadError> {
    let mut merged = Merged {
        value: Value::Object(Map::new()),
        ..Merged::default()
    };
    let mut problems: Vec<Diagnostic> = Vec::new();
    for (scope, path) in paths.candidates() {
        let text = match crate::text::read_config_text(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && scope != Scope::Project => {
                continue;
            }
            Err(source) => {
                return Err(LoadError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut doc = parse_json(&text, path)?;
        for mut d in check_relaxed(&doc) {
            d.file = Some(path.to_path_buf());
            problems.push(d);
        }
        if matches!(scope, Scope::Managed | Scope::User)
            && let Some(dir) = path.parent()
        {
            anchor_relative_paths(&mut doc, dir);
        }
        // Every scope: a relative `file` secret path names a file beside the config file
        // that declares it, not one in the process's working directory (`/` under systemd).
        if let Some(dir) = path.parent() {
            anchor_secret_files(&mut doc, &crate::text::absolute(dir));
        }
        if scope == Scope::Managed {
            merged.managed_deny = strings_at(&doc, "/policy/deny");
        }
        merge_layer(&mut merged, &doc, path);
        merged.layers.push(Layer {
            scope,
            path: path.to_path_buf(),
        });
    }
    merged.file_problems = problems;
    Ok(merged)
}

/// Decode the merged document strictly. Problems of single files and of the merged result
/// are reported together, each attributed to the file that set the offending key.
pub fn decode_merged(merged: &Merged, project: &Path) -> Result<crate::model::Config, LoadError> {
    let mut items = merged.file_problems.clone();
    let result = decode(&merged.value);
    if let Err(strict) = &result {
        for mut d in strict.iter().cloned() {
            d.file = merged.origin_of(&d.path).map(Path::to_path_buf);
            let seen = items.iter().any(|i| {
                i.path == d.path && i.message == d.message && (i.file == d.file || d.file.is_none())
            });
            if !seen {
                items.push(d);
            }
        }
    }
    match result {
        Ok(mut config) if items.is_empty() => {
            config.managed_deny = merged.managed_deny.clone();
            Ok(config)
        }
        _ => Err(LoadError::Invalid(Diagnostics {
            file: Some(project.to_path_buf()),
            items,
        })),
    }
}

impl Merged {
    /// The file that set `path` or its closest ancestor.
    pub fn origin_of(&self, path: &str) -> Option<&Path> {
        let mut p = path;
        loop {
            if let Some(f) = self.origins.get(p) {
                return Some(f);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn merge_layer(merged: &mut Merged, doc: &Value, file: &Path) {
    let Value::Object(layer) = doc else { return };
    let Value::Object(acc) = &mut merged.value else {
        return;
    };
    let origins = &mut merged.origins;
    for (key, value) in layer {
        match key.as_str() {
            "cli" if value.as_str().is_some_and(str::is_empty) => {}
            "runtime" | "mode" => deep_merge(acc, key, value, key, file, origins),
            "sources" | "services" => {
                merge_entries(acc, key, value, file, origins, key == "sources")
            }
            "curation" => {
                let sets = value.get("toolSets").and_then(Value::as_object);
                for (name, set) in sets.into_iter().flatten() {
                    let path = format!("curation.toolSets.{name}");
                    let target = entry_object(acc, &["curation", "toolSets", name]);
                    for list in ["allow", "deny"] {
                        append_unique(
                            target,
                            list,
                            set.get(list),
                            &format!("{path}.{list}"),
                            file,
                            origins,
                        );
                    }
                    for (k, v) in set.as_object().into_iter().flatten() {
                        if k != "allow" && k != "deny" {
                            target.insert(k.clone(), v.clone());
                            origins.insert(format!("{path}.{k}"), file.to_path_buf());
                        }
                    }
                }
                for (k, v) in value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "toolSets")
                {
                    entry_object(acc, &["curation"]).insert(k.clone(), v.clone());
                    origins.insert(format!("curation.{k}"), file.to_path_buf());
                }
            }
            "agents" => {
                for (k, v) in value.as_object().into_iter().flatten() {
                    if k == "profiles" {
                        let agents = entry_object(acc, &["agents"]);
                        merge_entries(agents, "profiles", v, file, origins, false);
                        rename_origins(origins, "profiles.", "agents.profiles.");
                    } else {
                        entry_object(acc, &["agents"]).insert(k.clone(), v.clone());
                        origins.insert(format!("agents.{k}"), file.to_path_buf());
                    }
                }
            }
            "policy" => {
                for (k, v) in value.as_object().into_iter().flatten() {
                    let target = entry_object(acc, &["policy"]);
                    if k == "deny" || k == "approvalRequired" {
                        append_unique(target, k, Some(v), &format!("policy.{k}"), file, origins);
                    } else {
                        target.insert(k.clone(), v.clone());
                        origins.insert(format!("policy.{k}"), file.to_path_buf());
                    }
                }
            }
            "secrets" => {
                for (k, v) in value.as_object().into_iter().flatten() {
                    entry_object(acc, &["secrets"]).insert(k.clone(), v.clone());
                    origins.insert(crate::diag::join("secrets", k), file.to_path_buf());
                }
            }
            _ => {
                acc.insert(key.clone(), value.clone());
                origins.insert(key.clone(), file.to_path_buf());
            }
        }
    }
}

/// Merge objects recursively; anything else replaces.
fn deep_merge(
    acc: &mut Map<String, Value>,
    key: &str,
    value: &Value,
    path: &str,
    file: &Path,
    origins: &mut BTreeMap<String, PathBuf>,
) {
    match (acc.get_mut(key), value) {
        (Some(Value::Object(a)), Value::Object(v)) => {
            for (k, child) in v {
                let p = crate::diag::join(path, k);
                deep_merge(a, k, child, &p, file, origins);
            }
        }
        _ => {
            if value.as_str().is_some_and(str::is_empty) && acc.contains_key(key) {
                return;
            }
            acc.insert(key.to_string(), value.clone());
            origins.insert(path.to_string(), file.to_path_buf());
        }
    }
}

/// `{ name: { field: value } }` maps merged per entry, field by field.
fn merge_entries(
    acc: &mut Map<String, Value>,
    key: &str,
    value: &Value,
    file: &Path,
    origins: &mut BTreeMap<String, PathBuf>,
    is_sources: bool,
) {
    let Some(entries) = value.as_object() else {
        acc.insert(key.to_string(), value.clone());
        origins.insert(key.to_string(), file.to_path_buf());
        return;
    };
    for (name, entry) in entries {
        let path = crate::diag::join(key, name);
        let target = entry_object(acc, &[key, name]);
        let Some(fields) = entry.as_object() else {
            continue;
        };
        if is_sources
            && let (Some(old), Some(new)) = (
                target.get("type").and_then(Value::as_str),
                fields.get("type").and_then(Value::as_str),
            )
            && old != new
        {
            let exclusive: &[&str] = if old == "mcp" {
                &["transport", "disabledTools", "oauth"]
            } else {
                &["uri"]
            };
            for f in exclusive {
                target.remove(*f);
            }
        }
        for (f, v) in fields {
            target.insert(f.clone(), v.clone());
            origins.insert(crate::diag::join(&path, f), file.to_path_buf());
        }
        origins.entry(path).or_insert_with(|| file.to_path_buf());
    }
}

fn append_unique(
    target: &mut Map<String, Value>,
    key: &str,
    items: Option<&Value>,
    path: &str,
    file: &Path,
    origins: &mut BTreeMap<String, PathBuf>,
) {
    let Some(items) = items else { return };
    let Some(new) = items.as_array() else {
        // Not a list: keep it so strict validation reports it against this file.
        target.insert(key.to_string(), items.clone());
        origins.insert(path.to_string(), file.to_path_buf());
        return;
    };
    let list = target
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        for item in new {
            if !list.contains(item) {
                origins.insert(format!("{path}[{}]", list.len()), file.to_path_buf());
                list.push(item.clone());
            }
        }
    }
}

/// The object at `path` inside `acc`, created (or replaced if not an object) on the way.
fn entry_object<'a>(acc: &'a mut Map<String, Value>, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = acc;
    for key in path {
        let slot = cur
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            unreachable!("just made an object")
        };
        cur = next;
    }
    cur
}

fn rename_origins(origins: &mut BTreeMap<String, PathBuf>, from: &str, to: &str) {
    let moved: Vec<(String, PathBuf)> = origins
        .iter()
        .filter(|(k, _)| k.starts_with(from))
        .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
        .collect();
    origins.retain(|k, _| !k.starts_with(from));
    origins.extend(moved);
}

fn strings_at(doc: &Value, pointer: &str) -> Vec<String> {
    crate::reader::string_array(doc.pointer(pointer))
}

/// Make the relative paths of `file` secret references absolute against `dir`: in `secrets`
/// (plain references, and the `clientId`/`clientSecret` of `oauth2` secrets), in
/// `runtime.server.auth`, and in MCP sources' `transport.oauth`.
fn anchor_secret_files(doc: &mut Value, dir: &Path) {
    let anchor_ref = |r: &mut Value| {
        if r.get("type").and_then(Value::as_str) == Some("file")
            && let Some(Value::String(s)) = r.get_mut("value")
            && !s.is_empty()
            && !Path::new(s.as_str()).is_absolute()
        {
            *s = crate::text::normalize(&dir.join(&*s)).display().to_string();
        }
    };
    let anchor_client = |o: &mut Value| {
        for key in ["clientId", "clientSecret"] {
            if let Some(r) = o.get_mut(key) {
                anchor_ref(r);
            }
        }
    };
    if let Some(Value::Object(secrets)) = doc.get_mut("secrets") {
        for s in secrets.values_mut() {
            anchor_ref(s);
            anchor_client(s);
        }
    }
    if let Some(auth) = doc.pointer_mut("/runtime/server/auth") {
        anchor_client(auth);
    }
    if let Some(Value::Object(sources)) = doc.get_mut("sources") {
        for src in sources.values_mut() {
            if let Some(o) = src.pointer_mut("/transport/oauth") {
                anchor_client(o);
            }
        }
    }
}

/// Make relative local document paths of a managed or user file absolute against its directory.
fn anchor_relative_paths(doc: &mut Value, dir: &Path) {
    let anchor = |v: &mut Value| {
        if let Value::String(s) = v
            && !s.contains("://")
            && !Path::new(s.as_str()).is_absolute()
        {
            *s = dir.join(&*s).display().to_string();
        }
    };
    if let Some(Value::Object(sources)) = doc.get_mut("sources") {
        for src in sources.values_mut() {
            if src.get("type").and_then(Value::as_str) != Some("mcp")
                && let Some(uri) = src.get_mut("uri")
            {
                anchor(uri);
            }
        }
    }
    if let Some(Value::Object(services)) = doc.get_mut("services") {
        for svc in services.values_mut() {
            for list in ["overlays", "skills", "workflows"] {
                if let Some(Value::Array(items)) = svc.get_mut(list) {
                    items.iter_mut().for_each(anchor);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(layers: &[(&str, Value)]) -> Merged {
        let mut m = Merged {
            value: json!({}),
            ..Merged::default()
        };
        for (file, doc) in layers {
            merge_layer(&mut m, doc, Path::new(file));
        }
        m
    }

    #[test]
    fn merges_by_the_contract_rules() {
        let m = merge(&[
            (
                "/etc/m.json",
                json!({"cli": "1", "mode": {"default": "curated"}, "policy": {"deny": ["a:*"], "allowExecSecrets": false},
                                   "curation": {"toolSets": {"ro": {"allow": ["x:*"]}}}}),
            ),
            (
                "/u.json",
                json!({"runtime": {"remote": {"url": "http://a"}}, "secrets": {"k": {"type": "env", "value": "A"}}}),
            ),
            (
                "/p/.cli.json",
                json!({"cli": "", "mode": {"default": "discover"},
                                    "runtime": {"remote": {"requestConfigPath": "/x"}},
                                    "sources": {"s": {"type": "mcp", "transport": {"type": "stdio", "command": "c"}}},
                                    "policy": {"deny": ["a:*", "b:*"], "approvalRequired": ["c:*"]},
                                    "curation": {"toolSets": {"ro": {"allow": ["y:*", "x:*"], "deny": ["z"]}}},
                                    "secrets": {"k": {"type": "literal", "value": "v"}}}),
            ),
            (
                "/p/.cli.local.json",
                json!({"sources": {"s": {"type": "openapi", "uri": "a.yaml"}},
                                          "agents": {"profiles": {"p": {"mode": "curated"}}}}),
            ),
        ]);
        let v = &m.value;
        assert_eq!(v["cli"], "1", "empty cli does not override");
        assert_eq!(v["mode"]["default"], "discover");
        assert_eq!(
            v["runtime"]["remote"],
            json!({"url": "http://a", "requestConfigPath": "/x"})
        );
        assert_eq!(
            v["sources"]["s"],
            json!({"type": "openapi", "uri": "a.yaml"}),
            "type change drops mcp-only fields"
        );
        assert_eq!(v["policy"]["deny"], json!(["a:*", "b:*"]));
        assert_eq!(
            v["curation"]["toolSets"]["ro"],
            json!({"allow": ["x:*", "y:*"], "deny": ["z"]})
        );
        assert_eq!(v["secrets"]["k"], json!({"type": "literal", "value": "v"}));
        assert_eq!(
            m.origin_of("policy.deny[0]"),
            Some(Path::new("/etc/m.json"))
        );
        assert_eq!(
            m.origin_of("policy.deny[1]"),
            Some(Path::new("/p/.cli.json"))
        );
        assert_eq!(
            m.origin_of("sources.s.uri"),
            Some(Path::new("/p/.cli.local.json"))
        );
        assert_eq!(
            m.origin_of("runtime.remote.url"),
            Some(Path::new("/u.json"))
        );
        assert_eq!(
            m.origin_of("agents.profiles.p.mode"),
            Some(Path::new("/p/.cli.local.json"))
        );
        assert_eq!(
            m.origin_of("secrets.k.value"),
            Some(Path::new("/p/.cli.json"))
        );
    }

    #[test]
    fn managed_and_user_paths_are_anchored_to_their_own_directory() {
        let mut doc = json!({"sources": {"a": {"type": "openapi", "uri": "specs/a.yaml"}, "b": {"type": "openapi", "uri": "https://x/y"}},
                             "services": {"a": {"source": "a", "overlays": ["o.yaml", "/abs/o.yaml"]}}});
        anchor_relative_paths(&mut doc, Path::new("/etc/open-cli"));
        assert_eq!(doc["sources"]["a"]["uri"], "/etc/open-cli/specs/a.yaml");
        assert_eq!(doc["sources"]["b"]["uri"], "https://x/y");
        assert_eq!(
            doc["services"]["a"]["overlays"],
            json!(["/etc/open-cli/o.yaml", "/abs/o.yaml"])
        );
    }
}
