//! The catalog's tools as MCP tools, and MCP tool calls as execute requests.
//!
//! **Names.** An MCP tool is named after its tool ID in a form agent hosts accept: the
//! characters `A-Z a-z 0-9 _ -` only (SEP-986 also allows `.`, but common hosts' function
//! names do not), at most 64 of them. The ID's `service:operation` separator becomes `__`,
//! every other character outside the set becomes `_`, and a name that is too long, or that
//! two IDs would share, is cut and ends in `-` and 8 hex digits of the ID's SHA-256. Names are
//! computed once per catalog snapshot over the whole catalog, so a tool's name does not depend
//! on who asks. `?toolNames=short` on the `/mcp` URL names each tool by its operation alone
//! (the part after `service:`) where no other tool of the catalog has the same operation name
//! — what an MCP server fronted by the runtime calls its own tools.
//!
//! **Input schema.** An OpenAPI tool's arguments are one object: each path parameter and
//! flag under its CLI name (`Parameter::name`, with the parameter's schema and
//! description), and the request body under `body` (`requestBody` when a parameter is already
//! called `body`). An MCP tool's input schema is the schema its server published.
//!
//! **Results.** An upstream answer with a status below 400 is a result whose text is the
//! body (JSON as sent, or the text), with the JSON body also as `structuredContent` when it
//! is an object; 400 and above is `isError: true` with the status and the body. An MCP
//! tool's result is relayed as its server gave it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use open_cli_config::ntc::Tool;
use open_cli_config::wire::{ExecuteRequest, ExecuteResponse};
use rmcp::model::{CallToolResult, ContentBlock as Content};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::snapshot::Snapshot;

/// The longest MCP tool name given out.
pub const MAX_NAME: usize = 64;

/// How tools are named at `/mcp` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Naming {
    /// From the whole tool ID (the default).
    Qualified,
    /// From the operation alone where that is unique in the catalog.
    Short,
}

/// One snapshot's tools as MCP tools, per naming: built once per snapshot.
#[derive(Debug)]
pub struct McpCatalog {
    /// Catalog index → MCP tool.
    tools: Vec<Arc<rmcp::model::Tool>>,
    /// MCP name → catalog index.
    by_name: HashMap<Arc<str>, usize>,
    /// Tool ID → catalog index.
    by_id: HashMap<String, usize>,
}

impl McpCatalog {
    /// The MCP face of `snapshot`'s catalog under `naming`, cached per snapshot.
    pub fn of(snapshot: &Snapshot, naming: Naming) -> Arc<McpCatalog> {
        type Cache = Vec<(u64, Naming, Arc<McpCatalog>)>;
        static CACHE: std::sync::Mutex<Cache> = std::sync::Mutex::new(Vec::new());
        let id = snapshot.id();
        {
            let cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, _, c)) = cache.iter().find(|(s, n, _)| *s == id && *n == naming) {
                return Arc::clone(c);
            }
        }
        let built = Arc::new(Self::build(&snapshot.catalog.tools, naming));
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        // Only the newest snapshot's faces are kept (two namings).
        cache.retain(|(s, _, _)| *s == id);
        cache.push((id, naming, Arc::clone(&built)));
        built
    }

    fn build(tools: &[Tool], naming: Naming) -> Self {
        let names = names(tools, naming);
        let mut by_name = HashMap::with_capacity(tools.len());
        let mut by_id = HashMap::with_capacity(tools.len());
        let mut out = Vec::with_capacity(tools.len());
        for (i, (tool, name)) in tools.iter().zip(names).enumerate() {
            let name: Arc<str> = name.into();
            by_name.insert(Arc::clone(&name), i);
            by_id.insert(tool.id.clone(), i);
            out.push(Arc::new(mcp_tool(tool, &name)));
        }
        Self {
            tools: out,
            by_name,
            by_id,
        }
    }

    /// The catalog index of the tool called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The MCP tool of tool ID `id`.
    pub fn tool_by_id(&self, id: &str) -> Option<&rmcp::model::Tool> {
        self.by_id.get(id).map(|&i| &*self.tools[i])
    }
}

