//! Shell completions.
//!
//! `open-cli completions <shell>` prints a registration script; the shell then calls
//! `open-cli` back on every Tab (`COMPLETE=<shell> open-cli -- <words…>`, clap_complete's
//! dynamic engine), which completes the built-in commands and flags **and** the tool commands
//! of the runtime's catalog — services, groups, commands, flags, enum values — from the
//! local catalog cache (`crate::cache`), so a warm completion sends no request. Without a
//! cached view the catalog is fetched once (with a short timeout) and cached; a runtime that
//! cannot be reached leaves the built-in commands.
//!
//! Why the dynamic engine rather than a generated static script: the command tree is the
//! catalog, which changes with the runtime, the view and the token; a script written once
//! would go stale. The script this prints only calls back into the binary.

use clap::{Args as _, CommandFactory as _, FromArgMatches as _};

use crate::args::{Cli, GlobalArgs};
use crate::commands::dynamic;
use crate::error::CliError;

/// The environment variable that switches `open-cli` into answering a completion request.
pub const VAR: &str = "COMPLETE";

/// Answer a completion request and exit, when this process is one (`COMPLETE` is set);
/// otherwise return at once.
pub fn complete_from_env() {
    clap_complete::CompleteEnv::with_factory(command)
        .var(VAR)
        .bin("open-cli")
        .complete();
}

/// `open-cli completions <shell>`: the script that registers the completer with `shell`.
pub fn registration(shell: &str) -> Result<String, CliError> {
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells.completer(shell).ok_or_else(|| {
        CliError::usage(format!("no completions for shell `{shell}`")).hint(format!(
            "one of: {}",
            shells.names().collect::<Vec<_>>().join(", ")
        ))
    })?;
    // The completer is this very binary, by absolute path: completion works wherever the
    // binary is, and keeps calling the version that wrote the script.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "open-cli".into());
    let mut buf = Vec::new();
    completer
        .write_registration(VAR, "open-cli", "open-cli", &exe, &mut buf)
        .map_err(|e| CliError::usage("cannot write the completion script").cause(e.to_string()))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The whole command tree: the built-in commands, and the catalog's tool commands when the
/// words being completed lead to a runtime (its flags are read from them as for a command).
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let words: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    if words.is_empty() {
        return cmd; // writing the registration script
    }
    if let Some(tree) = catalog_commands(&words) {
        for sub in tree.get_subcommands() {
            cmd = cmd.subcommand(sub.clone());
        }
    }
    cmd
}

fn catalog_commands(words: &[String]) -> Option<clap::Command> {
    let matches = GlobalArgs::augment_args(clap::Command::new("open-cli"))
        .ignore_errors(true)
        .try_get_matches_from(["open-cli"])
        .ok()?;
    let mut g = GlobalArgs::from_arg_matches(&matches).ok()?;
    dynamic::prescan(&mut g, words);
    let config = crate::resolve::client_config(g.config.as_deref())
        .ok()
        .flatten();
    // The cached view first, quietly; else one short fetch (which caches it).
    g.offline = true;
    g.timeout = 2;
    let (client, view) = crate::commands::connect(&g, config.as_ref()).ok()?;
    let effective = match client.quiet().effective(&view) {
        Ok(e) => e,
        Err(_) => {
            g.offline = false;
            let (client, view) = crate::commands::connect(&g, config.as_ref()).ok()?;
            client.effective(&view).ok()?
        }
    };
    Some(dynamic::Tree::build(&effective).command_along(Some(words)))
}
