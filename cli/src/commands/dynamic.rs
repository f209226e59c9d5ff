//! Dynamic tool commands: `open-cli <service> [<group>] <command> [path args] [--flags]`.
//!
//! The static command line ([`crate::args`]) routes any unknown first word here (clap's
//! external subcommand), so `open-cli --help` and the built-in commands never need a runtime.
//! Then:
//!
//! 1. The global flags that choose the runtime and the view (`--runtime`, `--config`,
//!    `--mode`, `--agent-profile`, `--timeout`) are picked out of the remaining words
//!    ([`prescan`]), because they may follow the tool words.
//! 2. The selected view is fetched (`GET /v1/catalog/effective`) and turned into a [`Tree`]:
//!    service alias → group → command. The group level is left out when the group is empty
//!    or equals the service alias or ID (the contract), unless a command of that name
//!    would shadow a group. Hidden tools are callable but not listed; tool `aliases` are
//!    command aliases; a later tool with a name already taken is left out.
//! 3. The tree becomes a clap command built at run time, with the global flags, and the whole
//!    command line is parsed again, so help (`open-cli demo --help`), typos with suggestions
//!    and every value check come from clap with exit code 2.
//! 4. The chosen tool's arguments are read ([`leaf`]) and run or printed ([`exec`]).

use std::ffi::OsString;

use clap::{ArgMatches, Args, Command, FromArgMatches};
use open_cli_config::ntc::Tool;
use open_cli_config::wire::EffectiveCatalog;

use crate::args::GlobalArgs;
use crate::commands::exec::{self, Reply};
use crate::commands::leaf;
use crate::error::{CliError, exit};
use crate::{output, resolve};

/// First words the static command line owns; a service with such an alias is unreachable
/// here and left out.
pub const BUILT_IN: &[&str] = &[
    "runtime",
    "catalog",
    "tool",
    "explain",
    "search",
    "status",
    "config",
    "auth",
    "mcp",
    "completions",
    "help",
];

#[derive(Debug)]
pub struct Tree<'a> {
    pub services: Vec<ServiceNode<'a>>,
}

#[derive(Debug)]
pub struct ServiceNode<'a> {
    /// The alias (the service ID when it has none).
    pub name: String,
    pub id: String,
    pub title: String,
    pub groups: Vec<GroupNode<'a>>,
    /// Commands whose group level is omitted.
    pub commands: Vec<Leaf<'a>>,
}

#[derive(Debug)]
pub struct GroupNode<'a> {
    pub name: String,
    pub commands: Vec<Leaf<'a>>,
}

#[derive(Debug)]
pub struct Leaf<'a> {
    pub name: String,
    pub aliases: Vec<String>,
    pub tool: &'a Tool,
}

