//! The arguments of one tool command, and reading them back into an [`Invocation`].
//!
//! - Path parameters are positionals in `pathParams` order, typed and required.
//! - Every flag of the tool (query, header, cookie) is `--<name>`, typed from its schema
//!   ([`FlagType`]); `type: array` repeats. A name that clashes with a built-in flag
//!   ([`RESERVED`]) or with another flag of the tool becomes `--<location>-<name>`; the runtime
//!   still receives it under its `name`.
//! - `--body JSON|@file|-` when the tool takes a request body (required when the body is).
//! - MCP tools: scalar top-level input properties are typed flags too; together they build
//!   the JSON arguments object and cannot be combined with `--body`. (`--body` is sent as
//!   given: for a tool whose non-object input the catalog wrapped as `{input: …}`, that is
//!   the bare input, which the runtime wraps.)
//! - `--dry-run` prints the request instead of sending it.
//!
//! clap does all validation (types, enums, required values, conflicts), so every mistake is a
//! usage error (exit 2) before any request is made.

use std::io::Read;

use clap::{Arg, ArgAction, ArgMatches, Command};
use open_cli_config::ntc::{Parameter, Tool};
use serde_json::{Map, Value};

use crate::commands::flags::{self, FlagType};
use crate::error::CliError;

/// Long flag names a tool parameter cannot take: the built-in flags of tool commands and the
/// global flags.
pub const RESERVED: &[&str] = &[
    "body",
    "dry-run",
    "approval",
    "help",
    "version",
    "runtime",
    "config",
    "format",
    "mode",
    "agent-profile",
    "timeout",
];

const BODY: &str = "body";
const DRY_RUN: &str = "dry_run";

/// A tool flag and the name it has on this command line.
#[derive(Debug, Clone)]
struct FlagSpec<'a> {
    id: String,
    long: String,
    ty: FlagType,
    param: &'a Parameter,
}

/// An MCP input property exposed as a flag.
#[derive(Debug, Clone)]
struct PropSpec {
    id: String,
    name: String,
    ty: FlagType,
    required: bool,
    schema: Value,
}

/// What the user asked for, validated.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub tool: &'a Tool,
    pub path_args: Vec<String>,
    /// Flags the user set, in the tool's declared order, with their values.
    pub flags: Vec<(&'a Parameter, FlagValue)>,
    /// The raw request body.
    pub body: Option<Vec<u8>>,
    pub content_type: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    One(String),
    /// A repeatable (`type: array`) flag: always sent as an array.
    Many(Vec<String>),
}