/// Every tool's MCP name, in catalog order (see the module docs).
fn names(tools: &[Tool], naming: Naming) -> Vec<String> {
    let operation = |t: &Tool| {
        t.id.strip_prefix(t.service_id.as_str())
            .and_then(|r| r.strip_prefix(':'))
            .unwrap_or(&t.id)
            .to_string()
    };
    let mut short_count: HashMap<String, usize> = HashMap::new();
    if naming == Naming::Short {
        for t in tools {
            *short_count.entry(safe(&operation(t))).or_default() += 1;
        }
    }
    let wanted: Vec<String> = tools
        .iter()
        .map(|t| {
            let short = safe(&operation(t));
            if naming == Naming::Short && short_count.get(&short) == Some(&1) {
                short
            } else {
                safe(&t.id.replacen(':', "__", 1))
            }
        })
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for w in &wanted {
        *count.entry(w.as_str()).or_default() += 1;
    }
    let mut used = HashSet::new();
    let mut out = Vec::with_capacity(tools.len());
    for (t, w) in tools.iter().zip(&wanted) {
        let name = if w.len() <= MAX_NAME && count[w.as_str()] == 1 && !w.is_empty() {
            w.clone()
        } else {
            hashed(w, &t.id)
        };
        used.insert(name.clone());
        out.push(name);
    }
    out
}

/// `name` cut to leave room for `-` and 8 hex digits of `id`'s SHA-256.
fn hashed(name: &str, id: &str) -> String {
    let h = hex::encode(Sha256::digest(id.as_bytes()));
    let keep = name.len().min(MAX_NAME - 9);
    format!("{}-{}", &name[..keep], &h[..8])
}

/// `s` with every character outside `A-Z a-z 0-9 _ -` replaced by `_`.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The argument that carries an OpenAPI tool's request body.
pub fn body_argument(tool: &Tool) -> &'static str {
    if tool
        .path_params
        .iter()
        .chain(&tool.flags)
        .any(|p| p.name == "body")
    {
        "requestBody"
    } else {
        "body"
    }
}

/// One catalog tool as an MCP tool named `name`.
fn mcp_tool(tool: &Tool, name: &str) -> rmcp::model::Tool {
    let input = match &tool.backend {
        Some(_) => tool
            .request_body
            .as_ref()
            .and_then(|b| b.content_types.first())
            .and_then(|m| m.schema.clone())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({"type": "object"})),
        None => openapi_input(tool),
    };
    let mut t = json!({
        "name": name,
        "title": tool.summary.clone().unwrap_or_else(|| tool.id.clone()),
        "description": describe(tool),
        "inputSchema": input,
        "annotations": {
            "title": tool.summary.clone().unwrap_or_else(|| tool.id.clone()),
            "readOnlyHint": tool.safety.read_only,
            "destructiveHint": tool.safety.destructive,
            "idempotentHint": tool.safety.idempotent || tool.safety.read_only,
            "openWorldHint": tool.backend.is_none(),
        },
        "_meta": {"io.open-cli/toolId": tool.id, "io.open-cli/requiresApproval": tool.safety.requires_approval},
    });
    if let Some(schema) = output_schema(tool) {
        t["outputSchema"] = schema;
    }
    serde_json::from_value(t).unwrap_or_else(|e| {
        tracing::error!(tool = %tool.id, error = %e, "MCP tool description is not valid");
        rmcp::model::Tool::new(name.to_string(), tool.id.clone(), Map::new())
    })
}

/// The tool's description for an agent: summary, description, guidance and the approval
/// note.
fn describe(tool: &Tool) -> String {
    let mut out = String::new();
    let mut push = |s: &str| {
        if !s.trim().is_empty() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(s.trim());
        }
    };
    match (&tool.summary, &tool.description) {
        (Some(s), Some(d)) if d.starts_with(s.as_str()) => push(d),
        (s, d) => {
            push(s.as_deref().unwrap_or_default());
            push(d.as_deref().unwrap_or_default());
        }
    }
    if let Some(g) = &tool.guidance {
        if !g.when_to_use.is_empty() {
            push(&format!("Use when: {}", g.when_to_use.join("; ")));
        }
        if !g.avoid_when.is_empty() {
            push(&format!("Avoid when: {}", g.avoid_when.join("; ")));
        }
    }
    if tool.safety.requires_approval {
        push(
            "Requires approval: call with `_meta` {\"io.open-cli/approval\": true} once a human approved it.",
        );
    }
    if out.is_empty() {
        out = tool.id.clone();
    }
    out
}

