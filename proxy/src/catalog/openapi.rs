//! OpenAPI 3.0 / 3.1 documents → catalog tools (contract §1.6–1.7).
//!
//! The document is kept as a `serde_json::Value` (YAML is converted on read) rather than typed
//! OpenAPI structs: 3.0 and 3.1 differ in schema dialect, and tools only need a few fields
//! plus faithful JSON snapshots of schemas. Internal `$ref`s (`#/...`) are resolved; schemas in
//! the catalog are snapshots with references inlined, and a recursive reference is left as
//! `{"$ref": ...}` where it recurs, so recursive schemas never hang the build.

use std::collections::{BTreeMap, HashMap};

use open_cli_config::ntc::{
    AuthAlternative, AuthRequirement, MediaType, OAuthFlow, Parameter, RequestBody, Safety, Tool,
};
use serde_json::{Map, Value};

use url::Url;

use crate::slug::slug;

/// HTTP methods that become tools, in the order they are considered.
pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// An OpenAPI document and every document its `$ref`s reach, keyed by URL (no fragment).
#[derive(Debug)]
pub struct DocSet {
    docs: HashMap<String, Value>,
    /// URL of the OpenAPI document itself.
    pub root: String,
    /// JSON nodes of the schema snapshots taken so far ([`MAX_DESCRIPTION_NODES`]).
    snapshot_nodes: std::cell::Cell<usize>,
}

/// Problems are plain sentences; the caller prefixes the source and file.
pub type Problems = Vec<String>;

/// JSON nodes a schema snapshot may have when references are inlined; a larger one is
/// snapshotted with shared subschemas ([`DocSet::snapshot`]).
pub const INLINE_NODES: usize = 20_000;
/// JSON nodes one schema snapshot with shared subschemas may have.
pub const MAX_SCHEMA_NODES: usize = 1_000_000;
/// JSON nodes all schema snapshots of one OpenAPI description may have together.
pub const MAX_DESCRIPTION_NODES: usize = 8_000_000;

/// JSON nodes all tool schemas of one catalog may have together.
pub const MAX_CATALOG_NODES: usize = 16_000_000;

/// JSON nodes of a tool's schema snapshots (parameters and request bodies).
pub fn schema_nodes(tool: &Tool) -> usize {
    let params = tool
        .path_params
        .iter()
        .chain(&tool.flags)
        .filter_map(|p| p.schema.as_ref());
    let bodies = tool
        .request_body
        .iter()
        .flat_map(|b| &b.content_types)
        .filter_map(|m| m.schema.as_ref());
    params.chain(bodies).map(count_nodes).sum()
}

/// The absolute identity (`<document URL>#<pointer>`) of a reference.
fn ref_id(base: &str, reference: &str) -> String {
    split_ref(base, reference)
        .map(|(d, f)| format!("{d}#{f}"))
        .unwrap_or_else(|_| reference.to_string())
}

/// Number of JSON values in `v` (itself included).
fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(count_nodes).sum::<usize>(),
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// The `$defs` names given out while snapshotting one schema with shared subschemas.
#[derive(Default)]
struct Sharing<'a> {
    /// Reference identity → name.
    names: HashMap<String, String>,
    taken: std::collections::HashSet<String>,
    /// Definitions named but not yet snapshotted.
    pending: Vec<(String, &'a str, &'a Value)>,
}

impl<'a> Sharing<'a> {
    /// The name of the definition for `id`, named after the pointer's last segment (made
    /// unique); a new one is queued for snapshotting.
    fn name_for(&mut self, id: String, target_base: &'a str, target: &'a Value) -> String {
        if let Some(n) = self.names.get(&id) {
            return n.clone();
        }
        let last = id.rsplit(['/', '#']).next().unwrap_or_default();
        let stem: String = percent_decode(last)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stem = if stem.is_empty() {
            "schema".to_string()
        } else {
            stem
        };
        let mut name = stem.clone();
        let mut i = 2;
        while self.taken.contains(&name) {
            name = format!("{stem}_{i}");
            i += 1;
        }
        self.taken.insert(name.clone());
        self.names.insert(id, name.clone());
        self.pending.push((name.clone(), target_base, target));
        name
    }
}