impl FlagValue {
    pub fn to_json(&self) -> Value {
        match self {
            Self::One(s) => Value::String(s.clone()),
            Self::Many(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        }
    }

    pub fn values(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

pub fn is_mcp(tool: &Tool) -> bool {
    tool.backend.as_ref().is_some_and(|b| b.kind == "mcp")
}

/// The media type the body is sent with: the only declared one, else JSON.
pub fn body_content_type(tool: &Tool) -> Option<String> {
    let body = tool.request_body.as_ref()?;
    Some(match body.content_types.as_slice() {
        [one] => one.media_type.clone(),
        _ => "application/json".to_string(),
    })
}

fn is_json(content_type: &str) -> bool {
    content_type.to_ascii_lowercase().contains("json")
}

/// The clap command of one tool (`name` is its command word).
pub fn command(tool: &Tool, name: &str) -> Command {
    let mut cmd = Command::new(name.to_string())
        .disable_help_subcommand(true)
        .hide(tool.hidden);
    if let Some(about) = tool.summary.clone().or_else(|| tool.description.clone()) {
        cmd = cmd.about(first_line(&about));
    }
    if let Some(d) = &tool.description {
        cmd = cmd.long_about(d.clone());
    }
    cmd = cmd.after_help(after_help(tool));
    for (i, p) in tool.path_params.iter().enumerate() {
        let ty = FlagType::from_schema(p.schema.as_ref());
        let mut help = p.description.clone().unwrap_or_default();
        help = join_notes(&help, &[format!("[{}]", ty.value_name().to_lowercase())]);
        help = join_notes(&help, &ty.help_notes());
        cmd = cmd.arg(
            Arg::new(format!("path:{i}"))
                .value_name(p.name.clone())
                .required(true)
                .help(help)
                .value_parser(parser(ty)),
        );
    }
    for f in flag_specs(tool) {
        let mut notes = vec![format!("[{}]", f.param.location)];
        if f.long != f.param.name {
            notes.push(format!("[sent as `{}`]", f.param.name));
        }
        if f.param.required {
            notes.push("[required]".to_string());
        }
        notes.extend(f.ty.help_notes());
        let help = join_notes(f.param.description.as_deref().unwrap_or_default(), &notes);
        let mut arg = Arg::new(f.id.clone())
            .long(f.long.clone())
            .value_name(f.ty.value_name())
            .required(f.param.required)
            .help(help)
            .value_parser(parser(f.ty.clone()));
        if f.ty.array {
            // Repeated (`--tag a --tag b`) or comma-separated (`--tag a,b`).
            arg = arg.action(ArgAction::Append).value_delimiter(',');
        }
        cmd = cmd.arg(arg);
    }
    let props = prop_specs(tool);
    for p in &props {
        let mut notes = Vec::new();
        if p.required {
            notes.push("[required unless --body]".to_string());
        }
        notes.extend(p.ty.help_notes());
        if let Some(d) = flags::default_text(&p.schema) {
            notes.push(format!("[default: {d}]"));
        }
        let description = p.schema.get("description").and_then(Value::as_str);
        let mut arg = Arg::new(p.id.clone())
            .long(p.name.clone())
            .value_name(p.ty.value_name())
            .help(join_notes(description.unwrap_or_default(), &notes))
            .conflicts_with(BODY)
            .value_parser(parser(p.ty.clone()));
        if p.required {
            arg = arg.required_unless_present(BODY);
        }
        cmd = cmd.arg(arg);
    }
    if let Some(body) = &tool.request_body {
        let mcp = is_mcp(tool);
        let types: Vec<&str> = body
            .content_types
            .iter()
            .map(|c| c.media_type.as_str())
            .collect();
        let help = if mcp {
            "The tool's arguments as a JSON object: inline, @file, or - for stdin (instead of the property flags)".to_string()
        } else {
            format!(
                "Request body: inline, @file, or - for stdin [{}]{}",
                types.join(", "),
                if body.required { " [required]" } else { "" }
            )
        };
        cmd = cmd.arg(
            Arg::new(BODY)
                .long(BODY)
                .value_name("JSON|@FILE|-")
                .required(body.required && !mcp)
                .allow_hyphen_values(true)
                .help(help),
        );
    }
    cmd.arg(
        Arg::new(DRY_RUN)
            .long("dry-run")
            .action(ArgAction::SetTrue)
            .help("Print the request that would be sent, without sending it"),
    )
}

/// Read the parsed arguments of `tool`'s command; `stdin` serves `--body -`.
pub fn invocation<'a>(
    tool: &'a Tool,
    m: &ArgMatches,
    stdin: &mut dyn Read,
) -> Result<Invocation<'a>, CliError> {
    let path_args = (0..tool.path_params.len())
        .map(|i| {
            m.get_one::<String>(&format!("path:{i}"))
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let mut flags = Vec::new();
    for f in flag_specs(tool) {
        let Some(values) = m.get_many::<String>(&f.id) else {
            continue;
        };
        let values: Vec<String> = values.cloned().collect();
        let value = if f.ty.array {
            FlagValue::Many(values)
        } else {
            FlagValue::One(values.into_iter().next().unwrap_or_default())
        };
        flags.push((f.param, value));
    }
    let content_type = body_content_type(tool);
    // Tools without a request body have no --body.
    let raw = m.try_get_one::<String>(BODY).ok().flatten();
    let body = match raw {
        Some(spec) => Some(read_body(
            spec,
            content_type.as_deref().is_some_and(is_json) || is_mcp(tool),
            stdin,
        )?),
        None if is_mcp(tool) => Some(mcp_arguments(tool, m)?),
        None => None,
    };
    Ok(Invocation {
        tool,
        path_args,
        flags,
        body,
        content_type: content_type.filter(|_| raw.is_some() || is_mcp(tool)),
        dry_run: m.get_flag(DRY_RUN),
    })
}

/// `--body`: inline text, `@file` or `-` (stdin); checked to be JSON when `json`.
pub fn read_body(spec: &str, json: bool, stdin: &mut dyn Read) -> Result<Vec<u8>, CliError> {
    let (bytes, from) = if spec == "-" {
        let mut buf = Vec::new();
        stdin.read_to_end(&mut buf).map_err(|e| {
            CliError::usage("cannot read the request body from stdin").cause(e.to_string())
        })?;
        (buf, "stdin".to_string())
    } else if let Some(path) = spec.strip_prefix('@') {
        let bytes = std::fs::read(path).map_err(|e| {
            CliError::usage(format!("cannot read the request body from `{path}`"))
                .cause(e.to_string())
        })?;
        (bytes, format!("`{path}`"))
    } else {
        (spec.as_bytes().to_vec(), "--body".to_string())
    };
    if json && let Err(e) = serde_json::from_slice::<Value>(&bytes) {
        return Err(
            CliError::usage(format!("the request body from {from} is not valid JSON"))
                .cause(e.to_string())
                .hint("pass JSON inline (--body '{\"name\":\"x\"}'), from a file (--body @file.json) or from stdin (--body -)"),
        );
    }
    Ok(bytes)
}

/// The MCP arguments object built from the property flags.
fn mcp_arguments(tool: &Tool, m: &ArgMatches) -> Result<Vec<u8>, CliError> {
    let props = prop_specs(tool);
    let mut args = Map::new();
    for p in &props {
        if let Some(v) = m.get_one::<String>(&p.id) {
            let value =
                p.ty.to_json(v)
                    .map_err(|e| CliError::usage(format!("invalid value for --{}: {e}", p.name)))?;
            args.insert(p.name.clone(), value);
        }
    }
    // Required properties that have no flag (objects, arrays, clashing names) need --body.
    let missing: Vec<&str> = input_schema(tool)
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| !args.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(CliError::usage(format!(
            "missing required input {}: {}",
            if missing.len() == 1 {
                "property"
            } else {
                "properties"
            },
            missing.join(", ")
        ))
        .hint("pass the whole arguments object with --body JSON|@file|-"));
    }
    // A non-object input schema was wrapped as `{input: …}` by the catalog; the runtime
    // wraps the body again (docs/execution.md), so send the bare value.
    let wrapped = tool.backend.as_ref().is_some_and(|b| b.input_wrapped);
    let args = match wrapped.then(|| args.remove("input")).flatten() {
        Some(input) => input,
        None => Value::Object(args),
    };
    serde_json::to_vec(&args).map_err(|e| {
        CliError::new(crate::error::exit::PROTOCOL, "cannot encode the arguments")
            .cause(e.to_string())
    })
}

fn flag_specs(tool: &Tool) -> Vec<FlagSpec<'_>> {
    let mut taken: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, p) in tool.flags.iter().enumerate() {
        let base = if p.name.is_empty() {
            format!("flag-{i}")
        } else {
            p.name.clone()
        };
        let candidates = [
            base.clone(),
            format!("{}-{base}", p.location),
            format!("param-{i}-{base}"),
        ];
        let long = candidates
            .into_iter()
            .find(|c| !RESERVED.contains(&c.as_str()) && !taken.contains(c))
            .unwrap_or_else(|| format!("param-{i}"));
        taken.push(long.clone());
        out.push(FlagSpec {
            id: format!("flag:{i}"),
            long,
            ty: FlagType::from_schema(p.schema.as_ref()),
            param: p,
        });
    }
    out
}