impl<'a> Tree<'a> {
    /// The command tree of a view's tools.
    pub fn build(effective: &'a EffectiveCatalog) -> Self {
        let mut services: Vec<ServiceNode<'a>> = Vec::new();
        let tools = &effective.view.tools;
        // Services in catalog order, then any the catalog does not describe.
        let mut ids: Vec<&str> = effective
            .catalog
            .services
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        for t in tools {
            if !ids.contains(&t.service_id.as_str()) {
                ids.push(&t.service_id);
            }
        }
        for id in ids {
            let entry = effective.catalog.services.iter().find(|s| s.id == id);
            let name = entry
                .map(|s| s.alias.clone())
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| id.to_string());
            if BUILT_IN.contains(&name.as_str()) || services.iter().any(|s| s.name == name) {
                continue;
            }
            let mine: Vec<&Tool> = tools.iter().filter(|t| t.service_id == id).collect();
            if mine.is_empty() {
                continue;
            }
            let grouped = |t: &Tool| !(t.group.is_empty() || t.group == name || t.group == id);
            let group_names: Vec<&str> = mine
                .iter()
                .filter(|t| grouped(t))
                .map(|t| t.group.as_str())
                .collect();
            let mut node = ServiceNode {
                name: name.clone(),
                id: id.to_string(),
                title: entry.map(|s| s.title.clone()).unwrap_or_default(),
                groups: Vec::new(),
                commands: Vec::new(),
            };
            for t in mine {
                // An ungrouped command may not take a group's name; keep its group then.
                let direct = !grouped(t) && !group_names.contains(&t.command.as_str());
                if direct {
                    add_leaf(&mut node.commands, t, &group_names);
                } else if !t.group.is_empty() {
                    let at = match node.groups.iter().position(|g| g.name == t.group) {
                        Some(i) => i,
                        None => {
                            node.groups.push(GroupNode {
                                name: t.group.clone(),
                                commands: Vec::new(),
                            });
                            node.groups.len() - 1
                        }
                    };
                    add_leaf(&mut node.groups[at].commands, t, &[]);
                }
            }
            for g in &mut node.groups {
                alias_without_group_prefix(g);
            }
            services.push(node);
        }
        Self { services }
    }

    /// The clap command of the whole tree, with the global flags.
    pub fn command(&self) -> Command {
        self.command_along(None)
    }

    /// [`Tree::command`], with full commands (arguments, flags, subcommands) only where one of
    /// `words` names them — the services, groups and commands a command line can reach — and
    /// the rest as their names, aliases and one-line help: enough for help, suggestions and
    /// completion of names, and a fraction of the cost for a catalog of a thousand tools
    /// (building every command's flags was most of a warm `--help`: `bench/cli.sh`).
    pub fn command_along(&self, words: Option<&[String]>) -> Command {
        let on =
            |names: &[&str]| words.is_none_or(|w| w.iter().any(|x| names.contains(&x.as_str())));
        let stub = |l: &Leaf<'_>| {
            let mut c = Command::new(l.name.clone())
                .visible_aliases(l.aliases.clone())
                .hide(l.tool.hidden);
            if let Some(about) = l.tool.summary.as_deref().or(l.tool.description.as_deref()) {
                c = c.about(output::truncate(about, 80));
            }
            c
        };
        let leaf = |l: &Leaf<'_>| {
            let mut names: Vec<&str> = vec![l.name.as_str()];
            names.extend(l.aliases.iter().map(String::as_str));
            if on(&names) { leaf_command(l) } else { stub(l) }
        };
        let mut root = GlobalArgs::augment_args(Command::new("open-cli"))
            .bin_name("open-cli")
            .disable_version_flag(true)
            .disable_help_subcommand(true)
            .subcommand_required(true)
            .subcommand_value_name("SERVICE")
            .mut_args(|a| a.help_heading("Global options"))
            .mut_arg("approval", |a| a.hide(false));
        for s in &self.services {
            let mut cmd = Command::new(s.name.clone());
            if !s.title.is_empty() {
                cmd = cmd.about(s.title.clone());
            }
            if s.id != s.name && !self.services.iter().any(|o| o.name == s.id) {
                cmd = cmd.alias(s.id.clone());
            }
            if !on(&[s.name.as_str(), s.id.as_str()]) {
                root = root.subcommand(cmd);
                continue;
            }
            cmd = cmd
                .disable_help_subcommand(true)
                .subcommand_required(true)
                .arg_required_else_help(true)
                .subcommand_value_name("COMMAND");
            for g in &s.groups {
                let names: Vec<&str> = g
                    .commands
                    .iter()
                    .filter(|l| !l.tool.hidden)
                    .map(|l| l.name.as_str())
                    .collect();
                let mut group = Command::new(g.name.clone())
                    .about(output::truncate(&names.join(", "), 70))
                    .hide(names.is_empty());
                if on(&[g.name.as_str()]) {
                    group = group
                        .disable_help_subcommand(true)
                        .subcommand_required(true)
                        .arg_required_else_help(true)
                        .subcommand_value_name("COMMAND");
                    for l in &g.commands {
                        group = group.subcommand(leaf(l));
                    }
                }
                cmd = cmd.subcommand(group);
            }
            for l in &s.commands {
                cmd = cmd.subcommand(leaf(l));
            }
            root = root.subcommand(cmd);
        }
        root
    }

    /// The tool a parse chose and the matches of its command.
    pub fn resolve<'m>(&self, m: &'m ArgMatches) -> Option<(&'a Tool, &'m ArgMatches)> {
        let (service, sm) = m.subcommand()?;
        let s = self.services.iter().find(|s| s.name == service)?;
        let (word, wm) = sm.subcommand()?;
        if let Some(l) = s.commands.iter().find(|l| l.name == word) {
            return Some((l.tool, wm));
        }
        let g = s.groups.iter().find(|g| g.name == word)?;
        let (command, cm) = wm.subcommand()?;
        let l = g.commands.iter().find(|l| l.name == command)?;
        Some((l.tool, cm))
    }
}

fn add_leaf<'a>(siblings: &mut Vec<Leaf<'a>>, t: &'a Tool, also_taken: &[&str]) {
    let taken = |n: &str, siblings: &[Leaf<'a>]| {
        also_taken.contains(&n)
            || siblings
                .iter()
                .any(|l| l.name == n || l.aliases.iter().any(|a| a == n))
    };
    if t.command.is_empty() || taken(&t.command, siblings) {
        return;
    }
    let mut aliases: Vec<String> = Vec::new();
    for a in &t.aliases {
        if !a.is_empty() && *a != t.command && !aliases.contains(a) && !taken(a, siblings) {
            aliases.push(a.clone());
        }
    }
    siblings.push(Leaf {
        name: t.command.clone(),
        aliases,
        tool: t,
    });
}