/// Parse JSON or YAML text. `hint` (file name or URL) picks the parser to try first.
pub fn parse_document(text: &str, hint: &str) -> Result<Value, String> {
    let lower = hint.to_ascii_lowercase();
    // JSON nesting is bounded by serde_json's own limit (128), in linear time; YAML is
    // pre-scanned for it (see `super::nesting`).
    let yaml = |text: &str| {
        super::nesting::check_yaml_nesting(text)?;
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    };
    if lower.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                format!(
                    "invalid JSON: line {}: collections nest deeper than {} levels (the nesting bound)",
                    e.line(),
                    super::nesting::MAX_NESTING
                )
            } else {
                format!("invalid JSON: {e}")
            }
        })
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        yaml(text).map_err(|e| format!("invalid YAML: {e}"))
    } else {
        serde_json::from_str(text)
            .or_else(|_| yaml(text))
            .map_err(|e| format!("neither JSON nor YAML: {e}"))
    }
}

/// Accept OpenAPI 3.0.x and 3.1.x; reject Swagger 2.0 with a conversion hint.
pub fn check_version(root: &Value) -> Result<(), String> {
    if let Some(v) = root.get("swagger") {
        return Err(format!(
            "Swagger {} documents are not supported; convert it to OpenAPI 3 first (for example with `npx swagger2openapi`)",
            v.as_str().unwrap_or("2.0")
        ));
    }
    match root.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") || v.starts_with("3.1.") => Ok(()),
        Some(v) => Err(format!(
            "OpenAPI version `{v}` is not supported; use 3.0.x or 3.1.x"
        )),
        None => Err("not an OpenAPI document: the `openapi` version field is missing".into()),
    }
}

/// The absolute URL (without fragment) and fragment a reference names, relative to `base`.
pub fn split_ref(base: &str, reference: &str) -> Result<(String, String), String> {
    let base = Url::parse(base).map_err(|e| format!("bad base URL `{base}`: {e}"))?;
    let mut url = base
        .join(reference)
        .map_err(|e| format!("`$ref` `{reference}` is not a valid reference: {e}"))?;
    let fragment = url.fragment().unwrap_or_default().to_string();
    url.set_fragment(None);
    Ok((url.to_string(), fragment))
}

/// The documents (URLs without fragment) that `$ref`s anywhere in `v` point to.
pub fn referenced_documents(base: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str)
                && !r.starts_with('#')
                && let Ok((doc, _)) = split_ref(base, r)
                && !out.contains(&doc)
            {
                out.push(doc);
            }
            for child in map.values() {
                referenced_documents(base, child, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| referenced_documents(base, i, out)),
        _ => {}
    }
}

impl DocSet {
    pub fn new(root: String, docs: HashMap<String, Value>) -> Self {
        Self {
            docs,
            root,
            snapshot_nodes: std::cell::Cell::new(0),
        }
    }

    /// A set with one document (tests, synthetic documents).
    pub fn single(root: &str, doc: Value) -> Self {
        Self::new(root.to_string(), HashMap::from([(root.to_string(), doc)]))
    }

    /// The same set with the root document replaced (after overlays).
    pub fn with_root(&self, root: Value) -> Self {
        let mut docs = self.docs.clone();
        docs.insert(self.root.clone(), root);
        Self::new(self.root.clone(), docs)
    }

    pub fn root_doc(&self) -> &Value {
        self.docs.get(&self.root).unwrap_or(&Value::Null)
    }

    pub fn title(&self) -> Option<&str> {
        self.root_doc()
            .pointer("/info/title")
            .and_then(Value::as_str)
    }