/// An OpenAPI tool's arguments as one JSON Schema object.
fn openapi_input(tool: &Tool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for p in tool.path_params.iter().chain(&tool.flags) {
        let mut schema = p
            .schema
            .clone()
            .unwrap_or_else(|| json!({"type": "string"}));
        if let (Some(d), Some(obj)) = (&p.description, schema.as_object_mut()) {
            obj.entry("description").or_insert_with(|| d.clone().into());
        }
        if p.required {
            required.push(Value::String(p.name.clone()));
        }
        props.insert(p.name.clone(), schema);
    }
    if let Some(body) = &tool.request_body {
        let key = body_argument(tool);
        let schema = body
            .content_types
            .first()
            .and_then(|m| m.schema.clone())
            .unwrap_or(json!({}));
        props.insert(key.into(), schema);
        if body.required {
            required.push(key.into());
        }
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = Value::Array(required);
    }
    s
}

/// The tool's output schema, when it declares an object-typed one (`x-cli-output.schema`, or
/// the output itself when it is a schema): MCP requires `outputSchema` to be of type object.
fn output_schema(tool: &Tool) -> Option<Value> {
    let out = tool.output.as_ref()?;
    let schema = out.get("schema").unwrap_or(out);
    (schema.get("type").and_then(Value::as_str) == Some("object")).then(|| schema.clone())
}

/// A tool call's arguments are not what the tool takes: answered as a tool error the model
/// can correct (SEP-1303), not as a protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadArguments(pub String);

