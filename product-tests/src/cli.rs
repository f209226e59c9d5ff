//! `open-cli`, the client, run to completion.

use std::process::Output;

use serde_json::Value;

use crate::process::{run, text};

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

/// The JSON `out` printed, asserting that the command succeeded (both streams shown if not).
pub fn json_out(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

/// The stderr of a usage error: exit code 2 and nothing on stdout (asserted).
pub fn usage_error(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {err}",
        text(&out.stdout)
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        text(&out.stdout)
    );
    err
}
