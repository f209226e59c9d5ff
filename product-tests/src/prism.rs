//! Stoplight Prism, a mock upstream generated from an OpenAPI document.

use std::path::Path;
use std::process::Command;

use crate::process::{Port, Proc, START_DEADLINE, repo_root, spawn_on_free_port};

/// Stoplight Prism (npm `@stoplight/prism-cli`, installed by `scripts/deps` under
/// `product-tests/prism`): a mock upstream generated from an OpenAPI document. It validates
/// requests against the document (422 on a bad body, 401 when a required credential is absent)
/// and answers with examples generated from the response schemas.
#[derive(Debug)]
pub struct Prism {
    pub proc: Proc,
    pub url: String,
}

impl Prism {
    /// Start `prism mock` on `spec` on a free loopback port, retrying on a port clash.
    pub fn start(spec: &Path) -> Self {
        let prism = repo_root().join("product-tests/prism/node_modules/.bin/prism");
        assert!(
            prism.exists(),
            "{} is missing: run scripts/deps",
            prism.display()
        );
        let (proc, port) = spawn_on_free_port(
            "prism",
            Port::Free,
            // Prism compiles the document before it listens: allow more than START_DEADLINE.
            START_DEADLINE * 3,
            |port| {
                let mut cmd = Command::new(&prism);
                cmd.args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .arg(spec);
                cmd
            },
            |proc, port| {
                (proc.stdout().contains("Prism is listening")
                    || proc.stderr().contains("Prism is listening"))
                .then_some(port)
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            proc,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}
