//! Writing the client config: `open-cli init`, `config add-source`, `config remove-source`,
//! `config add-secret`.
//!
//! Edits are made on the file's concrete syntax tree (`jsonc-parser`'s CST), so every key,
//! comment-free formatting choice and key order the user wrote stays as it was; only the
//! entries added or removed change. Each edit is checked with the full loader before it is
//! written: the new text goes to a temporary file beside the target (relative `uri`s resolve
//! the same), is loaded with every scope, and replaces the target by a rename only if it
//! loads. An edit that would make the config invalid changes nothing and names the problems.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};
use serde_json::{Value, json};

use crate::error::CliError;

/// Where an edit goes: `--config FILE`, `--global` (the user scope file), else `./.cli.json`.
pub fn target(explicit: Option<&Path>, global: bool) -> PathBuf {
    if global {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        return env("XDG_CONFIG_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".config")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("open-cli/.cli.json");
    }
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".cli.json"))
}

fn read(path: &Path) -> Result<(String, CstRootNode), CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!("cannot read {}", path.display()))
            .cause(e.to_string())
            .hint("create one with `open-cli init <openapi-url-or-file>`")
    })?;
    let root = CstRootNode::parse(&text, &ParseOptions::default()).map_err(|e| {
        CliError::usage(format!("{} is not valid JSON", path.display())).cause(e.to_string())
    })?;
    Ok((text, root))
}

/// Check `text` as the config at `path` with the full loader, then write it (atomically).
fn commit(path: &Path, text: &str) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::usage(format!("cannot create {}", dir.display())).cause(e.to_string())
    })?;
    let tmp = dir.join(format!(
        ".open-cli-edit.{}.{}",
        std::process::id(),
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(".cli.json")
    ));
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (tmp, path) = (abs(&tmp), abs(path));
    let path = path.as_path();
    std::fs::write(&tmp, text).map_err(|e| {
        CliError::usage(format!("cannot write {}", tmp.display())).cause(e.to_string())
    })?;
    if let Err(e) = open_cli_config::load_file(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        let problems = e
            .to_string()
            .replace(&tmp.display().to_string(), &path.display().to_string());
        return Err(CliError::usage(format!(
            "not written: the edit would make {} invalid",
            path.display()
        ))
        .cause(problems));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::usage(format!("cannot write {}", path.display())).cause(e.to_string())
    })
}

fn input(v: &Value) -> CstInputValue {
    match v {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(a) => CstInputValue::Array(a.iter().map(input).collect()),
        Value::Object(o) => {
            CstInputValue::Object(o.iter().map(|(k, v)| (k.clone(), input(v))).collect())
        }
    }
}

/// The object under `key` of the root object, made when missing.
fn section(root: &CstObject, key: &str) -> Result<CstObject, CliError> {
    match root.get(key) {
        Some(prop) => prop
            .value()
            .and_then(|v| v.as_object())
            .ok_or_else(|| CliError::usage(format!("`{key}` in the config is not an object"))),
        None => root
            .append(key, CstInputValue::Object(Vec::new()))
            .value()
            .and_then(|v| v.as_object())
            .ok_or_else(|| CliError::usage(format!("cannot add `{key}` to the config"))),
    }
}

fn root_object(root: &CstRootNode, path: &Path) -> Result<CstObject, CliError> {
    root.object_value()
        .ok_or_else(|| CliError::usage(format!("{} does not hold a JSON object", path.display())))
}

/// What `config add-source` adds.
#[derive(Debug, Clone, Default)]
pub struct NewSource {
    pub name: String,
    /// `openapi`, `mcp`, `apiCatalog` or `serviceRoot`.
    pub kind: String,
    pub uri: Option<String>,
    /// MCP: `stdio`, `streamable-http` or `sse`.
    pub transport: Option<String>,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub url: Option<String>,
    pub alias: Option<String>,
}