/// The object schema of an MCP tool's arguments.
fn input_schema(tool: &Tool) -> Option<&Value> {
    if !is_mcp(tool) {
        return None;
    }
    let body = tool.request_body.as_ref()?;
    body.content_types
        .iter()
        .find(|c| is_json(&c.media_type))
        .or(body.content_types.first())
        .and_then(|c| c.schema.as_ref())
}

/// MCP input properties that become flags: scalar, not clashing with a built-in or a flag.
fn prop_specs(tool: &Tool) -> Vec<PropSpec> {
    let Some(schema) = input_schema(tool) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let taken: Vec<&str> = tool.flags.iter().map(|f| f.name.as_str()).collect();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(name, s)| {
            flags::is_scalar(s)
                && valid_long(name)
                && !RESERVED.contains(&name.as_str())
                && !taken.contains(&name.as_str())
        })
        .map(|(name, s)| PropSpec {
            id: format!("prop:{name}"),
            name: name.clone(),
            ty: FlagType::from_schema(Some(s)),
            required: required.contains(&name.as_str()),
            schema: s.clone(),
        })
        .collect()
}

/// Whether a property name can be a long flag (`--name`).
fn valid_long(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn parser(ty: FlagType) -> clap::builder::ValueParser {
    clap::builder::ValueParser::new(move |s: &str| -> Result<String, String> {
        let s = expand_value(s)?;
        ty.check(&s)?;
        Ok(s)
    })
}

/// Any flag or argument value may come from a file: `@path` is the file's text (one final
/// newline dropped), `@@text` is the literal `@text`.
pub fn expand_value(s: &str) -> Result<String, String> {
    if let Some(literal) = s.strip_prefix("@@") {
        return Ok(format!("@{literal}"));
    }
    let Some(path) = s.strip_prefix('@') else {
        return Ok(s.to_string());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read `{path}` (a value starting with @ is read from that file; write @@ for a literal @): {e}")
    })?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(text.to_string())
}

