//! Running a tool command: `--dry-run`, `POST /v1/tools/execute`, and printing the answer.
//!
//! - `--dry-run` prints what would be sent and calls nothing: the method and URL (the tool's
//!   first server, else the service's, else `<base-unresolved>`; path arguments
//!   percent-encoded; query flags under their original names), the header and cookie flags,
//!   whether upstream auth and approval are required, the content type and the body. `json`
//!   and `yaml` print it as an object `{toolId, method, url, headers, auth, approval,
//!   contentType, body}`.
//! - Otherwise the invocation becomes an [`ExecuteRequest`]. The runtime answers `200` with
//!   the upstream's status, body or text whenever the upstream answered; an upstream status
//!   ≥ 400 is printed like any answer and then reported on stderr with exit code
//!   [`exit::UPSTREAM_STATUS`]. Runtime refusals are errors (exit 1, with hints).
//! - `json` prints the upstream's JSON body as is (pretty) or its text raw; `yaml` the same
//!   body as YAML (the same shape as `json`); `pretty` a status line and the body; `table` an
//!   array of objects as columns, anything else as pretty JSON. The status is on stderr when it
//!   is an error, and an empty answer is named there too (`HTTP 204, no content`), so an
//!   empty stdout is never a mystery.

use std::collections::BTreeMap;

use base64::Engine;
use open_cli_config::ntc::Tool;
use open_cli_config::wire::{EffectiveCatalog, ExecuteRequest, ExecuteResponse};
use serde::Serialize;
use serde_json::Value;

use crate::args::Format;
use crate::client::{Client, ViewSelector};
use crate::commands::leaf::Invocation;
use crate::error::{CliError, exit};
use crate::output;

/// What a command prints and how it ends.
#[derive(Debug, Default)]
pub struct Reply {
    pub stdout: String,
    /// One line for stderr, printed after stdout.
    pub stderr: Option<String>,
    pub exit: u8,
}

