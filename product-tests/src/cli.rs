//! `open-cli`, the client, run to completion.

use std::process::Output;

use crate::process::run;

/// Run `open-cli`.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    run("open-cli", args, env, None)
}

/// Run `open-cli --runtime <url> <args…>`.
pub fn cli_at(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["--runtime", url];
    all.extend_from_slice(args);
    cli(&all, env)
}