impl NewSource {
    fn source(&self) -> Result<Value, CliError> {
        match self.kind.as_str() {
            "mcp" => {
                let transport = match (self.transport.as_deref(), &self.command, &self.url) {
                    (Some("stdio") | None, Some(cmd), None) => {
                        let mut t = json!({"type": "stdio", "command": cmd});
                        if !self.args.is_empty() {
                            t["args"] = json!(self.args);
                        }
                        t
                    }
                    (Some(kind @ ("streamable-http" | "sse")), None, Some(url)) => {
                        json!({"type": kind, "url": url})
                    }
                    (None, None, Some(url)) => json!({"type": "streamable-http", "url": url}),
                    _ => {
                        return Err(CliError::usage(
                            "an MCP source needs --command (stdio, with --args) or --url (streamable-http; --transport sse for the legacy transport)",
                        ));
                    }
                };
                Ok(json!({"type": "mcp", "transport": transport}))
            }
            "openapi" | "apiCatalog" | "serviceRoot" => {
                let uri = self.uri.as_ref().ok_or_else(|| {
                    CliError::usage(format!("a `{}` source needs --uri", self.kind))
                })?;
                Ok(json!({"type": self.kind, "uri": uri}))
            }
            other => Err(CliError::usage(format!(
                "unknown source type `{other}`; one of: openapi, mcp, apiCatalog, serviceRoot"
            ))),
        }
    }
}

/// `config add-source`: the source and a service of the same name that uses it.
pub fn add_source(path: &Path, new: &NewSource) -> Result<String, CliError> {
    let source = new.source()?;
    let (_, root) = read(path)?;
    let obj = root_object(&root, path)?;
    let sources = section(&obj, "sources")?;
    if sources.get(&new.name).is_some() {
        return Err(CliError::usage(format!(
            "source `{}` is already in {}",
            new.name,
            path.display()
        ))
        .hint(format!(
            "remove it first with `open-cli config remove-source {}`",
            new.name
        )));
    }
    sources.append(&new.name, input(&source));
    let services = section(&obj, "services")?;
    if services.get(&new.name).is_none() {
        let mut service = json!({"source": new.name});
        if let Some(a) = &new.alias {
            service["alias"] = json!(a);
        }
        services.append(&new.name, input(&service));
    }
    commit(path, &root.to_string())?;
    Ok(format!(
        "added source `{}` ({}) and its service to {}\n",
        new.name,
        new.kind,
        path.display()
    ))
}

/// `config remove-source`: the source and every service that uses it.
pub fn remove_source(path: &Path, name: &str) -> Result<String, CliError> {
    let (_, root) = read(path)?;
    let obj = root_object(&root, path)?;
    let prop = obj
        .get("sources")
        .and_then(|p| p.value())
        .and_then(|v| v.as_object())
        .and_then(|s| s.get(name))
        .ok_or_else(|| CliError::usage(format!("no source `{name}` in {}", path.display())))?;
    prop.remove();
    let mut removed = Vec::new();
    if let Some(services) = obj
        .get("services")
        .and_then(|p| p.value())
        .and_then(|v| v.as_object())
    {
        for service in services.properties() {
            let uses = service
                .value()
                .and_then(|v| v.as_object())
                .and_then(|o| o.get("source"))
                .and_then(|s| s.value())
                .and_then(|v| v.as_string_lit())
                .and_then(|s| s.decoded_value().ok())
                .is_some_and(|s| s == name);
            if uses {
                if let Some(n) = service.name().and_then(|n| n.decoded_value().ok()) {
                    removed.push(n);
                }
                service.remove();
            }
        }
    }
    commit(path, &root.to_string())?;
    let services = if removed.is_empty() {
        String::new()
    } else {
        format!(" and service(s) {}", removed.join(", "))
    };
    Ok(format!(
        "removed source `{name}`{services} from {}\n",
        path.display()
    ))
}

/// What `config add-secret` adds.
#[derive(Debug, Clone, Default)]
pub struct NewSecret {
    pub name: String,
    /// `env` or `oauth2`.
    pub kind: String,
    pub env_value: Option<String>,
    pub mode: Option<String>,
    pub token_url: Option<String>,
    pub client_id_env: Option<String>,
    pub client_secret_env: Option<String>,
    pub scopes: Vec<String>,
}