    /// Follow `$ref` chains; returns the value and the URL of the document it lives in.
    pub fn resolve<'a>(
        &'a self,
        base: &'a str,
        v: &'a Value,
    ) -> Result<(&'a str, &'a Value), String> {
        let (mut base, mut cur) = (base, v);
        for _ in 0..32 {
            match cur.get("$ref").and_then(Value::as_str) {
                Some(r) => (base, cur) = self.lookup(base, r)?,
                None => return Ok((base, cur)),
            }
        }
        Err("`$ref` chain is longer than 32 links (a reference cycle?)".into())
    }

    fn lookup<'a>(&'a self, base: &str, reference: &str) -> Result<(&'a str, &'a Value), String> {
        let (doc_url, fragment) = split_ref(base, reference)?;
        let Some((key, doc)) = self.docs.get_key_value(&doc_url) else {
            return Err(format!(
                "`$ref` `{reference}` names a document that was not loaded ({doc_url})"
            ));
        };
        let pointer = percent_decode(&fragment);
        doc.pointer(&pointer)
            .map(|v| (key.as_str(), v))
            .ok_or_else(|| format!("`$ref` `{reference}` points at nothing in {doc_url}"))
    }

    /// A JSON snapshot of a schema with references inlined. A reference that recurs inside
    /// itself is left as `{"$ref": ...}` where it recurs.
    ///
    /// Inlining copies a subschema at every place it is referenced, so a `$ref` DAG (a schema
    /// whose properties all reference the next one, twenty levels deep) would expand
    /// exponentially. Inlining therefore stops after [`INLINE_NODES`] nodes; such a schema is
    /// snapshotted *shared* instead (`DocSet::shared`): every referenced subschema once, under
    /// the snapshot's `$defs`, referenced as `#/$defs/<name>`. A shared snapshot larger than
    /// [`MAX_SCHEMA_NODES`], or snapshots of one description totalling more than
    /// [`MAX_DESCRIPTION_NODES`], are errors.
    pub fn snapshot(&self, base: &str, v: &Value) -> Result<Value, String> {
        let mut stack = Vec::new();
        let mut budget = INLINE_NODES;
        let snap = match self.inline(base, v, &mut stack, &mut budget) {
            Some(inlined) => inlined,
            None => self.shared(base, v)?,
        };
        let total = self.snapshot_nodes.get() + count_nodes(&snap);
        self.snapshot_nodes.set(total);
        if total > MAX_DESCRIPTION_NODES {
            return Err(format!(
                "the schemas of {} expand to more than {MAX_DESCRIPTION_NODES} JSON nodes in the catalog (the bound per description)",
                self.root
            ));
        }
        Ok(snap)
    }

    /// Inline references; `None` once more than `budget` nodes were produced.
    fn inline(
        &self,
        base: &str,
        v: &Value,
        stack: &mut Vec<String>,
        budget: &mut usize,
    ) -> Option<Value> {
        *budget = budget.checked_sub(1)?;
        Some(match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    let id = ref_id(base, r);
                    if stack.contains(&id) || stack.len() >= 64 {
                        return Some(
                            serde_json::json!({ "$ref": if r.starts_with('#') { r.to_string() } else { id } }),
                        );
                    }
                    let Ok((target_base, target)) = self.lookup(base, r) else {
                        return Some(v.clone());
                    };
                    stack.push(id);
                    let out = self.inline(target_base, target, stack, budget);
                    stack.pop();
                    let mut out = out?;
                    // 3.1 allows siblings next to `$ref`; keep them.
                    if let Value::Object(o) = &mut out {
                        for (k, sv) in map.iter().filter(|(k, _)| *k != "$ref") {
                            o.insert(k.clone(), self.inline(base, sv, stack, budget)?);
                        }
                    }
                    return Some(out);
                }
                let mut out = Map::new();
                for (k, sv) in map {
                    out.insert(k.clone(), self.inline(base, sv, stack, budget)?);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.inline(base, i, stack, budget))
                    .collect::<Option<_>>()?,
            ),
            other => other.clone(),
        })
    }

    /// A snapshot in which every referenced subschema appears once, under `$defs` of the
    /// snapshot's root, and each reference is rewritten to `#/$defs/<name>`. Its size is
    /// linear in the size of the schemas it reaches, whatever their reference structure.
    fn shared(&self, base: &str, v: &Value) -> Result<Value, String> {
        let mut sharing = Sharing::default();
        let mut root = self.share(base, v, &mut sharing);
        let mut defs = Map::new();
        let mut nodes = count_nodes(&root);
        while let Some((name, target_base, target)) = sharing.pending.pop() {
            let def = self.share(target_base, target, &mut sharing);
            nodes += count_nodes(&def);
            if nodes > MAX_SCHEMA_NODES {
                return Err(format!(
                    "the schema at `{}` in {} expands to more than {MAX_SCHEMA_NODES} JSON nodes even with shared subschemas (the bound per schema)",
                    v.get("$ref")
                        .and_then(Value::as_str)
                        .unwrap_or("(inline schema)"),
                    self.root
                ));
            }
            defs.insert(name, def);
        }
        // A root that is itself a reference: the snapshot is its definition (plus `$defs`).
        if let Some(name) = root
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .filter(|_| root.as_object().is_some_and(|o| o.len() == 1))
            && let Some(def) = defs.get(name)
        {
            root = def.clone();
        }
        match &mut root {
            Value::Object(o) => {
                o.insert("$defs".into(), Value::Object(defs));
            }
            _ => return Ok(root),
        }
        Ok(root)
    }

    fn share<'a>(&'a self, base: &'a str, v: &'a Value, sharing: &mut Sharing<'a>) -> Value {
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, sv) in map {
                    if k == "$ref"
                        && let Some(r) = sv.as_str()
                    {
                        let Ok((target_base, target)) = self.lookup(base, r) else {
                            out.insert(k.clone(), sv.clone());
                            continue;
                        };
                        let name = sharing.name_for(ref_id(base, r), target_base, target);
                        out.insert(k.clone(), Value::String(format!("#/$defs/{name}")));
                    } else {
                        out.insert(k.clone(), self.share(base, sv, sharing));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.share(base, i, sharing)).collect())
            }
            other => other.clone(),
        }
    }

    /// Document-level server URLs, resolved against the document's URL when it was fetched
    /// over HTTP; a remote document without `servers` gets its origin.
    pub fn servers(&self, problems: &mut Problems) -> Vec<String> {
        let root = self.root_doc();
        let urls = server_urls(root.get("servers"), "servers", &self.root, problems);
        if urls.is_empty()
            && let Ok(u) = Url::parse(&self.root)
            && matches!(u.scheme(), "http" | "https")
        {
            return vec![u.origin().ascii_serialization()];
        }
        urls
    }
}