/// An MCP `tools/call` of `tool` with `args` as the execute request the `/v1` API would get.
pub fn execute_request(
    tool: &Tool,
    args: Option<Map<String, Value>>,
    approval: bool,
    view: (Option<&str>, Option<&str>),
) -> Result<ExecuteRequest, BadArguments> {
    let mut args = args.unwrap_or_default();
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let mut req = ExecuteRequest {
        config_path: None,
        agent_profile: view.0.map(str::to_string),
        mode: view.1.map(str::to_string),
        tool_id: tool.id.clone(),
        path_args: Vec::new(),
        flags: Default::default(),
        body: None,
        approval,
    };
    if let Some(backend) = &tool.backend {
        let body = if backend.input_wrapped {
            args.remove("input").unwrap_or(Value::Null)
        } else {
            Value::Object(args)
        };
        req.body = Some(b64(body.to_string().as_bytes()));
        return Ok(req);
    }
    for p in &tool.path_params {
        match args.remove(&p.name) {
            Some(v) => req.path_args.push(scalar_text(&v).ok_or_else(|| {
                BadArguments(format!(
                    "argument `{}` is a path parameter: give a string, number or boolean",
                    p.name
                ))
            })?),
            None => {
                return Err(BadArguments(format!(
                    "argument `{}` is required (path parameter `{}`)",
                    p.name, p.original_name
                )));
            }
        }
    }
    if tool.request_body.is_some()
        && let Some(body) = args.remove(body_argument(tool))
    {
        let media = tool
            .request_body
            .as_ref()
            .and_then(|b| b.content_types.first())
            .map(|m| m.media_type.as_str())
            .unwrap_or("application/json");
        let bytes = match (&body, media.contains("json")) {
            (Value::String(s), false) => s.clone().into_bytes(),
            _ => body.to_string().into_bytes(),
        };
        req.body = Some(b64(&bytes));
    }
    for (name, value) in args {
        if !tool.flags.iter().any(|f| f.name == name) {
            let known: Vec<&str> = tool
                .path_params
                .iter()
                .chain(&tool.flags)
                .map(|p| p.name.as_str())
                .chain(tool.request_body.as_ref().map(|_| body_argument(tool)))
                .collect();
            return Err(BadArguments(format!(
                "unknown argument `{}`; this tool takes: {}",
                crate::auth::shown(&name),
                if known.is_empty() {
                    "no arguments".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        if !value.is_null() {
            req.flags.insert(name, value);
        }
    }
    Ok(req)
}

/// A path argument's text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The execute envelope of a call to `tool` as an MCP tool result.
pub fn result(tool: &Tool, env: ExecuteResponse) -> CallToolResult {
    if tool.backend.is_some()
        && let Some(body) = &env.body
        && let Ok(mut r) = serde_json::from_value::<CallToolResult>(body.clone())
    {
        // A server of an older revision sends no `resultType`; the 2026-07-28 answer needs
        // it (rmcp drops it again for a client of an older revision).
        r.result_type
            .get_or_insert(rmcp::model::ResultType::COMPLETE);
        return r;
    }
    let text = match (&env.body, &env.text) {
        (Some(b), _) => b.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => String::new(),
    };
    if env.status_code >= 400 {
        let mut r = CallToolResult::error(vec![Content::text(format!(
            "HTTP {}: {}",
            env.status_code,
            if text.is_empty() {
                "(empty body)"
            } else {
                &text
            }
        ))]);
        r.structured_content = None;
        return with_status(r, env.status_code);
    }
    let mut r = CallToolResult::success(vec![Content::text(text)]);
    if let Some(body @ Value::Object(_)) = env.body {
        r.structured_content = Some(body);
    }
    with_status(r, env.status_code)
}

/// `r` with the upstream's status in `_meta`.
fn with_status(mut r: CallToolResult, status: u16) -> CallToolResult {
    let mut meta = serde_json::Map::new();
    meta.insert("io.open-cli/statusCode".into(), status.into());
    r.meta = Some(rmcp::model::MetaObject(meta));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(id: &str) -> Tool {
        serde_json::from_value(json!({
            "id": id, "serviceId": id.split(':').next().unwrap(), "method": "GET", "path": "/x",
            "group": "g", "command": "c",
            "safety": {"destructive": false, "readOnly": true, "requiresApproval": false},
        }))
        .unwrap()
    }

    #[test]
    fn names_are_safe_short_and_unique() {
        let tools = vec![
            tool("demo:listItems"),
            tool("demo:GET:/items/{id}"),
            tool("other:listItems"),
            tool(&format!("demo:{}", "x".repeat(80))),
        ];
        let n = names(&tools, Naming::Qualified);
        assert_eq!(n[0], "demo__listItems");
        assert_eq!(n[1], "demo__GET__items__id_");
        assert_eq!(n[2], "other__listItems");
        assert!(
            n[3].len() <= MAX_NAME && n[3].starts_with("demo__xxx"),
            "{}",
            n[3]
        );
        let s = names(&tools, Naming::Short);
        // `listItems` is in two services: both keep the qualified name.
        assert_eq!(s[0], "demo__listItems");
        assert_eq!(s[2], "other__listItems");
        assert_eq!(s[1], "GET__items__id_");
        for name in n.iter().chain(&s) {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            );
        }
    }

    #[test]
    fn names_two_ids_would_share_are_told_apart() {
        let tools = vec![tool("demo:a.b"), tool("demo:a_b")];
        let n = names(&tools, Naming::Qualified);
        assert_ne!(n[0], n[1]);
        assert!(n[0].starts_with("demo__a_b-") && n[1].starts_with("demo__a_b-"));
    }

    #[test]
    fn arguments_become_path_args_flags_and_body() {
        let mut t = tool("demo:getItem");
        t.path_params = vec![
            serde_json::from_value(
                json!({"name": "id", "originalName": "id", "location": "path", "required": true}),
            )
            .unwrap(),
        ];
        t.flags = vec![
            serde_json::from_value(
                json!({"name": "verbose", "originalName": "verbose", "location": "query", "required": false}),
            )
            .unwrap(),
        ];
        let args = json!({"id": 7, "verbose": true}).as_object().cloned();
        let req = execute_request(&t, args, false, (None, None)).unwrap();
        assert_eq!(req.path_args, vec!["7"]);
        assert_eq!(req.flags["verbose"], json!(true));
        let bad = json!({"id": 7, "verbos": true}).as_object().cloned();
        let e = execute_request(&t, bad, false, (None, None)).unwrap_err();
        assert!(e.0.contains("unknown argument `verbos`"), "{e}");
        assert!(execute_request(&t, None, false, (None, None)).is_err());
    }

    #[test]
    fn upstream_errors_are_tool_errors_with_the_status() {
        let t = tool("demo:x");
        let env = ExecuteResponse {
            status_code: 404,
            body: Some(json!({"error": "nope"})),
            text: None,
            content_type: Some("application/json".into()),
        };
        let r = result(&t, env);
        assert_eq!(r.is_error, Some(true));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["content"][0]["text"], "HTTP 404: {\"error\":\"nope\"}");
        assert_eq!(v["_meta"]["io.open-cli/statusCode"], 404);
    }
}