impl NewSecret {
    fn secret(&self) -> Result<Value, CliError> {
        match self.kind.as_str() {
            "env" => {
                let var = self.env_value.as_ref().ok_or_else(|| {
                    CliError::usage("an `env` secret needs --env-value <VARIABLE>")
                })?;
                Ok(json!({"type": "env", "value": var}))
            }
            "oauth2" => {
                let mut s = json!({"type": "oauth2",
                    "mode": self.mode.as_deref().unwrap_or("clientCredentials")});
                if let Some(u) = &self.token_url {
                    s["tokenURL"] = json!(u);
                }
                if let Some(v) = &self.client_id_env {
                    s["clientId"] = json!({"type": "env", "value": v});
                }
                if let Some(v) = &self.client_secret_env {
                    s["clientSecret"] = json!({"type": "env", "value": v});
                }
                if !self.scopes.is_empty() {
                    s["scopes"] = json!(self.scopes);
                }
                Ok(s)
            }
            other => Err(CliError::usage(format!(
                "unknown secret type `{other}`; one of: env, oauth2"
            ))),
        }
    }
}

/// `config add-secret`.
pub fn add_secret(path: &Path, new: &NewSecret) -> Result<String, CliError> {
    let secret = new.secret()?;
    let (_, root) = read(path)?;
    let obj = root_object(&root, path)?;
    let secrets = section(&obj, "secrets")?;
    if secrets.get(&new.name).is_some() {
        return Err(CliError::usage(format!(
            "secret `{}` is already in {}",
            new.name,
            path.display()
        )));
    }
    secrets.append(&new.name, input(&secret));
    commit(path, &root.to_string())?;
    Ok(format!(
        "added secret `{}` ({}) to {}\n",
        new.name,
        new.kind,
        path.display()
    ))
}

/// `open-cli init <url|file>` for an OpenAPI description (or an MCP server with `mcp`).
pub fn init(
    path: &Path,
    location: Option<&str>,
    name: Option<&str>,
    mcp: Option<NewSource>,
) -> Result<String, CliError> {
    if path.exists() {
        return Err(CliError::usage(format!(
            "{} exists; init does not overwrite it",
            path.display()
        ))
        .hint("add to it with `open-cli config add-source`"));
    }
    // A local description outside the config's directory: its directory is named in
    // `runtime.server.documents.allowedDirectories` (the runtime reads local files only under
    // the config's directory and those).
    let mut trusted_dir: Option<String> = None;
    let (source, report) = match mcp {
        Some(mut m) => {
            if m.name.is_empty() {
                m.name = derive_name(
                    m.url.as_deref().or(m.command.as_deref()).unwrap_or("mcp"),
                    None,
                );
            }
            (m, String::new())
        }
        None => {
            let location = location.ok_or_else(|| {
                CliError::usage(
                    "init needs an OpenAPI URL or file (or --type mcp with --command or --url)",
                )
            })?;
            let (doc, uri, outside) = fetch_description(location, path)?;
            trusted_dir = outside;
            let title = doc
                .pointer("/info/title")
                .and_then(Value::as_str)
                .map(str::to_string);
            let name = name
                .map(str::to_string)
                .unwrap_or_else(|| derive_name(location, title.as_deref()));
            let report = describe(&doc, &name);
            (
                NewSource {
                    name,
                    kind: "openapi".into(),
                    uri: Some(uri),
                    ..Default::default()
                },
                report,
            )
        }
    };
    let mut config = json!({"cli": "1.0.0", "mode": {"default": "discover"},
        "sources": {&source.name: source.source()?},
        "services": {&source.name: {"source": source.name}}});
    let mut report = report;
    if let Some(dir) = &trusted_dir {
        config["runtime"] = json!({"server": {"documents": {"allowedDirectories": [dir]}}});
        report.push_str(&format!(
            "the description is outside the config's directory: {dir} is added to runtime.server.documents.allowedDirectories\n"
        ));
    }
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&config).unwrap_or_default()
    );
    commit(path, &text)?;
    Ok(format!(
        "wrote {} with source and service `{}`\n{report}",
        path.display(),
        source.name
    ))
}