impl Reply {
    pub fn data(stdout: String) -> Self {
        Self {
            stdout,
            stderr: None,
            exit: exit::OK,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    tool_id: String,
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
    /// `required` or `not_required`.
    auth: &'static str,
    approval: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    /// The body as JSON when it is JSON, else as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

/// The request `inv` would make, as seen from the catalog.
pub fn plan(inv: &Invocation<'_>, effective: &EffectiveCatalog) -> DryRun {
    let t = inv.tool;
    let (method, url) = match &t.backend {
        Some(b) if b.kind == "mcp" => (
            "MCP".to_string(),
            format!("mcp://{}/{}", b.source_id, b.tool_name),
        ),
        _ => (t.method.clone(), url(inv, base(t, effective))),
    };
    let mut headers = BTreeMap::new();
    let mut cookies = Vec::new();
    for (p, v) in &inv.flags {
        match p.location.as_str() {
            "header" => {
                headers.insert(p.original_name.clone(), v.values().join(", "));
            }
            // Encoded as the runtime sends it.
            "cookie" => cookies.extend(v.values().iter().map(|x| {
                format!(
                    "{}={}",
                    p.original_name,
                    open_cli_config::wire::encode_cookie_value(x)
                )
            })),
            _ => {}
        }
    }
    if !cookies.is_empty() {
        headers.insert("Cookie".to_string(), cookies.join("; "));
    }
    let body = inv.body.as_ref().map(|b| {
        serde_json::from_slice::<Value>(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
    });
    DryRun {
        tool_id: t.id.clone(),
        method,
        url,
        headers,
        auth: required(auth_required(t)),
        approval: required(t.safety.requires_approval),
        content_type: inv.body.as_ref().and(inv.content_type.clone()),
        body,
    }
}

/// `--dry-run` output.
pub fn dry_run(plan: &DryRun, format: Format) -> Result<String, CliError> {
    if let Some(text) = output::machine(format, plan)? {
        return Ok(text);
    }
    let mut out = format!("{} {}\n", plan.method, plan.url);
    for (k, v) in &plan.headers {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push_str(&format!(
        "Auth: {}\nApproval: {}\n",
        plan.auth, plan.approval
    ));
    if let Some(ct) = &plan.content_type {
        out.push_str(&format!("Content-Type: {ct}\n"));
    }
    if let Some(body) = &plan.body {
        let text = match body {
            Value::String(s) => s.clone(),
            v => serde_json::to_string(v).unwrap_or_default(),
        };
        out.push_str(&format!("\n{text}\n"));
    }
    Ok(out)
}

fn required(yes: bool) -> &'static str {
    if yes { "required" } else { "not_required" }
}

/// Upstream credentials are needed unless some alternative is anonymous (`{}`).
fn auth_required(t: &Tool) -> bool {
    if t.auth_alternatives.is_empty() {
        !t.auth.is_empty()
    } else {
        t.auth_alternatives
            .iter()
            .all(|a| !a.requirements.is_empty())
    }
}

fn base<'a>(t: &'a Tool, effective: &'a EffectiveCatalog) -> Option<&'a str> {
    t.servers
        .first()
        .or_else(|| {
            effective
                .catalog
                .services
                .iter()
                .find(|s| s.id == t.service_id)
                .and_then(|s| s.servers.first())
        })
        .map(String::as_str)
}

fn url(inv: &Invocation<'_>, base: Option<&str>) -> String {
    let t = inv.tool;
    let mut path = t.path.clone();
    for (p, v) in t.path_params.iter().zip(&inv.path_args) {
        let encoded = open_cli_config::ntc::encode_path_segment(v);
        path = path.replace(&format!("{{{}}}", p.original_name), &encoded);
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (p, v) in inv.flags.iter().filter(|(p, _)| p.location == "query") {
        for value in v.values() {
            query.append_pair(&p.original_name, value);
            any = true;
        }
    }
    let base = base.map_or("<base-unresolved>", |b| b.trim_end_matches('/'));
    if any {
        format!("{base}{path}?{}", query.finish())
    } else {
        format!("{base}{path}")
    }
}

/// The execute request for `inv`.
pub fn request(
    client: &Client,
    view: &ViewSelector,
    inv: &Invocation<'_>,
    approval: bool,
) -> ExecuteRequest {
    ExecuteRequest {
        config_path: client.request_config_path().map(str::to_string),
        mode: view.mode.clone(),
        agent_profile: view.agent_profile.clone(),
        tool_id: inv.tool.id.clone(),
        path_args: inv.path_args.clone(),
        flags: inv
            .flags
            .iter()
            .map(|(p, v)| (p.name.clone(), v.to_json()))
            .collect(),
        body: inv
            .body
            .as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        approval,
    }
}

/// Call `POST /v1/tools/execute` and render the answer.
pub fn execute(client: &Client, req: &ExecuteRequest, format: Format) -> Result<Reply, CliError> {
    let resp = client.execute(req)?;
    let stdout = render(&resp, format)?;
    if resp.status_code >= 400 {
        return Ok(Reply {
            stdout,
            stderr: Some(format!("error: upstream answered {}", resp.status_code)),
            exit: exit::UPSTREAM_STATUS,
        });
    }
    let empty = resp.body.is_none() && resp.text.as_deref().is_none_or(str::is_empty);
    Ok(Reply {
        stderr: empty.then(|| {
            format!(
                "open-cli: `{}` succeeded: the upstream answered HTTP {} with no content",
                req.tool_id, resp.status_code
            )
        }),
        ..Reply::data(stdout)
    })
}

/// The answer in `format`.
pub fn render(resp: &ExecuteResponse, format: Format) -> Result<String, CliError> {
    match format {
        Format::Json => Ok(match (&resp.body, &resp.text) {
            (Some(body), _) => output::machine(Format::Json, body)?.unwrap_or_default(),
            (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        }),
        Format::Yaml => Ok(match (&resp.body, &resp.text) {
            (Some(body), _) => output::machine(Format::Yaml, body)?.unwrap_or_default(),
            (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        }),
        Format::Pretty => {
            let mut out = format!("HTTP {}", resp.status_code);
            if let Some(ct) = &resp.content_type {
                out.push_str(&format!(" ({ct})"));
            }
            out.push('\n');
            out.push_str(&body_text(resp, Format::Pretty));
            Ok(out)
        }
        Format::Table => Ok(body_text(resp, Format::Table)),
    }
}

fn body_text(resp: &ExecuteResponse, format: Format) -> String {
    let mut out = match (&resp.body, &resp.text) {
        (Some(Value::Array(rows)), _) if format == Format::Table && objects(rows) => table(rows),
        (Some(body), _) => serde_json::to_string_pretty(body).unwrap_or_default(),
        (None, Some(text)) => text.clone(),
        (None, None) => String::new(),
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn objects(rows: &[Value]) -> bool {
    !rows.is_empty() && rows.iter().all(Value::is_object)
}

/// Columns are the keys in order of first appearance.
fn table(rows: &[Value]) -> String {
    let mut headers: Vec<&str> = Vec::new();
    for row in rows.iter().filter_map(Value::as_object) {
        for k in row.keys() {
            if !headers.contains(&k.as_str()) {
                headers.push(k);
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .filter_map(Value::as_object)
        .map(|row| {
            headers
                .iter()
                .map(|h| match row.get(*h) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => output::truncate(s, 60),
                    Some(v) => output::truncate(&v.to_string(), 60),
                })
                .collect()
        })
        .collect();
    let upper: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    output::table(&upper, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::leaf::{command, invocation, tests::tool};
    use serde_json::json;

    fn effective(tools: Vec<Tool>) -> EffectiveCatalog {
        serde_json::from_value(json!({
            "catalog": {
                "catalogVersion": "1.0.0", "generatedAt": "now", "sourceFingerprint": "x",
                "sources": [], "tools": [], "effectiveViews": [],
                "services": [{"id": "demo", "alias": "demo", "sourceId": "demo", "title": "Demo",
                              "servers": ["http://api.example/v1/"]}]
            },
            "view": {"name": "discover", "mode": "discover", "tools": tools}
        }))
        .unwrap()
    }

    fn plan_for(t: &Tool, args: &[&str]) -> DryRun {
        let m = command(t, "x")
            .no_binary_name(true)
            .try_get_matches_from(args)
            .unwrap();
        let inv = invocation(t, &m, &mut std::io::empty()).unwrap();
        plan(&inv, &effective(vec![t.clone()]))
    }

    #[test]
    fn dry_run_encodes_path_arguments_and_query() {
        let t = tool(json!({
            "path": "/files/{name}/v/{ver}",
            "pathParams": [
                {"name": "name", "originalName": "name", "location": "path", "required": true},
                {"name": "ver", "originalName": "ver", "location": "path", "required": true}
            ],
            "flags": [
                {"name": "q", "originalName": "q", "location": "query", "required": false},
                {"name": "tag", "originalName": "tag", "location": "query", "required": false, "schema": {"type": "array"}},
                {"name": "x-trace-id", "originalName": "X-Trace-Id", "location": "header", "required": false},
                {"name": "session", "originalName": "session", "location": "cookie", "required": false}
            ],
            "authAlternatives": [{"requirements": [{"name": "key", "type": "apiKey"}]}],
            "safety": {"destructive": false, "readOnly": true, "requiresApproval": true}
        }));
        let p = plan_for(
            &t,
            &[
                "a b/c?d",
                "1.0~x",
                "--q",
                "x&y",
                "--tag",
                "a",
                "--tag",
                "b",
                "--x-trace-id",
                "t1",
                "--session",
                "s; admin=1",
            ],
        );
        assert_eq!(
            p.url,
            "http://api.example/v1/files/a%20b%2Fc%3Fd/v/1.0~x?q=x%26y&tag=a&tag=b"
        );
        assert_eq!(p.auth, "required");
        assert_eq!(p.approval, "required");
        let text = dry_run(&p, Format::Pretty).unwrap();
        assert!(
            text.starts_with("GET http://api.example/v1/files/a%20b%2Fc%3Fd/"),
            "{text}"
        );
        assert!(text.contains("X-Trace-Id: t1\n"), "{text}");
        // As the runtime sends it: one cookie, `;` and space percent-encoded.
        assert!(text.contains("Cookie: session=s%3B%20admin=1\n"), "{text}");
        assert!(
            text.contains("Auth: required\nApproval: required\n"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&dry_run(&p, Format::Json).unwrap()).unwrap();
        assert_eq!(v["toolId"], "demo:x");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["headers"]["X-Trace-Id"], "t1");
        assert!(v.get("body").is_none());
    }

    #[test]
    fn dry_run_without_servers_and_with_a_body() {
        let mut t = tool(json!({
            "method": "POST",
            "path": "/items",
            "serviceId": "other",
            "authAlternatives": [{"requirements": []}],
            "requestBody": {"required": true, "contentTypes": [{"mediaType": "application/json"}]}
        }));
        t.servers.clear();
        let p = plan_for(&t, &["--body", r#"{"name":"x"}"#]);
        assert_eq!(p.url, "<base-unresolved>/items");
        assert_eq!(p.auth, "not_required");
        assert_eq!(p.approval, "not_required");
        assert_eq!(p.body, Some(json!({"name": "x"})));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        let text = dry_run(&p, Format::Table).unwrap();
        assert!(
            text.contains("Content-Type: application/json\n\n{\"name\":\"x\"}\n"),
            "{text}"
        );
    }

    #[test]
    fn answers_render_per_format() {
        let items = ExecuteResponse {
            status_code: 200,
            body: Some(json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b", "tag": "t"}])),
            text: None,
            content_type: Some("application/json".into()),
        };
        let json_out = render(&items, Format::Json).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&json_out).unwrap(),
            items.body.clone().unwrap()
        );
        assert_eq!(
            render(&items, Format::Table).unwrap(),
            "ID  NAME  TAG\n1   a\n2   b     t\n"
        );
        assert!(
            render(&items, Format::Pretty)
                .unwrap()
                .starts_with("HTTP 200 (application/json)\n[")
        );
        // YAML has the shape of JSON: the body, not an envelope.
        let y = render(&items, Format::Yaml).unwrap();
        let from_yaml: Value = serde_yaml_ng::from_str(&y).unwrap();
        assert_eq!(from_yaml, items.body.clone().unwrap(), "{y}");
        let text = ExecuteResponse {
            status_code: 200,
            body: None,
            text: Some("hello".into()),
            content_type: Some("text/plain".into()),
        };
        assert_eq!(render(&text, Format::Json).unwrap(), "hello");
        assert_eq!(render(&text, Format::Table).unwrap(), "hello\n");
        let obj = ExecuteResponse {
            status_code: 404,
            body: Some(json!({"code": 404})),
            text: None,
            content_type: None,
        };
        assert_eq!(
            render(&obj, Format::Table).unwrap(),
            "{\n  \"code\": 404\n}\n"
        );
    }
}