fn join_notes(text: &str, notes: &[String]) -> String {
    let text = first_line(text);
    let mut parts: Vec<String> = Vec::new();
    if !text.is_empty() {
        parts.push(text);
    }
    parts.extend(notes.iter().cloned());
    parts.join(" ")
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

fn after_help(tool: &Tool) -> String {
    let request = match &tool.backend {
        Some(b) if b.kind == "mcp" => format!("MCP {} ({})", b.tool_name, b.source_id),
        _ => format!("{} {}", tool.method, tool.path),
    };
    let mut lines = vec![format!("Tool: {} ({request})", tool.id)];
    if tool.safety.requires_approval {
        lines.push("Requires approval: pass --approval".to_string());
    }
    if tool.safety.destructive {
        lines.push("Destructive".to_string());
    }
    if let Some(body) = body_help(tool) {
        lines.push(String::new());
        lines.push(body);
    }
    lines.join("\n")
}

/// The request body's fields for `--help`: for the first JSON (or only) media type with an
/// object schema, one line per property with its type, whether it is required, its default
/// and limits, and the first line of its description.
fn body_help(tool: &Tool) -> Option<String> {
    let body = tool.request_body.as_ref()?;
    let media = body
        .content_types
        .iter()
        .find(|m| is_json(&m.media_type))
        .or_else(|| body.content_types.first())?;
    let schema = media.schema.as_ref()?;
    let props = schema.get("properties").and_then(Value::as_object)?;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut rows: Vec<(String, String)> = Vec::new();
    for (name, p) in props {
        let ty = match (p.get("type"), p.get("items").and_then(|i| i.get("type"))) {
            (Some(Value::String(t)), Some(Value::String(i))) if t == "array" => {
                format!("array of {i}")
            }
            (Some(Value::String(t)), _) => t.clone(),
            (Some(Value::Array(ts)), _) => ts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("|"),
            _ => "any".to_string(),
        };
        let mut notes = vec![ty];
        if required.contains(&name.as_str()) {
            notes.push("required".into());
        }
        if let Some(d) = flags::default_text(p) {
            notes.push(format!("default {d}"));
        }
        for (key, word) in [
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("minimum", "min"),
            ("maximum", "max"),
            ("minItems", "min items"),
            ("maxItems", "max items"),
            ("pattern", "pattern"),
        ] {
            if let Some(v) = p.get(key) {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                notes.push(format!("{word} {v}"));
            }
        }
        if let Some(values) = p.get("enum").and_then(Value::as_array) {
            let values: Vec<String> = values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect();
            notes.push(format!("one of {}", values.join(", ")));
        }
        let description = p
            .get("description")
            .and_then(Value::as_str)
            .map(first_line)
            .unwrap_or_default();
        let mut line = format!("[{}]", notes.join("; "));
        if !description.is_empty() {
            line = format!("{description} {line}");
        }
        rows.push((name.clone(), line));
    }
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = format!(
        "Request body ({}{}), --body JSON with:",
        media.media_type,
        if body.required { ", required" } else { "" }
    );
    for (name, line) in rows {
        out.push_str(&format!("\n  {name:width$}  {line}"));
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A tool from the fields that differ from a plain `GET /x`.
    pub(crate) fn tool(v: Value) -> Tool {
        let mut base = json!({
            "id": "demo:x", "serviceId": "demo", "method": "GET", "path": "/x",
            "group": "items", "command": "x",
            "safety": {"destructive": false, "readOnly": true, "requiresApproval": false}
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, v) {
            b.extend(e);
        }
        serde_json::from_value(base).unwrap()
    }

    fn parse(tool: &Tool, args: &[&str]) -> Result<ArgMatches, clap::Error> {
        command(tool, "x")
            .no_binary_name(true)
            .try_get_matches_from(args)
    }

    fn items_tool() -> Tool {
        tool(json!({
            "path": "/items/{itemId}",
            "pathParams": [{"name": "item-id", "originalName": "itemId", "location": "path", "required": true, "schema": {"type": "integer"}}],
            "flags": [
                {"name": "limit", "originalName": "limit", "location": "query", "required": false, "schema": {"type": "integer"}},
                {"name": "state", "originalName": "state", "location": "query", "required": true, "schema": {"type": "string", "enum": ["open", "closed"]}},
                {"name": "tag", "originalName": "tag", "location": "query", "required": false, "schema": {"type": "array", "items": {"type": "string"}}},
                {"name": "format", "originalName": "format", "location": "query", "required": false},
                {"name": "verbose", "originalName": "verbose", "location": "header", "required": false, "schema": {"type": "boolean"}}
            ]
        }))
    }

    #[test]
    fn flags_are_typed_and_validated() {
        let t = items_tool();
        let m = parse(
            &t,
            &[
                "42",
                "--limit",
                "5",
                "--state",
                "open",
                "--tag",
                "a",
                "--tag",
                "b",
                "--query-format",
                "csv",
                "--verbose",
                "true",
            ],
        )
        .unwrap();
        let inv = invocation(&t, &m, &mut std::io::empty()).unwrap();
        assert_eq!(inv.path_args, ["42"]);
        let got: Vec<(&str, Value)> = inv
            .flags
            .iter()
            .map(|(p, v)| (p.name.as_str(), v.to_json()))
            .collect();
        assert_eq!(
            got,
            [
                ("limit", json!("5")),
                ("state", json!("open")),
                ("tag", json!(["a", "b"])),
                ("format", json!("csv")),
                ("verbose", json!("true")),
            ]
        );
        assert!(!inv.dry_run);

        for (args, needle) in [
            (
                vec!["42", "--state", "open", "--limit", "ten"],
                "expected an integer",
            ),
            (
                vec!["42", "--state", "shut"],
                "expected one of: open, closed",
            ),
            (
                vec!["42", "--state", "open", "--verbose", "yes"],
                "`true` or `false`",
            ),
            (vec!["42"], "--state <STRING>"),
            (vec!["--state", "open"], "<item-id>"),
            (vec!["x", "--state", "open"], "expected an integer"),
        ] {
            let e = parse(&t, &args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            let text = e.to_string();
            assert!(text.contains(needle), "{args:?}: {text}");
        }
    }

    #[test]
    fn help_shows_types_locations_and_values() {
        let t = items_tool();
        let help = command(&t, "x").render_long_help().to_string();
        for needle in [
            "<item-id>",
            "--limit <INTEGER>",
            "[query]",
            "--state <STRING>",
            "[required]",
            "[possible values: open, closed]",
            "[repeatable]",
            "--query-format <STRING>",
            "[sent as `format`]",
            "--dry-run",
            "Tool: demo:x (GET /items/{itemId})",
        ] {
            assert!(help.contains(needle), "missing {needle:?} in\n{help}");
        }
    }

    #[test]
    fn bodies_inline_file_stdin_and_invalid() {
        assert_eq!(
            read_body(r#"{"a":1}"#, true, &mut std::io::empty()).unwrap(),
            br#"{"a":1}"#
        );
        let dir = tempfile_dir();
        let file = dir.join("body.json");
        std::fs::write(&file, r#"{"name":"x"}"#).unwrap();
        let spec = format!("@{}", file.display());
        assert_eq!(
            read_body(&spec, true, &mut std::io::empty()).unwrap(),
            br#"{"name":"x"}"#
        );
        let mut stdin = std::io::Cursor::new(b"[1,2]".to_vec());
        assert_eq!(read_body("-", true, &mut stdin).unwrap(), b"[1,2]");
        let e = read_body("{nope", true, &mut std::io::empty()).unwrap_err();
        assert_eq!(e.exit, 2);
        assert!(e.message.contains("not valid JSON"), "{e}");
        // Not JSON is fine for a non-JSON body.
        assert_eq!(
            read_body("plain", false, &mut std::io::empty()).unwrap(),
            b"plain"
        );
        let e = read_body("@/no/such/file", true, &mut std::io::empty()).unwrap_err();
        assert_eq!(e.exit, 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("open-cli-leaf-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn required_body_is_enforced_and_checked() {
        let t = tool(json!({
            "method": "POST",
            "requestBody": {"required": true, "contentTypes": [{"mediaType": "application/json"}]}
        }));
        let e = parse(&t, &[]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--body"), "{e}");
        let m = parse(&t, &["--body", r#"{"name":"x"}"#]).unwrap();
        let inv = invocation(&t, &m, &mut std::io::empty()).unwrap();
        assert_eq!(inv.body.as_deref(), Some(&br#"{"name":"x"}"#[..]));
        assert_eq!(inv.content_type.as_deref(), Some("application/json"));
        let m = parse(&t, &["--body", "{bad"]).unwrap();
        assert_eq!(
            invocation(&t, &m, &mut std::io::empty()).unwrap_err().exit,
            2
        );
    }

    fn mcp_tool() -> Tool {
        tool(json!({
            "method": "POST",
            "backend": {"kind": "mcp", "sourceId": "fs", "toolName": "read_file", "transport": "stdio"},
            "requestBody": {"required": true, "contentTypes": [{"mediaType": "application/json", "schema": {
                "type": "object",
                "required": ["path"],
                "properties": {
                    "path": {"type": "string", "description": "File to read."},
                    "head": {"type": "integer", "default": 10},
                    "mode": {"type": "string", "enum": ["text", "binary"]},
                    "encoding": {"type": "string", "enum": ["utf8", "latin1"]},
                    "body": {"type": "string"},
                    "options": {"type": "object"}
                }
            }}]}
        }))
    }

    #[test]
    fn mcp_properties_become_typed_flags() {
        let t = mcp_tool();
        let m = parse(&t, &["--path", "/a", "--head", "3", "--encoding", "utf8"]).unwrap();
        let inv = invocation(&t, &m, &mut std::io::empty()).unwrap();
        let body: Value = serde_json::from_slice(inv.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"path": "/a", "head": 3, "encoding": "utf8"}));
        // Clashing properties (mode, body) have no flag; an object one takes JSON.
        let help = command(&t, "x").render_long_help().to_string();
        assert!(
            help.contains("--head <INTEGER>") && help.contains("[default: 10]"),
            "{help}"
        );
        assert!(help.contains("--options <JSON>"), "{help}");
        let m = parse(&t, &["--path", "/a", "--options", r#"{"x": [1]}"#]).unwrap();
        let inv = invocation(&t, &m, &mut std::io::empty()).unwrap();
        let body: Value = serde_json::from_slice(inv.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["options"], json!({"x": [1]}));
        for (args, needle) in [
            (vec!["--head", "3"], "--path <STRING>"),
            (vec!["--path", "/a", "--head", "x"], "expected an integer"),
            (
                vec!["--path", "/a", "--encoding", "ascii"],
                "expected one of",
            ),
            (vec!["--path", "/a", "--body", "{}"], "cannot be used with"),
        ] {
            let e = parse(&t, &args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
        // A wrapped non-object input is sent bare: the runtime wraps it.
        let mut w = tool(json!({
            "method": "POST",
            "backend": {"kind": "mcp", "sourceId": "s", "toolName": "echo", "transport": "stdio", "inputWrapped": true},
            "requestBody": {"required": true, "contentTypes": [{"mediaType": "application/json", "schema": {
                "type": "object", "required": ["input"], "properties": {"input": {"type": "string"}}
            }}]}
        }));
        let m = parse(&w, &["--input", "hi"]).unwrap();
        let inv = invocation(&w, &m, &mut std::io::empty()).unwrap();
        assert_eq!(inv.body.as_deref(), Some(&br#""hi""#[..]));
        w.backend.as_mut().unwrap().input_wrapped = false;
        let m = parse(&w, &["--input", "hi"]).unwrap();
        let inv = invocation(&w, &m, &mut std::io::empty()).unwrap();
        assert_eq!(inv.body.as_deref(), Some(&br#"{"input":"hi"}"#[..]));
        // --body alone replaces the flags.
        let m = parse(&t, &["--body", r#"{"path":"/b"}"#]).unwrap();
        let inv = invocation(&t, &m, &mut std::io::empty()).unwrap();
        assert_eq!(inv.body.as_deref(), Some(&br#"{"path":"/b"}"#[..]));
    }
}
