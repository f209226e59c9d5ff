//! `open-cli catalog list` and `open-cli catalog refresh`.

use open_cli_config::ntc::Tool;
use open_cli_config::wire::EffectiveCatalog;

use crate::args::{CatalogListArgs, Format, SafetyFilter};
use crate::client::{Client, ViewSelector};
use crate::error::CliError;
use crate::output;

pub fn list(
    client: &Client,
    view: &ViewSelector,
    args: &CatalogListArgs,
    format: Format,
) -> Result<String, CliError> {
    // The runtime's own document (every tool in `catalog` too), not the compact form.
    let mut effective = client.effective_full(view)?;
    let aliases = aliases(&effective);
    check_filters(&effective, args, &aliases)?;
    effective.view.tools.retain(|t| keep(t, args, &aliases));
    match format {
        Format::Json | Format::Yaml => Ok(output::machine(format, &effective)?.unwrap_or_default()),
        Format::Table => {
            let rows: Vec<Vec<String>> = effective
                .view
                .tools
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        alias_of(&aliases, &t.service_id).to_string(),
                        t.group.clone(),
                        t.command.clone(),
                        t.method.clone(),
                        output::truncate(t.summary.as_deref().unwrap_or_default(), 60),
                    ]
                })
                .collect();
            Ok(output::table(
                &["TOOL", "SERVICE", "GROUP", "COMMAND", "METHOD", "SUMMARY"],
                &rows,
            ))
        }
        Format::Pretty => Ok(effective
            .view
            .tools
            .iter()
            .map(|t| {
                format!(
                    "{}\n  {} {}\n  open-cli {} {} {}\n  {}\n",
                    t.id,
                    t.method,
                    t.path,
                    alias_of(&aliases, &t.service_id),
                    t.group,
                    t.command,
                    t.summary.as_deref().unwrap_or("(no summary)")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// `(service id, alias)` pairs.
pub fn aliases(e: &EffectiveCatalog) -> Vec<(String, String)> {
    e.catalog
        .services
        .iter()
        .map(|s| (s.id.clone(), s.alias.clone()))
        .collect()
}

pub fn alias_of<'a>(aliases: &'a [(String, String)], service_id: &'a str) -> &'a str {
    aliases
        .iter()
        .find(|(id, _)| id == service_id)
        .map(|(_, a)| a.as_str())
        .unwrap_or(service_id)
}

/// A `--service` or `--group` that names nothing in the view is a usage error naming what
/// there is (an empty list would read as "no tools there"), with a suggestion on a near miss.
fn check_filters(
    e: &EffectiveCatalog,
    args: &CatalogListArgs,
    aliases: &[(String, String)],
) -> Result<(), CliError> {
    let tools = &e.view.tools;
    if let Some(s) = args.service.as_deref() {
        let in_view = |t: &&Tool| s == t.service_id || s == alias_of(aliases, &t.service_id);
        if !tools.iter().any(|t| in_view(&t)) {
            let mut names: Vec<&str> = tools
                .iter()
                .map(|t| alias_of(aliases, &t.service_id))
                .collect();
            names.sort_unstable();
            names.dedup();
            return Err(unknown("service", s, &names));
        }
    }
    if let Some(g) = args.group.as_deref() {
        let mut groups: Vec<&str> = tools
            .iter()
            .filter(|t| {
                args.service
                    .as_deref()
                    .is_none_or(|s| s == t.service_id || s == alias_of(aliases, &t.service_id))
            })
            .map(|t| t.group.as_str())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        if !groups.contains(&g) {
            return Err(unknown("group", g, &groups));
        }
    }
    Ok(())
}

fn unknown(what: &str, name: &str, known: &[&str]) -> CliError {
    let mut err = CliError::usage(format!("unknown --{what} `{name}` in this view"));
    if let Some(s) = open_cli_config::diag::did_you_mean(name, known) {
        err = err.hint(format!("did you mean `{s}`?"));
    }
    if known.is_empty() {
        err.cause("the view has no tools")
    } else {
        err.cause(format!("{what}s here: {}", known.join(", ")))
    }
}

fn keep(t: &Tool, args: &CatalogListArgs, aliases: &[(String, String)]) -> bool {
    let service_ok = args
        .service
        .as_deref()
        .is_none_or(|s| s == t.service_id || s == alias_of(aliases, &t.service_id));
    let group_ok = args.group.as_deref().is_none_or(|g| g == t.group);
    let safety_ok = match args.safety {
        None => true,
        Some(SafetyFilter::ReadOnly) => t.safety.read_only,
        Some(SafetyFilter::Destructive) => t.safety.destructive,
        Some(SafetyFilter::RequiresApproval) => t.safety.requires_approval,
        Some(SafetyFilter::Idempotent) => t.safety.idempotent,
    };
    service_ok && group_ok && safety_ok
}

/// `catalog refresh`: `POST /v1/refresh`; while it runs, a note on a terminal's stderr; after,
/// each source's outcome (`cacheOutcome`, status, stale).
pub fn refresh(client: &Client, format: Format) -> Result<String, CliError> {
    use std::io::IsTerminal as _;
    if std::io::stderr().is_terminal() {
        eprint!("refreshing the catalog of {} …", client.base());
    }
    let report = client.refresh();
    if std::io::stderr().is_terminal() {
        eprintln!(" {}", if report.is_ok() { "done" } else { "failed" });
    }
    let report = report?;
    if let Some(text) = output::machine(format, &report)? {
        return Ok(text);
    }
    let rows: Vec<Vec<String>> = report
        .sources
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.cache_outcome.clone().unwrap_or_else(|| "-".into()),
                s.status_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                if s.stale {
                    "stale".into()
                } else {
                    String::new()
                },
                output::truncate(&s.uri, 60),
            ]
        })
        .collect();
    let mut text = output::table(&["SOURCE", "OUTCOME", "STATUS", "STALE", "URI"], &rows);
    if let Some(c) = &report.catalog {
        text.push_str(&format!(
            "\n{} tools in {} services, built {}\n",
            c.tools, c.services, c.generated_at
        ));
    }
    Ok(text)
}