/// Names that repeat their group (GitHub's `repos repos-get`: 1,209 of its 1,223 commands)
/// are also accepted without it (`repos get`), where that name is free among the group's
/// commands. Added after every command has its own name, so an alias never takes a name a
/// later command has; the catalog's command names stay as they are.
fn alias_without_group_prefix(g: &mut GroupNode<'_>) {
    let prefix = format!("{}-", g.name);
    for i in 0..g.commands.len() {
        let Some(short) = g.commands[i].name.strip_prefix(&prefix) else {
            continue;
        };
        let short = short.to_string();
        let taken = g
            .commands
            .iter()
            .any(|l| l.name == short || l.aliases.contains(&short));
        if !short.is_empty() && !taken {
            g.commands[i].aliases.push(short);
        }
    }
}

fn leaf_command(l: &Leaf<'_>) -> Command {
    leaf::command(l.tool, &l.name).visible_aliases(l.aliases.clone())
}

/// Copy the runtime- and view-choosing global flags found among `words` into `g` (the values
/// clap already parsed before the first tool word, and the environment).
pub fn prescan(g: &mut GlobalArgs, words: &[String]) {
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if w == "--" {
            break;
        }
        if w == "--offline" {
            g.offline = true;
            i += 1;
            continue;
        }
        if w == "-v" || w == "--verbose" {
            g.verbose = true;
            i += 1;
            continue;
        }
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (w.as_str(), None),
        };
        let known = matches!(
            name,
            "--runtime" | "--config" | "--mode" | "--agent-profile" | "--timeout"
        );
        if !known {
            i += 1;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                match words.get(i) {
                    Some(v) => v.clone(),
                    None => break,
                }
            }
        };
        match name {
            "--runtime" => g.runtime = Some(value),
            "--config" => g.config = Some(value.into()),
            "--mode" => g.mode = Some(value),
            "--agent-profile" => g.agent_profile = Some(value),
            _ => {
                if let Ok(t) = value.parse() {
                    g.timeout = t;
                }
            }
        }
        i += 1;
    }
}

/// Run a tool command: `argv` is the whole command line, `words` what follows the global
/// flags clap parsed into `global`.
pub fn run(global: &GlobalArgs, argv: Vec<OsString>, words: &[String]) -> Result<Reply, CliError> {
    let mut g = global.clone();
    prescan(&mut g, words);
    let first = words.first().map(String::as_str).unwrap_or_default();
    let config = resolve::client_config(g.config.as_deref())?;
    let (client, view) =
        super::connect(&g, config.as_ref()).map_err(|e| not_a_command(first, e))?;
    let effective = client
        .effective(&view)
        .map_err(|e| not_a_command(first, e))?;
    let tree = Tree::build(&effective);
    if let Some(e) = built_in_typo(&tree, first) {
        return Err(e);
    }
    let matches = match tree.command_along(Some(words)).try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            // Help goes to stdout with exit 0, mistakes to stderr with exit 2.
            let _ = e.print();
            return Ok(Reply {
                exit: u8::try_from(e.exit_code()).unwrap_or(exit::USAGE),
                ..Reply::default()
            });
        }
    };
    let (tool, m) = tree
        .resolve(&matches)
        .ok_or_else(|| CliError::usage(format!("no tool command matches `{}`", words.join(" "))))?;
    let g = GlobalArgs::from_arg_matches(m)
        .map_err(|e| CliError::usage("invalid global flags").cause(e.to_string()))?;
    let format = output::resolve(g.format);
    let inv = leaf::invocation(tool, m, &mut std::io::stdin().lock())?;
    if inv.dry_run {
        let plan = exec::plan(&inv, &effective);
        return exec::dry_run(&plan, format).map(Reply::data);
    }
    let req = exec::request(&client, &view, &inv, g.approval || global.approval);
    exec::execute(&client, &req, format)
}

/// `open-cli catalgo`: not a service, but close to a built-in command.
fn built_in_typo(tree: &Tree<'_>, word: &str) -> Option<CliError> {
    if word.starts_with('-') || tree.services.iter().any(|s| s.name == word || s.id == word) {
        return None;
    }
    let names: Vec<&str> = BUILT_IN.iter().copied().filter(|n| *n != "help").collect();
    let s = open_cli_config::diag::did_you_mean(word, &names)?;
    Some(
        CliError::usage(format!("unknown command `{word}`"))
            .hint(format!("did you mean `open-cli {s}`?")),
    )
}