/// Read or fetch (15 s) an OpenAPI description; the `uri` the config should name: the URL,
/// or the file relative to the config's directory when it is inside it (else its absolute
/// path, and its directory as the third value).
fn fetch_description(
    location: &str,
    config: &Path,
) -> Result<(Value, String, Option<String>), CliError> {
    let fetched = if location.starts_with("http://") || location.starts_with("https://") {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| CliError::usage("cannot make an HTTP client").cause(e.to_string()))?;
        let resp = client
            .get(location)
            .send()
            .and_then(|r| r.error_for_status())
            .map_err(|e| {
                CliError::usage(format!("cannot fetch {location}"))
                    .cause(crate::error::chain(&e).join(": "))
            })?;
        let text = resp
            .text()
            .map_err(|e| CliError::usage(format!("cannot read {location}")).cause(e.to_string()))?;
        (text, location.to_string(), None)
    } else {
        let file = Path::new(location);
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::usage(format!("cannot read {location}")).cause(e.to_string()))?;
        let dir = config
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        match abs(file).strip_prefix(abs(dir)) {
            Ok(r) => (text, r.display().to_string(), None),
            Err(_) => {
                let file = abs(file);
                let parent = file.parent().map(|p| p.display().to_string());
                (text, file.display().to_string(), parent)
            }
        }
    };
    let (text, uri, outside) = fetched;
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| {
        CliError::usage(format!("{location} is neither JSON nor YAML")).cause(e.to_string())
    })?;
    let version = doc
        .get("openapi")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !version.starts_with("3.") || !doc.get("paths").is_some_and(Value::is_object) {
        return Err(CliError::usage(format!(
            "{location} is not an OpenAPI 3 description (no `openapi: 3.x` with `paths`)"
        ))
        .hint("for an MCP server: `open-cli init --type mcp --command … | --url …`"));
    }
    Ok((doc, uri, outside))
}

/// A service name: the title's (or the location's last segment's) lowercase letters and
/// digits, words joined by `-`.
fn derive_name(location: &str, title: Option<&str>) -> String {
    let base = title.map(str::to_string).unwrap_or_else(|| {
        let last = location
            .trim_end_matches('/')
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(location);
        last.split('.').next().unwrap_or(last).to_string()
    });
    let mut name = String::new();
    for c in base.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_end_matches('-').to_string();
    let name = name
        .strip_suffix("-api")
        .map(str::to_string)
        .unwrap_or(name);
    if name.is_empty() { "api".into() } else { name }
}

/// What a description holds, and a `config add-secret` command per security scheme.
fn describe(doc: &Value, name: &str) -> String {
    let mut ops = 0;
    let mut groups = std::collections::BTreeSet::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (p, item) in paths {
            for m in [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ] {
                if let Some(op) = item.get(m) {
                    ops += 1;
                    let group = op
                        .pointer("/tags/0")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            p.trim_start_matches('/')
                                .split('/')
                                .next()
                                .unwrap_or_default()
                                .to_string()
                        });
                    groups.insert(group);
                }
            }
        }
    }
    let mut out = format!("{ops} operations in {} groups\n", groups.len());
    if let Some(schemes) = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
    {
        for (scheme, def) in schemes {
            let kind = def.get("type").and_then(Value::as_str).unwrap_or_default();
            let var = format!(
                "{}_{}",
                name.to_ascii_uppercase().replace('-', "_"),
                scheme.to_ascii_uppercase().replace(['-', '.'], "_")
            );
            let cmd = if kind == "oauth2" || kind == "openIdConnect" {
                format!(
                    "open-cli config add-secret {name}.{scheme} --type oauth2 --client-id-env {var}_CLIENT_ID --client-secret-env {var}_CLIENT_SECRET"
                )
            } else {
                format!("open-cli config add-secret {name}.{scheme} --type env --env-value {var}")
            };
            out.push_str(&format!("security scheme `{scheme}` ({kind}): {cmd}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_title_or_the_location() {
        assert_eq!(derive_name("x.yaml", Some("Demo Items API")), "demo-items");
        assert_eq!(
            derive_name("https://example.com/specs/petstore.json", None),
            "petstore"
        );
        assert_eq!(derive_name("", Some("!!!")), "api");
    }
}
