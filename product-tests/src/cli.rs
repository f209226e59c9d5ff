//! `open-cli`, the client, run to completion.

use std::process::Output;

use crate::process::run;

/// Run `open-cli`.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    run("open-cli", args, env, None)
}
