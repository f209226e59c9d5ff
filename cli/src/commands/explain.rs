//! `open-cli explain <ref>` (the contract's report on one tool) and `open-cli search <words>`
//! (tools of the view ranked by where the words occur).

use open_cli_config::ntc::Tool;
use open_cli_config::wire::EffectiveCatalog;
use serde::Serialize;
use serde_json::{Value, json};

use crate::args::Format;
use crate::client::{Client, ViewSelector};
use crate::commands::catalog::{alias_of, aliases};
use crate::commands::exec::Reply;
use crate::error::CliError;
use crate::output;

/// `explain <tool-id | service [group] command>`: the contract's report (`toolId, summary,
/// method, path, service, group, command, description, pathParams, parameters, requestBody,
/// guidance, servers, safety, auth, authAlternatives, approvalRequired, approvalStatus,
/// runtime{mode}, runtimeAvailable`), plus `commandLine`, the command to type.
///
/// `approvalStatus` comes from the catalog the runtime serves, which marks the tools its
/// `policy.approvalRequired` matches (the reference guessed from the local config files).
pub fn explain(
    client: &Client,
    view: &ViewSelector,
    reference: &[String],
    format: Format,
) -> Result<String, CliError> {
    let effective = client.effective(view)?;
    let tool = crate::commands::tool::resolve(&effective, reference)?;
    let aliases = aliases(&effective);
    let alias = alias_of(&aliases, &tool.service_id);
    let report = report(tool, alias, &effective);
    if let Some(text) = output::machine(format, &report)? {
        return Ok(text);
    }
    Ok(text_report(tool, alias, &report))
}

fn command_line(tool: &Tool, alias: &str) -> String {
    let mut words = vec!["open-cli".to_string(), alias.to_string()];
    if !tool.group.is_empty() && tool.group != alias && tool.group != tool.service_id {
        words.push(tool.group.clone());
    }
    words.push(tool.command.clone());
    words.extend(tool.path_params.iter().map(|p| format!("<{}>", p.name)));
    for f in tool.flags.iter().filter(|f| f.required) {
        words.push(format!("--{} <{}>", f.name, f.name));
    }
    if tool.request_body.as_ref().is_some_and(|b| b.required) {
        words.push("--body <JSON>".into());
    }
    words.join(" ")
}

fn report(tool: &Tool, alias: &str, effective: &EffectiveCatalog) -> Value {
    let auth_required = !tool.auth_alternatives.is_empty()
        && !tool
            .auth_alternatives
            .iter()
            .any(|a| a.requirements.is_empty());
    let approval = tool.safety.requires_approval;
    json!({
        "toolId": tool.id,
        "summary": tool.summary,
        "method": tool.method,
        "path": tool.path,
        "service": tool.service_id,
        "group": tool.group,
        "command": tool.command,
        "commandLine": command_line(tool, alias),
        "description": tool.description,
        "pathParams": tool.path_params,
        "parameters": tool.flags,
        "requestBody": tool.request_body,
        "guidance": tool.guidance,
        "servers": tool.servers,
        "safety": tool.safety,
        "auth": if auth_required { "required" } else { "not_required" },
        "authAlternatives": tool.auth_alternatives,
        "approvalRequired": approval,
        "approvalStatus": if approval { "required" } else { "not_required" },
        "runtime": {"mode": effective.view.mode, "view": effective.view.name},
        "runtimeAvailable": true,
    })
}

fn text_report(tool: &Tool, alias: &str, r: &Value) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("tool", tool.id.clone()),
        ("command", command_line(tool, alias)),
        ("request", format!("{} {}", tool.method, tool.path)),
    ];
    if let Some(s) = &tool.summary {
        rows.push(("summary", s.clone()));
    }
    if let Some(d) = &tool.description
        && Some(d) != tool.summary.as_ref()
    {
        rows.push(("description", output::truncate(d, 300)));
    }
    for p in &tool.path_params {
        rows.push(("argument", param_line(p)));
    }
    for p in &tool.flags {
        rows.push(("flag", param_line(p)));
    }
    if let Some(b) = &tool.request_body {
        let types: Vec<&str> = b
            .content_types
            .iter()
            .map(|c| c.media_type.as_str())
            .collect();
        let need = if b.required { "required" } else { "optional" };
        rows.push(("body", format!("{} ({need})", types.join(", "))));
    }
    if let Some(g) = &tool.guidance {
        for w in &g.when_to_use {
            rows.push(("use when", w.clone()));
        }
        for w in &g.avoid_when {
            rows.push(("avoid when", w.clone()));
        }
    }
    rows.push((
        "auth",
        r["auth"].as_str().unwrap_or_default().replace('_', " "),
    ));
    let s = tool.safety;
    rows.push(("safety", crate::commands::tool::safety_words(&s, false)));
    rows.push((
        "approval",
        if s.requires_approval {
            "required: pass --approval once a human approved the call".into()
        } else {
            "not required".into()
        },
    ));
    if !tool.servers.is_empty() {
        rows.push(("servers", tool.servers.join(", ")));
    }
    output::pairs(&rows)
}