/// Who the tools belong to.
#[derive(Debug, Clone)]
pub struct ServiceRef<'a> {
    pub id: &'a str,
}

/// Build one tool per operation of `doc` for the given service.
pub fn tools(doc: &DocSet, service: &ServiceRef<'_>, problems: &mut Problems) -> Vec<Tool> {
    let Some(paths) = doc.root_doc().get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    let doc_servers = doc.servers(problems);
    let mut keys: Vec<&String> = paths.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for path in keys {
        let (base, item) = match doc.resolve(&doc.root, &paths[path]) {
            Ok((base, Value::Object(item))) => (base, item),
            Ok(_) => {
                problems.push(format!("paths.{path}: must be an object"));
                continue;
            }
            Err(e) => {
                problems.push(format!("paths.{path}: {e}"));
                continue;
            }
        };
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let Value::Object(op) = op else {
                problems.push(format!("paths.{path}.{method}: must be an object"));
                continue;
            };
            if op.get("x-cli-ignore").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let ctx = OpCtx {
                doc,
                base,
                service,
                path,
                method,
                item,
                op,
                doc_servers: &doc_servers,
            };
            if let Some(tool) = ctx.tool(problems) {
                out.push(tool);
            }
        }
    }
    out
}

struct OpCtx<'a> {
    doc: &'a DocSet,
    /// URL of the document holding the path item.
    base: &'a str,
    service: &'a ServiceRef<'a>,
    path: &'a str,
    method: &'static str,
    item: &'a Map<String, Value>,
    op: &'a Map<String, Value>,
    doc_servers: &'a [String],
}