/// Without a catalog, the first word is just an unknown command: say so, and why.
fn not_a_command(word: &str, e: CliError) -> CliError {
    let names: Vec<&str> = BUILT_IN.iter().copied().filter(|n| *n != "help").collect();
    if let Some(s) = open_cli_config::diag::did_you_mean(word, &names) {
        return CliError::usage(format!("unknown command `{word}`"))
            .hint(format!("did you mean `open-cli {s}`?"));
    }
    if e.exit == exit::USAGE && e.code.is_none() {
        return CliError::usage(format!("unknown command `{word}`"))
            .cause(e.message)
            .hint("tool commands (`open-cli <service> [<group>] <command>`) come from a runtime; pass --runtime URL or set OPEN_CLI_RUNTIME_URL");
    }
    e.cause(format!(
        "`{word}` is not a built-in command; tool commands need the runtime's catalog"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::leaf::tests::tool;
    use serde_json::{Value, json};

    fn effective(tools: Vec<Value>) -> EffectiveCatalog {
        let tools: Vec<Tool> = tools.into_iter().map(tool).collect();
        serde_json::from_value(json!({
            "catalog": {
                "catalogVersion": "1.0.0", "generatedAt": "now", "sourceFingerprint": "x",
                "sources": [], "tools": [], "effectiveViews": [],
                "services": [
                    {"id": "demo", "alias": "demo", "sourceId": "demo", "title": "Demo API"},
                    {"id": "fs-server", "alias": "fs", "sourceId": "fs", "title": "Files"},
                    {"id": "config", "alias": "config", "sourceId": "c", "title": "Clash"}
                ]
            },
            "view": {"name": "discover", "mode": "discover", "tools": tools}
        }))
        .unwrap()
    }

    fn t(id: &str, service: &str, group: &str, command: &str) -> Value {
        json!({"id": id, "serviceId": service, "group": group, "command": command})
    }

    fn shape(tree: &Tree<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for s in &tree.services {
            for l in &s.commands {
                out.push(format!("{} {}", s.name, l.name));
            }
            for g in &s.groups {
                for l in &g.commands {
                    out.push(format!("{} {} {}", s.name, g.name, l.name));
                }
            }
        }
        out
    }

    #[test]
    fn groups_are_omitted_when_they_name_the_service() {
        let e = effective(vec![
            t("demo:list", "demo", "items", "list-items"),
            t("demo:ping", "demo", "demo", "ping"),
            t("demo:misc", "demo", "", "misc"),
            t("fs:read", "fs-server", "fs-server", "read-file"),
            t("fs:write", "fs-server", "fs", "write-file"),
            // An ungrouped command named like a group keeps its group.
            t("demo:items", "demo", "demo", "items"),
            // Duplicates: the first wins.
            t("demo:list2", "demo", "items", "list-items"),
            // A service named like a built-in command is unreachable, left out.
            t("config:x", "config", "x", "y"),
        ]);
        let tree = Tree::build(&e);
        assert_eq!(
            shape(&tree),
            [
                "demo ping",
                "demo misc",
                "demo items list-items",
                "demo demo items",
                "fs read-file",
                "fs write-file",
            ]
        );
    }

    fn parse<'a>(tree: &'a Tree<'a>, args: &[&str]) -> Result<String, clap::Error> {
        let mut argv = vec!["open-cli"];
        argv.extend(args);
        let m = tree.command().try_get_matches_from(argv)?;
        Ok(tree
            .resolve(&m)
            .map(|(t, _)| t.id.clone())
            .unwrap_or_default())
    }

    #[test]
    fn commands_that_repeat_their_group_also_answer_without_it() {
        let e = effective(vec![
            t("gh:reposGet", "gh", "repos", "repos-get"),
            t("gh:reposList", "gh", "repos", "repos-list"),
            // `list` is this command's own name: the alias of `repos-list` does not take it.
            t("gh:list", "gh", "repos", "list"),
            t("gh:issuesGet", "gh", "issues", "issues-get"),
        ]);
        let tree = Tree::build(&e);
        tree.command().debug_assert();
        assert_eq!(
            parse(&tree, &["gh", "repos", "get"]).unwrap(),
            "gh:reposGet"
        );
        assert_eq!(
            parse(&tree, &["gh", "repos", "repos-get"]).unwrap(),
            "gh:reposGet"
        );
        assert_eq!(parse(&tree, &["gh", "repos", "list"]).unwrap(), "gh:list");
        assert_eq!(
            parse(&tree, &["gh", "repos", "repos-list"]).unwrap(),
            "gh:reposList"
        );
        assert_eq!(
            parse(&tree, &["gh", "issues", "get"]).unwrap(),
            "gh:issuesGet"
        );
    }

    #[test]
    fn the_clap_tree_resolves_commands_aliases_and_hidden_tools() {
        let mut hidden = t("demo:secret", "demo", "items", "secret");
        hidden["hidden"] = json!(true);
        let mut aliased = t("demo:get", "demo", "items", "get-item");
        aliased["aliases"] = json!(["get", "list-items"]);
        let e = effective(vec![
            t("demo:list", "demo", "items", "list-items"),
            aliased,
            hidden,
            t("fs:read", "fs-server", "fs", "read-file"),
        ]);
        let tree = Tree::build(&e);
        tree.command().debug_assert();
        assert_eq!(
            parse(&tree, &["demo", "items", "list-items"]).unwrap(),
            "demo:list"
        );
        assert_eq!(parse(&tree, &["demo", "items", "get"]).unwrap(), "demo:get");
        assert_eq!(
            parse(&tree, &["demo", "items", "secret"]).unwrap(),
            "demo:secret"
        );
        assert_eq!(parse(&tree, &["fs", "read-file"]).unwrap(), "fs:read");
        // The service ID works as well as the alias.
        assert_eq!(
            parse(&tree, &["fs-server", "read-file"]).unwrap(),
            "fs:read"
        );
        // Globals anywhere.
        assert_eq!(
            parse(&tree, &["demo", "items", "list-items", "--format", "json"]).unwrap(),
            "demo:list"
        );
        let help = tree
            .command()
            .find_subcommand_mut("demo")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            help.contains("items") && help.contains("list-items, get-item"),
            "{help}"
        );
        assert!(!help.contains("secret"), "{help}");
        let e = parse(&tree, &["demo", "items", "get-itme"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("get-item"), "{e}");
        let e = parse(&tree, &["dmeo"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn global_flags_reach_the_tool_command_from_anywhere() {
        let e = effective(vec![t("demo:list", "demo", "items", "list-items")]);
        let tree = Tree::build(&e);
        for argv in [
            vec![
                "open-cli",
                "--format",
                "yaml",
                "--approval",
                "demo",
                "items",
                "list-items",
            ],
            vec![
                "open-cli",
                "demo",
                "items",
                "list-items",
                "--format",
                "yaml",
                "--approval",
            ],
            vec![
                "open-cli",
                "demo",
                "--format=yaml",
                "items",
                "--approval",
                "list-items",
            ],
        ] {
            let m = tree.command().try_get_matches_from(&argv).unwrap();
            let (_, leaf) = tree.resolve(&m).unwrap();
            let g = GlobalArgs::from_arg_matches(leaf).unwrap();
            assert_eq!(g.format, Some(crate::args::Format::Yaml), "{argv:?}");
            assert!(g.approval, "{argv:?}");
        }
    }

    #[test]
    fn prescan_finds_runtime_and_view_flags_anywhere() {
        let mut g = GlobalArgs::from_arg_matches(
            &GlobalArgs::augment_args(Command::new("x"))
                .try_get_matches_from(["x"])
                .unwrap(),
        )
        .unwrap();
        let words: Vec<String> = [
            "demo",
            "items",
            "--runtime",
            "http://r",
            "--mode=curated",
            "--agent-profile",
            "reader",
            "--timeout",
            "5",
            "--config",
            "c.json",
            "--",
            "--mode",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        prescan(&mut g, &words);
        assert_eq!(g.runtime.as_deref(), Some("http://r"));
        assert_eq!(g.mode.as_deref(), Some("curated"));
        assert_eq!(g.agent_profile.as_deref(), Some("reader"));
        assert_eq!(g.timeout, 5);
        assert_eq!(g.config.as_deref(), Some(std::path::Path::new("c.json")));
    }

    #[test]
    fn unknown_words_without_a_runtime_are_usage_errors() {
        let e = not_a_command("catalgo", CliError::usage("no runtime to talk to"));
        assert_eq!(e.exit, exit::USAGE);
        assert!(e.to_string().contains("open-cli catalog"), "{e}");
        let e = not_a_command("demo", CliError::usage("no runtime to talk to"));
        assert_eq!(e.exit, exit::USAGE);
        assert!(e.to_string().contains("unknown command `demo`"), "{e}");
        let e = not_a_command("demo", CliError::new(exit::UNREACHABLE, "cannot reach"));
        assert_eq!(e.exit, exit::UNREACHABLE);
    }
}
