//! `open-cli tool schema <tool-id | service [group] command>`.

use open_cli_config::ntc::{Parameter, Tool};
use open_cli_config::wire::EffectiveCatalog;

use crate::args::Format;
use crate::client::{Client, ViewSelector};
use crate::commands::catalog::{alias_of, aliases};
use crate::error::CliError;
use crate::output;

pub fn schema(
    client: &Client,
    view: &ViewSelector,
    reference: &[String],
    format: Format,
) -> Result<String, CliError> {
    let effective = client.effective(view)?;
    let aliases = aliases(&effective);
    let tool = resolve(&effective, reference)?;
    if let Some(text) = output::machine(format, tool)? {
        return Ok(text);
    }
    Ok(describe(tool, alias_of(&aliases, &tool.service_id)))
}

/// The tool of the view a reference names (see [`find`]); a tool of the catalog that the
/// view leaves out is named as such, without look-alikes.
pub(crate) fn resolve<'a>(
    effective: &'a EffectiveCatalog,
    reference: &[String],
) -> Result<&'a Tool, CliError> {
    let aliases = aliases(effective);
    find(&effective.view.tools, &aliases, reference).map_err(|e| {
        let in_catalog = reference.len() == 1 && effective.catalog_has_tool(&reference[0]);
        if in_catalog {
            CliError::usage(format!(
                "tool `{}` is not in the `{}` view",
                reference[0], effective.view.name
            ))
            .hint("choose another view with --agent-profile or --mode discover")
        } else {
            e
        }
    })
}

/// Resolve a reference: a tool ID (contains `:`), or `service [group] command` words where
/// the service may be its ID or alias.
fn find<'a>(
    tools: &'a [Tool],
    aliases: &[(String, String)],
    r: &[String],
) -> Result<&'a Tool, CliError> {
    if let [id] = r
        && id.contains(':')
    {
        return tools.iter().find(|t| t.id == *id).ok_or_else(|| {
            CliError::usage(format!("no tool with ID `{id}`"))
                .hint("list tool IDs with `open-cli catalog list`")
        });
    }
    let matches: Vec<&Tool> = tools
        .iter()
        .filter(|t| {
            let service_ok = |s: &str| s == t.service_id || s == alias_of(aliases, &t.service_id);
            match r {
                [s, c] => service_ok(s) && (t.command == *c || t.aliases.contains(c)),
                [s, g, c] => {
                    service_ok(s) && t.group == *g && (t.command == *c || t.aliases.contains(c))
                }
                _ => false,
            }
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::usage(format!("no tool matches `{}`", r.join(" ")))
            .hint("use a tool ID (`service:operationId`) or `<service> [<group>] <command>`; list them with `open-cli catalog list`")),
        many => Err(CliError::usage(format!("`{}` is ambiguous", r.join(" ")))
            .cause(format!(
                "it matches {}",
                many.iter().map(|t| format!("{} ({} {})", t.id, t.group, t.command)).collect::<Vec<_>>().join(", ")
            ))
            .hint("add the group, or use the tool ID")),
    }
}

fn describe(t: &Tool, alias: &str) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", t.id.clone()),
        (
            "command",
            format!("open-cli {alias} {} {}", t.group, t.command),
        ),
        ("request", format!("{} {}", t.method, t.path)),
    ];
    if let Some(s) = &t.summary {
        rows.push(("summary", s.clone()));
    }
    if !t.path_params.is_empty() {
        rows.push((
            "arguments",
            t.path_params
                .iter()
                .map(param)
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    if !t.flags.is_empty() {
        rows.push((
            "flags",
            t.flags.iter().map(param).collect::<Vec<_>>().join(", "),
        ));
    }
    if let Some(b) = &t.request_body {
        let types: Vec<&str> = b
            .content_types
            .iter()
            .map(|c| c.media_type.as_str())
            .collect();
        rows.push((
            "body",
            format!(
                "{} ({})",
                types.join(", "),
                if b.required { "required" } else { "optional" }
            ),
        ));
    }
    let auth: Vec<String> = t
        .auth_alternatives
        .iter()
        .map(|a| {
            if a.requirements.is_empty() {
                "none".to_string()
            } else {
                a.requirements
                    .iter()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>()
                    .join(" + ")
            }
        })
        .collect();
    rows.push((
        "auth",
        if auth.is_empty() {
            "none".into()
        } else {
            auth.join(" | ")
        },
    ));
    rows.push(("safety", safety_words(&t.safety, true)));
    if !t.servers.is_empty() {
        rows.push(("servers", t.servers.join(", ")));
    }
    output::pairs(&rows)
}

/// A tool's safety as words (`read-only, idempotent`), `-` for none; approval included or not.
pub(crate) fn safety_words(s: &open_cli_config::ntc::Safety, approval: bool) -> String {
    let words: Vec<&str> = [
        (s.read_only, "read-only"),
        (s.destructive, "destructive"),
        (s.idempotent, "idempotent"),
        (approval && s.requires_approval, "requires-approval"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if words.is_empty() {
        "-".into()
    } else {
        words.join(", ")
    }
}

fn param(p: &Parameter) -> String {
    let prefix = if p.location == "path" { "<" } else { "--" };
    let suffix = if p.location == "path" { ">" } else { "" };
    let req = if p.required && p.location != "path" {
        " (required)"
    } else {
        ""
    };
    format!("{prefix}{}{suffix} [{}]{req}", p.name, p.location)
}