impl OpCtx<'_> {
    fn at(&self) -> String {
        format!("{} {}", self.method.to_ascii_uppercase(), self.path)
    }

    fn str_ext(&self, key: &str) -> Option<String> {
        self.op
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn tool(&self, problems: &mut Problems) -> Option<Tool> {
        let operation_id = self.str_ext("operationId");
        let identity = operation_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.method, self.path));
        let before = problems.len();
        let (path_params, flags) = self.parameters(problems);
        let request_body = self.request_body(problems);
        let auth_alternatives = self.security(problems);
        let safety = self.safety(problems);
        let servers = self.servers(problems);
        if problems.len() > before {
            return None;
        }
        let description = self
            .str_ext("x-cli-description")
            .or_else(|| self.str_ext("description"));
        Some(Tool {
            id: format!("{}:{identity}", self.service.id),
            service_id: self.service.id.to_string(),
            unstable_id: operation_id.is_none(),
            operation_id,
            method: self.method.to_ascii_uppercase(),
            path: self.path.to_string(),
            group: self.group(),
            command: self
                .str_ext("x-cli-name")
                .unwrap_or_else(|| slug(&identity)),
            aliases: string_list(self.op.get("x-cli-aliases")),
            summary: self.str_ext("summary"),
            description,
            hidden: self.op.get("x-cli-hidden").and_then(Value::as_bool) == Some(true),
            path_params,
            flags,
            request_body,
            auth: flatten_auth(&auth_alternatives),
            auth_alternatives,
            safety,
            output: self.op.get("x-cli-output").cloned(),
            pagination: self.op.get("x-cli-pagination").cloned(),
            retry: self.op.get("x-cli-retry").cloned(),
            guidance: None,
            servers,
            // Honoured only on the synthetic documents of MCP sources.
            backend: if self.doc.root.starts_with("mcp://") {
                self.op
                    .get("x-open-cli-backend")
                    .and_then(|b| serde_json::from_value(b.clone()).ok())
            } else {
                None
            },
        })
    }

    fn group(&self) -> String {
        if let Some(g) = self.str_ext("x-cli-group") {
            return g;
        }
        let tag = self
            .op
            .get("tags")
            .and_then(Value::as_array)
            .and_then(|t| t.first())
            .and_then(Value::as_str)
            .map(slug)
            .filter(|s| !s.is_empty());
        tag.or_else(|| {
            self.path
                .split('/')
                .find(|seg| !seg.is_empty() && !seg.starts_with('{'))
                .map(slug)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "misc".to_string())
    }

    /// Path parameters in path-template order, then the other parameters in declared order.
    fn parameters(&self, problems: &mut Problems) -> (Vec<Parameter>, Vec<Parameter>) {
        let mut merged: Vec<(String, String, &str, &Map<String, Value>)> = Vec::new();
        for (origin, list) in [
            ("path item", self.item.get("parameters")),
            ("operation", self.op.get("parameters")),
        ] {
            let Some(list) = list else { continue };
            let Some(list) = list.as_array() else {
                problems.push(format!(
                    "{}: {origin} `parameters` must be an array",
                    self.at()
                ));
                continue;
            };
            for (i, p) in list.iter().enumerate() {
                let (pbase, p) = match self.doc.resolve(self.base, p) {
                    Ok((pbase, Value::Object(p))) => (pbase, p),
                    Ok(_) => {
                        problems.push(format!("{}: parameter {i} must be an object", self.at()));
                        continue;
                    }
                    Err(e) => {
                        problems.push(format!("{}: parameter {i}: {e}", self.at()));
                        continue;
                    }
                };
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                let loc = p.get("in").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() || !matches!(loc, "path" | "query" | "header" | "cookie") {
                    problems.push(format!(
                        "{}: parameter {i} needs a `name` and `in` of path, query, header or cookie",
                        self.at()
                    ));
                    continue;
                }
                merged.retain(|(n, l, _, _)| !(n == name && l == loc));
                merged.push((name.to_string(), loc.to_string(), pbase, p));
            }
        }
        let mut path_params = Vec::new();
        let mut flags: Vec<Parameter> = Vec::new();
        for (name, loc, pbase, p) in &merged {
            let schema = match p.get("schema").map(|s| self.doc.snapshot(pbase, s)) {
                Some(Err(e)) => {
                    problems.push(format!("{}: parameter `{name}`: {e}", self.at()));
                    None
                }
                Some(Ok(s)) => Some(s),
                None => None,
            };
            let param = Parameter {
                name: p
                    .get("x-cli-name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| slug(name)),
                original_name: name.clone(),
                location: loc.clone(),
                required: loc == "path" || p.get("required").and_then(Value::as_bool) == Some(true),
                description: p
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                schema,
            };
            if loc == "path" {
                path_params.push(param);
            } else {
                flags.push(param);
            }
        }
        let template: Vec<&str> = self
            .path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(n, _)| n))
            .collect();
        for t in &template {
            if !path_params.iter().any(|p| p.original_name == *t) {
                problems.push(format!(
                    "{}: path parameter `{t}` is not declared",
                    self.at()
                ));
            }
        }
        path_params.sort_by_key(|p| template.iter().position(|t| *t == p.original_name));
        dedupe_flag_names(&mut flags);
        (path_params, flags)
    }

    fn request_body(&self, problems: &mut Problems) -> Option<RequestBody> {
        let body = self.op.get("requestBody")?;
        let (bbase, body) = match self.doc.resolve(self.base, body) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{}: requestBody: {e}", self.at()));
                return None;
            }
        };
        let mut content_types: Vec<MediaType> = body
            .get("content")
            .and_then(Value::as_object)
            .map(|c| {
                c.iter()
                    .map(|(media_type, m)| MediaType {
                        media_type: media_type.clone(),
                        schema: match m.get("schema").map(|s| self.doc.snapshot(bbase, s)) {
                            Some(Err(e)) => {
                                problems.push(format!(
                                    "{}: requestBody `{media_type}`: {e}",
                                    self.at()
                                ));
                                None
                            }
                            Some(Ok(s)) => Some(s),
                            None => None,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        content_types.sort_by(|a, b| a.media_type.cmp(&b.media_type));
        Some(RequestBody {
            required: body.get("required").and_then(Value::as_bool) == Some(true),
            content_types,
        })
    }

    fn security(&self, problems: &mut Problems) -> Vec<AuthAlternative> {
        let Some(reqs) = self
            .op
            .get("security")
            .or_else(|| self.doc.root_doc().get("security"))
        else {
            return Vec::new();
        };
        let Some(reqs) = reqs.as_array() else {
            problems.push(format!("{}: `security` must be an array", self.at()));
            return Vec::new();
        };
        let schemes = self.doc.root_doc().pointer("/components/securitySchemes");
        let mut out = Vec::new();
        for req in reqs {
            let Some(req) = req.as_object() else {
                problems.push(format!(
                    "{}: each `security` entry must be an object",
                    self.at()
                ));
                continue;
            };
            let mut requirements = Vec::new();
            for (name, scopes) in req {
                let scheme = schemes
                    .and_then(|s| s.get(name))
                    .map(|s| self.doc.resolve(&self.doc.root, s));
                match scheme {
                    Some(Ok((_, s))) => {
                        requirements.push(requirement(name, s, string_list(Some(scopes))))
                    }
                    Some(Err(e)) => {
                        problems.push(format!("{}: security scheme `{name}`: {e}", self.at()))
                    }
                    None => problems.push(format!(
                        "{}: security scheme `{name}` is not defined in components.securitySchemes",
                        self.at()
                    )),
                }
            }
            out.push(AuthAlternative { requirements });
        }
        out
    }

    fn safety(&self, problems: &mut Problems) -> Safety {
        let m = self.method;
        let mut s = Safety {
            destructive: m == "delete",
            read_only: m == "get",
            requires_approval: false,
            idempotent: matches!(m, "get" | "put" | "delete"),
        };
        let Some(ext) = self.op.get("x-cli-safety") else {
            return s;
        };
        let Some(ext) = ext.as_object() else {
            problems.push(format!("{}: `x-cli-safety` must be an object", self.at()));
            return s;
        };
        for (k, v) in ext {
            let slot = match k.as_str() {
                "destructive" => &mut s.destructive,
                "readOnly" => &mut s.read_only,
                "requiresApproval" => &mut s.requires_approval,
                "idempotent" => &mut s.idempotent,
                other => {
                    problems.push(format!(
                        "{}: `x-cli-safety.{other}` is unknown; use destructive, readOnly, requiresApproval or idempotent",
                        self.at()
                    ));
                    continue;
                }
            };
            match v.as_bool() {
                Some(b) => *slot = b,
                None => problems.push(format!(
                    "{}: `x-cli-safety.{k}` must be a boolean",
                    self.at()
                )),
            }
        }
        s
    }

    fn servers(&self, problems: &mut Problems) -> Vec<String> {
        if let Some(s) = self.op.get("servers") {
            return server_urls(
                Some(s),
                &format!("{} servers", self.at()),
                &self.doc.root,
                problems,
            );
        }
        if let Some(s) = self.item.get("servers") {
            return server_urls(
                Some(s),
                &format!("paths.{} servers", self.path),
                &self.doc.root,
                problems,
            );
        }
        self.doc_servers.to_vec()
    }
}

/// Parameters whose slugs collide get their location appended (`id`, `id-header`).
fn dedupe_flag_names(flags: &mut [Parameter]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for f in flags.iter() {
        *seen.entry(f.name.clone()).or_default() += 1;
    }
    let mut first = BTreeMap::new();
    for f in flags.iter_mut() {
        if seen[&f.name] > 1 && first.insert(f.name.clone(), ()).is_some() {
            f.name = format!("{}-{}", f.name, f.location);
        }
    }
}

fn requirement(name: &str, s: &Value, scopes: Vec<String>) -> AuthRequirement {
    let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
    let kind = text("type").unwrap_or_default();
    let mut oauth_flows = Vec::new();
    if let Some(flows) = s.get("flows").and_then(Value::as_object) {
        for mode in [
            "clientCredentials",
            "authorizationCode",
            "implicit",
            "password",
        ] {
            if let Some(f) = flows.get(mode) {
                let t = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
                oauth_flows.push(OAuthFlow {
                    mode: mode.to_string(),
                    authorization_url: t("authorizationUrl"),
                    token_url: t("tokenUrl"),
                    refresh_url: t("refreshUrl"),
                });
            }
        }
    }
    AuthRequirement {
        name: name.to_string(),
        scheme: text("scheme").map(|s| s.to_ascii_lowercase()),
        location: if kind == "apiKey" { text("in") } else { None },
        param_name: if kind == "apiKey" { text("name") } else { None },
        kind,
        scopes,
        oauth_flows,
        open_id_connect_url: text("openIdConnectUrl"),
    }
}

/// The de-duplicated flattening of all alternatives (`auth[]`, kept for older clients).
fn flatten_auth(alts: &[AuthAlternative]) -> Vec<AuthRequirement> {
    let mut out: Vec<AuthRequirement> = Vec::new();
    for r in alts.iter().flat_map(|a| &a.requirements) {
        match out.iter_mut().find(|o| o.name == r.name) {
            Some(o) => {
                for s in &r.scopes {
                    if !o.scopes.contains(s) {
                        o.scopes.push(s.clone());
                    }
                }
            }
            None => out.push(r.clone()),
        }
    }
    out
}

/// Server URLs with variables expanded. Relative URLs are resolved against the document's
/// URL when it was fetched over HTTP (a local document's relative URLs stay as written).
fn server_urls(
    servers: Option<&Value>,
    at: &str,
    doc_url: &str,
    problems: &mut Problems,
) -> Vec<String> {
    let remote = Url::parse(doc_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let Some(list) = servers.and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let Some(url) = s.get("url").and_then(Value::as_str) else {
            problems.push(format!("{at}[{i}]: `url` is required"));
            continue;
        };
        match expand_server_vars(url, s.get("variables")) {
            Ok(u) => {
                let u = match &remote {
                    Some(base) if !u.contains("://") => {
                        base.join(&u).map(|j| j.to_string()).unwrap_or(u)
                    }
                    _ => u,
                };
                out.push(u.trim_end_matches('/').to_string());
            }
            Err(e) => problems.push(format!("{at}[{i}]: {e}")),
        }
    }
    out
}

fn expand_server_vars(url: &str, vars: Option<&Value>) -> Result<String, String> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            return Err(format!("unterminated `{{` in server URL `{url}`"));
        };
        let name = &rest[start + 1..start + len];
        let value = vars
            .and_then(|v| v.get(name))
            .and_then(|v| v.get("default"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("server variable `{name}` of `{url}` has no default"))?;
        out.push_str(value);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) use open_cli_config::reader::string_array as string_list;

/// Decode `%XX` escapes of a URI fragment (JSON pointers in `$ref`s may carry them).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> DocSet {
        DocSet::single("file:///spec/openapi.json", v)
    }

    #[test]
    fn rejects_swagger_and_unknown_versions() {
        let e = check_version(&json!({"swagger": "2.0"})).unwrap_err();
        assert!(e.contains("Swagger 2.0"), "{e}");
        let e = check_version(&parse_document("openapi: 4.0.0\n", "a.yaml").unwrap()).unwrap_err();
        assert!(e.contains("`4.0.0` is not supported"), "{e}");
        assert!(check_version(&parse_document("openapi: 3.1.0\n", "a.yml").unwrap()).is_ok());
    }

    #[test]
    fn recursive_schemas_are_snapshotted_without_hanging() {
        let d = doc(json!({"components": {"schemas": {
            "Node": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}
        }}}));
        let snap = d
            .snapshot(&d.root, &json!({"$ref": "#/components/schemas/Node"}))
            .unwrap();
        assert_eq!(
            snap,
            json!({"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}})
        );
    }

    #[test]
    fn a_reference_dag_is_snapshotted_with_shared_subschemas() {
        // S{i}.properties.p0..p3 → S{i+1}: inlined, 4^20 copies of S20.
        let mut schemas = serde_json::Map::new();
        for i in 0..20 {
            let next = json!({"$ref": format!("#/components/schemas/S{}", i + 1)});
            schemas.insert(
                format!("S{i}"),
                json!({"type": "object", "properties": {"p0": next, "p1": next, "p2": next, "p3": next}}),
            );
        }
        schemas.insert("S20".into(), json!({"type": "string"}));
        let d = doc(json!({"openapi": "3.1.0", "components": {"schemas": schemas}}));
        let snap = d
            .snapshot(&d.root, &json!({"$ref": "#/components/schemas/S0"}))
            .unwrap();
        assert_eq!(snap["type"], "object");
        assert_eq!(snap["properties"]["p3"]["$ref"], "#/$defs/S1");
        assert_eq!(
            snap["$defs"]["S19"]["properties"]["p0"]["$ref"],
            "#/$defs/S20"
        );
        assert_eq!(snap["$defs"]["S20"], json!({"type": "string"}));
        assert!(count_nodes(&snap) < 2_000, "{}", count_nodes(&snap));
        // A small schema that reuses a subschema is still inlined.
        let small = d
            .snapshot(&d.root, &json!({"$ref": "#/components/schemas/S18"}))
            .unwrap();
        assert_eq!(
            small["properties"]["p1"]["properties"]["p2"],
            json!({"type": "string"})
        );
        assert!(small.get("$defs").is_none());
    }

    #[test]
    fn external_refs_resolve_against_the_referencing_document() {
        let root = "http://h/api/openapi.yaml";
        let docs = HashMap::from([
            (
                root.to_string(),
                json!({"x": {"$ref": "schemas/a.yaml#/A"}}),
            ),
            (
                "http://h/api/schemas/a.yaml".to_string(),
                json!({"A": {"properties": {"b": {"$ref": "b.yaml"}}}}),
            ),
            (
                "http://h/api/schemas/b.yaml".to_string(),
                json!({"type": "string"}),
            ),
        ]);
        let d = DocSet::new(root.to_string(), docs);
        let snap = d
            .snapshot(root, &json!({"$ref": "schemas/a.yaml#/A"}))
            .unwrap();
        assert_eq!(snap, json!({"properties": {"b": {"type": "string"}}}));
        let mut refs = Vec::new();
        referenced_documents(root, &d.docs[root], &mut refs);
        assert_eq!(refs, vec!["http://h/api/schemas/a.yaml"]);
    }

    #[test]
    fn server_variables_take_defaults_and_relative_urls_resolve_remotely() {
        let mut p = Vec::new();
        let urls = server_urls(
            Some(
                &json!([{"url": "https://{env}.example.com/v1/", "variables": {"env": {"default": "api"}}}]),
            ),
            "servers",
            "file:///x.yaml",
            &mut p,
        );
        assert_eq!(urls, vec!["https://api.example.com/v1"]);
        let urls = server_urls(
            Some(&json!([{"url": "/v2"}])),
            "servers",
            "http://h:8/specs/a.yaml",
            &mut p,
        );
        assert_eq!(urls, vec!["http://h:8/v2"]);
        server_urls(
            Some(&json!([{"url": "https://{env}.x"}])),
            "servers",
            "file:///x",
            &mut p,
        );
        assert_eq!(
            p,
            vec!["servers[0]: server variable `env` of `https://{env}.x` has no default"]
        );
    }

    #[test]
    fn escaped_pointer_refs_resolve() {
        let d = doc(json!({"paths": {"/items/{id}": {"x": 1}}}));
        let r = json!({"$ref": "#/paths/~1items~1%7Bid%7D"});
        let (_, v) = d.resolve(&d.root, &r).unwrap();
        assert_eq!(v, &json!({"x": 1}));
    }
}