fn param_line(p: &open_cli_config::ntc::Parameter) -> String {
    let name = if p.location == "path" {
        format!("<{}>", p.name)
    } else {
        format!("--{}", p.name)
    };
    let ty = p
        .schema
        .as_ref()
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("string");
    let req = if p.required && p.location != "path" {
        ", required"
    } else {
        ""
    };
    let desc = p
        .description
        .as_deref()
        .map(|d| format!(": {}", output::truncate(d, 80)))
        .unwrap_or_default();
    format!("{name} ({ty}, {}{req}){desc}", p.location)
}

/// One search hit.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Hit<'a> {
    tool_id: &'a str,
    command_line: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    score: u32,
}

/// Where a word counts most: the ID and command name, then the summary, the description and
/// the guidance.
const WEIGHTS: [u32; 5] = [8, 8, 4, 2, 1];

/// The score of `tool` for `words` (lower-cased): every word must occur in some field
/// (case-insensitive substring), else `None`; each word adds the weight of every field it
/// occurs in, and twice that when it is a whole word of the ID or command.
fn score(tool: &Tool, words: &[String]) -> Option<u32> {
    let guidance = tool
        .guidance
        .as_ref()
        .map(|g| {
            g.when_to_use
                .iter()
                .chain(&g.avoid_when)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let fields = [
        tool.id.to_lowercase(),
        tool.command.to_lowercase(),
        tool.summary.as_deref().unwrap_or_default().to_lowercase(),
        tool.description
            .as_deref()
            .unwrap_or_default()
            .to_lowercase(),
        guidance.to_lowercase(),
    ];
    let mut total = 0;
    for w in words {
        let mut hit = 0;
        for (i, f) in fields.iter().enumerate() {
            if f.contains(w.as_str()) {
                hit += WEIGHTS[i];
                let whole = i < 2
                    && f.split(|c: char| !c.is_ascii_alphanumeric())
                        .any(|part| part == w);
                if whole {
                    hit += WEIGHTS[i];
                }
            }
        }
        if hit == 0 {
            return None;
        }
        total += hit;
    }
    Some(total)
}

/// `search <words…> [--service S]`: the view's tools in which every word occurs, best first.
/// No match is not an error: a message on stderr, exit 0.
pub fn search(
    client: &Client,
    view: &ViewSelector,
    words: &[String],
    service: Option<&str>,
    format: Format,
) -> Result<Reply, CliError> {
    let effective = client.effective(view)?;
    let aliases = aliases(&effective);
    let lowered: Vec<String> = words
        .iter()
        .flat_map(|w| w.split_whitespace())
        .map(str::to_lowercase)
        .collect();
    if lowered.is_empty() {
        return Err(CliError::usage("search needs at least one word"));
    }
    if let Some(s) = service
        && !effective
            .view
            .tools
            .iter()
            .any(|t| s == t.service_id || s == alias_of(&aliases, &t.service_id))
    {
        return Err(
            CliError::usage(format!("unknown --service `{s}` in this view"))
                .hint("list the services with `open-cli catalog list --format table`"),
        );
    }
    let mut hits: Vec<Hit<'_>> = effective
        .view
        .tools
        .iter()
        .filter(|t| {
            service.is_none_or(|s| s == t.service_id || s == alias_of(&aliases, &t.service_id))
        })
        .filter(|t| !t.hidden)
        .filter_map(|t| {
            score(t, &lowered).map(|score| Hit {
                tool_id: &t.id,
                command_line: command_line(t, alias_of(&aliases, &t.service_id)),
                summary: t.summary.as_deref(),
                score,
            })
        })
        .collect();
    hits.sort_by(|a, b| b.score.cmp(&a.score).then(a.tool_id.cmp(b.tool_id)));
    let stderr = hits.is_empty().then(|| {
        format!(
            "no tool of the `{}` view matches `{}`",
            effective.view.name,
            words.join(" ")
        )
    });
    let stdout = match format {
        Format::Json | Format::Yaml => output::machine(format, &hits)?.unwrap_or_default(),
        _ if hits.is_empty() => String::new(),
        Format::Table => {
            let rows: Vec<Vec<String>> = hits
                .iter()
                .map(|h| {
                    vec![
                        h.tool_id.to_string(),
                        h.command_line.clone(),
                        output::truncate(h.summary.unwrap_or_default(), 60),
                    ]
                })
                .collect();
            output::table(&["TOOL", "COMMAND", "SUMMARY"], &rows)
        }
        Format::Pretty => hits
            .iter()
            .map(|h| {
                format!(
                    "{}\n  {}\n  {}\n",
                    h.tool_id,
                    h.command_line,
                    h.summary.unwrap_or("(no summary)")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let mut reply = Reply::data(stdout);
    reply.stderr = stderr;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(id: &str, command: &str, summary: &str) -> Tool {
        serde_json::from_value(json!({
            "id": id, "serviceId": "demo", "method": "GET", "path": "/x", "group": "items",
            "command": command, "summary": summary,
            "safety": {"destructive": false, "readOnly": true, "requiresApproval": false, "idempotent": true}
        }))
        .unwrap()
    }

    #[test]
    fn every_word_must_occur_and_names_weigh_most() {
        let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let list = tool("demo:listItems", "list-items", "List the items");
        let get = tool(
            "demo:getItem",
            "get-item",
            "Get one item by its list position",
        );
        assert!(score(&list, &words("list")) > score(&get, &words("list")));
        assert!(score(&get, &words("list")).is_some());
        assert_eq!(score(&get, &words("list nope")), None);
        assert!(score(&list, &words("items")).unwrap() > score(&list, &words("the")).unwrap());
    }
}
